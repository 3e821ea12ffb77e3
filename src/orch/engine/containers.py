"""Code-interpreter containers and their files (what ``/v1/containers`` serves).

The engine runs no code: a container is a named place for the files the scripted code
interpreter "produces" (its chart images) and the files a client puts there, so they can be
listed and downloaded exactly as from OpenAI's containers.
"""

from __future__ import annotations

import time
from typing import Any

from orch.engine.store import Store, child_key, new_id, new_object


class Containers:
    """Creates containers and container files."""

    def __init__(self, store: Store):
        self.store = store

    def create(
        self,
        name: str,
        file_ids: list[str] | None = None,
        expires_after: dict[str, Any] | None = None,
        memory_limit: str | None = None,
    ) -> dict[str, Any]:
        """Store a running container, copying the given uploaded files into it."""
        now = int(time.time())
        container = new_object(
            "container",
            created_at=now,
            name=name,
            status="running",
            expires_after=expires_after or {"anchor": "last_active_at", "minutes": 20},
            last_active_at=now,
            memory_limit=memory_limit or "1g",
        )
        self.store.insert("container", container)
        for fid in file_ids or []:
            file = self.store.get("file", fid)
            content = self.store.get_blob(fid)
            if file is not None and content is not None:
                self.add_file(container["id"], content, f"/mnt/data/{file['filename']}", "user")
        return container

    def add_file(self, container_id: str, content: bytes, path: str, source: str) -> dict[str, Any]:
        """Store a file in a container and return its ``container.file`` object."""
        cfile = {
            "id": new_id("cfile"),
            "object": "container.file",
            "bytes": len(content),
            "container_id": container_id,
            "created_at": int(time.time()),
            "path": path,
            "source": source,
        }
        self.store.put_blob(child_key(container_id, cfile["id"]), content)
        return self.store.insert(
            "container_file", cfile, parent=container_id, key=child_key(container_id, cfile["id"])
        )

    def delete_file(self, cfile: dict[str, Any]) -> None:
        """Forget one container file and its content."""
        key = child_key(cfile["container_id"], cfile["id"])
        self.store.delete(key)
        self.store.delete_blob(key)

    def delete(self, container_id: str) -> None:
        """Forget a container and its files."""
        for cfile in self.store.all("container_file", container_id):
            self.store.delete_blob(child_key(container_id, cfile["id"]))
        self.store.delete_children("container_file", container_id)
        self.store.delete(container_id)

    def for_response(self, response: dict[str, Any]) -> str:
        """The container a response's code runs in: the tool's, or a new one ("auto")."""
        if response.get("_container"):
            return response["_container"]
        tool = next((t for t in response["tools"] if t["type"] == "code_interpreter"), None)
        container = (tool or {}).get("container") or {"type": "auto"}
        if isinstance(container, str):
            cid = container
        else:
            cid = self.create("orch-auto", container.get("file_ids"))["id"]
        response["_container"] = cid
        return cid
