"""How a kernel process is confined: bubblewrap where it works, else rlimits (and namespaces).

:func:`detect` probes once per mode and returns an :class:`Isolation`, which builds the
command line of a kernel process and says in one line what is confined.

- ``bubblewrap``: the process sees a root of its own: the system's ``/usr`` and the Python
  runtime read-only, the session's ``data/`` at ``/mnt/data`` (its working directory),
  ``home/`` at ``/home/sandbox``, ``run/`` at ``/run/orch``, a private ``/tmp``, no network
  (a network namespace with only its own loopback), its own PID, IPC and UTS namespaces.
  When the engine runs as root, bubblewrap starts as root and the boot script drops to a user
  id of the kernel's own (so the process limit counts that kernel only).
- ``rlimits``: the kernel is a plain child process working in the real ``data/`` directory
  with the same rlimits; it leaves the network through a namespace when the system allows,
  and can read whatever the engine's user can.
"""

from __future__ import annotations

import functools
import importlib.util
import itertools
import json
import os
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from orch.engine.sandbox.limits import Limits
from orch.engine.sandbox.workspace import Workspace

MODES = ("auto", "bubblewrap", "rlimits")
MOUNT_DATA = "/mnt/data"
MOUNT_HOME = "/home/sandbox"
MOUNT_RUN = "/run/orch"
BOOT = (Path(__file__).with_name("boot.py")).read_text(encoding="utf-8")
# Kernels started by a root engine under bubblewrap get user ids from here on: ids no real
# account uses, one per kernel, so RLIMIT_NPROC limits each kernel on its own.
_UID_BASE = 1_900_000_000
_uids = itertools.count(1)
_SYSTEM_ETC = ("/etc/fonts", "/etc/ld.so.cache", "/etc/localtime")


def _runtime_dirs() -> list[str]:
    """Directories holding the interpreter and the packages a kernel imports (outside /usr)."""
    found = {sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    found.add(os.path.dirname(os.path.realpath(sys.executable)))
    for module in ("ipykernel", "IPython", "jupyter_client", "zmq", "matplotlib", "numpy"):
        spec = importlib.util.find_spec(module)
        if spec is not None and spec.origin:
            found.add(os.path.dirname(os.path.dirname(os.path.realpath(spec.origin))))
    dirs = sorted(os.path.realpath(d) for d in found if d and os.path.isdir(d))
    kept: list[str] = []
    for d in dirs:  # sorted: a parent comes before what it contains
        if d.startswith("/usr/") or any(d == k or d.startswith(k + "/") for k in kept):
            continue
        kept.append(d)
    return kept


def _dirs_leading_to(path: str, made: set[str]) -> list[str]:
    """The bubblewrap arguments creating ``path``'s missing ancestors world-traversable."""
    args: list[str] = []
    parts = Path(path).parts[1:-1]
    for i in range(len(parts)):
        parent = "/" + "/".join(parts[: i + 1])
        if parent not in made:
            made.add(parent)
            args += ["--perms", "0755", "--dir", parent]
    return args


def _user_tasks(uid: int) -> int:
    """Processes and threads the user has now (RLIMIT_NPROC counts them all)."""
    count = 0
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                if entry.stat().st_uid == uid:
                    count += len(os.listdir(f"/proc/{entry.name}/task"))
            except OSError:
                continue
    return count


@dataclass(frozen=True)
class Isolation:
    """One way of confining kernels (see the module docstring).

    ``kind`` is ``"bubblewrap"`` or ``"rlimits"``; ``note`` says why bubblewrap is not used;
    ``leave_network`` whether a rlimits kernel moves into a network namespace.
    """

    kind: str
    note: str = ""
    leave_network: bool = False
    bwrap: str | None = None

    @property
    def confined(self) -> bool:
        """Whether the filesystem and network are confined (bubblewrap)."""
        return self.kind == "bubblewrap"

    def describe(self, limits: Limits) -> str:
        """One line saying what is confined, for ``orch serve`` and the logs."""
        if self.confined:
            return (
                f"bubblewrap (no network; files: {MOUNT_DATA} only, runtime read-only; "
                f"{limits.describe()})"
            )
        network = "no network (namespace)" if self.leave_network else "NETWORK NOT CONFINED"
        return (
            f"rlimits only ({self.note}; {network}; FILESYSTEM NOT CONFINED; {limits.describe()})"
        )

    def owner(self) -> tuple[int, int] | None:
        """The ``(uid, gid)`` of a new kernel when it is not the engine's own user."""
        if self.confined and os.geteuid() == 0:
            uid = _UID_BASE + next(_uids) % 1_000_000
            return uid, uid
        return None

    def visible(self, data: Path) -> str:
        """The data directory ``data`` (a workspace's) as the code sees it."""
        return MOUNT_DATA if self.confined else str(data)

    def spec(
        self, workspace: Workspace, limits: Limits, *, probe: bool = False, args: list[str] = ()
    ) -> str:
        """The boot script's JSON argument for a kernel (or a probe) in ``workspace``."""
        uid, gid = workspace.owner or (os.getuid(), os.getgid())
        run = MOUNT_RUN if self.confined else str(workspace.run)
        processes = limits.processes
        if workspace.owner is None:  # the engine's user: its own tasks count too
            processes += _user_tasks(uid)
        return json.dumps(
            {
                "rlimits": limits.rlimits(processes),
                "uid": uid,
                "gid": gid,
                "leave_network": self.leave_network and not self.confined,
                "probe": probe,
                "connection": f"{run}/kernel.json",
                "kernel_args": list(args),
            }
        )

    def command(self, workspace: Workspace, spec: str, limits: Limits) -> list[str]:
        """The argv of a kernel process (the boot script with ``spec``)."""
        python = [sys.executable, "-I", "-B", "-c", BOOT, spec]
        if not self.confined:
            return python
        return [*self._bwrap_args(workspace, limits), *python]

    def environment(self, workspace: Workspace) -> dict[str, str]:
        """The kernel's whole environment (nothing of the engine's leaks in)."""
        home = MOUNT_HOME if self.confined else str(workspace.home)
        return {
            "HOME": home,
            "PATH": f"{os.path.dirname(sys.executable)}:/usr/local/bin:/usr/bin:/bin",
            "LANG": "C.UTF-8",
            "USER": "sandbox",
            "MPLBACKEND": "module://matplotlib_inline.backend_inline",
            "MPLCONFIGDIR": f"{home}/.matplotlib",
            "IPYTHONDIR": f"{home}/.ipython",
            "XDG_CACHE_HOME": f"{home}/.cache",
            # Fewer threads and malloc arenas: memory the limit would otherwise count.
            "MALLOC_ARENA_MAX": "2",
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        }

    def _bwrap_args(self, workspace: Workspace, limits: Limits) -> list[str]:
        args = [self.bwrap or "bwrap", "--die-with-parent", "--new-session"]
        args += ["--unshare-pid", "--unshare-net", "--unshare-ipc", "--unshare-uts"]
        args += ["--unshare-cgroup-try", "--hostname", "sandbox"]
        if os.geteuid() != 0:
            args.append("--unshare-user")
        args += ["--ro-bind", "/usr", "/usr"]
        for top in ("/bin", "/sbin", "/lib", "/lib32", "/lib64"):
            if os.path.islink(top):
                args += ["--symlink", os.readlink(top), top]
            elif os.path.isdir(top):
                args += ["--ro-bind", top, top]
        # /tmp first: a runtime that lives under /tmp (a checkout there, its venv) is bound
        # on top of the fresh tmpfs instead of being hidden by it
        args += ["--perms", "1777", "--size", str(limits.tmp_size), "--tmpfs", "/tmp"]
        made: set[str] = {"/tmp"}
        for path in (*_SYSTEM_ETC, *_runtime_dirs()):
            if os.path.exists(path):
                args += [*_dirs_leading_to(path, made), "--ro-bind", path, path]
        args += ["--proc", "/proc", "--dev", "/dev"]
        for source, target in (
            (workspace.data, MOUNT_DATA),
            (workspace.home, MOUNT_HOME),
            (workspace.run, MOUNT_RUN),
        ):
            args += [*_dirs_leading_to(target, made), "--bind", str(source), target]
        args += ["--chdir", MOUNT_DATA, "--clearenv"]
        for name, value in self.environment(workspace).items():
            args += ["--setenv", name, value]
        return args


def _probe(isolation: Isolation, limits: Limits) -> str | None:
    """None when a process starts under ``isolation``; else why it does not."""
    with tempfile.TemporaryDirectory(prefix="orch-sandbox-probe-") as root:
        workspace = Workspace(Path(root) / "probe", isolation.owner())
        spec = isolation.spec(workspace, limits, probe=True)
        command = isolation.command(workspace, spec, limits)
        try:
            done = subprocess.run(
                command,
                cwd=workspace.data,
                env=isolation.environment(workspace),
                capture_output=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return str(exc)
        if done.returncode != 0:
            lines = done.stderr.decode(errors="replace").strip().splitlines()
            return lines[-1] if lines else f"exit status {done.returncode}"
    return None


@functools.cache
def detect(mode: str = "auto") -> Isolation:
    """The isolation to use: ``"auto"`` (bubblewrap if it works, else rlimits), or one forced.

    Raises :class:`RuntimeError` when ``"bubblewrap"`` is forced and does not work.
    """
    if mode not in MODES:
        raise ValueError(f"unknown sandbox isolation {mode!r} (expected one of {MODES})")
    limits = Limits()
    note = "bubblewrap not wanted"
    if mode != "rlimits":
        bwrap = shutil.which("bwrap")
        problem = "bubblewrap (bwrap) is not installed" if bwrap is None else None
        if bwrap is not None:
            problem = _probe(Isolation("bubblewrap", bwrap=bwrap), limits)
            if problem is None:
                return Isolation("bubblewrap", bwrap=bwrap)
            problem = f"bubblewrap does not work here: {problem}"
        if mode == "bubblewrap":
            raise RuntimeError(problem)
        note = problem or note
    unconfined = Isolation("rlimits", note=note, leave_network=True)
    if _probe(unconfined, limits) is None:
        return unconfined
    return Isolation("rlimits", note=note)


def summary(mode: str, limits: Limits | None = None) -> str:
    """What ``orch serve`` prints about the code interpreter for the sandbox ``mode``.

    ``"off"`` says that no code runs; a forced mode that does not work raises RuntimeError.
    """
    if mode == "off":
        return "off (no code runs; models are not offered the code interpreter)"
    return detect(mode).describe(limits or Limits())
