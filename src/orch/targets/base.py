"""The Backend protocol: what sync needs from a server, whatever API it speaks.

A backend turns a few coarse operations into wire calls. It never decides *what* to do — that is
:func:`orch.sync.plan`'s job — and it does its own retrying of transient failures (429, 5xx,
dropped connections), honouring ``retry-after``/``retry-after-ms``. Reads and idempotent writes
(update, delete) are retried; creates are not blindly repeated: a create that may have happened
is looked up before it is tried again.

Every failure reaches the caller as an :class:`orch.errors.BackendError` subclass with one clear
line of text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

#: metadata keys orch writes on every object it manages
META_PROJECT = "orch_project"
META_NAME = "orch_name"
META_HASH = "orch_hash"


@dataclass(frozen=True)
class RemoteAssistant:
    """An assistant as the server reports it (wire form, normalised to plain data)."""

    id: str
    name: str | None
    model: str
    instructions: str | None
    description: str | None
    temperature: float | None
    top_p: float | None
    response_format: Any
    tools: list[dict]
    tool_resources: dict
    metadata: dict[str, str]
    created_at: int = 0

    def managed_by(self, project: str) -> bool:
        """Whether orch manages this object for ``project`` (by its metadata tags)."""
        return self.metadata.get(META_PROJECT) == project and bool(self.metadata.get(META_NAME))


@dataclass(frozen=True)
class RemoteFile:
    """An uploaded file."""

    id: str
    filename: str
    bytes: int
    purpose: str
    created_at: int = 0


@dataclass(frozen=True)
class RemoteVectorStore:
    """A vector store with its file counts (file ids are listed only when needed)."""

    id: str
    name: str | None
    metadata: dict[str, str]
    files_total: int = 0
    files_failed: int = 0
    created_at: int = 0


@dataclass
class RemoteState:
    """Everything sync needs to know about a target, fetched in a handful of list calls."""

    assistants: list[RemoteAssistant] = field(default_factory=list)
    files: list[RemoteFile] = field(default_factory=list)
    vector_stores: list[RemoteVectorStore] = field(default_factory=list)


class Backend(Protocol):
    """A server orch can sync assistants to: ``AssistantsBackend``, ``ResponsesBackend``."""

    #: a short label for messages, e.g. ``assistants @ http://127.0.0.1:8000/v1``
    label: str
    #: True when assistants exist only in the YAML and are sent with each request (Responses)
    local_assistants: bool

    def fetch_state(self, project: str) -> RemoteState:
        """Return all assistants, the project's managed files and vector stores.

        Must page through every list (O(pages) requests). Files are limited to purpose
        ``assistants``; vector stores to those tagged ``orch_project == project``.
        """
        ...

    def vector_store_file_ids(self, store_id: str) -> list[str]:
        """Ids of the files in a vector store (all pages)."""
        ...

    def create_assistant(self, spec: dict[str, Any]) -> RemoteAssistant:
        """Create an assistant from wire fields (name, model, instructions, tools, ...).

        Not retried blindly: on an ambiguous failure the implementation looks for an
        assistant with the same ``orch_name``/``orch_hash`` first.
        """
        ...

    def update_assistant(self, assistant_id: str, spec: dict[str, Any]) -> RemoteAssistant:
        """Replace the given fields of an assistant; idempotent, so retried."""
        ...

    def delete_assistant(self, assistant_id: str) -> None:
        """Delete an assistant; a 404 counts as done."""
        ...

    def upload_file(self, path: Path, filename: str) -> RemoteFile:
        """Upload ``path`` as ``filename`` with purpose ``assistants``."""
        ...

    def delete_file(self, file_id: str) -> None:
        """Delete a file; a 404 counts as done."""
        ...

    def create_vector_store(
        self, name: str, metadata: dict[str, str], file_ids: list[str]
    ) -> RemoteVectorStore:
        """Create a vector store holding ``file_ids`` and wait until they are indexed.

        Raises BackendError naming the files whose indexing failed.
        """
        ...

    def update_vector_store(
        self,
        store: RemoteVectorStore,
        metadata: dict[str, str],
        add: list[str],
        remove: list[str],
    ) -> RemoteVectorStore:
        """Add and remove files (waiting for indexing) and replace the metadata."""
        ...

    def delete_vector_store(self, store_id: str) -> None:
        """Delete a vector store; a 404 counts as done."""
        ...

    def download_file(self, file_id: str) -> bytes:
        """Return a file's content (used by ``orch import``)."""
        ...
