"""``/v1/responses`` (create, stream, retrieve, delete, cancel, input items)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from orch.engine import params as p
from orch.engine.core import Engine
from orch.engine.errors import ApiError, bad_request, invalid_choice, missing_parameter, not_found
from orch.engine.items import check_calls_answered, check_unique, normalize_input
from orch.engine.responding import TERMINAL, input_items
from orch.engine.routes.bodies import read_json
from orch.engine.routes.common import deleted, engine_of, event_stream, object_response, routes
from orch.engine.routes.resources import check_stored, list_response, retriever
from orch.engine.store import new_object

RESPONSE_FIELDS = frozenset(
    {
        "model",
        "instructions",
        "input",
        "conversation",
        "previous_response_id",
        "store",
        "tools",
        "tool_choice",
        "parallel_tool_calls",
        "temperature",
        "top_p",
        "max_output_tokens",
        "metadata",
        "text",
        "stream",
        "background",
        "include",
        # Accepted and echoed or ignored: they change nothing in the engine.
        "truncation",
        "user",
        "reasoning",
        "service_tier",
        "max_tool_calls",
        "prompt_cache_key",
        "prompt_cache_retention",
        "safety_identifier",
        "top_logprobs",
        "stream_options",
    }
)
INCLUDABLE = (
    "file_search_call.results",
    "code_interpreter_call.outputs",
    "message.input_image.image_url",
    "message.output_text.logprobs",
    "reasoning.encrypted_content",
)
TOOL_TYPES = ("function", "file_search", "code_interpreter")


def _function_tool(tool: dict[str, Any], where: str) -> dict[str, Any]:
    p.check_keys(tool, frozenset({"type", "name", "description", "parameters", "strict"}), where)
    name = p.function_name(tool, where + ".name")
    p.field(tool, "description", str, param=where + ".description")
    p.field(tool, "parameters", dict, param=where + ".parameters")
    strict = p.field(tool, "strict", bool, default=True, param=where + ".strict")
    return {
        "type": "function",
        "name": name,
        "description": tool.get("description"),
        "parameters": tool.get("parameters"),
        "strict": strict,
    }


def _file_search_tool(engine: Engine, tool: dict[str, Any], where: str) -> dict[str, Any]:
    ids = p.field(tool, "vector_store_ids", list, required=True, param=where + ".vector_store_ids")
    for vs_id in ids:
        # An id that is not a string names no vector store either.
        if not isinstance(vs_id, str) or engine.store.get("vector_store", vs_id) is None:
            raise not_found("vector store", vs_id, where + ".vector_store_ids")
    limit = p.field(
        tool, "max_num_results", int, minimum=1, maximum=50, param=where + ".max_num_results"
    )
    return {
        "type": "file_search",
        "vector_store_ids": list(ids),
        "max_num_results": limit,
        "filters": tool.get("filters"),
        "ranking_options": tool.get("ranking_options")
        or {"ranker": "auto", "score_threshold": 0.0},
    }


def _code_interpreter_tool(engine: Engine, tool: dict[str, Any], where: str) -> dict[str, Any]:
    container = tool.get("container")
    if isinstance(container, str):
        if engine.store.get("container", container) is None:
            raise not_found("container", container, where + ".container")
        return {"type": "code_interpreter", "container": container}
    if not isinstance(container, dict) or container.get("type") != "auto":
        raise missing_parameter(where + ".container")
    file_ids = p.field(container, "file_ids", list, param=where + ".container.file_ids") or []
    check_stored(engine.store, "file", file_ids, where + ".container.file_ids")
    return {"type": "code_interpreter", "container": {"type": "auto", "file_ids": file_ids}}


def _tools(engine: Engine, body: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for i, tool in enumerate(p.field(body, "tools", list, max_length=128) or []):
        where = f"tools[{i}]"
        if not isinstance(tool, dict):
            raise bad_request(f"Invalid type for '{where}': expected an object.", where)
        kind = p.field(tool, "type", str, required=True, choices=TOOL_TYPES, param=where + ".type")
        if kind == "function":
            out.append(_function_tool(tool, where))
        elif kind == "file_search":
            out.append(_file_search_tool(engine, tool, where))
        else:
            out.append(_code_interpreter_tool(engine, tool, where))
    return out


def _tool_choice(body: dict[str, Any]) -> Any:
    value = body.get("tool_choice")
    if value is None:
        return "auto"
    if value in ("none", "auto", "required"):
        return value
    if isinstance(value, dict) and value.get("type") == "function":
        p.field(value, "name", str, required=True, param="tool_choice.name")
        return value
    if isinstance(value, dict) and value.get("type") in ("file_search", "code_interpreter"):
        return value
    raise bad_request(
        "Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or a tool object.",
        "tool_choice",
        "invalid_value",
    )


def _text(body: dict[str, Any]) -> dict[str, Any]:
    text = p.field(body, "text", dict) or {}
    fmt = p.field(text, "format", dict, param="text.format") or {"type": "text"}
    kind = p.field(
        fmt,
        "type",
        str,
        required=True,
        choices=("text", "json_object", "json_schema"),
        param="text.format.type",
    )
    if kind == "json_schema":
        p.field(fmt, "name", str, required=True, max_length=64, param="text.format.name")
        p.field(fmt, "schema", dict, required=True, param="text.format.schema")
        p.field(fmt, "strict", bool, param="text.format.strict")
        p.field(fmt, "description", str, param="text.format.description")
    verbosity = p.field(
        text,
        "verbosity",
        str,
        default="medium",
        choices=("low", "medium", "high"),
        param="text.verbosity",
    )
    return {"format": fmt, "verbosity": verbosity}


def _include(body: dict[str, Any]) -> list[str]:
    values = p.field(body, "include", list) or []
    for value in values:
        if value not in INCLUDABLE:
            raise invalid_choice(value, INCLUDABLE, "include")
    return values


def _conversation_id(body: dict[str, Any]) -> str | None:
    value = body.get("conversation")
    if value is None:
        return None
    if isinstance(value, dict):
        return p.field(value, "id", str, required=True, param="conversation.id")
    if isinstance(value, str):
        return value
    raise bad_request(
        "Invalid type for 'conversation': expected a string or an object.",
        "conversation",
        "invalid_type",
    )


def _history(engine: Engine, body: dict[str, Any]) -> tuple[list[dict[str, Any]], str | None]:
    """(earlier items the model sees, conversation id)."""
    conversation_id = _conversation_id(body)
    previous_id = p.field(body, "previous_response_id", str)
    if conversation_id and previous_id:
        raise bad_request(
            "Mutually exclusive parameters: Ensure you are only providing one of: "
            "'previous_response_id' or 'conversation'.",
            "conversation",
            "mutually_exclusive_parameters",
        )
    if conversation_id:
        engine.conversations.get(conversation_id, "conversation")
        return engine.conversations.items(conversation_id), conversation_id
    if previous_id:
        previous = engine.responses.get(previous_id)
        if previous is None:
            raise ApiError(
                404,
                f"Previous response with id '{previous_id}' not found.",
                param="previous_response_id",
            )
        return engine.responses.history(previous), None
    return [], None


def build_response(engine: Engine, body: dict[str, Any]) -> dict[str, Any]:
    """Validate a create request and return the new (not yet started) response object."""
    p.check_keys(body, RESPONSE_FIELDS)
    model = p.field(body, "model", str, required=True)
    instructions = p.field(body, "instructions", str)
    if "input" not in body:
        raise missing_parameter("input")
    history, conversation_id = _history(engine, body)
    items = normalize_input(engine.store, body["input"])
    check_unique(history + items)
    check_calls_answered(history + items)
    store = p.field(body, "store", bool, default=True)
    background = p.field(body, "background", bool, default=False)
    if background and not store:
        raise bad_request("Background mode requires store=true.", "background", "invalid_value")
    sampling = p.sampling(body)
    p.field(body, "stream", bool)
    return new_object(
        "response",
        status="queued" if background else "in_progress",
        background=background,
        completed_at=None,
        conversation={"id": conversation_id} if conversation_id else None,
        error=None,
        incomplete_details=None,
        instructions=instructions,
        max_output_tokens=p.field(body, "max_output_tokens", int, minimum=16),
        max_tool_calls=p.field(body, "max_tool_calls", int, minimum=1),
        metadata=p.metadata(body) or {},
        model=model,
        output=[],
        parallel_tool_calls=p.field(body, "parallel_tool_calls", bool, default=True),
        previous_response_id=body.get("previous_response_id"),
        reasoning={"effort": None, "summary": None},
        service_tier="default",
        store=store,
        temperature=sampling.get("temperature", 1.0),
        text=_text(body),
        tool_choice=_tool_choice(body),
        tools=_tools(engine, body),
        top_logprobs=0,
        top_p=sampling.get("top_p", 1.0),
        truncation=p.field(
            body, "truncation", str, default="disabled", choices=("auto", "disabled")
        ),
        usage=None,
        user=p.field(body, "user", str),
        _context=history + items,
        _n_input=len(items),
        _include=_include(body),
    )


async def create(request: Request) -> Response:
    """POST /v1/responses."""
    engine = engine_of(request)
    body = await read_json(request)
    response = engine.responses.create(build_response(engine, body))
    if body.get("stream"):
        return event_stream(
            engine.responses, response["id"], lambda: engine.responses.start(response), done=b""
        )
    engine.responses.start(response)
    if not response["background"]:
        await engine.responses.wait(response)
    return object_response(response)


def find_response(request: Request) -> dict[str, Any]:
    """The response the path names (live while executing), or the 404 OpenAI words this way."""
    rid = request.path_params["response_id"]
    response = engine_of(request).responses.get(rid)
    if response is None:
        raise ApiError(404, f"Response with id '{rid}' not found.", param="response_id")
    return response


retrieve = retriever(find_response)


async def delete(request: Request) -> Response:
    """DELETE /v1/responses/{response_id} (a response still running is cancelled first)."""
    engine = engine_of(request)
    response = find_response(request)
    if response["status"] not in TERMINAL:
        engine.responses.cancel(response, force=True)
    engine.store.delete(response["id"])
    return deleted(response["id"], "response")


async def cancel(request: Request) -> Response:
    """POST /v1/responses/{response_id}/cancel."""
    engine = engine_of(request)
    return object_response(engine.responses.cancel(find_response(request)))


async def list_input_items(request: Request) -> Response:
    """GET /v1/responses/{response_id}/input_items."""
    return list_response(request, input_items(find_response(request)))


ROUTES = routes(
    {
        "/responses": {"POST": create},
        "/responses/{response_id}": {"GET": retrieve, "DELETE": delete},
        "/responses/{response_id}/cancel": {"POST": cancel},
        "/responses/{response_id}/input_items": {"GET": list_input_items},
    }
)
