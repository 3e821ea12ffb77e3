"""Responses/Conversations items: validating what clients send, and turning items into a turn.

Clients send input items in several spellings (``"hi"``, ``{role, content: "hi"}``, typed
messages with ``input_text`` parts, echoed output items, ``function_call_output``); they are
stored in one normalized shape, the shape OpenAI returns them in (``ConversationItem`` /
``ResponseItem``). :func:`turn_inputs` turns a list of such items into what the engine's models
read (:class:`orch.engine.models.base.TurnContext` messages and tool outputs).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orch.engine import params as p
from orch.engine.errors import (
    ApiError,
    bad_request,
    invalid_choice,
    invalid_type,
    missing_parameter,
)
from orch.engine.store import Store, new_id

MESSAGE_ROLES = ("user", "assistant", "system", "developer")
ITEM_PREFIXES = {
    "message": "msg",
    "function_call": "fc",
    "function_call_output": "fco",
    "file_search_call": "fs",
    "code_interpreter_call": "ci",
}
_FILE_TEXT_CHARS = 20000


def _invalid(param: str, message: str) -> ApiError:
    return bad_request(message, param, "invalid_value")


def _part(store: Store, part: Any, role: str, where: str) -> dict[str, Any]:
    """One content part of a message item; an assistant's may only be text."""
    if not isinstance(part, dict):
        raise invalid_type(where)
    kind = part.get("type")
    if kind in ("input_text", "output_text", "text"):
        text = p.field(part, "text", str, required=True, param=where + ".text")
        if role == "assistant":
            return {
                "type": "output_text",
                "text": text,
                "annotations": part.get("annotations") or [],
            }
        return {"type": "input_text", "text": text}
    if role == "assistant":
        raise _invalid(
            where + ".type",
            f"Invalid value: '{kind}'. Supported values are: 'output_text' and 'refusal'.",
        )
    if kind == "input_image":
        return _image_part(store, part, where)
    if kind == "input_file":
        return _file_part(store, part, where)
    raise _invalid(
        where + ".type",
        f"Invalid value: '{kind}'. Supported values are: 'input_text', 'input_image', and "
        "'input_file'.",
    )


def _image_part(store: Store, part: dict[str, Any], where: str) -> dict[str, Any]:
    """An ``input_image`` part: an image URL or an uploaded file."""
    url = p.field(part, "image_url", str, param=where + ".image_url")
    fid = p.field(part, "file_id", str, param=where + ".file_id")
    if not url and not fid:
        raise missing_parameter(where + ".image_url")
    if fid:
        _require_file(store, fid, where + ".file_id")
    detail = p.field(
        part,
        "detail",
        str,
        default="auto",
        choices=("auto", "low", "high", "original"),
        param=where + ".detail",
    )
    return {"type": "input_image", "detail": detail, "file_id": fid, "image_url": url}


def _file_part(store: Store, part: dict[str, Any], where: str) -> dict[str, Any]:
    """An ``input_file`` part: an uploaded file, inline data or a URL (and a filename)."""
    out: dict[str, Any] = {"type": "input_file"}
    for key in ("file_id", "file_data", "file_url", "filename"):
        value = p.field(part, key, str, param=f"{where}.{key}")
        if value is not None:
            out[key] = value
    if not any(k in out for k in ("file_id", "file_data", "file_url")):
        raise missing_parameter(where + ".file_id")
    if "file_id" in out:
        file = _require_file(store, out["file_id"], where + ".file_id")
        out.setdefault("filename", file["filename"])
    return out


def _require_file(store: Store, file_id: str, param: str) -> dict[str, Any]:
    file = store.get("file", file_id)
    if file is None:
        raise ApiError(404, f"No file found with id '{file_id}'.", param=param)
    return file


def _message(store: Store, raw: dict[str, Any], where: str) -> dict[str, Any]:
    role = p.field(raw, "role", str, required=True, choices=MESSAGE_ROLES, param=where + ".role")
    content = raw.get("content")
    if isinstance(content, str):
        parts = [_part(store, {"type": "input_text", "text": content}, role, where + ".content")]
    elif isinstance(content, list) and content:
        parts = [_part(store, c, role, f"{where}.content[{i}]") for i, c in enumerate(content)]
    else:
        raise _invalid(
            where + ".content",
            f"Invalid '{where}.content': expected a string or a non-empty array of content parts.",
        )
    return {
        "id": raw.get("id") or new_id("msg"),
        "type": "message",
        "status": "completed",
        "role": role,
        "content": parts,
    }


def normalize_item(store: Store, raw: Any, where: str) -> dict[str, Any]:
    """One input item, validated, in the shape OpenAI stores and returns it."""
    if not isinstance(raw, dict):
        raise invalid_type(where)
    kind = raw.get("type") or ("message" if "role" in raw else None)
    if kind == "message":
        return _message(store, raw, where)
    if kind == "function_call_output":
        call_id = p.field(raw, "call_id", str, required=True, param=where + ".call_id")
        output = raw.get("output")
        if not isinstance(output, (str, list)):
            raise invalid_type(where + ".output", "a string or an array")
        return {
            "id": raw.get("id") or new_id("fco"),
            "type": "function_call_output",
            "call_id": call_id,
            "output": output,
            "status": "completed",
        }
    if kind == "function_call":
        for key in ("call_id", "name", "arguments"):
            p.field(raw, key, str, required=True, param=f"{where}.{key}")
        return {
            "id": raw.get("id") or new_id("fc"),
            "type": "function_call",
            "call_id": raw["call_id"],
            "name": raw["name"],
            "arguments": raw["arguments"],
            "status": raw.get("status") or "completed",
        }
    if kind in ("file_search_call", "code_interpreter_call"):
        p.field(raw, "id", str, required=True, param=where + ".id")
        return dict(raw)
    if kind == "item_reference":
        raise bad_request(
            "Item references are not supported by the orch engine; send the item itself.",
            where + ".type",
            "unsupported_value",
        )
    raise invalid_choice(kind, ITEM_PREFIXES, where + ".type")


def normalize_input(store: Store, value: Any, param: str = "input") -> list[dict[str, Any]]:
    """``input`` (a string or a list of items) as normalized items."""
    if isinstance(value, str):
        return [normalize_item(store, {"role": "user", "content": value}, param)]
    if not isinstance(value, list):
        raise invalid_type(param, "a string or an array")
    items = [normalize_item(store, raw, f"{param}[{i}]") for i, raw in enumerate(value)]
    check_unique(items)
    return items


def check_unique(items: list[dict[str, Any]], seen: set[str] | None = None) -> None:
    """400 when an item id repeats (OpenAI's wording)."""
    seen = set() if seen is None else seen
    for item in items:
        if item["id"] in seen:
            raise bad_request(
                f"Duplicate item found with id {item['id']}. Remove duplicate items from your "
                "input and try again.",
                "input",
            )
        seen.add(item["id"])


# -- items -> a model turn -----------------------------------------------------------------


@dataclass
class TurnInputs:
    """What the models read, derived from the items of a response's context."""

    messages: list[dict[str, Any]] = field(default_factory=list)
    user_text: str = ""
    tool_outputs: list[dict[str, Any]] = field(default_factory=list)


def check_calls_answered(items: list[dict[str, Any]]) -> None:
    """Every function call has an output and every output a call (OpenAI's 400s)."""
    calls = {i["call_id"] for i in items if i["type"] == "function_call"}
    answered = {i["call_id"] for i in items if i["type"] == "function_call_output"}
    for item in items:
        if item["type"] == "function_call_output" and item["call_id"] not in calls:
            raise bad_request(
                f"No tool call found for function call output with call_id {item['call_id']}.",
                "input",
            )
    for item in items:
        if item["type"] == "function_call" and item["call_id"] not in answered:
            raise bad_request(f"No tool output found for function call {item['call_id']}.", "input")


def _output_text(output: Any) -> str:
    if isinstance(output, str):
        return output
    return "\n".join(part.get("text", "") for part in output if isinstance(part, dict))


def turn_inputs(
    items: list[dict[str, Any]], files: dict[str, str], current_outputs: bool
) -> TurnInputs:
    """Messages (thread-message shape), the last user text and the pending tool outputs.

    Function calls and their outputs become ``_round`` pseudo-messages in place (so a chat
    model sees them in order); the last round becomes the turn's ``tool_outputs`` when the
    request itself carries outputs (``current_outputs``). ``files`` maps an ``input_file``'s
    file id to its extracted text.
    """
    out = TurnInputs()
    calls = {i["call_id"]: i for i in items if i["type"] == "function_call"}
    round_: list[dict[str, Any]] = []
    for item in items:
        kind = item["type"]
        if kind == "function_call_output":
            call = calls[item["call_id"]]
            round_.append(
                {
                    "tool_call_id": item["call_id"],
                    "name": call["name"],
                    "arguments": call["arguments"],
                    "output": _output_text(item["output"]),
                }
            )
        elif kind == "message":
            if round_:
                out.messages.append({"role": "assistant", "content": [], "_round": round_})
                round_ = []
            # Chat servers other than OpenAI's know "system" but not "developer".
            role = "system" if item["role"] == "developer" else item["role"]
            out.messages.append({"role": role, "content": _thread_blocks(item["content"], files)})
            if item["role"] == "user":
                out.user_text = "\n".join(
                    b["text"]["value"] for b in out.messages[-1]["content"] if b["type"] == "text"
                )
    if round_:
        if current_outputs:
            out.tool_outputs = round_
        else:
            out.messages.append({"role": "assistant", "content": [], "_round": round_})
    return out


def _thread_blocks(parts: list[dict[str, Any]], files: dict[str, str]) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    for part in parts:
        kind = part["type"]
        if kind in ("input_text", "output_text"):
            blocks.append({"type": "text", "text": {"value": part["text"], "annotations": []}})
        elif kind == "input_image" and part.get("file_id"):
            blocks.append({"type": "image_file", "image_file": {"file_id": part["file_id"]}})
        elif kind == "input_image":
            blocks.append({"type": "image_url", "image_url": {"url": part["image_url"]}})
        elif kind == "input_file":
            text = files.get(part.get("file_id") or "")
            if text:
                name = part.get("filename") or part["file_id"]
                blocks.append({"type": "file_text", "text": f"[file {name}]\n{text}"})
    return blocks


def file_texts(store: Store, items: list[dict[str, Any]]) -> dict[str, str]:
    """Extracted text of the uploaded files given as ``input_file`` parts (unreadable: skipped)."""
    from orch.engine.retrieval import UnsupportedFile, extract_text

    texts: dict[str, str] = {}
    for item in items:
        for part in item.get("content") or [] if item["type"] == "message" else []:
            fid = part.get("file_id") if part["type"] == "input_file" else None
            if not fid or fid in texts:
                continue
            content = store.get_blob(fid)
            try:
                text = extract_text(part.get("filename") or "", content or b"")
            except UnsupportedFile:
                continue
            texts[fid] = text[:_FILE_TEXT_CHARS]
    return texts
