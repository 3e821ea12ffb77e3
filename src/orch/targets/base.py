"""The seam between orch and a server: what sync and runs need, whatever API the server speaks.

Three contracts, each implemented once per target kind (see :mod:`orch.targets.registry`):

* :class:`FileStore`: uploaded files and vector stores (every kind that has them);
* :class:`AssistantStore`: server-side assistants (Assistants v2 servers; the Responses API
  keeps assistants local, so that kind has none);
* :class:`orch.targets.session.Session`: one pipeline item's conversation.

Implementations never decide *what* to do (that is :func:`orch.sync.plan`'s job) and do their
own retrying of transient failures (429, 5xx, dropped connections), honouring
``retry-after``/``retry-after-ms``. Reads and idempotent writes are retried; creates are not
blindly repeated: a create that may have happened is looked up before it is tried again.
Every failure reaches the caller as an :class:`orch.errors.BackendError` subclass with one
clear line of text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from orch.errors import NotFoundError

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
    #: reasoning settings (``effort``, ``summary``) where the server keeps them (saved agents)
    reasoning: dict[str, str] | None = None

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

    def comparable(self, source: Any, fields: dict[str, Any]) -> dict[str, Any]:
        """An assistant's compared fields narrowed to what this target stores.

        ``source`` is the declared Assistant or a RemoteAssistant, ``fields`` its comparable
        form (:func:`orch.sync.planning.desired_fields` / ``remote_fields``).

        The planner compares both sides through it. Assistants-v2 servers store every field;
        a kind whose objects hold fewer or other ones returns a state that narrows them (saved
        agents: :mod:`orch.targets.agents`), so a field the server never keeps is no diff.
        """
        return fields


class FileStore(Protocol):
    """Files and vector stores on a target."""

    def list_files(self, purpose: str | None = "assistants") -> list[RemoteFile]:
        """Every file (of ``purpose``; all purposes with None), all pages."""
        ...

    def list_vector_stores(self, project: str) -> list[RemoteVectorStore]:
        """The vector stores tagged ``orch_project == project``, all pages."""
        ...

    def vector_store_file_ids(self, store_id: str) -> list[str]:
        """Ids of the files in a vector store (all pages)."""
        ...

    def upload_file(self, path: Path, filename: str, purpose: str = "assistants") -> RemoteFile:
        """Upload ``path`` as ``filename``; a retried upload is first looked up by name."""
        ...

    def delete_file(self, file_id: str) -> None:
        """Delete a file; a 404 counts as done."""
        ...

    def download_file(self, file_id: str) -> bytes:
        """Return a file's content."""
        ...

    def create_vector_store(
        self,
        name: str,
        metadata: dict[str, str],
        file_ids: list[str],
        expires_after: dict | None = None,
    ) -> RemoteVectorStore:
        """Create a vector store holding ``file_ids`` and wait until they are indexed.

        Raises BackendError naming the files whose indexing failed.
        """
        ...

    def add_files(self, store_id: str, label: str, file_ids: list[str]) -> None:
        """Add files to a vector store as one batch and wait until they are indexed."""
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


class AssistantStore(Protocol):
    """Server-side assistants."""

    def list_assistants(self) -> list[RemoteAssistant]:
        """Every assistant on the server, managed or not (all pages)."""
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


@dataclass
class Backend:
    """What sync needs from one target: its files, and its assistants where it keeps them."""

    #: a short label for messages, e.g. ``target 'azure' (https://…/v1)``
    label: str
    files: FileStore
    #: None when assistants exist only in the YAML and are sent with each request (Responses)
    assistants: AssistantStore | None = None

    @property
    def local_assistants(self) -> bool:
        """Whether this target keeps no assistants of its own."""
        return self.assistants is None

    def fetch_state(self, project: str, need_files: bool = True) -> RemoteState:
        """All assistants, the assistants-purpose files and the project's vector stores.

        Costs one list request per page of each kind of object. A server without the Files API
        (many local servers) answers 404: that is fine when nothing declared has files
        (``need_files`` false), and a clear error naming the server otherwise.
        """
        assistants = self.assistants.list_assistants() if self.assistants else []
        try:
            files = self.files.list_files()
            stores = self.files.list_vector_stores(project)
        except NotFoundError as exc:
            if not need_files:
                return RemoteState(assistants=assistants)
            raise NotFoundError(
                f"{self.label} answered 404 for /files: it has no Files API, so it cannot hold "
                "the files your assistants declare (file_search / code_interpreter). Use a "
                "server that has one, or `kind: engine, model: openai-chat` with this server "
                "as its base_url."
            ) from exc
        return RemoteState(assistants=assistants, files=files, vector_stores=stores)
