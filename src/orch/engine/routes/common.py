"""What every route module uses: the engine of a request, responses, route tables.

Errors are raised, never returned: an :class:`~orch.engine.errors.ApiError` raised by an
endpoint becomes OpenAI's error response in :func:`api_error` (an app-level exception
handler, see :func:`orch.engine.app.create_app`). Generic endpoints (find, retrieve, delete,
list) are in :mod:`orch.engine.routes.resources`.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from orch.engine.core import Engine
from orch.engine.errors import ApiError
from orch.engine.sse import DONE, relay
from orch.engine.store import public
from orch.engine.turns import TurnExecutor

Endpoint = Callable[[Request], Awaitable[Response]]


def engine_of(request: Request) -> Engine:
    """The engine serving this request."""
    return request.app.state.engine


# -- responses -------------------------------------------------------------------------------


def json_response(data: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """A compact JSON response."""
    body = json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode()
    return Response(body, status_code=status, headers=headers, media_type="application/json")


def object_response(obj: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    """An API object (engine-private keys stripped)."""
    return json_response(public(obj), headers=headers)


def error_response(exc: ApiError) -> Response:
    """OpenAI's error shape with the error's status."""
    return json_response(exc.body(), status=exc.status, headers=exc.headers)


async def api_error(request: Request, exc: Exception) -> Response:
    """The exception handler for :class:`ApiError`: the error as OpenAI sends it."""
    assert isinstance(exc, ApiError)
    return error_response(exc)


def event_stream(
    executor: TurnExecutor,
    object_id: str,
    start: Callable[[], object],
    *,
    prelude: list[bytes] | None = None,
    done: bytes = DONE,
) -> Response:
    """Stream an object's events: listen first, then ``start()`` what sends them.

    Listening first means no event is missed; when ``start`` raises, nobody listens.
    """
    queue = executor.subscribe(object_id)
    try:
        start()
    except Exception:
        executor.unsubscribe(object_id, queue)
        raise
    frames = relay(
        queue,
        prelude=prelude,
        done=done,
        on_close=lambda: executor.unsubscribe(object_id, queue),
    )
    return StreamingResponse(
        frames, media_type="text/event-stream", headers={"cache-control": "no-cache"}
    )


def deleted(object_id: str, kind: str) -> Response:
    """The ``{id, object: "<kind>.deleted", deleted: true}`` answer of DELETE endpoints."""
    return json_response({"id": object_id, "object": f"{kind}.deleted", "deleted": True})


# -- route tables ----------------------------------------------------------------------------


def route(path: str, endpoint: Endpoint, methods: list[str]) -> Route:
    """A ``/v1`` route whose requests are counted under ``"METHOD /v1<path>"``."""
    full = "/v1" + path

    @functools.wraps(endpoint)
    async def counted(request: Request) -> Response:
        engine_of(request).stats.add(f"{request.method} {full}")
        return await endpoint(request)

    return Route(full, counted, methods=methods)


def routes(table: dict[str, dict[str, Endpoint]]) -> list[Route]:
    """Routes from ``{path: {method: endpoint}}``, in the table's order (it decides matches)."""
    return [
        route(path, endpoint, [method])
        for path, endpoints in table.items()
        for method, endpoint in endpoints.items()
    ]
