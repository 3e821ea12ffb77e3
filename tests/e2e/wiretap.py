"""A recording proxy on loopback between the engine and the model server.

The engine's ``openai-chat`` model is pointed at the proxy instead of the model server, so every
Chat Completions exchange is seen: the request is checked by :mod:`tests.e2e.wire` (a malformed
one is the engine's fault), the answer too (a malformed one is the server's), and both are kept
so a failure can be shown exactly. Answers are passed on as they arrive, so streaming stays
streaming.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from tests.e2e import wire

# Hop-by-hop headers, and the length: the proxy re-frames answers (it closes after each).
_DROPPED = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


@dataclass
class Exchange:
    """One request through the proxy and what came back."""

    method: str
    path: str
    request: Any
    status: int = 0
    content_type: str = ""
    response: bytes = b""
    started: float = 0.0
    finished: float = 0.0
    request_problems: list[str] = field(default_factory=list)
    response_problems: list[str] = field(default_factory=list)
    # Worth knowing, not a breakage (e.g. the server ignored a field it does not know).
    notes: list[str] = field(default_factory=list)

    @property
    def streamed(self) -> bool:
        """Whether the server answered with an event stream."""
        return self.content_type.startswith("text/event-stream")

    def problems(self) -> list[str]:
        """What went wrong: the request's faults (engine), then the answer's (server)."""
        sent = [f"malformed request: {p}" for p in self.request_problems]
        return sent + [f"server answer: {p}" for p in self.response_problems]

    def describe(self) -> str:
        """The request's telling fields and the answer, abridged, for a report line."""
        body = self.request if isinstance(self.request, dict) else {}
        messages = body.get("messages") or []
        shown = {
            k: body[k]
            for k in ("stream", "tool_choice", "response_format", "max_tokens")
            if k in body
        }
        shown["tools"] = [t.get("function", {}).get("name") for t in body.get("tools") or []]
        shown["roles"] = [m.get("role") for m in messages]
        if messages:
            shown["last"] = str(messages[-1].get("content"))[:80]
        answer = self.response.decode("utf-8", "replace")[:300] or "(empty body)"
        return (
            f"{self.method} {self.path} {json.dumps(shown)}\n"
            f"      -> {self.status} {self.content_type or '-'}: {answer!r}"
        )


class Wiretap:
    """Forwards ``/v1/...`` to ``upstream`` and records every exchange."""

    def __init__(self, upstream: str, timeout: float = 900.0):
        parts = urlsplit(upstream)
        self.upstream = (parts.hostname or "127.0.0.1", parts.port or 80)
        self.timeout = timeout
        self.exchanges: list[Exchange] = []
        self.lock = threading.Lock()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        """The proxy's OpenAI base URL (``http://127.0.0.1:PORT/v1``)."""
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> Wiretap:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def mark(self) -> float:
        """A point in time, for :meth:`since`."""
        return time.monotonic()

    def since(self, mark: float) -> list[Exchange]:
        """The exchanges that started after ``mark``, in the order they ended."""
        with self.lock:
            return [x for x in self.exchanges if x.started >= mark]

    def dump(self, path: Path) -> None:
        """Every exchange so far as JSON lines (request, status, answer), to read a failure."""
        with self.lock, path.open("w", encoding="utf-8") as out:
            for x in self.exchanges:
                record = {
                    "method": x.method,
                    "path": x.path,
                    "request": x.request,
                    "status": x.status,
                    "seconds": round(x.finished - x.started, 3),
                    "request_problems": x.request_problems,
                    "response_problems": x.response_problems,
                    "notes": x.notes,
                    "response": x.response.decode("utf-8", "replace"),
                }
                out.write(json.dumps(record) + "\n")

    def forward(self, exchange: Exchange, body: bytes | None, headers: dict[str, str], out):
        """Send the request on, stream the answer back through ``out``, record both."""
        conn = http.client.HTTPConnection(*self.upstream, timeout=self.timeout)
        chunks: list[bytes] = []
        try:
            conn.request(exchange.method, exchange.path, body, headers)
            answer = conn.getresponse()
            exchange.status = answer.status
            exchange.content_type = answer.getheader("content-type", "")
            out.send_response(answer.status)
            for name, value in answer.getheaders():
                if name.lower() not in _DROPPED:
                    out.send_header(name, value)
            out.send_header("Connection", "close")
            out.end_headers()
            while data := answer.read1(65536):
                chunks.append(data)
                out.wfile.write(data)
        except (OSError, http.client.HTTPException) as exc:
            exchange.response_problems.append(f"proxy: {type(exc).__name__}: {exc}")
            if not exchange.status:
                exchange.status = 502
                out.send_error(502, f"upstream unreachable: {exc}")
        finally:
            conn.close()
            exchange.response = b"".join(chunks)
            exchange.finished = time.monotonic()
            self._judge(exchange)

    def _judge(self, exchange: Exchange) -> None:
        if exchange.path.endswith(wire.CHAT_PATH) and exchange.method == "POST":
            exchange.request_problems = wire.request_problems(exchange.request)
            exchange.response_problems += wire.response_problems(
                exchange.status, exchange.content_type, exchange.response
            )
            overrun = wire.cap_overrun(exchange.request, exchange.content_type, exchange.response)
            exchange.notes += [overrun] if overrun else []
        with self.lock:
            self.exchanges.append(exchange)


def _handler_for(tap: Wiretap) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        # HTTP/1.0: one exchange per connection, the answer ends when the socket closes.
        protocol_version = "HTTP/1.0"

        def do_GET(self) -> None:
            self._relay(None)

        def do_POST(self) -> None:
            self._relay(self.rfile.read(int(self.headers.get("Content-Length") or 0)))

        def _relay(self, body: bytes | None) -> None:
            try:
                parsed = json.loads(body) if body else None
            except ValueError:
                parsed = body.decode("utf-8", "replace") if body else None
            exchange = Exchange(self.command, self.path, parsed, started=time.monotonic())
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _DROPPED}
            tap.forward(exchange, body, headers, self)

        def log_message(self, format: str, *args: Any) -> None:
            pass  # the record is the log

    return Handler
