"""``/v1/threads/{id}/messages``: create, list, retrieve, update, delete."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from orch.engine import params as p
from orch.engine.errors import bad_request
from orch.engine.routes.bodies import read_json
from orch.engine.routes.common import engine_of, object_response, routes
from orch.engine.routes.resources import deleter, finder, page_response, retriever
from orch.engine.routes.threads import find_thread, validate_message

find_message = finder("message", "message_id", within=find_thread)
retrieve_message = retriever(find_message)
delete_message = deleter(find_message, "thread.message")


async def create_message(request: Request) -> Response:
    """POST /v1/threads/{thread_id}/messages."""
    engine = engine_of(request)
    thread = find_thread(request)
    spec = validate_message(engine.store, await read_json(request))
    active = engine.runs.active_run(thread["id"])
    if active is not None:
        raise bad_request(f"Can't add messages to {thread['id']} while a run {active} is active.")
    return object_response(engine.messages.add(thread, spec))


async def list_messages(request: Request) -> Response:
    """GET /v1/threads/{thread_id}/messages (``run_id``: only the messages of that run)."""
    thread = find_thread(request)
    run_id = request.query_params.get("run_id")
    return page_response(
        request, "message", thread["id"], where=lambda: {"run_id": run_id} if run_id else None
    )


async def update_message(request: Request) -> Response:
    """POST /v1/threads/{thread_id}/messages/{message_id}."""
    msg = find_message(request)
    body = await read_json(request)
    p.check_keys(body, frozenset({"metadata"}))
    if "metadata" in body:
        msg["metadata"] = p.metadata(body) or {}
    return object_response(engine_of(request).store.put(msg))


ROUTES = routes(
    {
        "/threads/{thread_id}/messages": {"POST": create_message, "GET": list_messages},
        "/threads/{thread_id}/messages/{message_id}": {
            "GET": retrieve_message,
            "POST": update_message,
            "DELETE": delete_message,
        },
    }
)
