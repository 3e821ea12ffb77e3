"""Helpers every route module uses: JSON responses, error mapping, request counting."""

from __future__ import annotations

import functools
import json
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from orch.engine.core import Engine
from orch.engine.errors import ApiError
from orch.engine.store import public

log = logging.getLogger("orch.engine")
Endpoint = Callable[[Request], Awaitable[Response]]


def engine_of(request: Request) -> Engine:
    """The engine serving this request."""
    return request.app.state.engine


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


def route(path: str, endpoint: Endpoint, methods: list[str]) -> Route:
    """A ``/v1`` route whose requests are counted under ``"METHOD /v1<path>"``."""
    full = "/v1" + path

    @functools.wraps(endpoint)
    async def wrapped(request: Request) -> Response:
        engine_of(request).stats.add(f"{request.method} {full}")
        try:
            return await endpoint(request)
        except ApiError as exc:
            return error_response(exc)

    return Route(full, wrapped, methods=methods)


def deleted(object_id: str, kind: str) -> Response:
    """The ``{id, object: "<kind>.deleted", deleted: true}`` answer of DELETE endpoints."""
    return json_response({"id": object_id, "object": f"{kind}.deleted", "deleted": True})
