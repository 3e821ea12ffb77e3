"""Generic resource endpoints: find the object a path names (or 404), retrieve, delete, list.

Route modules build their plain endpoints from these (``retrieve = retriever(find_thread)``)
and write by hand only what is particular to their resource.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from orch.engine import params as p
from orch.engine.core import Engine
from orch.engine.errors import ApiError, not_found
from orch.engine.routes.common import Endpoint, deleted, engine_of, json_response, object_response
from orch.engine.store import Store, child_key

#: Finds the object a request's path names (raising OpenAI's 404 when there is none).
Finder = Callable[[Request], dict[str, Any]]
#: Shapes a stored object for the client (``None``: as stored).
View = Callable[[dict[str, Any]], dict[str, Any]]


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
