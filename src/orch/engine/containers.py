"""Code-interpreter containers and their files (what ``/v1/containers`` serves).

A container is the Responses API's code-interpreter session: its files are stored here (those
a client puts there, the images the code shows, the files it writes, each at a
``/mnt/data/...`` path) and its code runs in the engine's sandbox under the container's id,
where the stored files are placed before each call (:meth:`Containers.input_files`) and what
the code writes comes back as container files (:meth:`Containers.keep_outputs`). Deleting a
container ends its sandbox session.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from orch.engine.sandbox import CodeResult, InputFile, Sandbox
from orch.engine.store import Store, child_key, new_id, new_object

MOUNT = "/mnt/data"


class Containers:
    """Creates containers and container files."""

    def __init__(self, store: Store, sandbox: Sandbox | None = None):
        self.store = store
        self.sandbox = sandbox

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
        """Forget a container and its files, and end its sandbox session."""
        for cfile in self.store.all("container_file", container_id):
            self.store.delete_blob(child_key(container_id, cfile["id"]))
        self.store.delete_children("container_file", container_id)
        self.store.delete(container_id)
        if self.sandbox is not None:
            self.sandbox.discard(container_id)

    def for_response(self, response: dict[str, Any]) -> str:
        """The container a response's code runs in (its id).

        It is the tool's container, or for ``"auto"`` the one an earlier
        ``code_interpreter_call`` in the response's context used (if it still exists), else a
        new one with the tool's ``file_ids``, as OpenAI does.
        """
        if response.get("_container"):
            return response["_container"]
        tool = next((t for t in response["tools"] if t["type"] == "code_interpreter"), None)
        container = (tool or {}).get("container") or {"type": "auto"}
        if isinstance(container, str):
            cid = container
        else:
            cid = (
                self._earlier(response) or self.create("orch-auto", container.get("file_ids"))["id"]
            )
        response["_container"] = cid
        return cid

    def _earlier(self, response: dict[str, Any]) -> str | None:
        for item in reversed(response.get("_context") or []):
            if item.get("type") == "code_interpreter_call" and item.get("container_id"):
                if self.store.get("container", item["container_id"]) is not None:
                    return item["container_id"]
        return None

    def input_files(self, container_id: str) -> list[InputFile]:
        """The container's files as the sandbox places them (read only when placed)."""
        store = self.store

        def reader(key: str) -> Callable[[], bytes | None]:
            return lambda: store.get_blob(key)

        return [
            InputFile(
                cfile["path"].removeprefix(MOUNT + "/"),
                cfile["id"],
                reader(child_key(container_id, cfile["id"])),
            )
            for cfile in store.all("container_file", container_id)
        ]

    def keep_outputs(self, container_id: str, result: CodeResult) -> None:
        """Store the files the code wrote as the container's (``source: assistant``).

        A file at a path the container already has replaces its content there.
        """
        container = self.store.get("container", container_id)
        if container is None:
            return
        container["last_active_at"] = int(time.time())
        self.store.put(container)
        by_path = {f["path"]: f for f in self.store.all("container_file", container_id)}
        for written in result.files:
            path = f"{MOUNT}/{written.name}"
            cfile = by_path.get(path)
            if cfile is None:
                self.add_file(container_id, written.content, path, "assistant")
                continue
            key = child_key(container_id, cfile["id"])
            self.store.put_blob(key, written.content)
            cfile["bytes"] = len(written.content)
            self.store.put(cfile, key=key)
