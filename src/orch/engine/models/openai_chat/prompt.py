"""What the openai-chat model sends upstream: the chat messages and the request's settings.

The thread (or the response's items) becomes chat messages: instructions as the system
message, text as strings, image parts as ``image_url`` parts (uploaded images inlined as data
URLs), files given as input as text parts. Tool rounds become an assistant message with
``tool_calls`` (its ``content`` is a string, never null: llama.cpp rejects null) followed by
one ``tool`` message per call. The run's settings become Chat Completions parameters.
"""

from __future__ import annotations

import base64
from typing import Any

from orch.engine.models.base import TurnContext, message_text


def _image_url(data: bytes) -> str:
    mime = "image/png" if data[:4] == b"\x89PNG" else "image/jpeg"
    return f"data:{mime};base64,{base64.b64encode(data).decode()}"


def content(message: dict[str, Any], ctx: TurnContext) -> Any:
    """A thread message's chat ``content``: a string, or parts when a user sent images/files."""
    blocks = message.get("content", [])
    if message["role"] != "user" or all(b.get("type") == "text" for b in blocks):
        return message_text(message)
    parts: list[dict[str, Any]] = []
    for block in blocks:
        kind = block.get("type")
        if kind == "text":
            parts.append({"type": "text", "text": block["text"]["value"]})
        elif kind == "file_text":
            parts.append({"type": "text", "text": block["text"]})
        elif kind == "image_url":
            parts.append({"type": "image_url", "image_url": {"url": block["image_url"]["url"]}})
        elif kind == "image_file":
            data = ctx.load_file(block["image_file"]["file_id"])
            if data is not None:
                parts.append({"type": "image_url", "image_url": {"url": _image_url(data)}})
    return parts


def tool_round(
    calls: list[dict[str, Any]], outputs: list[str], text: str = ""
) -> list[dict[str, Any]]:
    """The assistant message making ``calls`` (``{"id", "name", "arguments"}``), then answers."""
    made = [
        {
            "id": c["id"],
            "type": "function",
            "function": {"name": c["name"], "arguments": c["arguments"]},
        }
        for c in calls
    ]
    round_: list[dict[str, Any]] = [{"role": "assistant", "content": text, "tool_calls": made}]
    round_.extend(
        {"role": "tool", "tool_call_id": c["id"], "content": out}
        for c, out in zip(calls, outputs, strict=True)
    )
    return round_


def output_round(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """A round of function calls the client answered (``tool_outputs`` entries)."""
    calls = [
        {"id": o["tool_call_id"], "name": o["name"], "arguments": o["arguments"]} for o in outputs
    ]
    return tool_round(calls, [o["output"] for o in outputs])


def chat_messages(ctx: TurnContext) -> list[dict[str, Any]]:
    """The conversation so far, as chat messages.

    ``ctx.state["rounds"]`` holds the chat messages of this model's own earlier tool rounds
    that the thread does not show (a flat list of messages); the outputs submitted for this
    turn come last.
    """
    chat: list[dict[str, Any]] = []
    instructions = ctx.run.get("instructions")
    if instructions:
        chat.append({"role": "system", "content": instructions})
    for m in ctx.messages:
        if m.get("_round"):
            chat.extend(output_round(m["_round"]))
        else:
            chat.append({"role": m["role"], "content": content(m, ctx)})
    chat.extend(ctx.state.get("rounds") or [])
    if ctx.tool_outputs:
        chat.extend(output_round(ctx.tool_outputs))
    return chat


def _seed(ctx: TurnContext) -> int | None:
    """``metadata.seed`` of the run, else of the assistant (the Assistants API has no seed)."""
    for owner in (ctx.run, ctx.assistant):
        value = (owner.get("metadata") or {}).get("seed")
        if value is not None and str(value).lstrip("-").isdigit():
            return int(value)
    return None


def _tool_choice(choice: Any, hosted: dict[str, str]) -> Any:
    """The run's ``tool_choice`` for Chat Completions (a hosted tool is a named function)."""
    if isinstance(choice, dict):
        kind = choice.get("type")
        if kind == "function":
            return {"type": "function", "function": {"name": choice["function"]["name"]}}
        if kind in hosted:
            return {"type": "function", "function": {"name": hosted[kind]}}
        return None
    return choice if choice in ("auto", "required", "none") else None


def settings(ctx: TurnContext, tools: list[dict[str, Any]], hosted: dict[str, str]) -> dict:
    """The request's parameters besides ``messages``, streaming and the token limit.

    ``tools`` are the chat tools offered (functions, then hosted tools as functions);
    ``hosted`` maps a hosted tool type to its function name, for a ``tool_choice`` naming it.
    """
    run = ctx.run
    out: dict[str, Any] = {"model": run["model"]}
    for key in ("temperature", "top_p"):
        if run.get(key) is not None:
            out[key] = run[key]
    seed = _seed(ctx)
    if seed is not None:
        out["seed"] = seed
    choice = _tool_choice(run.get("tool_choice"), hosted)
    if tools and choice != "none":
        out["tools"] = tools
        if choice is not None:
            out["tool_choice"] = choice
        out["parallel_tool_calls"] = run.get("parallel_tool_calls") is not False
    fmt = run.get("response_format")
    if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
        out["response_format"] = fmt
    return out


CUT_RESULT = "[result removed: the conversation did not fit the model's context window]"


def cut_results(rounds: list[dict[str, Any]]) -> bool:
    """Make this turn's hosted tool results shorter, in place; False when nothing is left to cut.

    The oldest result goes first (replaced by :data:`CUT_RESULT`); the last one left is halved
    until it is short, then removed too. Each call cuts one thing, so a caller retries with
    as much of the results as fits.
    """
    results = [m for m in rounds if m.get("role") == "tool" and m.get("content") != CUT_RESULT]
    if not results:
        return False
    text = results[0]["content"]
    if len(results) > 1 or len(text) < 400:
        results[0]["content"] = CUT_RESULT
    else:
        results[0]["content"] = (
            text[: len(text) // 2] + "\n[… the rest cut to fit the context window]"
        )
    return True
