"""One IPython kernel process in a workspace, and the Jupyter client that talks to it.

The kernel is ``ipykernel`` started by the boot script under the session's isolation; the
engine reaches it through ``jupyter_client`` over ZeroMQ ``ipc`` sockets (files in the
workspace's ``run/``), which work across the network namespace a confined kernel lives in.
Its stdout and stderr (banners, crashes) go to ``run/kernel.log``.

A call past its timeout is interrupted (``interrupt_request``: a ``KeyboardInterrupt`` in the
code, the kernel and its state survive); if the kernel does not answer within
:data:`INTERRUPT_GRACE` seconds it is killed, and the session's next call starts a new one.
"""

from __future__ import annotations

import asyncio
import json
import os
import secrets
import signal
import subprocess
from typing import Any

from orch.engine.sandbox.isolation import MOUNT_RUN, Isolation
from orch.engine.sandbox.limits import Limits
from orch.engine.sandbox.results import CodeResult, Transcript
from orch.engine.sandbox.workspace import Workspace

INTERRUPT_GRACE = 3.0
_KERNEL_ARGS = ["--HistoryManager.enabled=False", "--InteractiveShell.colors=nocolor"]
_TIMEOUT = object()
_DIED = object()


class SandboxError(RuntimeError):
    """The sandbox could not start a kernel (the message says why)."""


def _connection(run_dir: str, name: str, key: str) -> dict[str, Any]:
    """A Jupyter connection info on ``ipc`` sockets named ``<run_dir>/<name>-<port>``."""
    return {
        "transport": "ipc",
        "ip": f"{run_dir}/{name}",
        "shell_port": 1,
        "iopub_port": 2,
        "stdin_port": 3,
        "control_port": 4,
        "hb_port": 5,
        "key": key,
        "signature_scheme": "hmac-sha256",
        "kernel_name": "orch-sandbox",
    }


class Kernel:
    """A kernel process of one workspace (see the module docstring)."""

    def __init__(self, workspace: Workspace, isolation: Isolation, limits: Limits):
        self.workspace = workspace
        self.isolation = isolation
        self.limits = limits
        self.proc: asyncio.subprocess.Process | None = None
        self.client: Any = None
        self._exit: asyncio.Future[int] | None = None
        self._iopub: asyncio.Future[dict[str, Any]] | None = None
        self._name = ""

    @property
    def alive(self) -> bool:
        """Whether the process is still running."""
        return self.proc is not None and self.proc.returncode is None

    # -- start ---------------------------------------------------------------------------------
    async def start(self, timeout: float = 60.0) -> None:
        """Start the process and wait until the kernel answers; :class:`SandboxError` if not."""
        from jupyter_client.asynchronous import AsyncKernelClient

        key = secrets.token_hex(16)
        # Fresh socket names per kernel: a client of a dead one must not reach its successor.
        self._name = f"k{secrets.token_hex(4)}"
        run = self.workspace.run
        inside = MOUNT_RUN if self.isolation.confined else str(run)
        info = _connection(inside, self._name, key)
        (run / "kernel.json").write_text(json.dumps(info), encoding="utf-8")
        os.chmod(run / "kernel.json", 0o644)
        spec = self.isolation.spec(self.workspace, self.limits, args=_KERNEL_ARGS)
        with open(run / "kernel.log", "ab") as log:
            self.proc = await asyncio.create_subprocess_exec(
                *self.isolation.command(self.workspace, spec, self.limits),
                cwd=self.workspace.data,
                env=self.isolation.environment(self.workspace),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # one process group: kill() reaches all of it
            )
        self._exit = asyncio.ensure_future(self.proc.wait())
        self.client = AsyncKernelClient()
        self.client.load_connection_info(_connection(str(run), self._name, key))
        self.client.start_channels(hb=False)
        try:
            async with asyncio.timeout(timeout):
                await self._handshake()
        except TimeoutError as exc:
            self.kill()
            tail = self._log_tail()
            raise SandboxError(f"the kernel did not start in {timeout:g} s{tail}") from exc
        except SandboxError:
            self.kill()
            raise

    async def _handshake(self) -> None:
        """Until a ``kernel_info`` request is answered on both shell and IOPub.

        IOPub is publish/subscribe: seeing the request's status there proves the subscription
        is live, so no output of the first call is lost.
        """
        while True:
            msg_id = self.client.kernel_info()
            deadline = asyncio.get_running_loop().time() + 1.0
            while True:
                msg = await self._next(deadline)
                if msg is _DIED:
                    raise SandboxError(f"the kernel exited at start{self._log_tail()}")
                if msg is _TIMEOUT:
                    break
                if msg["parent_header"].get("msg_id") == msg_id:
                    await self._drain_shell(msg_id, 1.0)
                    return

    # -- execute -------------------------------------------------------------------------------
    async def execute(self, code: str, timeout: float) -> CodeResult:
        """Run ``code``; its logs, images and error (timeouts and deaths included)."""
        loop = asyncio.get_running_loop()
        transcript = Transcript()
        msg_id = self.client.execute(code, store_history=True, allow_stdin=False)
        deadline = loop.time() + timeout
        interrupted = False
        try:
            while True:
                msg = await self._next(deadline)
                if msg is _DIED:
                    transcript.error = True
                    transcript.note(self._death_note())
                    self.kill()
                    break
                if msg is _TIMEOUT:
                    if interrupted:
                        self.kill()
                        transcript.note("The kernel did not stop; it was killed (state lost).")
                        break
                    interrupted = True
                    self._interrupt()
                    deadline = loop.time() + INTERRUPT_GRACE
                    continue
                if msg["parent_header"].get("msg_id") != msg_id:
                    continue
                if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
                    break
                transcript.add(msg["msg_type"], msg["content"])
        except asyncio.CancelledError:
            self._interrupt()  # the run was cancelled: stop its code too
            raise
        if interrupted:
            transcript.error = True
            transcript.note(f"TimeoutError: the code ran longer than {timeout:g} s; stopped.")
        if self.alive:
            await self._drain_shell(msg_id, 1.0)
        result = transcript.result()
        result.timed_out = interrupted
        return result

    async def _next(self, deadline: float) -> Any:
        """The next IOPub message, or ``_TIMEOUT`` at ``deadline`` (loop time), or ``_DIED``."""
        if self._iopub is None:
            # Kept across calls when it times out: a message is never half-received.
            self._iopub = asyncio.ensure_future(self.client.get_iopub_msg())
        remaining = deadline - asyncio.get_running_loop().time()
        if remaining > 0:
            await asyncio.wait(
                {self._iopub, self._exit}, timeout=remaining, return_when=asyncio.FIRST_COMPLETED
            )
        if self._iopub.done():
            got, self._iopub = self._iopub, None
            return got.result()
        if self._exit is not None and self._exit.done():
            return _DIED
        return _TIMEOUT

    async def _drain_shell(self, msg_id: str, timeout: float) -> None:
        """Read shell replies up to the one answering ``msg_id`` (so none pile up)."""
        try:
            async with asyncio.timeout(timeout):
                while (await self.client.get_shell_msg())["parent_header"].get("msg_id") != msg_id:
                    pass
        except TimeoutError:
            pass

    def _interrupt(self) -> None:
        if self.alive:
            self.client.control_channel.send(self.client.session.msg("interrupt_request", {}))

    # -- the end -------------------------------------------------------------------------------
    def _log_tail(self, lines: int = 15) -> str:
        try:
            text = (self.workspace.run / "kernel.log").read_text(errors="replace")
        except OSError:
            return ""
        tail = "\n".join(text.strip().splitlines()[-lines:])
        return f":\n{tail}" if tail else ""

    def _death_note(self) -> str:
        code = self.proc.returncode if self.proc is not None else None
        why = {
            -signal.SIGKILL: "killed",
            -signal.SIGXCPU: f"out of CPU time ({self.limits.cpu_seconds} s)",
        }.get(code, f"exit status {code}")
        return f"The kernel died ({why}); its state is lost and the next call starts a new one."

    def kill(self) -> None:
        """Kill the process group and close the client (idempotent)."""
        if self.alive:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if self._iopub is not None:
            self._iopub.cancel()
            self._iopub = None
        if self.client is not None:
            self.client.stop_channels()
            self.client = None
        for socket in self.workspace.run.glob(f"{self._name}-*"):
            socket.unlink(missing_ok=True)
