"""The sandbox: one stateful kernel and one directory per key, started on first use.

A key is whatever shares state: a thread id (Assistants runs) or a container id (Responses).
A session keeps its workspace as long as it lives; its kernel starts when code first runs (a
kernel takes about a second to start, so nothing starts before it is needed) and the whole
session expires after :attr:`Sandbox.idle_seconds` without a call (OpenAI's containers: 20
minutes), kernel killed and directory deleted; a later call starts over with the input files
placed again. Calls on one key run one at a time.
"""

from __future__ import annotations

import asyncio
import hashlib
import shutil
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from orch.engine.sandbox.isolation import Isolation, detect
from orch.engine.sandbox.kernel import Kernel, SandboxError
from orch.engine.sandbox.limits import Limits
from orch.engine.sandbox.results import CodeResult, InputFile
from orch.engine.sandbox.workspace import Workspace, safe_name

IDLE_SECONDS = 20 * 60.0


@dataclass
class Session:
    """One key's workspace, kernel (once started) and lock."""

    workspace: Workspace
    kernel: Kernel | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    last_used: float = field(default_factory=time.monotonic)
    timer: asyncio.TimerHandle | None = None


class Sandbox:
    """Runs code for the engine (see the module docstring).

    ``root`` holds the workspaces (a temporary directory, deleted on :meth:`close`, when not
    given); ``isolation`` is ``"auto"``, ``"bubblewrap"`` or ``"rlimits"`` (see
    :mod:`orch.engine.sandbox.isolation`; probed on first use); at most ``max_kernels``
    kernels run at once (the least recently used idle one is stopped to make room, its files
    kept).
    """

    def __init__(
        self,
        root: str | Path | None = None,
        *,
        isolation: str = "auto",
        limits: Limits | None = None,
        idle_seconds: float = IDLE_SECONDS,
        max_kernels: int = 16,
        start_timeout: float = 60.0,
    ):
        self._root = Path(root) if root is not None else None
        self._owns_root = root is None
        self.mode = isolation
        self.limits = limits or Limits()
        self.idle_seconds = idle_seconds
        self.max_kernels = max_kernels
        self.start_timeout = start_timeout
        self.sessions: dict[str, Session] = {}

    @property
    def isolation(self) -> Isolation:
        """The isolation in use (probed once; raises RuntimeError if a forced one fails)."""
        return detect(self.mode)

    def describe(self) -> str:
        """One line saying which isolation is active and the limits."""
        return self.isolation.describe(self.limits)

    @property
    def root(self) -> Path:
        """The directory holding the workspaces (created on first use)."""
        if self._root is None:
            self._root = Path(tempfile.mkdtemp(prefix="orch-sandbox-"))
        self._root.mkdir(parents=True, exist_ok=True)
        return self._root

    # -- paths ---------------------------------------------------------------------------------
    def _base(self, key: str) -> Path:
        # Short directory names: ipc socket paths must stay under ~100 characters.
        return self.root / f"s{hashlib.sha256(key.encode()).hexdigest()[:12]}"

    def _session(self, key: str) -> Session:
        session = self.sessions.get(key)
        if session is None:
            session = Session(Workspace(self._base(key), self.isolation.owner()))
            self.sessions[key] = session
        return session

    def data_path(self, key: str) -> str:
        """The key's directory as the code sees it (``/mnt/data`` under bubblewrap).

        Nothing is created: the session starts with its first :meth:`run`.
        """
        return self.isolation.visible(self._base(key) / "data")

    @staticmethod
    def names(files: Sequence[InputFile]) -> list[str]:
        """The names ``files`` get in a session's directory."""
        return [safe_name(f.name, f.ident) for f in files]

    # -- running -------------------------------------------------------------------------------
    async def run(
        self, key: str, code: str, files: Sequence[InputFile] = (), timeout: float = 60.0
    ) -> CodeResult:
        """Run ``code`` in the key's kernel, ``files`` placed in its directory first.

        The result carries the logs, images, error flag and the files the code created or
        changed. Raises :class:`SandboxError` when no kernel can be started.
        """
        session = self._session(key)
        async with session.lock:
            self._disarm(session)
            try:
                return await self._run_locked(session, code, files, timeout)
            finally:
                session.last_used = time.monotonic()
                self._arm(key, session)

    async def _run_locked(
        self, session: Session, code: str, files: Sequence[InputFile], timeout: float
    ) -> CodeResult:
        workspace = session.workspace
        await asyncio.to_thread(workspace.place, files)
        before = await asyncio.to_thread(workspace.snapshot)
        kernel = await self._kernel(session)
        result = await kernel.execute(code, timeout)
        visible = self.isolation.visible(workspace.data)
        result.files, skipped = await asyncio.to_thread(
            workspace.changes, before, lambda name: f"{visible}/{name}"
        )
        if skipped:
            result.logs += f"\n(files not returned, too many or too large: {', '.join(skipped)})"
        return result

    async def _kernel(self, session: Session) -> Kernel:
        if session.kernel is not None:
            if session.kernel.alive:
                return session.kernel
            session.kernel.kill()  # died since: close its client
        self._make_room()
        kernel = Kernel(session.workspace, self.isolation, self.limits)
        await kernel.start(self.start_timeout)
        session.kernel = kernel
        return kernel

    def _make_room(self) -> None:
        """Stop the least recently used idle kernels while too many run."""
        running = [s for s in self.sessions.values() if s.kernel is not None and s.kernel.alive]
        idle = sorted((s for s in running if not s.lock.locked()), key=lambda s: s.last_used)
        for session in idle[: max(0, len(running) - self.max_kernels + 1)]:
            session.kernel.kill()
            session.kernel = None

    # -- expiry --------------------------------------------------------------------------------
    def _arm(self, key: str, session: Session) -> None:
        loop = asyncio.get_running_loop()
        session.timer = loop.call_later(self.idle_seconds, self._expire, key, session)

    @staticmethod
    def _disarm(session: Session) -> None:
        if session.timer is not None:
            session.timer.cancel()
            session.timer = None

    def _expire(self, key: str, session: Session) -> None:
        if self.sessions.get(key) is session and not session.lock.locked():
            self.discard(key)

    def discard(self, key: str) -> None:
        """End the key's session now: kernel killed, directory deleted (a no-op if none)."""
        session = self.sessions.pop(key, None)
        if session is None:
            return
        self._disarm(session)
        if session.kernel is not None:
            session.kernel.kill()
        session.workspace.remove()

    async def close(self) -> None:
        """Kill every kernel and delete the workspaces (the root too, when it was ours)."""
        for key in list(self.sessions):
            self.discard(key)
        if self._owns_root and self._root is not None:
            shutil.rmtree(self._root, ignore_errors=True)
            self._root = None


__all__ = ["Sandbox", "SandboxError", "Session"]
