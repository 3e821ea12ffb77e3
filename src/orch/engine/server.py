"""Running the engine: in the foreground (``orch serve``) or in a background thread.

``start_engine`` is what ``orch sync``/``orch run`` and the tests use: uvicorn on its own event
loop in a daemon thread, bound to an ephemeral loopback port by default::

    with start_engine(tmp_path / "engine.db") as engine:
        client = OpenAI(base_url=engine.base_url, api_key="x")
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn

from orch.engine.app import FaultDropped, create_app
from orch.engine.core import EngineConfig, RequestStats
from orch.engine.errors import EngineSetupError
from orch.engine.sandbox import summary as sandbox_summary

log = logging.getLogger("orch.engine")


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, api_key: str | None) -> None:
    """Refuse to expose the engine beyond loopback without an API key."""
    if not is_loopback(host) and not api_key:
        raise EngineSetupError(
            f"refusing to listen on {host}: the engine only binds non-loopback addresses when "
            "an API key is required (--api-key or ORCH_ENGINE_API_KEY)"
        )


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say they are TCP;
    # without it Nagle + delayed ACKs cost ~40 ms per request on a kept-alive connection
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise EngineSetupError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _url(host: str, port: int) -> str:
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}/v1"


class _DropFilter(logging.Filter):
    """Keep injected connection drops out of the error log."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        return not isinstance(exc, FaultDropped)


def _prepare(config: EngineConfig) -> None:
    """Fail fast, before binding, on a bad script or a missing upstream."""
    if config.model == "scripted":
        if config.script is not None and not isinstance(config.script, dict):
            from orch.engine.models.scripted import ScriptedModel

            config.script = ScriptedModel.from_source(config.script).script
    elif config.model == "openai-chat":
        if not config.upstream_base_url:
            raise EngineSetupError(
                "--model openai-chat needs --upstream-base-url (or ORCH_UPSTREAM_BASE_URL)"
            )
    else:
        raise EngineSetupError(
            f"unknown engine model {config.model!r} (expected 'scripted' or 'openai-chat')"
        )


class EngineHandle:
    """A running in-process engine: its ``base_url``, request counts, and ``stop()``."""

    def __init__(
        self,
        server: uvicorn.Server,
        thread: threading.Thread,
        host: str,
        port: int,
        stats: RequestStats,
        config: EngineConfig,
    ):
        self._server = server
        self._thread = thread
        self.host = host
        self.port = port
        self.base_url = _url(host, port)
        self.config = config
        self._stats = stats

    @property
    def db_path(self) -> Path:
        """The SQLite file holding the engine's state."""
        return Path(self.config.db_path)

    def stats(self) -> dict[str, int]:
        """Requests served so far, by ``"METHOD /v1/path/{template}"``."""
        return self._stats.snapshot()

    def reset_stats(self) -> None:
        """Start counting requests from zero."""
        self._stats.reset()

    def write_count(self) -> int:
        """How many POST/DELETE requests were served (``orch sync`` no-op checks)."""
        return sum(
            n for key, n in self.stats().items() if key.split(" ", 1)[0] in ("POST", "DELETE")
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Shut the server down (runs stop, state is committed) and wait for it."""
        self._server.should_exit = True
        self._thread.join(timeout)

    def __enter__(self) -> EngineHandle:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _prepared(host: str, port: int, **fields: Any) -> tuple[EngineConfig, socket.socket]:
    """Check the bind address, build and prepare the config, bind the socket."""
    check_bind(host, fields.get("api_key"))
    config = EngineConfig(**fields)
    _prepare(config)
    return config, _bind(host, port)


def _server(
    config: EngineConfig, stats: RequestStats | None = None, **options: Any
) -> uvicorn.Server:
    """A quiet uvicorn server (warnings only, no access log) for the engine's app."""
    app = create_app(config, stats=stats)
    uv_config = uvicorn.Config(
        app,
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=2,
        **options,
    )
    logging.getLogger("uvicorn.error").addFilter(_DropFilter())
    return uvicorn.Server(uv_config)


def _run_in_thread(
    server: uvicorn.Server, sock: socket.socket, timeout: float
) -> threading.Thread | None:
    """Serve on a daemon thread, once it accepts connections; None if it did not start in time."""
    thread = threading.Thread(
        target=server.run,
        kwargs={"sockets": [sock]},
        name=f"orch-engine:{sock.getsockname()[1]}",
        daemon=True,
    )
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            sock.close()
            return None
        time.sleep(0.005)
    return thread


def start_engine(
    db_path: str | Path,
    model: str = "scripted",
    script: str | Path | dict[str, Any] | None = None,
    *,
    upstream_base_url: str | None = None,
    upstream_api_key_env: str = "OPENAI_API_KEY",
    api_key: str | None = None,
    fault_rate: float = 0.0,
    fault_seed: int = 0,
    run_expiry_seconds: float = 600.0,
    poll_after_ms: int = 100,
    host: str = "127.0.0.1",
    port: int = 0,
    startup_timeout: float = 20.0,
) -> EngineHandle:
    """Start the engine in a background thread and return once it accepts connections.

    ``script`` is a script dict (callers validate it against the schema) or a script file,
    read with :func:`orch.engine.models.scripted.load_script`. Raises
    :class:`~orch.engine.errors.EngineSetupError` for a non-loopback ``host`` without
    ``api_key``, an unusable port, an unreadable script, a bad model choice, or a startup
    failure.
    """
    config, sock = _prepared(
        host,
        port,
        db_path=db_path,
        model=model,
        script=script,
        upstream_base_url=upstream_base_url,
        upstream_api_key_env=upstream_api_key_env,
        api_key=api_key,
        fault_rate=fault_rate,
        fault_seed=fault_seed,
        run_expiry_seconds=run_expiry_seconds,
        poll_after_ms=poll_after_ms,
    )
    stats = RequestStats()
    actual_port = sock.getsockname()[1]
    server = _server(config, stats, log_config=None)
    thread = _run_in_thread(server, sock, startup_timeout)
    if thread is None:
        raise EngineSetupError(
            f"the embedded engine did not start (database {db_path}); see the log above"
        )
    return EngineHandle(server, thread, host, actual_port, stats, config)


def serve_forever(
    host: str = "127.0.0.1",
    port: int = 8000,
    db: str | Path = ".orch/engine.db",
    model: str = "scripted",
    script: str | Path | dict[str, Any] | None = None,
    upstream_base_url: str | None = None,
    upstream_api_key_env: str = "OPENAI_API_KEY",
    api_key: str | None = None,
    fault_rate: float = 0.0,
) -> None:
    """Run the engine in the foreground until interrupted (``orch serve``).

    Options and errors are those of :func:`start_engine` (``db`` is its ``db_path``).
    """
    # The same options as start_engine passes on: two entry points, each with its signature.
    config, sock = _prepared(
        host,
        port,
        db_path=db,
        model=model,
        script=script,
        upstream_base_url=upstream_base_url,
        upstream_api_key_env=upstream_api_key_env,
        api_key=api_key,
        fault_rate=fault_rate,
    )
    server = _server(config)
    extras = []
    if api_key:
        extras.append("API key required")
    if fault_rate:
        extras.append(f"fault rate {fault_rate:g}")
    suffix = "".join(f", {e}" for e in extras)
    url = _url(host, sock.getsockname()[1])
    print(f"orch engine listening on {url} (model: {model}{suffix}; db: {db})", flush=True)
    print(f"code interpreter sandbox: {sandbox_summary(config.sandbox)}", flush=True)
    server.run(sockets=[sock])
