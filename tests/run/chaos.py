"""Helpers for the resilience tests: a response-losing proxy, a project builder, thread audits.

The engine's own fault injection (``fault_rate``) fails requests *before* they are processed, so
retrying them is always safe. :class:`ChaosProxy` covers the dangerous case: the request was
processed (a run was created) but the client never heard back.
"""

from __future__ import annotations

import http.client
import random
import re
import socket
import threading
import warnings
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from openai import OpenAI

#: POSTs that create runs: ``/v1/threads/runs`` and ``/v1/threads/{id}/runs``.
RUN_CREATE = re.compile(r"^/v1/threads(/[^/]+)?/runs$")
_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "server", "date"}


class ChaosProxy:
    """An HTTP proxy on 127.0.0.1 in front of ``upstream`` that loses some run-create responses.

    For a ``rate`` fraction of POSTs matching :data:`RUN_CREATE` (seeded, so runs repeat), the
    request is forwarded and processed upstream, then the client connection is closed:

    * ``mode="lost"``: before any byte of the response (for a stream, once the engine has sent
      ``thread.run.created``, so the run certainly exists);
    * ``mode="cut"``: streams are cut right after ``thread.run.created``; other responses lost.

    Everything else streams through unchanged (SSE included). ``dropped`` lists what was cut,
    keyed like the engine's request stats.
    """

    def __init__(self, upstream: str, rate: float, seed: int = 0, mode: str = "lost"):
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or "127.0.0.1"
        self.upstream_port = parts.port or 80
        self.rate = rate
        self.mode = mode
        self.dropped: list[str] = []
        self.forwarded: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
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

    def should_drop(self, method: str, path: str) -> bool:
        """Roll the dice for one request (only run creates are ever dropped)."""
        if method != "POST" or not RUN_CREATE.match(path):
            return False
        with self._lock:
            return self._rng.random() < self.rate


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
            with proxy._lock:
                proxy.forwarded[key] += 1
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP}
            upstream = http.client.HTTPConnection(
                proxy.upstream_host, proxy.upstream_port, timeout=120
            )
            try:
                upstream.request(self.command, self.path, body=body, headers=headers)
                response = upstream.getresponse()
                streaming = response.getheader("content-length") is None
                if proxy.should_drop(self.command, path):
                    with proxy._lock:
                        proxy.dropped.append(_template(key))
                    self._drop(response, streaming)
                    return
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
            finally:
                upstream.close()

        def _drop(self, response: http.client.HTTPResponse, streaming: bool) -> None:
            self.close_connection = True
            if not streaming:
                response.read()  # the upstream has answered: the create happened
                self._hang_up()
                return
            seen = b""
            while b"thread.run.created" not in seen:
                chunk = response.read1(65536)
                if not chunk:
                    break
                seen += chunk
            if proxy.mode == "cut":
                # the client learns about the run, then the stream breaks
                upto = seen.index(b"thread.run.created")
                end = seen.find(b"\n\n", upto)
                self.send_response(response.status, response.reason)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Connection", "close")
                self.end_headers()
                self.wfile.write(seen[: end + 2] if end >= 0 else seen)
                self.wfile.flush()
            self._hang_up()

        def _hang_up(self) -> None:
            try:
                self.connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

        do_GET = do_POST = do_DELETE = _relay

    return Handler


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
