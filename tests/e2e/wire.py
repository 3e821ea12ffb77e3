"""What a Chat Completions exchange must look like, by the official SDK's types.

Requests (what the engine sends) are checked against the JSON Schema pydantic derives from the
SDK's ``CompletionCreateParams`` TypedDicts, closed (``additionalProperties: false`` on every
object, so an invented or misspelt field counts, as on OpenAI's API), plus the conversation
rules OpenAI enforces that the types cannot say. Responses (what the model server answers) are
validated as ``ChatCompletion`` / ``ChatCompletionChunk``. Each check returns a list of
problems, empty when the exchange is well formed.
"""

from __future__ import annotations

import functools
import json
from typing import Any

import jsonschema
import pydantic
from openai.types.chat import ChatCompletion, ChatCompletionChunk, completion_create_params

CHAT_PATH = "/chat/completions"


def _closed(schema: Any) -> Any:
    """The schema with every object closed to the properties it declares."""
    if isinstance(schema, dict):
        out = {k: _closed(v) for k, v in schema.items()}
        if out.get("type") == "object" and "properties" in out:
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(schema, list):
        return [_closed(v) for v in schema]
    return schema


@functools.cache
def _validator(streaming: bool) -> jsonschema.Draft202012Validator:
    params = (
        completion_create_params.CompletionCreateParamsStreaming
        if streaming
        else completion_create_params.CompletionCreateParamsNonStreaming
    )
    return jsonschema.Draft202012Validator(_closed(pydantic.TypeAdapter(params).json_schema()))


def request_problems(body: Any) -> list[str]:
    """Why ``body`` is not a chat request OpenAI would accept (empty when it is)."""
    if not isinstance(body, dict):
        return ["the request body is not a JSON object"]
    problems = [
        f"{'.'.join(str(p) for p in e.absolute_path) or 'body'}: {e.message}"
        for e in _validator(bool(body.get("stream"))).iter_errors(body)
    ]
    if problems:
        return problems[:3]
    if "tools" not in body:
        problems += [
            f"'{k}' without 'tools'" for k in ("tool_choice", "parallel_tool_calls") if k in body
        ]
    if "stream_options" in body and not body.get("stream"):
        problems.append("'stream_options' without 'stream'")
    return problems + _conversation_problems(body["messages"])


def _conversation_problems(messages: list[dict[str, Any]]) -> list[str]:
    """Tool messages answer the calls just before them, each once; none is left unanswered."""
    pending: set[str] = set()
    for i, message in enumerate(messages):
        if message["role"] == "tool":
            if message["tool_call_id"] not in pending:
                return [f"messages[{i}]: a tool message answering no pending tool call"]
            pending.discard(message["tool_call_id"])
            continue
        if pending:
            return [f"messages[{i}]: tool calls {sorted(pending)} left unanswered"]
        if message["role"] == "assistant":
            pending = {call["id"] for call in message.get("tool_calls") or []}
    return [f"tool calls {sorted(pending)} left unanswered at the end"] if pending else []


def response_problems(status: int, content_type: str, raw: bytes) -> list[str]:
    """Why a 200 answer is not a ``ChatCompletion`` (or a stream of chunks); errors as such."""
    text = raw.decode("utf-8", "replace")
    if status != 200:
        return [f"HTTP {status}: {text[:300]}"]
    if content_type.startswith("text/event-stream"):
        return _stream_problems(text)
    try:
        ChatCompletion.model_validate_json(raw)
    except pydantic.ValidationError as exc:
        return [f"not a ChatCompletion: {_first_error(exc)}"]
    return []


def _stream_problems(text: str) -> list[str]:
    """Every ``data:`` event is a ``ChatCompletionChunk``; one says why the answer ended
    (``finish_reason``) and ``[DONE]`` closes the stream."""
    done = finished = False
    for event in text.replace("\r\n", "\n").split("\n\n"):
        data = "\n".join(
            line[5:].lstrip() for line in event.split("\n") if line.startswith("data:")
        )
        if not data:
            continue
        if data == "[DONE]":
            done = True
            continue
        try:
            chunk = ChatCompletionChunk.model_validate(json.loads(data))
        except (ValueError, pydantic.ValidationError) as exc:
            return [f"not a ChatCompletionChunk: {_first_error(exc)}: {data[:200]}"]
        finished = finished or any(c.finish_reason for c in chunk.choices)
    if not done:
        return ["the stream ended without data: [DONE]"]
    return [] if finished else ["the stream ended without a finish_reason (cut short)"]


def _first_error(exc: Exception) -> str:
    if isinstance(exc, pydantic.ValidationError):
        err = exc.errors()[0]
        return f"{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
    return str(exc)


def cap_overrun(body: Any, content_type: str, raw: bytes) -> str | None:
    """A note when a streamed answer ran past the request's token cap (a field it ignored)."""
    if not isinstance(body, dict) or not content_type.startswith("text/event-stream"):
        return None
    field, cap = next(
        ((k, body[k]) for k in ("max_completion_tokens", "max_tokens") if body.get(k)), (None, 0)
    )
    # One content chunk per token on llama.cpp; a little slack for servers that split tokens.
    chunks = raw.count(b'"content": "') + raw.count(b'"content":"')
    if field and chunks > cap + 8:
        return f"the server ignored {field}={cap}: it streamed {chunks} content chunks"
    return None
