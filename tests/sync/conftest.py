"""Sync fixtures: a real engine on loopback, an SDK client to poke it, and the CLI in-process."""

from __future__ import annotations

import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import uvicorn
from click.testing import CliRunner
from openai import OpenAI

from orch.cli import main
from orch.engine.server import EngineHandle, start_engine


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch):
    """No developer credentials or targets leak in; the SDK's deprecation noise stays out."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ORCH_TARGET", "ORCH_RAISE_ERRORS"):
        monkeypatch.delenv(name, raising=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


@pytest.fixture
def engine(tmp_path: Path) -> Iterator[EngineHandle]:
    """A fresh engine on an ephemeral 127.0.0.1 port, its state in the test's tmp dir."""
    with start_engine(tmp_path / "engine" / "engine.db", poll_after_ms=10) as handle:
        yield handle


@pytest.fixture
def sdk(engine: EngineHandle) -> Iterator[OpenAI]:
    """The official SDK pointed at ``engine``, for changes made behind orch's back."""
    client = OpenAI(base_url=engine.base_url, api_key="test", max_retries=0)
    yield client
    client.close()  # idle keep-alive connections would slow the engine's shutdown


@dataclass
class Ran:
    """The outcome of one CLI invocation."""

    exit_code: int
    stdout: str
    stderr: str
    exception: BaseException | None

    @property
    def lines(self) -> list[str]:
        return self.stdout.splitlines()


Orch = Callable[..., Ran]


@pytest.fixture
def orch() -> Orch:
    """Run ``orch ARGS`` in-process (CliRunner); ``env`` adds environment variables."""

    def run(*args: str, env: dict[str, str] | None = None) -> Ran:
        result = CliRunner().invoke(main, list(args), env=env, catch_exceptions=True)
        exc = result.exception
        if exc is not None and not isinstance(exc, SystemExit):
            raise exc  # a traceback would have reached the user: fail loudly
        return Ran(result.exit_code, result.stdout, result.stderr, exc)

    return run


def writes(stats: dict[str, int]) -> dict[str, int]:
    """The POST/DELETE entries of an engine's request counts."""
    return {k: n for k, n in stats.items() if k.split(" ", 1)[0] in ("POST", "DELETE")}


def free_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def serve_app(app) -> Iterator[str]:
    """Serve an ASGI ``app`` on an ephemeral 127.0.0.1 port; yields its ``/v1`` base URL."""
    # IPPROTO_TCP explicitly: asyncio only sets TCP_NODELAY on sockets that say they are TCP
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    config = uvicorn.Config(
        app,
        log_config=None,
        log_level="warning",
        access_log=False,
        lifespan="off",
        timeout_graceful_shutdown=0,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "stub server did not start"
        time.sleep(0.005)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    finally:
        server.should_exit = True
        thread.join(5)
        sock.close()
