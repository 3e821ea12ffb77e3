"""A finished turn's items as a step's outcome: the reply text and the tool-call records.

Records have the shape every kind gives reports (:func:`orch.targets.threads.tool_call_record`):
a function call is ``{id, type: function, name, arguments, output}`` (recorded by
:func:`orch.targets.functions.call_handlers` when orch answered it), a command the agent ran
in its hosted environment is a ``code_interpreter`` call (``input`` the command, ``outputs``
its logs), so ``tool_called: code_interpreter`` and the reports' code blocks work as on the
other kinds; MCP and web-search calls keep their own type.
"""

from __future__ import annotations

import json
from typing import Any

from orch.targets.session import StepOutcome, plain


def reply_text(items: list[Any]) -> str:
    """The turn's answer: its ``final_answer`` messages, else every assistant message."""
    messages = [i for i in items if i.type == "message" and i.role == "assistant"]
    final = [m for m in messages if m.phase == "final_answer"] or messages
    texts = ["".join(p.text for p in m.content if p.type == "output_text") for m in final]
    return "\n\n".join(t.strip() for t in texts if t.strip())


def arguments_json(value: Any) -> str:
    """A call's arguments (an object on the Agents wire) as the JSON text handlers parse."""
    return value if isinstance(value, str) else json.dumps(value)


def record_items(items: list[Any], outcome: StepOutcome) -> None:
    """Add the turn's tool calls and messages to ``outcome``.

    Function calls orch answered are there already; their output is completed from the item
    when missing (a turn a killed process answered).
    """
    results = {i.call_id: i for i in items if i.type == "function_call_output"}
    for item in items:
        if item.type == "message":
            outcome.messages.append(plain(item))
        record = _record(item, results)
        if record is None:
            continue
        known = next((r for r in outcome.tool_calls if r["id"] == record["id"]), None)
        if known is None:
            outcome.tool_calls.append(record)
        else:
            known.setdefault("output", record.get("output"))


def _record(item: Any, results: dict[str, Any]) -> dict[str, Any] | None:
    if item.type == "function_call":
        try:
            arguments = json.loads(arguments_json(item.arguments))
        except ValueError:
            arguments = item.arguments
        return {
            "id": item.call_id,
            "type": "function",
            "name": item.name,
            "arguments": arguments,
            "output": _result_text(results.get(item.call_id)),
        }
    if item.type == "command_execution":
        logs = {"type": "logs", "logs": item.output or ""}
        return {
            "id": item.id,
            "type": "code_interpreter",
            "name": "code_interpreter",
            "input": item.command,
            "outputs": [logs],
            "exit_code": item.exit_code,
        }
    if item.type == "mcp_call":
        return {
            "id": item.id,
            "type": "mcp",
            "name": item.name,
            "server_label": item.server_label,
            "arguments": item.arguments,
            "output": item.output,
            "error": item.error,
        }
    if item.type == "web_search_call":
        action = plain(item.action) if item.action is not None else None
        return {"id": item.id, "type": "web_search", "name": "web_search", "action": action}
    return None


def _result_text(answer: Any) -> str | None:
    """What a function call got back: its output (text, or content parts as JSON) or error."""
    if answer is None:
        return None
    if answer.error is not None:
        return answer.error
    if answer.output is None or isinstance(answer.output, str):
        return answer.output
    return json.dumps([plain(part) for part in answer.output])
