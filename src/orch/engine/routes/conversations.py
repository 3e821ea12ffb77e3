"""``/v1/conversations`` and ``/v1/conversations/{id}/items``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from orch.engine import params as p
from orch.engine.errors import bad_request
from orch.engine.items import check_unique, normalize_item
from orch.engine.routes.bodies import read_json
from orch.engine.routes.common import engine_of, json_response, object_response, routes
from orch.engine.routes.resources import deleter, finder, list_response, retriever

MAX_ITEMS = 20


def _items(request: Request, body: dict[str, Any], required: bool) -> list[dict[str, Any]]:
    engine = engine_of(request)
    raw = p.field(body, "items", list, required=required, max_length=MAX_ITEMS) or []
    if required and not raw:
        raise bad_request(
            "Invalid 'items': empty array. Expected an array with minimum length 1, but got an "
            "empty array instead.",
            "items",
            "empty_array",
        )
    items = [normalize_item(engine.store, item, f"items[{i}]") for i, item in enumerate(raw)]
    check_unique(items)
    return items


find_conversation = finder("conversation", "conversation_id")
find_item = finder(
    "conversation_item", "item_id", noun="item", within=find_conversation, keyed=True
)
retrieve = retriever(find_conversation)
delete = deleter(
    find_conversation, "conversation", lambda engine, c: engine.conversations.delete(c["id"])
)
retrieve_item = retriever(find_item)


async def create(request: Request) -> Response:
    """POST /v1/conversations."""
    body = await read_json(request)
    p.check_keys(body, frozenset({"items", "metadata"}))
    items = _items(request, body, required=False)
    conversation = engine_of(request).conversations.create(items, p.metadata(body))
    return object_response(conversation)


async def update(request: Request) -> Response:
    """POST /v1/conversations/{conversation_id}."""
    conversation = find_conversation(request)
    body = await read_json(request)
    p.check_keys(body, frozenset({"metadata"}))
    p.field(body, "metadata", dict, required=True)
    conversation["metadata"] = p.metadata(body) or {}
    return object_response(engine_of(request).store.put(conversation))


async def create_items(request: Request) -> Response:
    """POST /v1/conversations/{conversation_id}/items."""
    engine = engine_of(request)
    conversation = find_conversation(request)
    body = await read_json(request)
    p.check_keys(body, frozenset({"items"}))
    items = _items(request, body, required=True)
    check_unique(engine.conversations.items(conversation["id"]) + items)
    engine.conversations.append(conversation["id"], items)
    return json_response(p.list_body(items, False))


async def list_items(request: Request) -> Response:
    """GET /v1/conversations/{conversation_id}/items."""
    conversation = find_conversation(request)
    return list_response(request, engine_of(request).conversations.items(conversation["id"]))


async def delete_item(request: Request) -> Response:
    """DELETE /v1/conversations/{conversation_id}/items/{item_id}: answers the conversation."""
    item = find_item(request)
    conversation = find_conversation(request)
    engine_of(request).conversations.remove(conversation["id"], item["id"])
    return object_response(conversation)


ROUTES = routes(
    {
        "/conversations": {"POST": create},
        "/conversations/{conversation_id}": {"GET": retrieve, "POST": update, "DELETE": delete},
        "/conversations/{conversation_id}/items": {"POST": create_items, "GET": list_items},
        "/conversations/{conversation_id}/items/{item_id}": {
            "GET": retrieve_item,
            "DELETE": delete_item,
        },
    }
)
