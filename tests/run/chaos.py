"""Helpers for the resilience tests: a fault-injecting proxy, a project builder, engine audits.

The engine's own fault injection (``fault_rate``) fails requests *before* they are processed, so
retrying them is always safe. :class:`ChaosProxy` also covers the dangerous cases: the request
was processed (a thread or run was created) but the client never heard back, or heard an empty
or truncated 200 (JSON or SSE).
"""

from __future__ import annotations

import http.client
import json
import random
import re
import socket
import sqlite3
import threading
import warnings
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

from openai import OpenAI

#: POSTs that create runs: ``/v1/threads/runs`` and ``/v1/threads/{id}/runs``.
RUN_CREATE = re.compile(r"^/v1/threads(/[^/]+)?/runs$")
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"}

#: faults that stop a request before the upstream sees it: it is never processed
BEFORE = ("429", "500", "503", "reset", "404")
#: faults that spoil the upstream's answer: the request *was* processed
#:
#: * ``lost``: the connection is closed before any byte of the answer (for a stream, once its
#:   first event proves the create happened);
#: * ``cut``: a stream is cut right after its first event (the client learns what was
#:   created, then the stream breaks); other answers are lost;
#: * ``empty``: a 200 with an empty body (a stream that ends before any event);
#: * ``untyped``: a 200 with an empty body and no content type (the SDK returns text);
#: * ``truncated``: a 200 whose JSON (or first SSE event) is cut in the middle.
AFTER = ("lost", "cut", "empty", "untyped", "truncated")
Match = Callable[[str, str], bool]


def run_creates(method: str, path: str) -> bool:
    """Only run creates are hit."""
    return method == "POST" and bool(RUN_CREATE.match(path))


def everything(method: str, path: str) -> bool:
    """Every API request is hit."""
    return path.startswith("/v1/") and not path.startswith("/v1/_orch/")


class ChaosProxy:
    """An HTTP proxy on 127.0.0.1 in front of ``upstream`` that injects faults.

    Each request that ``match(method, path)`` selects gets one fault with the probability
    ``faults[mode]`` (seeded); or, with ``every=k``, every k-th selected request gets one, the
    modes taken in turn (so a test knows faults happen whatever the threads' timing). See
    :data:`BEFORE` and :data:`AFTER` for the modes. The short form ``ChaosProxy(url, rate,
    mode=…)`` hits run creates only, as the first resilience tests did. Everything else
    streams through unchanged (SSE included).
    ``dropped`` lists the spoiled answers (processed upstream) keyed like the engine's request
    stats; ``injected`` counts every fault by (mode, key).
    """

    def __init__(
        self,
        upstream: str,
        rate: float = 0.0,
        seed: int = 0,
        mode: str = "lost",
        *,
        faults: dict[str, float] | None = None,
        match: Match | None = None,
        every: int | None = None,
    ):
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        unknown = set(faults or {}) - set(BEFORE) - set(AFTER)
        assert not unknown, f"unknown fault modes: {unknown}"
        self.faults = dict(faults) if faults is not None else {mode: rate}
        self.match = match or (everything if faults is not None else run_creates)
        self.every = every
        self._selected = 0
        self.dropped: list[str] = []
        self.injected: Counter[tuple[str, str]] = Counter()
        self.forwarded: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._server = _QuietServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, daemon=True, name="chaos-proxy"
        )
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"

    def start(self) -> ChaosProxy:
        """Start serving in a daemon thread."""
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> ChaosProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def roll(self, method: str, path: str) -> str | None:
        """The fault for one request, or None."""
        if not self.match(method, path):
            return None
        with self._lock:
            self._selected += 1
            selected, roll = self._selected, self._rng.random()
        if self.every:
            turn, rest = divmod(selected, self.every)
            modes = list(self.faults)
            return None if rest else modes[(turn - 1) % len(modes)]
        for mode, rate in self.faults.items():
            if roll < rate:
                return mode
            roll -= rate
        return None

    def note(self, mode: str, key: str) -> None:
        """Count an injected fault."""
        with self._lock:
            self.injected[(mode, _template(key))] += 1
            if mode in AFTER:
                self.dropped.append(_template(key))


class _QuietServer(ThreadingHTTPServer):
    """Connections broken on purpose (by the proxy, the engine's faults or a killed client)
    are the point here, not news: no traceback on stderr."""

    def handle_error(self, request: object, client_address: object) -> None:
        pass


def _handler_for(proxy: ChaosProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - quiet
            pass

        def _relay(self) -> None:
            length = int(self.headers.get("content-length") or 0)
            body = self.rfile.read(length) if length else None
            path = urlsplit(self.path).path
            key = f"{self.command} {path}"
            fault = proxy.roll(self.command, path)
            with proxy._lock:
                proxy.forwarded[key] += 1
            if fault in BEFORE:
                proxy.note(fault, key)
                self._refuse(fault)
                return
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            upstream = http.client.HTTPConnection(
                proxy.upstream_host, proxy.upstream_port, timeout=120
            )
            try:
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                streaming = response.getheader("content-length") is None
                if fault is not None and response.status < 300:
                    proxy.note(fault, key)
                    self._spoil(fault, response, streaming)
                else:
                    self._pass(response, streaming)
            finally:
                upstream.close()

        def _pass(self, response: http.client.HTTPResponse, streaming: bool) -> None:
            self.send_response(response.status, response.reason)
            for name, value in response.getheaders():
                if name.lower() not in _HOP:
                    self.send_header(name, value)
            if not streaming:
                data = response.read()
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            # a stream: close-delimited body, flushed chunk by chunk
            self.send_header("Connection", "close")
            self.end_headers()
            self.close_connection = True
            while chunk := response.read1(65536):
                self.wfile.write(chunk)
                self.wfile.flush()

        def _refuse(self, fault: str) -> None:
            if fault == "reset":
                self.close_connection = True
                self._hang_up()
                return
            status = int(fault)
            data = json.dumps(
                {"error": {"message": f"injected {status}", "type": "chaos", "code": None}}
            ).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 429:
                self.send_header("retry-after-ms", "10")
            self.end_headers()
            self.wfile.write(data)

        def _spoil(self, fault: str, response: http.client.HTTPResponse, streaming: bool) -> None:
            self.close_connection = True
            kind = response.getheader("content-type") or "application/json"
            data = _first_event(response) if streaming else response.read()
            if fault == "lost" or (fault == "cut" and not streaming):
                self._hang_up()
                return
            if fault == "cut":
                self._send(200, kind, data, streaming)
                self._hang_up()
                return
            if fault == "truncated":
                half = data[: len(data) // 2]
                self._send(200, kind, half + b"\n\n" if streaming else half, streaming)
                return
            self._send(200, kind if fault == "empty" else None, b"", streaming)

        def _send(self, status: int, kind: str | None, data: bytes, streaming: bool) -> None:
            self.send_response(status)
            if kind:
                self.send_header("Content-Type", kind)
            if streaming:
                self.send_header("Connection", "close")
            else:
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()

        def _hang_up(self) -> None:
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        do_GET = do_POST = do_DELETE = _relay

    return Handler


def _first_event(response: http.client.HTTPResponse) -> bytes:
    """Read a stream up to the end of its first event (proof that its create happened)."""
    seen = b""
    while b"\n\n" not in seen:
        chunk = response.read1(65536)
        if not chunk:
            return seen
        seen += chunk
    return seen[: seen.index(b"\n\n") + 2]


def _template(key: str) -> str:
    """``POST /v1/threads/thread_1/runs`` → ``POST /v1/threads/{thread_id}/runs`` (engine stats)."""
    return re.sub(r"^(POST /v1/threads/)(?!runs$)[^/]+/runs$", r"\1{thread_id}/runs", key)


# -- audits ------------------------------------------------------------------------------------


def client_for(base_url: str) -> OpenAI:
    """A plain SDK client for checking what the engine holds."""
    return OpenAI(base_url=base_url, api_key="test", max_retries=3)


def audit_thread(client: OpenAI, thread_id: str) -> tuple[list[str], list[str]]:
    """(user message texts, run ids) of a thread, oldest first."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        messages = client.beta.threads.messages.list(thread_id, order="asc", limit=100).data
        runs = client.beta.threads.runs.list(thread_id, order="asc", limit=100).data
    texts = [
        part.text.value
        for m in messages
        if m.role == "user"
        for part in m.content
        if part.type == "text"
    ]
    return texts, [r.id for r in runs]


@dataclass
class EngineAudit:
    """Everything the engine holds about threads, read from its SQLite file (stop it first).

    ``lost``, ``duplicated`` and ``orphans`` compare it with a run's result records: items not
    recorded as passed, user messages that exist more than once (in one thread or across
    threads), and model runs no record points at. ``empty_threads`` (threads without a run) are
    reported apart: a lost thread create may leave one, and it costs nothing.
    """

    threads: dict[str, dict] = field(default_factory=dict)
    user_texts: dict[str, list[str]] = field(default_factory=dict)
    runs: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def read(cls, db_path: Path) -> EngineAudit:
        """The engine's threads, their user messages and runs, oldest first."""
        audit = cls()
        conn = sqlite3.connect(f"file:{db_path}?mode=ro", uri=True)
        try:
            rows = conn.execute(
                "SELECT kind, id, parent, data FROM objects"
                " WHERE kind IN ('thread', 'message', 'run') ORDER BY seq"
            ).fetchall()
        finally:
            conn.close()
        for kind, object_id, parent, data in rows:
            obj = json.loads(data)
            if kind == "thread":
                audit.threads[object_id] = obj.get("metadata") or {}
            elif kind == "run":
                audit.runs.setdefault(parent, []).append(object_id)
            elif obj.get("role") == "user":
                texts = [p["text"]["value"] for p in obj["content"] if p["type"] == "text"]
                audit.user_texts.setdefault(parent, []).extend(texts)
        return audit

    def lost(self, records: list[dict], keys: set[str]) -> int:
        """Expected item keys without a passed record."""
        return len(keys - {r["key"] for r in records if r["status"] == "passed"})

    def duplicated(self) -> int:
        """User messages beyond the first with the same text (prompts are unique per step)."""
        counts = Counter(t for texts in self.user_texts.values() for t in texts)
        return sum(c - 1 for c in counts.values())

    def orphans(self, records: list[dict]) -> int:
        """Model runs on the engine that no result record points at."""
        known = {
            run
            for r in records
            for s in r.get("steps") or []
            for run in [s.get("run_id"), *s.get("runs", [])]
        }
        return sum(1 for runs in self.runs.values() for run in runs if run not in known)

    def empty_threads(self) -> int:
        """Threads that never got a run (left by a lost thread create)."""
        return sum(1 for t in self.threads if not self.runs.get(t))
