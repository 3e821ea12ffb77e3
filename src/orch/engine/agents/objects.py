"""The Agents API's session objects as the engine stores and serves them.

Sessions (``agent.session``), their turns (``agent.session.turn``) and their items (messages,
function calls and outputs, command executions), in the shapes of the SDK's
``AgentSession``, ``Turn`` and ``AgentSessionItem``. Keys starting with ``_`` are the engine's
own (see :func:`orch.engine.store.public`).

Store kinds: ``agent`` (saved agents), ``agent.session``, ``agent.session.turn`` and
``agent.session.item`` (children of their session), ``agent.session.key`` (the idempotency
keys of a session's events requests, stored under ``child_key(session id, key)``).
"""

from __future__ import annotations

import json
import time
from typing import Any

from orch.engine.models.base import FunctionCall
from orch.engine.store import new_id

AGENT = "agent"
SESSION = "agent.session"
TURN = "agent.session.turn"
ITEM = "agent.session.item"
KEY = "agent.session.key"
#: Turn statuses after which a turn changes no more.
TURN_ENDED = frozenset({"completed", "failed", "cancelled"})


def now() -> int:
    """The current Unix time in seconds."""
    return int(time.time())


def usage(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    """``TokenUsage`` for these counts."""
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def new_session(
    agent: dict[str, Any], environment: dict[str, Any], options: dict[str, Any]
) -> dict[str, Any]:
    """An idle session running ``agent`` in ``environment``.

    ``options`` holds the request's ``metadata``, ``prompt_cache_options`` and ``review``;
    ``review`` is shown only when it is not ``none``, as OpenAI does.
    """
    created = now()
    session: dict[str, Any] = {
        "id": new_id("sess"),
        "object": SESSION,
        "agent": agent,
        "created_at": created,
        "environment": environment,
        "error": None,
        "last_active_at": created,
        "metadata": options.get("metadata") or {},
        "required_actions": [],
        "status": "idle",
        "usage": None,
        "vault_ids": [],
        "prompt_cache_options": options.get("prompt_cache_options"),
        "_queue": [],
        "_active": None,
    }
    if options.get("review") not in (None, "none"):
        session["review"] = options["review"]
    return session


def new_turn(session: dict[str, Any]) -> dict[str, Any]:
    """A queued turn of the session's root agent."""
    return {
        "id": new_id("turn"),
        "object": TURN,
        "agent_id": session["agent"]["id"],
        "completed_at": None,
        "created_at": now(),
        "error": None,
        "session_id": session["id"],
        "started_at": None,
        "status": "queued",
        "subagent_id": None,
        "usage": None,
        "prompt_cache_options": session.get("prompt_cache_options"),
        "_usage": [0, 0],
        "_pending": [],
        "_resumed": False,
        "_state": {},
        "_outputs": 0,
    }


def user_message(turn_id: str, parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The user's input message, as an item of the turn it starts."""
    return {
        "id": new_id("msg"),
        "content": parts,
        "phase": None,
        "role": "user",
        "status": "completed",
        "turn_id": turn_id,
        "type": "message",
    }


def assistant_message(turn_id: str) -> dict[str, Any]:
    """The agent's reply message, opened for streaming."""
    return {
        "id": new_id("msg"),
        "content": [],
        "phase": None,
        "role": "assistant",
        "status": "in_progress",
        "turn_id": turn_id,
        "type": "message",
    }


def arguments(call: FunctionCall) -> Any:
    """A call's arguments as the API gives them (a JSON value; unparsable text as it is)."""
    try:
        return json.loads(call.arguments or "{}")
    except ValueError:
        return call.arguments


def function_call(turn_id: str, call: FunctionCall) -> dict[str, Any]:
    """A function call the client must answer (``in_progress`` until it does)."""
    return {
        "id": new_id("fc"),
        "arguments": arguments(call),
        "call_id": new_id("call"),
        "name": call.name,
        "status": "in_progress",
        "turn_id": turn_id,
        "type": "function_call",
    }


def function_output(turn_id: str, result: dict[str, Any]) -> dict[str, Any]:
    """The client's answer to a function call (``failed`` when it says it did not succeed)."""
    return {
        "id": new_id("fco"),
        "call_id": result["call_id"],
        "error": None if result["success"] else result.get("error") or "The tool failed.",
        "output": result["output"],
        "status": "completed" if result["success"] else "failed",
        "turn_id": turn_id,
        "type": "function_call_output",
    }


def required_action(call: dict[str, Any]) -> dict[str, Any]:
    """The session's ``required_actions`` entry for a pending function call."""
    return {
        "arguments": call["arguments"],
        "call_id": call["call_id"],
        "name": call["name"],
        "turn_id": call["turn_id"],
        "type": "function_call",
    }


def command_execution(turn_id: str, command: str, cwd: str | None) -> dict[str, Any]:
    """Code the agent runs in its environment, in progress."""
    return {
        "id": new_id("cmd"),
        "command": command,
        "cwd": cwd,
        "duration_ms": None,
        "exit_code": None,
        "output": None,
        "status": "in_progress",
        "turn_id": turn_id,
        "type": "command_execution",
    }


def model_items(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Session items as Responses items (what :func:`orch.engine.items.turn_inputs` reads).

    Messages keep their text and images; a call's arguments become JSON text; a failed
    output becomes its error, so the model knows the call did not work. Command executions
    are the model's own hosted rounds: they are not replayed.
    """
    out = []
    for item in items:
        kind = item["type"]
        if kind == "message":
            out.append({"type": "message", "role": item["role"], "content": item["content"]})
        elif kind == "function_call":
            args = item["arguments"]
            text = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
            out.append({**item, "arguments": text})
        elif kind == "function_call_output":
            output = item["output"]
            if item["status"] == "failed":
                output = f"Error: {item['error']}"
            out.append({**item, "output": output if output is not None else ""})
    return out
