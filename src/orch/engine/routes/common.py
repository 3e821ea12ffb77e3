"""What every route module uses: responses, route tables, finding objects, lists, deletes.

Errors are raised, never returned: an :class:`~orch.engine.errors.ApiError` raised by an
endpoint becomes OpenAI's error response in :func:`api_error` (an app-level exception
handler, see :func:`orch.engine.app.create_app`).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse
from starlette.routing import Route

from orch.engine import params as p
from orch.engine.core import Engine
from orch.engine.errors import ApiError, not_found
from orch.engine.sse import DONE, relay
from orch.engine.store import Store, child_key, public
from orch.engine.turns import TurnExecutor

Endpoint = Callable[[Request], Awaitable[Response]]
#: Finds the object a request's path names (raising OpenAI's 404 when there is none).
Finder = Callable[[Request], dict[str, Any]]
#: Shapes a stored object for the client (``None``: as stored).
View = Callable[[dict[str, Any]], dict[str, Any]]


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


# -- finding objects -------------------------------------------------------------------------


def finder(
    kind: str,
    param: str,
    *,
    noun: str | None = None,
    within: Finder | None = None,
    keyed: bool = False,
    missing: Callable[[str], ApiError] | None = None,
) -> Finder:
    """A :data:`Finder` for the stored ``kind`` whose id is the path parameter ``param``.

    With ``within``, the owner is found first (so its 404 comes first) and the object must be
    its child; ``keyed`` objects are stored under :func:`~orch.engine.store.child_key`. The
    404 is ``not_found(noun)`` (default: the kind, in words) unless ``missing`` builds another.
    """
    noun = noun or kind.replace("_", " ")

    def find(request: Request) -> dict[str, Any]:
        owner = within(request) if within is not None else None
        object_id = request.path_params[param]
        store = engine_of(request).store
        if owner is None:
            found = store.get(kind, object_id)
        elif keyed:
            found = store.get(kind, child_key(owner["id"], object_id))
        else:
            found = store.get(kind, object_id, parent=owner["id"])
        if found is None:
            raise missing(object_id) if missing is not None else not_found(noun, object_id)
        return found

    return find


def check_stored(store: Store, kind: str, ids: Iterable[Any], param: str) -> None:
    """404 (``No <kind> found with id``) for the first of ``ids`` not stored as a ``kind``."""
    for object_id in ids:
        if store.get(kind, object_id) is None:
            raise not_found(kind.replace("_", " "), object_id, param)


# -- generic endpoints -----------------------------------------------------------------------


def retriever(
    find: Finder, view: Callable[[Engine, dict[str, Any]], dict[str, Any]] | None = None
) -> Endpoint:
    """A GET endpoint answering the object ``find`` finds (through ``view`` when given)."""

    async def retrieve(request: Request) -> Response:
        found = find(request)
        return object_response(view(engine_of(request), found) if view else found)

    return retrieve


def deleter(
    find: Finder, label: str, remove: Callable[[Engine, dict[str, Any]], None] | None = None
) -> Endpoint:
    """A DELETE endpoint: ``remove`` what ``find`` finds (default: the stored object only).

    The answer is ``{id, object: "<label>.deleted", deleted: true}``.
    """

    async def delete(request: Request) -> Response:
        found = find(request)
        engine = engine_of(request)
        if remove is None:
            engine.store.delete(found["id"])
        else:
            remove(engine, found)
        return deleted(found["id"], label)

    return delete


def page_response(
    request: Request,
    kind: str,
    parent: str | None = None,
    *,
    where: Callable[[], dict[str, Any] | None] | None = None,
    view: View | None = None,
    keyed: bool = False,
    headers: dict[str, str] | None = None,
) -> Response:
    """One page (``limit``/``order``/``after``/``before``) of the stored ``kind``.

    ``where`` filters (called after the page parameters are checked, so their 400s come
    first); ``keyed`` children take cursors by their public id (see ``child_key``).
    """
    page = p.page_params(request)
    if keyed:
        assert parent is not None
        for cursor in ("after", "before"):
            page[cursor] = child_key(parent, page[cursor]) if page[cursor] else None
    items, more = engine_of(request).store.page(
        kind, parent, where=where() if where else None, **page
    )
    if view is not None:
        items = [view(i) for i in items]
    return json_response(p.list_body(items, more), headers=headers)


def list_response(request: Request, items: list[dict[str, Any]]) -> Response:
    """One page of objects held in a list, oldest first (see :func:`params.page_list`)."""
    return json_response(p.page_list(items, **p.page_params(request)))
