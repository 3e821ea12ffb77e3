"""Thread messages: the ``thread.message`` object, and adding a client's message to a thread."""

from __future__ import annotations

from typing import Any

from orch.engine.store import Store, new_object
from orch.engine.vectors import VectorStores


def new_message(
    thread_id: str,
    role: str,
    content: list[dict[str, Any]],
    *,
    assistant_id: str | None = None,
    run_id: str | None = None,
    attachments: list[dict[str, Any]] | None = None,
    metadata: dict[str, Any] | None = None,
    done: bool = True,
) -> dict[str, Any]:
    """A ``thread.message``: ``completed`` now, or (``done=False``) ``in_progress``."""
    message = new_object(
        "thread.message",
        assistant_id=assistant_id,
        thread_id=thread_id,
        run_id=run_id,
        role=role,
        content=content,
        attachments=attachments or [],
        metadata=metadata or {},
        status="completed" if done else "in_progress",
        completed_at=None,
        incomplete_at=None,
        incomplete_details=None,
    )
    if done:
        message["completed_at"] = message["created_at"]
    return message


class Messages:
    """Adds the client's messages to threads."""

    def __init__(self, store: Store, vectors: VectorStores):
        self.store = store
        self.vectors = vectors

    def add(self, thread: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
        """Store a validated message on a thread; attachments join the thread's tool resources.

        ``spec`` is ``{role, content, attachments, metadata}`` as the routes validate it.
        """
        msg = new_message(
            thread["id"],
            spec["role"],
            spec["content"],
            attachments=spec["attachments"],
            metadata=spec["metadata"],
        )
        if spec["attachments"]:
            self._attach(thread, spec["attachments"])
        return self.store.insert("message", msg, parent=thread["id"])

    def _attach(self, thread: dict[str, Any], attachments: list[dict[str, Any]]) -> None:
        """Attachments for file_search go to the thread's vector store (created on first use)."""
        resources = thread.setdefault("tool_resources", {}) or {}
        thread["tool_resources"] = resources
        changed = False
        for att in attachments:
            kinds = {t["type"] for t in att["tools"]}
            if "file_search" in kinds:
                fs = resources.setdefault("file_search", {"vector_store_ids": []})
                if not fs.get("vector_store_ids"):
                    vs = self.vectors.create(f"thread {thread['id']} attachments", None, None)
                    fs["vector_store_ids"] = [vs["id"]]
                    changed = True
                self.vectors.add_file(fs["vector_store_ids"][0], att["file_id"])
            if "code_interpreter" in kinds:
                ci = resources.setdefault("code_interpreter", {"file_ids": []})
                if att["file_id"] not in ci.setdefault("file_ids", []):
                    ci["file_ids"].append(att["file_id"])
                    changed = True
        if changed:
            self.store.put(thread)
