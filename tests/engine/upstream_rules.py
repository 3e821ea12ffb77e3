"""What the strict upstream double accepts: the SDK's request types, and llama.cpp's extra rules.

A request body is checked against the JSON Schema pydantic derives from the SDK's
``CompletionCreateParams`` TypedDicts, made closed (``additionalProperties: false`` on every
object, so a misspelt or invented field is an error, as on OpenAI's API). On top of that come
the conversation rules real servers enforce and the types cannot say: OpenAI's (a ``tool``
message answers a pending call of the assistant message before it; every call is answered
before the conversation goes on; ``tool_choice``/``parallel_tool_calls`` only with ``tools``;
``stream_options`` only when streaming) and llama.cpp's (an assistant message's ``content``
is never null, even with tool calls).
"""

from __future__ import annotations

import functools
from typing import Any

import jsonschema
from openai.types import embedding_create_params
from openai.types.chat import completion_create_params
from pydantic import TypeAdapter


class Rejected(Exception):
    """The request breaks a rule; ``param`` names where, as OpenAI's 400 bodies do."""

    def __init__(self, message: str, param: str | None = None):
        super().__init__(message)
        self.message = message
        self.param = param


def _closed(schema: Any) -> Any:
    """The schema with every object closed to properties it does not declare."""
    if isinstance(schema, dict):
        out = {k: _closed(v) for k, v in schema.items()}
        if out.get("type") == "object" and "properties" in out:
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(schema, list):
        return [_closed(v) for v in schema]
    return schema


@functools.cache
def _validator(kind: str) -> jsonschema.Draft202012Validator:
    types = {
        "stream": completion_create_params.CompletionCreateParamsStreaming,
        "plain": completion_create_params.CompletionCreateParamsNonStreaming,
        "embeddings": embedding_create_params.EmbeddingCreateParams,
    }
    schema = _closed(TypeAdapter(types[kind]).json_schema())
    return jsonschema.Draft202012Validator(schema)


def _check_schema(kind: str, body: Any) -> None:
    error = jsonschema.exceptions.best_match(_validator(kind).iter_errors(body))
    if error is not None:
        where = ".".join(str(p) for p in error.absolute_path) or None
        raise Rejected(f"Invalid request ({where or 'body'}): {error.message}", where)


def check_chat_request(body: Any) -> None:
    """Raise :class:`Rejected` unless ``body`` is a request OpenAI and llama.cpp both accept."""
    if not isinstance(body, dict):
        raise Rejected("The request body must be a JSON object.")
    _check_schema("stream" if body.get("stream") else "plain", body)
    if not body["messages"]:
        raise Rejected("'messages' must contain at least one message.", "messages")
    if "tools" not in body:
        for key in ("tool_choice", "parallel_tool_calls"):
            if key in body:
                raise Rejected(f"'{key}' is only allowed when 'tools' are specified.", key)
    if "stream_options" in body and not body.get("stream"):
        raise Rejected("'stream_options' is only allowed when 'stream' is true.", "stream_options")
    _check_conversation(body["messages"])


def _check_conversation(messages: list[dict[str, Any]]) -> None:
    """Tool messages answer the calls before them, each once; no call is left unanswered."""
    pending: set[str] = set()
    for i, message in enumerate(messages):
        role = message["role"]
        where = f"messages.[{i}]"
        if role == "tool":
            if message["tool_call_id"] not in pending:
                raise Rejected(
                    "Invalid parameter: messages with role 'tool' must be a response to a "
                    "preceeding message with 'tool_calls'.",
                    f"{where}.role",
                )
            pending.discard(message["tool_call_id"])
            continue
        if pending:
            raise Rejected(
                "An assistant message with 'tool_calls' must be followed by tool messages "
                f"responding to each 'tool_call_id'. Missing: {sorted(pending)}.",
                "messages",
            )
        if role == "assistant":
            if message.get("content") is None:
                # llama.cpp: "Expected 'content' to be a string or an array"
                raise Rejected("Assistant message 'content' must not be null.", f"{where}.content")
            pending = {call["id"] for call in message.get("tool_calls") or []}
    if pending:
        raise Rejected(
            f"Tool calls without a tool message answering them: {sorted(pending)}.", "messages"
        )


def check_embeddings_request(body: Any) -> None:
    """Raise :class:`Rejected` unless ``body`` is a valid ``/v1/embeddings`` request."""
    if not isinstance(body, dict):
        raise Rejected("The request body must be a JSON object.")
    _check_schema("embeddings", body)
    inputs = body["input"]
    if not isinstance(inputs, str) and not all(isinstance(i, str) for i in inputs):
        raise Rejected("This double embeds text inputs only.", "input")
    if isinstance(inputs, list) and not inputs:
        raise Rejected("'input' must not be empty.", "input")
