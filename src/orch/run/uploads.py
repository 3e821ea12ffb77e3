"""Attachment uploads for runs, deduplicated by content across items, runs and resumes.

Uploads go through the target's :class:`~orch.targets.base.FileStore` and are named
``orchrun-<project>-<sha256[:16]>-<basename>``, so a file already on the server (from an earlier
run or an interrupted one) is found by listing once, not uploaded again.
"""

from __future__ import annotations

import re
import threading
from pathlib import Path

from orch.errors import UsageError
from orch.project.model import sha256_file
from orch.targets.base import FileStore


class Uploads:
    """Upload each attachment once per target; thread-safe (items run concurrently)."""

    def __init__(self, files: FileStore, project: str, root: Path):
        self.files = files
        self.project = project
        self.root = root
        self._ids: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        self._listed = False

    def file_id(self, rel: str, purpose: str = "assistants") -> str:
        """Upload ``rel`` (relative to the project root) once; return its file id."""
        path = (self.root / rel).resolve()
        if not path.is_file():
            raise UsageError(f"attachment not found: {rel}")
        sha = sha256_file(path)
        with self._lock:
            if not self._listed:
                self._learn_existing()
            key = (sha[:16], purpose)
            if key not in self._ids:
                name = f"orchrun-{self.project}-{sha[:16]}-{path.name}"
                self._ids[key] = self.files.upload_file(path, name, purpose).id
            return self._ids[key]

    def _learn_existing(self) -> None:
        pattern = re.compile(rf"orchrun-{re.escape(self.project)}-([0-9a-f]{{16}})-")
        for remote in self.files.list_files(purpose=None):
            match = pattern.match(remote.filename)
            if match:
                self._ids.setdefault((match.group(1), remote.purpose), remote.id)
        self._listed = True
