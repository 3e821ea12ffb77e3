"""Uploaded and generated files: their ``file`` objects and contents."""

from __future__ import annotations

import time
from typing import Any

from orch.engine.store import Store, new_id


class Files:
    """Creates File objects with their content."""

    def __init__(self, store: Store):
        self.store = store

    def create(self, content: bytes, filename: str, purpose: str) -> dict[str, Any]:
        """Store an uploaded (or generated) file and return its File object."""
        file = {
            "id": new_id("file"),
            "object": "file",
            "bytes": len(content),
            "created_at": int(time.time()),
            "filename": filename,
            "purpose": purpose,
            "status": "processed",
            "status_details": None,
            "expires_at": None,
        }
        self.store.put_blob(file["id"], content)
        return self.store.insert("file", file)

    def delete(self, file_id: str) -> None:
        """Forget a file and its content."""
        self.store.delete(file_id)
        self.store.delete_blob(file_id)
