"""One session's directories on the host, and the files going in and out of them.

A workspace is ``<sandbox root>/<name>/`` with ``data/`` (what the code sees as its working
directory: ``/mnt/data`` under bubblewrap), ``home/`` (its ``$HOME``: matplotlib's and
IPython's caches) and ``run/`` (the kernel's connection file and sockets, and its log).

The engine may run as root while the code in ``data/`` is hostile, so every file operation
here refuses to follow symbolic links: input files are written to a fresh temporary name and
renamed over the target (a planted link is replaced, never written through), and output files
are opened with ``O_NOFOLLOW`` and read only when they are regular files.
"""

from __future__ import annotations

import os
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path

from orch.engine.sandbox.results import InputFile, OutputFile

# Output files read back per call, at most: the rest are reported as skipped.
MAX_OUTPUT_FILES = 64
MAX_OUTPUT_BYTES = 64 << 20
_MAX_SCANNED = 10_000


def safe_name(name: str, ident: str) -> str:
    """A plain file name for an input file (its base name; ``ident`` when that is unusable)."""
    base = name.replace("\\", "/").rsplit("/", 1)[-1].replace("\x00", "").strip()
    if not base or base.startswith("."):
        return ident
    return base


def _read_regular(path: Path, limit: int) -> bytes | None:
    """The bytes of ``path`` if it is a regular file (links not followed) of at most ``limit``."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as fh:
        info = os.fstat(fh.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > limit:
            return None
        return fh.read(limit + 1)[:limit]


class Workspace:
    """The directories of one session (see the module docstring).

    ``owner`` is the ``(uid, gid)`` the kernel runs as when it differs from the engine's: the
    directories and the files placed in them are given to it.
    """

    def __init__(self, base: Path, owner: tuple[int, int] | None = None):
        self.base = base
        self.data = base / "data"
        self.home = base / "home"
        self.run = base / "run"
        self.owner = owner
        self.placed: dict[str, str] = {}
        for path in (base, self.data, self.home, self.run):
            path.mkdir(mode=0o700, parents=True, exist_ok=True)
            if owner is not None and path is not base:
                os.chown(path, *owner)

    # -- in ------------------------------------------------------------------------------------
    def place(self, files: Iterable[InputFile]) -> list[str]:
        """Put the files in ``data/``; returns the names they have there.

        A name already holding the same identity is left alone (the code may have changed
        it); a file already there with the same bytes is adopted without a write.
        """
        names = []
        for file in files:
            name = safe_name(file.name, file.ident)
            names.append(name)
            if self.placed.get(name) == file.ident:
                continue
            content = file.read()
            if content is None:
                continue
            target = self.data / name
            if _read_regular(target, len(content)) != content:
                self._write(target, content)
            self.placed[name] = file.ident
        return names

    def _write(self, target: Path, content: bytes) -> None:
        fd, temp = tempfile.mkstemp(dir=self.data, prefix=".orch-")
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(content)
                if self.owner is not None:
                    os.fchown(fh.fileno(), *self.owner)
            os.replace(temp, target)
        except OSError:
            Path(temp).unlink(missing_ok=True)
            raise

    # -- out -----------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, tuple[int, int]]:
        """``{relative name: (size, mtime_ns)}`` of the regular files under ``data/``.

        Hidden names and ``__pycache__`` are left out; links are not followed.
        """
        found: dict[str, tuple[int, int]] = {}
        pending = [(self.data, "")]
        while pending and len(found) < _MAX_SCANNED:
            folder, prefix = pending.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                if entry.name.startswith(".") or entry.name == "__pycache__":
                    continue
                name = prefix + entry.name
                if entry.is_dir(follow_symlinks=False):
                    pending.append((Path(entry.path), name + "/"))
                elif entry.is_file(follow_symlinks=False):
                    info = entry.stat(follow_symlinks=False)
                    found[name] = (info.st_size, info.st_mtime_ns)
        return found

    def changes(
        self, before: dict[str, tuple[int, int]], visible: Callable[[str], str]
    ) -> tuple[list[OutputFile], list[str]]:
        """Files created or changed since ``before``, and the names of those too many or big.

        ``visible`` maps a relative name to the path the model is told.
        """
        files: list[OutputFile] = []
        skipped: list[str] = []
        budget = MAX_OUTPUT_BYTES
        for name, signature in sorted(self.snapshot().items()):
            if before.get(name) == signature:
                continue
            content = None
            if len(files) < MAX_OUTPUT_FILES and signature[0] <= budget:
                content = _read_regular(self.data / name, budget)
            if content is None:
                skipped.append(name)
                continue
            budget -= len(content)
            files.append(OutputFile(name, visible(name), content))
        return files, skipped

    def remove(self) -> None:
        """Delete the workspace (``shutil.rmtree`` does not follow links)."""
        shutil.rmtree(self.base, ignore_errors=True)
