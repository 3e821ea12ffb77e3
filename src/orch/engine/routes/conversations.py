"""``/v1/conversations`` and ``/v1/conversations/{id}/items``."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from orch.engine import params as p
from orch.engine.errors import bad_request
from orch.engine.items import check_unique, normalize_item
from orch.engine.routes.common import deleted, engine_of, json_response, object_response, route

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


def _conversation(request: Request) -> dict[str, Any]:
    return engine_of(request).conversations.get(request.path_params["conversation_id"])


async def create(request: Request) -> Response:
    """POST /v1/conversations."""
    body = await p.read_json(request)
    p.check_keys(body, frozenset({"items", "metadata"}))
    items = _items(request, body, required=False)
    conversation = engine_of(request).conversations.create(items, p.metadata(body))
    return object_response(conversation)


async def retrieve(request: Request) -> Response:
    """GET /v1/conversations/{conversation_id}."""
    return object_response(_conversation(request))


async def update(request: Request) -> Response:
    """POST /v1/conversations/{conversation_id}."""
    conversation = _conversation(request)
    body = await p.read_json(request)
    p.check_keys(body, frozenset({"metadata"}))
    p.field(body, "metadata", dict, required=True)
    conversation["metadata"] = p.metadata(body) or {}
    return object_response(engine_of(request).store.put(conversation))


async def delete(request: Request) -> Response:
    """DELETE /v1/conversations/{conversation_id}."""
    conversation = _conversation(request)
    engine_of(request).conversations.delete(conversation["id"])
    return deleted(conversation["id"], "conversation")


async def create_items(request: Request) -> Response:
    """POST /v1/conversations/{conversation_id}/items."""
    engine = engine_of(request)
    conversation = _conversation(request)
    body = await p.read_json(request)
    p.check_keys(body, frozenset({"items"}))
    items = _items(request, body, required=True)
    check_unique(engine.conversations.items(conversation["id"]) + items)
    engine.conversations.append(conversation["id"], items)
    return json_response(p.list_body(items, False))


async def list_items(request: Request) -> Response:
    """GET /v1/conversations/{conversation_id}/items."""
    conversation = _conversation(request)
    items = engine_of(request).conversations.items(conversation["id"])
    return json_response(p.page_list(items, **p.page_params(request)))


async def retrieve_item(request: Request) -> Response:
    """GET /v1/conversations/{conversation_id}/items/{item_id}."""
    conversation = _conversation(request)
    item_id = request.path_params["item_id"]
    return object_response(engine_of(request).conversations.item(conversation["id"], item_id))


async def delete_item(request: Request) -> Response:
    """DELETE /v1/conversations/{conversation_id}/items/{item_id}: answers the conversation."""
    engine = engine_of(request)
    conversation = _conversation(request)
    item = engine.conversations.item(conversation["id"], request.path_params["item_id"])
    engine.conversations.remove(conversation["id"], item["id"])
    return object_response(conversation)


ROUTES = [
    route("/conversations", create, ["POST"]),
    route("/conversations/{conversation_id}", retrieve, ["GET"]),
    route("/conversations/{conversation_id}", update, ["POST"]),
    route("/conversations/{conversation_id}", delete, ["DELETE"]),
    route("/conversations/{conversation_id}/items", create_items, ["POST"]),
    route("/conversations/{conversation_id}/items", list_items, ["GET"]),
    route("/conversations/{conversation_id}/items/{item_id}", retrieve_item, ["GET"]),
    route("/conversations/{conversation_id}/items/{item_id}", delete_item, ["DELETE"]),
]
