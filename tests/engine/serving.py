"""``orch serve`` in a subprocess, for tests that kill it or starve its disk."""

from __future__ import annotations

import contextlib
import os
import re
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

_LISTENING = re.compile(r"listening on (http://\S+/v1)")


class ServedEngine:
    """A running ``orch serve`` process: its ``base_url``, ``kill()`` (SIGKILL) and log."""

    def __init__(self, process: subprocess.Popen, base_url: str, log: Path):
        self.process = process
        self.base_url = base_url
        self.log = log

    def kill(self) -> None:
        """kill -9: no shutdown, no final commit."""
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)


def _limit_file_size(limit: int):
    def apply() -> None:
        # Writes past the limit fail with EFBIG (SIGXFSZ would kill the process instead).
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply


@contextlib.contextmanager
def served(
    db: Path,
    *,
    script: Path | None = None,
    file_size_limit: int | None = None,
    env: dict[str, str] | None = None,
) -> Iterator[ServedEngine]:
    """``python -m orch serve --port 0 --db DB`` until the block ends (then SIGKILL if alive).

    ``file_size_limit`` caps the size of every file the server writes (RLIMIT_FSIZE): the
    disk is "full" for the database once its files reach it.
    """
    log = db.with_name(db.name + f".{time.monotonic_ns()}.log")
    command = [sys.executable, "-m", "orch", "serve", "--port", "0", "--db", str(db)]
    if script is not None:
        command += ["--script", str(script)]
    with open(log, "w") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_limit_file_size(file_size_limit) if file_size_limit else None,
            env={**_without_key(os.environ), **(env or {})},
        )
    try:
        yield ServedEngine(process, _wait_for_url(process, log), log)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)


def _without_key(environ: os._Environ[str]) -> dict[str, str]:
    return {k: v for k, v in environ.items() if k != "ORCH_ENGINE_API_KEY"}


def _wait_for_url(process: subprocess.Popen, log: Path, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = _LISTENING.search(log.read_text())
        if found:
            return found.group(1)
        if process.poll() is not None:
            raise RuntimeError(f"orch serve exited: {log.read_text()}")
        time.sleep(0.05)
    raise RuntimeError(f"orch serve did not start: {log.read_text()}")
