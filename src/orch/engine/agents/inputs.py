"""What clients send a session: input messages and the events of ``POST .../events``.

Both are validated whole, with OpenAI's 400s, before anything happens, so a request with one
bad event changes nothing. Events come back normalized: ``{"type": "message", "messages"}``,
``{"type": "tool_result", "turn_id", "call_id", "success", "output", "error"}``,
``{"type": "cancel"}`` and ``{"type": "approval", "request_id"}`` (the engine asks for no
approvals, so an approval answer never has a request to answer).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from orch.engine import params as p
from orch.engine.errors import bad_request, invalid_choice, invalid_type

EVENT_TYPES = {
    "agent.session.input.message": "message",
    "agent.session.input.tool_result": "tool_result",
    "agent.session.input.cancel": "cancel",
    "agent.session.input.mcp_approval_request_result": "approval",
    "agent.session.input.computer_use_approval_request_result": "approval",
}
#: The most events one request may carry (a bound, so one request stays one small write).
MAX_EVENTS = 128


def _empty(param: str) -> Exception:
    return bad_request(
        f"Invalid '{param}': empty array. Expected an array with minimum length 1, but got an "
        "empty array instead.",
        param,
        "empty_array",
    )


def _objects(value: Any, param: str, expected: str) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each object of the non-empty array ``value``, with its param path (``param[i]``).

    Raises the 400 for a ``value`` that is not an array (``expected`` names what it should be),
    an empty one, or an item that is not an object; an item is checked only when reached, so
    the caller's errors for earlier items come first.
    """
    if not isinstance(value, list):
        raise invalid_type(param, expected)
    if not value:
        raise _empty(param)
    for i, item in enumerate(value):
        where = f"{param}[{i}]"
        if not isinstance(item, dict):
            raise invalid_type(where)
        yield where, item


def read_parts(value: Any, param: str) -> list[dict[str, Any]]:
    """Input content parts (``input_text``, ``input_image``), as the session stores them."""
    parts = []
    for where, part in _objects(value, param, "an array"):
        kind = p.field(part, "type", str, required=True, param=where + ".type")
        if kind == "input_text":
            p.check_keys(part, frozenset({"type", "text"}), where)
            text = p.field(part, "text", str, required=True, param=where + ".text")
            parts.append({"type": "input_text", "text": text})
        elif kind == "input_image":
            p.check_keys(part, frozenset({"type", "image_url"}), where)
            url = p.field(part, "image_url", str, required=True, param=where + ".image_url")
            parts.append({"type": "input_image", "image_url": url})
        else:
            raise invalid_choice(kind, ("input_text", "input_image"), where + ".type")
    return parts


def read_messages(value: Any, param: str) -> list[list[dict[str, Any]]]:
    """Input messages (a string is one user message): the content parts of each."""
    if isinstance(value, str):
        if not value:
            raise bad_request(f"Invalid '{param}': the input must not be empty.", param)
        return [[{"type": "input_text", "text": value}]]
    messages = []
    for where, message in _objects(value, param, "a string or an array"):
        p.check_keys(message, frozenset({"content", "role", "type"}), where)
        p.field(message, "role", str, required=True, choices=("user",), param=where + ".role")
        p.field(message, "type", str, choices=("message",), param=where + ".type")
        if "content" not in message:
            raise bad_request(
                f"Missing required parameter: '{where}.content'.",
                where + ".content",
                "missing_required_parameter",
            )
        messages.append(read_parts(message["content"], where + ".content"))
    return messages


def read_events(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The ``events`` of an events request, each validated and normalized."""
    p.check_keys(body, frozenset({"events"}))
    events = p.field(body, "events", list, required=True, max_length=MAX_EVENTS)
    if not events:
        raise _empty("events")
    return [_event(event, f"events[{i}]") for i, event in enumerate(events)]


def _event(event: Any, where: str) -> dict[str, Any]:
    if not isinstance(event, dict):
        raise invalid_type(where)
    wire = p.field(event, "type", str, required=True, param=where + ".type")
    kind = EVENT_TYPES.get(wire)
    if kind is None:
        raise invalid_choice(wire, EVENT_TYPES, where + ".type")
    if kind == "message":
        p.check_keys(event, frozenset({"type", "input"}), where)
        if "input" not in event:
            raise bad_request(
                f"Missing required parameter: '{where}.input'.",
                where + ".input",
                "missing_required_parameter",
            )
        if not isinstance(event["input"], list):
            raise invalid_type(where + ".input", "an array")
        return {"type": "message", "messages": read_messages(event["input"], where + ".input")}
    if kind == "tool_result":
        return _tool_result(event, where)
    if kind == "cancel":
        p.check_keys(event, frozenset({"type"}), where)
        return {"type": "cancel"}
    p.check_keys(event, frozenset({"type", "request_id", "response"}), where)
    request_id = p.field(event, "request_id", str, required=True, param=where + ".request_id")
    p.field(event, "response", dict, required=True, param=where + ".response")
    return {"type": "approval", "request_id": request_id, "param": where + ".request_id"}


def _tool_result(event: dict[str, Any], where: str) -> dict[str, Any]:
    keys = frozenset({"type", "call_id", "success", "turn_id", "error", "output"})
    p.check_keys(event, keys, where)
    out = {
        "type": "tool_result",
        "call_id": p.field(event, "call_id", str, required=True, param=where + ".call_id"),
        "turn_id": p.field(event, "turn_id", str, required=True, param=where + ".turn_id"),
        "success": p.field(event, "success", bool, required=True, param=where + ".success"),
        "error": p.field(event, "error", str, param=where + ".error"),
        "output": None,
        "param": where + ".call_id",
    }
    output = event.get("output")
    if isinstance(output, str):
        out["output"] = output
    elif output is not None:
        out["output"] = read_parts(output, where + ".output")
    return out
