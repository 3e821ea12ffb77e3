"""One streamed Chat Completions call, and what to do when the upstream says no.

:meth:`Upstream.complete` streams a completion, handing each text delta to a callback as it
arrives and gathering tool calls from their deltas. The HTTP response is closed however the
call ends: when the turn's task is cancelled (a cancelled run, an expired one, a shutdown)
the connection goes, and a server that watches it (llama.cpp, vLLM) stops generating.

The reply's token limit goes as ``max_completion_tokens`` and as ``max_tokens`` too, the only
name llama-cpp-python and older servers know (they ignore the other); a server that refuses
``max_tokens`` (OpenAI's reasoning models) gets the request again without it, and never again
after. A server that honours neither is cut off at twice the limit in deltas.

Errors fail fast. A 4xx is the request's fault: the turn fails with the upstream's message,
code ``invalid_prompt`` (a client does not retry that). A 429 is ``rate_limit_exceeded``. A
5xx or a lost connection is tried once more; the same 5xx message twice is deterministic
(``json_schema`` unsupported, a template error) and fails as ``invalid_prompt``, anything else
as ``server_error``, which a client may retry. Nothing is retried once text has streamed.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import openai

from orch.engine.models.base import ModelError

#: Pause before the one retry of a failed request (a restarting server gets a moment).
RETRY_PAUSE = 0.25


@dataclass
class UpstreamCall:
    """A tool call the upstream made: its id, function name and arguments (JSON text)."""

    id: str
    name: str
    arguments: str = ""


@dataclass
class Completion:
    """What one streamed completion said."""

    text: str = ""
    calls: list[UpstreamCall] = field(default_factory=list)
    finish_reason: str | None = None
    usage: tuple[int, int] | None = None


def _message(exc: openai.APIStatusError) -> str:
    """The upstream's own error message (its JSON ``error.message``, else the body)."""
    body = exc.body
    if isinstance(body, dict):
        inner = body.get("error", body)
        if isinstance(inner, dict) and inner.get("message"):
            return str(inner["message"])
        if isinstance(inner, str):
            return inner
    return exc.message


class ContextFull(ModelError):
    """The upstream refused the request because the conversation overflows its context."""


# OpenAI and llama-cpp-python say `context_length_exceeded`; vLLM and others only say it in words
_CONTEXT_WORDS = re.compile(r"context[ _-]?(length|window)|maximum context", re.IGNORECASE)


def _overflows(exc: openai.APIStatusError) -> bool:
    """Whether a 400 says the prompt (plus the output asked for) does not fit the context."""
    code = getattr(exc, "code", None)
    return code == "context_length_exceeded" or bool(_CONTEXT_WORDS.search(_message(exc)))


class Upstream:
    """A Chat Completions server, called with streaming and the fail-fast policy above."""

    def __init__(self, client: openai.AsyncOpenAI, base_url: str):
        self.client = client
        self.base_url = base_url
        self.max_tokens_ok = True  # until the server says otherwise
        self.streams_tools = True  # until a streamed request with tools comes back empty

    def limit(self, request: dict[str, Any], tokens: int) -> None:
        """Set the request's output token limit, under the names this server takes."""
        request["max_completion_tokens"] = tokens
        if self.max_tokens_ok:
            request["max_tokens"] = tokens

    def _refuses_max_tokens(self, request: dict[str, Any], exc: openai.APIStatusError) -> bool:
        """Whether a 400 is about ``max_tokens`` (then it is dropped from ``request``)."""
        if exc.status_code != 400 or "max_tokens" not in request:
            return False
        if "'max_tokens'" not in _message(exc) and '"max_tokens"' not in _message(exc):
            return False
        self.max_tokens_ok = False
        del request["max_tokens"]
        return True

    async def complete(
        self, request: dict[str, Any], on_text: Callable[[str], Awaitable[None]]
    ) -> Completion:
        """Stream one completion for ``request``; raises :class:`ModelError` on failure."""
        previous: str | None = None
        for attempt in (1, 2):
            try:
                try:
                    return await self._stream(request, on_text)
                except openai.BadRequestError as exc:
                    if not self._refuses_max_tokens(request, exc):
                        raise
                    return await self._stream(request, on_text)
            except openai.RateLimitError as exc:
                raise ModelError(
                    f"upstream rate limit: {_message(exc)}", "rate_limit_exceeded"
                ) from exc
            except openai.APIStatusError as exc:
                status, message = exc.status_code, _message(exc)
                if status == 400 and _overflows(exc):
                    raise ContextFull(
                        f"the conversation does not fit the upstream's context window: {message}",
                        "invalid_prompt",
                    ) from exc
                if status < 500:
                    raise ModelError(
                        f"upstream rejected the request ({status}): {message}", "invalid_prompt"
                    ) from exc
                if message == previous:
                    raise ModelError(
                        f"upstream error {status}, the same twice: {message}", "invalid_prompt"
                    ) from exc
                if attempt == 2:
                    raise ModelError(f"upstream error {status}: {message}") from exc
                previous = message
            except openai.APIConnectionError as exc:
                if attempt == 2:
                    raise ModelError(f"upstream unreachable ({self.base_url}): {exc}") from exc
            await asyncio.sleep(RETRY_PAUSE)
        raise AssertionError("unreachable")

    async def _stream(
        self, request: dict[str, Any], on_text: Callable[[str], Awaitable[None]]
    ) -> Completion:
        if request.get("tools") and not self.streams_tools:
            return await self._whole(request, on_text)
        out = await self._streamed(request, on_text)
        if out is None:
            # llama-cpp-python answers a streamed request offering tools with an empty 200
            # ("automatic streaming tool choice is not supported"): ask for the whole answer,
            # and do so from now on for requests with tools
            self.streams_tools = False
            return await self._whole(request, on_text)
        return out

    async def _whole(
        self, request: dict[str, Any], on_text: Callable[[str], Awaitable[None]]
    ) -> Completion:
        """One completion asked for whole; its text goes to ``on_text`` in one piece."""
        response = await self.client.chat.completions.create(**request)
        out = Completion()
        if response.usage is not None:
            out.usage = (response.usage.prompt_tokens, response.usage.completion_tokens)
        for choice in response.choices[:1]:
            out.text = choice.message.content or ""
            out.finish_reason = choice.finish_reason
            out.calls = [
                UpstreamCall(c.id, c.function.name, c.function.arguments or "")
                for c in choice.message.tool_calls or []
                if c.type == "function"
            ]
        if out.text:
            await on_text(out.text)
        return out

    async def _streamed(
        self, request: dict[str, Any], on_text: Callable[[str], Awaitable[None]]
    ) -> Completion | None:
        """A streamed completion; None when a request with tools got an empty stream."""
        stream = await self.client.chat.completions.create(
            **request, stream=True, stream_options={"include_usage": True}
        )
        out = Completion()
        text: list[str] = []
        calls: dict[int, UpstreamCall] = {}
        # deltas are about tokens; twice the limit in deltas means the limit was ignored
        cutoff = 2 * request.get("max_completion_tokens", 0) or None
        deltas = chunks = 0
        # ``async with`` closes the response on every exit, cancellation included.
        async with stream:
            try:
                async for chunk in stream:
                    chunks += 1
                    if chunk.usage is not None:
                        out.usage = (chunk.usage.prompt_tokens, chunk.usage.completion_tokens)
                    for choice in chunk.choices[:1]:
                        delta = choice.delta
                        if delta.content:
                            text.append(delta.content)
                            await on_text(delta.content)
                        for tc in delta.tool_calls or []:
                            _gather(calls, tc)
                        if choice.finish_reason:
                            out.finish_reason = choice.finish_reason
                        deltas += bool(delta.content or delta.tool_calls)
                    if cutoff and deltas >= cutoff and out.finish_reason is None:
                        out.finish_reason = "length"
                        break  # leaving ``async with`` closes the request
            except openai.APIError as exc:  # the SDK wraps the HTTP library's read errors
                # mid-stream: text may have gone to the client already, so no retry
                raise ModelError(f"upstream stream broke ({self.base_url}): {exc}") from exc
        if not chunks and request.get("tools"):
            return None
        out.text = "".join(text)
        out.calls = [calls[i] for i in sorted(calls)]
        return out


def _gather(calls: dict[int, UpstreamCall], delta: Any) -> None:
    """Add one tool-call delta to the call it continues (by index).

    The id and name come whole in a call's first delta; llama-cpp-python repeats them in every
    delta, so later ones are not appended (only the arguments are streamed in pieces).
    """
    call = calls.get(delta.index)
    if call is None:
        call = calls[delta.index] = UpstreamCall(delta.id or f"call_{delta.index}", "")
    fn = delta.function
    if fn is not None:
        if fn.name and not call.name:
            call.name = fn.name
        if fn.arguments:
            call.arguments += fn.arguments
