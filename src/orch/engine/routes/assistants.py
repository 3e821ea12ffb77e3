"""``/v1/assistants``: create, retrieve, update, delete, list."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from orch.engine import params as p
from orch.engine.routes.bodies import read_json
from orch.engine.routes.common import engine_of, object_response, routes
from orch.engine.routes.resources import deleter, finder, page_response, retriever
from orch.engine.routes.tool_resources import resolve_tool_resources
from orch.engine.store import new_object

FIELDS = frozenset(
    {
        "model",
        "name",
        "description",
        "instructions",
        "tools",
        "tool_resources",
        "metadata",
        "temperature",
        "top_p",
        "response_format",
        "reasoning_effort",
    }
)


def _fields(request: Request, body: dict[str, Any], creating: bool) -> dict[str, Any]:
    engine = engine_of(request)
    p.check_keys(body, FIELDS)
    out: dict[str, Any] = {}
    model = p.field(body, "model", str, required=creating, nullable=not creating)
    if model is not None:
        out["model"] = model
    for key, limit in (("name", 256), ("description", 512), ("instructions", 256000)):
        if key in body:
            out[key] = p.field(body, key, str, max_length=limit)
    if "tools" in body:
        out["tools"] = p.tools(body) or []
    if "tool_resources" in body:
        out["tool_resources"] = resolve_tool_resources(engine, p.tool_resources(body))
    if "metadata" in body:
        out["metadata"] = p.metadata(body) or {}
    out.update(p.sampling(body))
    if "response_format" in body:
        out["response_format"] = p.response_format(body) or "auto"
    if "reasoning_effort" in body:
        p.field(
            body,
            "reasoning_effort",
            str,
            choices=("minimal", "low", "medium", "high", "none", "xhigh"),
        )
    return out


async def create(request: Request) -> Response:
    """POST /v1/assistants."""
    body = await read_json(request)
    fields = _fields(request, body, creating=True)
    assistant = new_object(
        "assistant",
        name=None,
        description=None,
        model=fields["model"],
        instructions=None,
        tools=[],
        tool_resources={},
        metadata={},
        temperature=1.0,
        top_p=1.0,
        response_format="auto",
    )
    assistant.update(fields)
    return object_response(engine_of(request).store.insert("assistant", assistant))


find_assistant = finder("assistant", "assistant_id")
retrieve = retriever(find_assistant)
delete = deleter(find_assistant, "assistant")


async def update(request: Request) -> Response:
    """POST /v1/assistants/{assistant_id}."""
    assistant = find_assistant(request)
    body = await read_json(request)
    fields = _fields(request, body, creating=False)
    assistant.update(fields)
    return object_response(engine_of(request).store.put(assistant))


async def list_assistants(request: Request) -> Response:
    """GET /v1/assistants."""
    return page_response(request, "assistant")


ROUTES = routes(
    {
        "/assistants": {"POST": create, "GET": list_assistants},
        "/assistants/{assistant_id}": {"GET": retrieve, "POST": update, "DELETE": delete},
    }
)
