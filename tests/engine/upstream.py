"""A strict Chat Completions (+ embeddings) server on 127.0.0.1, for the openai-chat model.

It is at least as strict as the servers the engine meets: every ``/v1/chat/completions`` and
``/v1/embeddings`` request is checked by :mod:`tests.engine.upstream_rules` (the SDK's request
types, closed, plus llama.cpp's and OpenAI's conversation rules) and a broken one gets a 400
and lands in :attr:`StrictUpstream.rejected`. What it answers comes from
:mod:`tests.engine.upstream_policy`. Streams go out token by token, each chunk checked against
the SDK's ``ChatCompletionChunk``, with ``token_delay`` seconds between tokens (and
``first_token_delay`` before the first, the prompt's processing), ``finish_reason: length`` at
the request's token limit and a usage chunk when asked. Every request is recorded as an
:class:`Exchange`, with whether its client went away before the stream's end.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import math
import re
import socket
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import uvicorn
from openai.types import CreateEmbeddingResponse
from openai.types.chat import ChatCompletion, ChatCompletionChunk
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.engine.upstream_policy import Reply, answer, content_text
from tests.engine.upstream_rules import Rejected, check_chat_request, check_embeddings_request

EMBEDDING_DIMENSIONS = 64
# Words the double's embeddings treat as one meaning, so hybrid search can find a chunk that
# shares no word with the query.
SYNONYMS = {"automobile": "car", "vehicle": "car", "physician": "doctor", "medic": "doctor"}


#: the attributes of :class:`StrictUpstream` that say how it behaves (tests change them)
SETTINGS = (
    "token_delay",
    "first_token_delay",
    "unsupported",
    "honours",
    "refuses_max_tokens",
    "llama_cpp_python_chunks",
    "empty_streams_with_tools",
    "context_window",
)


@dataclass
class Exchange:
    """One chat request and what became of it."""

    body: dict[str, Any]
    status: int = 200
    tokens: int = 0  # content / argument pieces sent
    finished: bool = False
    aborted: bool = False  # the client closed the stream before its end
    usage: tuple[int, int] | None = None


def tokens_of(text: str) -> list[str]:
    """The double's tokens: each word with the whitespace before it."""
    return re.findall(r"\s*\S+", text)


def embed(text: str) -> list[float]:
    """A unit vector of hashed words (synonyms folded): similar words, similar vectors."""
    vector = [0.0] * EMBEDDING_DIMENSIONS
    for word in re.findall(r"\w+", text.lower()):
        word = SYNONYMS.get(word, word)
        digest = hashlib.sha256(word.encode()).digest()
        vector[digest[0] % EMBEDDING_DIMENSIONS] += 1.0 if digest[1] % 2 else -1.0
    norm = math.sqrt(sum(v * v for v in vector)) or 1.0
    return [v / norm for v in vector]


def _error(
    status: int, message: str, param: str | None = None, code: str | None = None
) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
    return JSONResponse(body, status_code=status)


class StrictUpstream:
    """The server's state: its settings and what it was asked. See the module docstring."""

    def __init__(
        self,
        token_delay: float = 0.0,
        first_token_delay: float = 0.0,
        unsupported: frozenset[str] = frozenset(),
    ):
        self.token_delay = token_delay
        self.first_token_delay = first_token_delay
        self.unsupported = unsupported  # response_format types it answers with a 500
        # The token limits it obeys (llama-cpp-python: only max_tokens), and whether it
        # refuses max_tokens (OpenAI's reasoning models).
        self.honours = frozenset({"max_completion_tokens", "max_tokens"})
        self.refuses_max_tokens = False
        # llama-cpp-python's tool-call chunks: id, type and name again in every delta, and
        # the legacy function_call beside tool_calls
        self.llama_cpp_python_chunks = False
        # llama-cpp-python again: a streamed request with tools gets a 200 with an empty stream
        self.empty_streams_with_tools = False
        # n_ctx: a prompt (in the double's tokens) plus the output asked for must fit, else a 400
        # worded as llama-cpp-python's server words it
        self.context_window: int | None = None
        self.exchanges: list[Exchange] = []
        self.rejected: list[tuple[Any, str]] = []
        self.embedded: list[list[str]] = []
        self._flaky: set[str] = set()
        self._ids = itertools.count(1)

    def settings(self) -> dict[str, Any]:
        """How it behaves now (the attributes tests change), for :meth:`restore`."""
        return {name: getattr(self, name) for name in SETTINGS}

    def restore(self, settings: dict[str, Any]) -> None:
        """Behave as when :meth:`settings` was taken."""
        for name, value in settings.items():
            setattr(self, name, value)

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every accepted chat request's body, oldest first."""
        return [e.body for e in self.exchanges]

    def app(self) -> Starlette:
        """The ASGI app: ``POST /v1/chat/completions`` and ``POST /v1/embeddings``."""
        return Starlette(
            routes=[
                Route("/v1/chat/completions", self.chat, methods=["POST"]),
                Route("/v1/embeddings", self.embeddings, methods=["POST"]),
            ]
        )

    # -- chat ----------------------------------------------------------------------------------
    async def chat(self, request: Request) -> Response:
        """Check the request, then answer it (streamed or whole) or fail as the policy says."""
        try:
            body = json.loads(await request.body())
            check_chat_request(body)
        except (ValueError, Rejected) as exc:
            message = getattr(exc, "message", str(exc))
            self.rejected.append((locals().get("body"), message))
            return _error(400, message, getattr(exc, "param", None))
        exchange = Exchange(body)
        self.exchanges.append(exchange)
        if self.refuses_max_tokens and "max_tokens" in body:
            exchange.status = 400
            return _error(
                400,
                "Unsupported parameter: 'max_tokens' is not supported with this model. "
                "Use 'max_completion_tokens' instead.",
                "max_tokens",
            )
        overflow = self._overflow(body)
        if overflow is not None:
            exchange.status = 400
            return _error(400, overflow, "messages", "context_length_exceeded")
        fmt = (body.get("response_format") or {}).get("type")
        reply = answer(body, self._flaky)
        if fmt in self.unsupported:
            reply = Reply(status=500, error=f"response_format {fmt} is not supported")
        if reply.status != 200:
            exchange.status = reply.status
            return _error(reply.status, reply.error)
        if body.get("stream") and body.get("tools") and self.empty_streams_with_tools:
            return StreamingResponse(_done_only(), media_type="text/event-stream")
        if body.get("stream"):
            return StreamingResponse(self._stream(exchange, reply), media_type="text/event-stream")
        return JSONResponse(self._whole(exchange, reply))

    def _overflow(self, body: dict[str, Any]) -> str | None:
        """The context-length error for ``body``, or None when it fits (or no window is set)."""
        if self.context_window is None:
            return None
        prompt = self.prompt_tokens(body)
        asked = min((body[k] for k in self.honours if body.get(k)), default=0)
        if prompt + asked <= self.context_window:
            return None
        return (
            f"This model's maximum context length is {self.context_window} tokens. However, "
            f"you requested {prompt + asked} tokens ({prompt} in the messages, {asked} in the "
            "completion). Please reduce the length of the messages or completion."
        )

    @staticmethod
    def prompt_tokens(body: dict[str, Any]) -> int:
        """The request's prompt in the double's tokens (words), one more per message."""
        return sum(1 + len(tokens_of(content_text(m.get("content")))) for m in body["messages"])

    def _limited(self, body: dict[str, Any], reply: Reply) -> tuple[list[str], list, str]:
        """The reply's text tokens and tool calls within the token limit, and finish_reason."""
        limits = [body[k] for k in self.honours if body.get(k)]
        limit = min(limits, default=math.inf)
        tokens = tokens_of(reply.text)
        if reply.tool_calls:
            pieces = [(name, re.findall(r".{1,4}", args, re.S)) for name, args in reply.tool_calls]
            cost = sum(len(p) for _, p in pieces)
            if cost > limit:
                return [], [(n, p[: int(limit)]) for n, p in pieces[:1]], "length"
            return [], pieces, "tool_calls"
        if len(tokens) > limit:
            return tokens[: int(limit)], [], "length"
        return tokens, [], "stop"

    def _chunk(self, exchange: Exchange, cid: str, delta: dict[str, Any], finish=None) -> bytes:
        chunk: dict[str, Any] = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": exchange.body["model"],
            "system_fingerprint": "fp_strict_double",
            "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}],
        }
        if (exchange.body.get("stream_options") or {}).get("include_usage"):
            chunk["usage"] = None
        ChatCompletionChunk.model_validate(chunk)
        return f"data: {json.dumps(chunk)}\n\n".encode()

    def _deltas(self, reply: Reply, exchange: Exchange) -> tuple[list[dict[str, Any]], str]:
        """The reply's deltas after the first, one per token or argument piece."""
        tokens, calls, finish = self._limited(exchange.body, reply)
        deltas: list[dict[str, Any]] = [{"content": t} for t in tokens]
        for i, (name, pieces) in enumerate(calls):
            call_id = f"call_up_{next(self._ids)}"
            head = {"index": i, "id": call_id, "type": "function"}
            if self.llama_cpp_python_chunks:
                deltas.extend(
                    {
                        "function_call": {"name": name, "arguments": p},
                        "tool_calls": [{**head, "function": {"name": name, "arguments": p}}],
                    }
                    for p in pieces
                )
                continue
            deltas.append({"tool_calls": [{**head, "function": {"name": name, "arguments": ""}}]})
            deltas.extend(
                {"tool_calls": [{"index": i, "function": {"arguments": p}}]} for p in pieces
            )
        return deltas, finish

    async def _stream(self, exchange: Exchange, reply: Reply) -> AsyncIterator[bytes]:
        cid = f"chatcmpl-{next(self._ids)}"
        deltas, finish = self._deltas(reply, exchange)
        try:
            first = {"role": "assistant", "content": None if reply.tool_calls else ""}
            yield self._chunk(exchange, cid, first)
            await asyncio.sleep(self.first_token_delay)
            for i, delta in enumerate(deltas):
                if i and self.token_delay:
                    await asyncio.sleep(self.token_delay)
                exchange.tokens += 1 if "content" in delta or "arguments" in str(delta) else 0
                yield self._chunk(exchange, cid, delta)
            yield self._chunk(exchange, cid, {}, finish)
            usage = (self.prompt_tokens(exchange.body), exchange.tokens)
            exchange.usage = usage
            if (exchange.body.get("stream_options") or {}).get("include_usage"):
                yield self._usage_chunk(exchange, cid, usage)
            yield b"data: [DONE]\n\n"
            exchange.finished = True
        finally:
            exchange.aborted = not exchange.finished

    def _usage_chunk(self, exchange: Exchange, cid: str, usage: tuple[int, int]) -> bytes:
        chunk = {
            "id": cid,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": exchange.body["model"],
            "choices": [],
            "usage": {
                "prompt_tokens": usage[0],
                "completion_tokens": usage[1],
                "total_tokens": sum(usage),
            },
        }
        ChatCompletionChunk.model_validate(chunk)
        return f"data: {json.dumps(chunk)}\n\n".encode()

    def _whole(self, exchange: Exchange, reply: Reply) -> dict[str, Any]:
        tokens, calls, finish = self._limited(exchange.body, reply)
        message: dict[str, Any] = {"role": "assistant", "content": "".join(tokens) or None}
        if calls:
            message["tool_calls"] = [
                {
                    "id": f"call_up_{next(self._ids)}",
                    "type": "function",
                    "function": {"name": name, "arguments": "".join(pieces)},
                }
                for name, pieces in calls
            ]
        exchange.tokens = len(tokens) + sum(len(p) for _, p in calls)
        exchange.usage = (self.prompt_tokens(exchange.body), exchange.tokens)
        exchange.finished = True
        body = {
            "id": f"chatcmpl-{next(self._ids)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": exchange.body["model"],
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": {
                "prompt_tokens": exchange.usage[0],
                "completion_tokens": exchange.usage[1],
                "total_tokens": sum(exchange.usage),
            },
        }
        ChatCompletion.model_validate(body)
        return body

    # -- embeddings ----------------------------------------------------------------------------
    async def embeddings(self, request: Request) -> Response:
        """Check the request, then embed each input (see :func:`embed`)."""
        try:
            body = json.loads(await request.body())
            check_embeddings_request(body)
        except (ValueError, Rejected) as exc:
            message = getattr(exc, "message", str(exc))
            self.rejected.append((locals().get("body"), message))
            return _error(400, message, getattr(exc, "param", None))
        inputs = [body["input"]] if isinstance(body["input"], str) else body["input"]
        self.embedded.append(inputs)
        count = sum(len(tokens_of(i)) for i in inputs)
        out = {
            "object": "list",
            "model": body["model"],
            "data": [
                {"object": "embedding", "index": i, "embedding": embed(text)}
                for i, text in enumerate(inputs)
            ],
            "usage": {"prompt_tokens": count, "total_tokens": count},
        }
        CreateEmbeddingResponse.model_validate(out)
        return JSONResponse(out)


@contextmanager
def serving(upstream: StrictUpstream) -> Iterator[str]:
    """Run the double on a free loopback port; yields its base URL (``.../v1``)."""
    # IPPROTO_TCP, not 0: asyncio sets TCP_NODELAY only on sockets that say they are TCP, and
    # without it each token waits for the client's delayed ACK (40 ms), as no real server does.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    config = uvicorn.Config(upstream.app(), log_config=None, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the upstream double did not start")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    finally:
        server.should_exit = True
        thread.join(5)
        sock.close()


async def _done_only():
    """An SSE body with no chunk at all: what llama-cpp-python streams for tools + auto."""
    yield b"data: [DONE]\n\n"
