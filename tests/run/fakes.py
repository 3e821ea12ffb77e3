"""Test doubles at the target seam: a fake kind whose sessions answer without any HTTP.

``FakeTarget`` holds an in-memory server (files, vector stores, assistants) and records every
call; ``FakeSession`` answers a step by the rules of ``reply(turn_text) -> Reply``. They are as
strict as the real seam: an assistant id the target never created, a second step sent without a
thread, or an attachment whose file was never uploaded fails the test.
"""

from __future__ import annotations

import contextlib
import itertools
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orch.targets import registry
from orch.targets.base import Backend, RemoteAssistant, RemoteFile, RemoteVectorStore
from orch.targets.functions import ToolRequest, call_handlers
from orch.targets.registry import Connection, Opened, TargetKind
from orch.targets.session import Session, SessionSettings, StepOutcome, Turn


@dataclass
class Reply:
    """How the fake model answers one attempt."""

    text: str = ""
    status: str = "completed"
    error_code: str | None = None
    #: function calls asked for before answering: (name, arguments)
    calls: list[tuple[str, dict]] = field(default_factory=list)


_ids = itertools.count(1)


def new_id(prefix: str) -> str:
    return f"{prefix}_{next(_ids)}"


class FakeServer:
    """The in-memory state of the fake target, and a log of what was asked of it."""

    def __init__(self, reply: Callable[[str, int], Reply]):
        self.reply = reply
        self.files: dict[str, RemoteFile] = {}
        self.stores: dict[str, RemoteVectorStore] = {}
        self.store_files: dict[str, list[str]] = {}
        self.assistants: dict[str, RemoteAssistant] = {}
        self.threads: dict[str, list[dict]] = {}
        self.calls: list[str] = []

    # -- FileStore -----------------------------------------------------------------------------

    def list_files(self, purpose: str | None = "assistants") -> list[RemoteFile]:
        self.calls.append("list_files")
        return [f for f in self.files.values() if purpose is None or f.purpose == purpose]

    def list_vector_stores(self, project: str) -> list[RemoteVectorStore]:
        self.calls.append("list_vector_stores")
        return [s for s in self.stores.values() if s.metadata.get("orch_project") == project]

    def vector_store_file_ids(self, store_id: str) -> list[str]:
        return list(self.store_files[store_id])

    def upload_file(self, path: Path, filename: str, purpose: str = "assistants") -> RemoteFile:
        self.calls.append(f"upload {filename}")
        remote = RemoteFile(new_id("file"), filename, path.stat().st_size, purpose)
        self.files[remote.id] = remote
        return remote

    def delete_file(self, file_id: str) -> None:
        self.files.pop(file_id, None)

    def download_file(self, file_id: str) -> bytes:
        raise AssertionError("the runner never downloads through the file store")

    def create_vector_store(self, name, metadata, file_ids, expires_after=None):
        self._require_files(file_ids)
        store = RemoteVectorStore(new_id("vs"), name, dict(metadata), len(file_ids))
        self.stores[store.id] = store
        self.store_files[store.id] = list(file_ids)
        return store

    def add_files(self, store_id: str, label: str, file_ids: list[str]) -> None:
        self._require_files(file_ids)
        self.store_files[store_id] += file_ids

    def update_vector_store(self, store, metadata, add, remove):
        self.add_files(store.id, store.name, add)
        kept = [f for f in self.store_files[store.id] if f not in remove]
        self.store_files[store.id] = kept
        self.stores[store.id] = RemoteVectorStore(store.id, store.name, dict(metadata), len(kept))
        return self.stores[store.id]

    def delete_vector_store(self, store_id: str) -> None:
        self.stores.pop(store_id, None)

    def _require_files(self, file_ids: list[str]) -> None:
        missing = [f for f in file_ids if f not in self.files]
        assert not missing, f"files never uploaded: {missing}"

    # -- AssistantStore ------------------------------------------------------------------------

    def list_assistants(self) -> list[RemoteAssistant]:
        self.calls.append("list_assistants")
        return list(self.assistants.values())

    def create_assistant(self, spec: dict[str, Any]) -> RemoteAssistant:
        self.calls.append(f"create_assistant {spec['name']}")
        remote = _remote_assistant(new_id("asst"), spec)
        self.assistants[remote.id] = remote
        return remote

    def update_assistant(self, assistant_id: str, spec: dict[str, Any]) -> RemoteAssistant:
        assert assistant_id in self.assistants, f"no assistant {assistant_id}"
        self.assistants[assistant_id] = _remote_assistant(assistant_id, spec)
        return self.assistants[assistant_id]

    def delete_assistant(self, assistant_id: str) -> None:
        self.assistants.pop(assistant_id, None)


def _remote_assistant(assistant_id: str, spec: dict[str, Any]) -> RemoteAssistant:
    return RemoteAssistant(
        id=assistant_id,
        name=spec.get("name"),
        model=spec["model"],
        instructions=spec.get("instructions"),
        description=spec.get("description"),
        temperature=spec.get("temperature"),
        top_p=spec.get("top_p"),
        response_format=spec.get("response_format", "auto"),
        tools=list(spec.get("tools", [])),
        tool_resources=dict(spec.get("tool_resources") or {}),
        metadata=dict(spec.get("metadata") or {}),
    )


class FakeSession(Session):
    """An item's thread on the fake target: the server's ``reply`` rule answers each attempt."""

    def __init__(self, server: FakeServer, settings: SessionSettings):
        super().__init__(settings)
        self.server = server
        self.attempts_made = 0

    def attempt(self, turn: Turn, first: bool) -> StepOutcome:
        self.check()
        assert turn.assistant_id in self.server.assistants, "assistant was never synced"
        for attachment in turn.attachments:
            assert attachment["file_id"] in self.server.files, "attachment was never uploaded"
        if self.thread_id is None:
            self.thread_id = new_id("thread")
            self.server.threads[self.thread_id] = []
        text = " ".join(p["text"] for p in turn.content if p["type"] == "text")
        if first:
            self.server.threads[self.thread_id].append({"role": "user", "text": text})
        self.attempts_made += 1
        reply = self.server.reply(text, self.attempts_made)
        outcome = StepOutcome(run_id=new_id("run"), status=reply.status)
        self.run_id = outcome.run_id
        if reply.calls:
            requests = [
                ToolRequest(new_id("call"), name, json.dumps(args)) for name, args in reply.calls
            ]
            settings = self.settings
            outputs = call_handlers(
                requests, turn.assistant, settings.handler_pool, settings.root, outcome.tool_calls
            )
            reply.text = reply.text or " | ".join(out for _, out in outputs)
        if reply.error_code:
            outcome.last_error = {"code": reply.error_code, "message": "fake failure"}
        outcome.output = reply.text
        outcome.add_usage(prompt_tokens=len(text), completion_tokens=len(reply.text))
        outcome.usage["total_tokens"] = sum(outcome.usage.values())
        self.server.threads[self.thread_id].append({"role": "assistant", "text": reply.text})
        return outcome


def install(reply: Callable[[str, int], Reply]) -> tuple[FakeServer, Callable[[], None]]:
    """Register kind ``fake`` served by a new FakeServer; returns it and an uninstaller."""
    server = FakeServer(reply)

    @contextlib.contextmanager
    def open_fake(project, target, environ, quiet, timeout) -> Iterator[Opened]:
        yield Opened(client=None, label="the fake target")

    registry.register(
        TargetKind(
            name="fake",
            open=open_fake,
            backend=lambda conn: Backend(conn.label, server, server),
            session=lambda conn, settings: FakeSession(server, settings),
        )
    )
    return server, lambda: registry.unregister("fake")


__all__ = ["Connection", "FakeServer", "FakeSession", "Reply", "install"]
