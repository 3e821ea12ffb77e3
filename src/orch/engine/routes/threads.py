"""``/v1/threads``, and the message bodies threads, messages and runs are created with."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from orch.engine import params as p
from orch.engine.core import Engine
from orch.engine.errors import ApiError, bad_request, invalid_type, missing_parameter
from orch.engine.routes.bodies import read_json
from orch.engine.routes.common import deleted, engine_of, object_response, routes
from orch.engine.routes.resources import check_stored, finder, retriever
from orch.engine.routes.tool_resources import resolve_tool_resources
from orch.engine.store import Store, new_object

THREAD_FIELDS = frozenset({"messages", "tool_resources", "metadata"})
MESSAGE_FIELDS = frozenset({"role", "content", "attachments", "metadata"})


def validate_message(store: Store, body: Any, param: str = "") -> dict[str, Any]:
    """Check a message-create body; return normalized ``{role, content, attachments, metadata}``.

    ``param`` locates a message inside a larger body (``"additional_messages[0]"``) in errors.
    """
    prefix = f"{param}." if param else ""
    if not isinstance(body, dict):
        raise invalid_type(param)
    p.check_keys(body, MESSAGE_FIELDS, param)
    role = p.field(
        body, "role", str, required=True, choices=("user", "assistant"), param=prefix + "role"
    )
    content = _content(store, body.get("content"), prefix)
    attachments = _attachments(store, body, prefix)
    meta = p.metadata(body, "metadata") if not prefix else _nested_metadata(body, prefix)
    return {"role": role, "content": content, "attachments": attachments, "metadata": meta or {}}


def _content(store: Store, raw: Any, prefix: str) -> list[dict[str, Any]]:
    """A message's ``content`` (a string or a non-empty list of parts) as content blocks."""
    if raw is None:
        raise missing_parameter(prefix + "content")
    if isinstance(raw, str):
        return [{"type": "text", "text": {"value": raw, "annotations": []}}]
    if isinstance(raw, list) and raw:
        return [_part(store, part, f"{prefix}content[{i}]") for i, part in enumerate(raw)]
    raise bad_request(
        f"Invalid '{prefix}content': expected a non-empty string or array of content parts.",
        prefix + "content",
        "invalid_value",
    )


def _part(store: Store, part: Any, where: str) -> dict[str, Any]:
    """One content part: text, image_file (an uploaded file) or image_url."""
    kind = part.get("type") if isinstance(part, dict) else None
    if kind == "text":
        p.check_keys(part, frozenset({"type", "text"}), where)
        text = p.field(part, "text", str, required=True, param=where + ".text")
        return {"type": "text", "text": {"value": text, "annotations": []}}
    if kind == "image_file":
        p.check_keys(part, frozenset({"type", "image_file"}), where)
        spec = p.field(part, "image_file", dict, required=True, param=where + ".image_file")
        p.check_keys(spec, frozenset({"file_id", "detail"}), where + ".image_file")
        fid = p.field(spec, "file_id", str, required=True, param=where + ".image_file.file_id")
        check_stored(store, "file", [fid], where + ".image_file.file_id")
        detail = spec.get("detail") or "auto"
        return {"type": "image_file", "image_file": {"file_id": fid, "detail": detail}}
    if kind == "image_url":
        p.check_keys(part, frozenset({"type", "image_url"}), where)
        spec = p.field(part, "image_url", dict, required=True, param=where + ".image_url")
        p.check_keys(spec, frozenset({"url", "detail"}), where + ".image_url")
        url = p.field(spec, "url", str, required=True, param=where + ".image_url.url")
        return {
            "type": "image_url",
            "image_url": {"url": url, "detail": spec.get("detail") or "auto"},
        }
    raise bad_request(
        f"Invalid value: '{kind}'. Supported values are: 'text', 'image_file', and 'image_url'.",
        where + ".type",
        "invalid_value",
    )


def _attachments(store: Store, body: dict[str, Any], prefix: str) -> list[dict[str, Any]]:
    """``attachments``: uploaded files, each for code_interpreter and/or file_search."""
    attachments = []
    for i, att in enumerate(p.field(body, "attachments", list, param=prefix + "attachments") or []):
        where = f"{prefix}attachments[{i}]"
        if not isinstance(att, dict):
            raise invalid_type(where)
        p.check_keys(att, frozenset({"file_id", "tools"}), where)
        fid = p.field(att, "file_id", str, required=True, param=where + ".file_id")
        check_stored(store, "file", [fid], where + ".file_id")
        tools = []
        for j, tool in enumerate(p.field(att, "tools", list, param=where + ".tools") or []):
            kind = tool.get("type") if isinstance(tool, dict) else None
            if isinstance(tool, dict):
                p.check_keys(tool, frozenset({"type"}), f"{where}.tools[{j}]")
            if kind not in ("code_interpreter", "file_search"):
                raise bad_request(
                    f"Invalid value: '{kind}'. Supported values are: 'code_interpreter' and "
                    "'file_search'.",
                    f"{where}.tools[{j}].type",
                    "invalid_value",
                )
            tools.append({"type": kind})
        attachments.append({"file_id": fid, "tools": tools})
    return attachments


def _nested_metadata(body: dict[str, Any], prefix: str) -> dict[str, str] | None:
    try:
        return p.metadata(body, "metadata")
    except ApiError as exc:
        exc.param = prefix + (exc.param or "metadata")
        raise


def create_thread(engine: Engine, body: dict[str, Any], param: str = "") -> dict[str, Any]:
    """Validate and store a thread with its initial messages."""
    prefix = f"{param}." if param else ""
    p.check_keys(body, THREAD_FIELDS, param)
    messages = p.field(body, "messages", list, param=prefix + "messages", max_length=32) or []
    specs = [
        validate_message(engine.store, m, f"{prefix}messages[{i}]") for i, m in enumerate(messages)
    ]
    resources = resolve_tool_resources(engine, p.tool_resources(body), prefix + "tool_resources")
    thread = new_object("thread", metadata=p.metadata(body) or {}, tool_resources=resources or {})
    engine.store.insert("thread", thread)
    for spec in specs:
        engine.messages.add(thread, spec)
    return thread


find_thread = finder("thread", "thread_id")
retrieve = retriever(find_thread)


async def create(request: Request) -> Response:
    """POST /v1/threads."""
    return object_response(create_thread(engine_of(request), await read_json(request)))


async def update(request: Request) -> Response:
    """POST /v1/threads/{thread_id}."""
    engine = engine_of(request)
    thread = find_thread(request)
    body = await read_json(request)
    p.check_keys(body, frozenset({"metadata", "tool_resources"}))
    if "metadata" in body:
        thread["metadata"] = p.metadata(body) or {}
    if "tool_resources" in body:
        thread["tool_resources"] = resolve_tool_resources(engine, p.tool_resources(body)) or {}
    return object_response(engine.store.put(thread))


async def delete(request: Request) -> Response:
    """DELETE /v1/threads/{thread_id} (its active run is cancelled, its messages go too)."""
    engine = engine_of(request)
    thread = find_thread(request)
    active = engine.runs.active_run(thread["id"])
    if active is not None:
        engine.runs.cancel(engine.runs.live[active])
    engine.store.delete_children("message", thread["id"])
    engine.store.delete(thread["id"])
    return deleted(thread["id"], "thread")


ROUTES = routes(
    {
        "/threads": {"POST": create},
        "/threads/{thread_id}": {"GET": retrieve, "POST": update, "DELETE": delete},
    }
)
