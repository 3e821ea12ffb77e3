"""Uploaded and generated files: their ``file`` objects and contents."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from orch.engine.store import Store, new_id


def file_object(size: int, filename: str, purpose: str) -> dict[str, Any]:
    """A new File object as OpenAI returns it (ids start ``file-``)."""
    return {
        "id": new_id("file", separator="-"),
        "object": "file",
        "bytes": size,
        "created_at": int(time.time()),
        "filename": filename,
        "purpose": purpose,
        "status": "processed",
        "status_details": None,
        "expires_at": None,
    }


class Files:
    """Creates File objects with their content."""

    def __init__(self, store: Store):
        self.store = store

    def create(self, content: bytes, filename: str, purpose: str) -> dict[str, Any]:
        """Store a generated (or small) file held in memory and return its File object."""
        file = file_object(len(content), filename, purpose)
        self.store.put_blob(file["id"], content)
        return self.store.insert("file", file)

    def adopt(self, path: Path, size: int, filename: str, purpose: str) -> dict[str, Any]:
        """Make an uploaded, fsynced file (see ``Store.blob_temp_path``) a File object.

        The content stays on disk (``Store.adopt_blob_file``): an upload is never read into
        memory.
        """
        file = file_object(size, filename, purpose)
        self.store.adopt_blob_file(file["id"], path)
        return self.store.insert("file", file)

    def delete(self, file_id: str) -> None:
        """Forget a file and its content."""
        self.store.delete(file_id)
        self.store.delete_blob(file_id)
