"""Backend for servers speaking the Assistants v2 wire protocol (embedded engine, Azure, ...).

Uses the official ``openai`` SDK with ``max_retries=0``; retrying is
:mod:`orch.targets.retry`'s job.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import openai

from orch.errors import BackendError, NotFoundError
from orch.targets import retry
from orch.targets.base import (
    META_HASH,
    META_NAME,
    META_PROJECT,
    RemoteAssistant,
    RemoteFile,
    RemoteState,
    RemoteVectorStore,
)

PAGE = 100


def _plain(value: Any) -> Any:
    """SDK models → plain JSON data (dropping unset fields)."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", exclude_none=True, by_alias=True)
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def remote_assistant(obj: Any) -> RemoteAssistant:
    """Normalise an SDK ``Assistant`` into a :class:`RemoteAssistant`."""
    return RemoteAssistant(
        id=obj.id,
        name=obj.name,
        model=obj.model,
        instructions=obj.instructions,
        description=obj.description,
        temperature=obj.temperature,
        top_p=obj.top_p,
        response_format=_plain(obj.response_format),
        tools=[_plain(t) for t in obj.tools or []],
        tool_resources=_plain(obj.tool_resources) or {},
        metadata=dict(obj.metadata or {}),
        created_at=obj.created_at or 0,
    )


class AssistantsBackend:
    """Assistants v2 over the official SDK. See :class:`orch.backends.base.Backend`."""

    local_assistants = False

    def __init__(self, client: openai.OpenAI, label: str | None = None, poll_interval: float = 0.2):
        self.client = client
        self.label = label or f"assistants @ {client.base_url}"
        self.poll_interval = poll_interval
        self.beta = client.beta

    # -- reads ---------------------------------------------------------------------------------

    def _pages(self, what: str, fetch) -> list[Any]:
        items: list[Any] = []
        after = None
        while True:
            page = retry.call(what, lambda after=after: fetch(after))
            items.extend(page.data)
            if not page.has_more or not page.data:
                return items
            after = page.data[-1].id

    def fetch_state(self, project: str) -> RemoteState:
        """All assistants, purpose=assistants files, and the project's vector stores."""
        assistants = self._list_assistants()
        files = self._pages(
            "list files",
            lambda after: self.client.files.list(
                purpose="assistants", limit=10000, order="asc", **_after(after)
            ),
        )
        stores = self._pages(
            "list vector stores",
            lambda after: self.client.vector_stores.list(limit=PAGE, order="asc", **_after(after)),
        )
        return RemoteState(
            assistants=assistants,
            files=[RemoteFile(f.id, f.filename, f.bytes, f.purpose, f.created_at) for f in files],
            vector_stores=[
                RemoteVectorStore(
                    id=s.id,
                    name=s.name,
                    metadata=dict(s.metadata or {}),
                    files_total=s.file_counts.total,
                    files_failed=s.file_counts.failed,
                    created_at=s.created_at,
                )
                for s in stores
                if (s.metadata or {}).get(META_PROJECT) == project
            ],
        )

    def _list_assistants(self) -> list[RemoteAssistant]:
        try:
            found = self._pages(
                "list assistants",
                lambda after: self.beta.assistants.list(limit=PAGE, order="asc", **_after(after)),
            )
        except NotFoundError as exc:
            raise NotFoundError(
                f"{self.label} answered 404 for /assistants: it does not serve the Assistants "
                "API (OpenAI closed it on 2026-08-26). Use a target of kind: responses for "
                "OpenAI, or an Assistants-v2 server such as `orch serve`."
            ) from exc
        return [remote_assistant(a) for a in found]

    def vector_store_file_ids(self, store_id: str) -> list[str]:
        """Ids of the files in a vector store (all pages)."""
        files = self._pages(
            "list vector store files",
            lambda after: self.client.vector_stores.files.list(
                store_id, limit=PAGE, **_after(after)
            ),
        )
        return [f.id for f in files]

    def download_file(self, file_id: str) -> bytes:
        """A file's bytes."""
        response = retry.call("download file", lambda: self.client.files.content(file_id))
        return response.read()

    # -- assistants ----------------------------------------------------------------------------

    def create_assistant(self, spec: dict[str, Any]) -> RemoteAssistant:
        """Create; after an ambiguous failure, adopt the assistant if it did get created."""
        name, digest = spec["metadata"].get(META_NAME), spec["metadata"].get(META_HASH)
        project = spec["metadata"].get(META_PROJECT)
        for attempt in range(4):
            try:
                return remote_assistant(self.beta.assistants.create(**spec))
            except openai.OpenAIError as exc:
                if not retry.is_transient(exc) or attempt == 3:
                    raise retry.to_backend_error(f"create assistant {name}", exc) from exc
                time.sleep(retry.retry_delay(exc, attempt))
                for existing in self.fetch_state(project).assistants:
                    meta = existing.metadata
                    if meta.get(META_NAME) == name and meta.get(META_HASH) == digest:
                        return existing
        raise AssertionError("unreachable")  # pragma: no cover

    def update_assistant(self, assistant_id: str, spec: dict[str, Any]) -> RemoteAssistant:
        """Replace fields; idempotent."""
        obj = retry.call(
            f"update assistant {assistant_id}",
            lambda: self.beta.assistants.update(assistant_id, **spec),
        )
        return remote_assistant(obj)

    def delete_assistant(self, assistant_id: str) -> None:
        """Delete; already gone is fine."""
        _ignore_404(
            lambda: retry.call(
                f"delete assistant {assistant_id}",
                lambda: self.beta.assistants.delete(assistant_id),
            )
        )

    # -- files ---------------------------------------------------------------------------------

    def upload_file(self, path: Path, filename: str) -> RemoteFile:
        """Upload; a retried upload is found by its (content-addressed) name first."""
        for attempt in range(4):
            try:
                with path.open("rb") as fh:
                    f = self.client.files.create(file=(filename, fh), purpose="assistants")
                return RemoteFile(f.id, f.filename, f.bytes, f.purpose, f.created_at)
            except openai.OpenAIError as exc:
                if not retry.is_transient(exc) or attempt == 3:
                    raise retry.to_backend_error(f"upload {path}", exc) from exc
                time.sleep(retry.retry_delay(exc, attempt))
                for f in self._pages(
                    "list files",
                    lambda after: self.client.files.list(
                        purpose="assistants", limit=10000, **_after(after)
                    ),
                ):
                    if f.filename == filename and f.bytes == path.stat().st_size:
                        return RemoteFile(f.id, f.filename, f.bytes, f.purpose, f.created_at)
        raise AssertionError("unreachable")  # pragma: no cover

    def delete_file(self, file_id: str) -> None:
        """Delete; already gone is fine."""
        _ignore_404(
            lambda: retry.call(f"delete file {file_id}", lambda: self.client.files.delete(file_id))
        )

    # -- vector stores -------------------------------------------------------------------------

    def create_vector_store(
        self, name: str, metadata: dict[str, str], file_ids: list[str]
    ) -> RemoteVectorStore:
        """Create an empty store, add the files as one batch, wait until indexed.

        Like assistants, a create that failed ambiguously is looked up (same name and tags)
        before it is tried again.
        """
        for attempt in range(4):
            try:
                store = self.client.vector_stores.create(name=name, metadata=metadata)
                break
            except openai.OpenAIError as exc:
                if not retry.is_transient(exc) or attempt == 3:
                    raise retry.to_backend_error(f"create vector store {name}", exc) from exc
                time.sleep(retry.retry_delay(exc, attempt))
                found = [
                    s
                    for s in self._pages(
                        "list vector stores",
                        lambda after: self.client.vector_stores.list(
                            limit=PAGE, order="asc", **_after(after)
                        ),
                    )
                    if s.name == name and dict(s.metadata or {}) == metadata
                ]
                if found:
                    store = found[0]
                    break
        if file_ids:
            self._add_files(store.id, name, file_ids)
        return self._store(store.id)

    def update_vector_store(
        self,
        store: RemoteVectorStore,
        metadata: dict[str, str],
        add: list[str],
        remove: list[str],
    ) -> RemoteVectorStore:
        """Remove and add files (waiting for indexing), then replace metadata.

        Files whose indexing failed are indexed again, so a failure is reported on every sync
        rather than hidden behind an "updated".
        """
        if store.files_failed:
            failed = [
                f.id
                for f in self._pages(
                    "list failed vector store files",
                    lambda after: self.client.vector_stores.files.list(
                        store.id, filter="failed", limit=PAGE, **_after(after)
                    ),
                )
            ]
            again = [i for i in failed if i not in remove and i not in add]
            remove, add = [*remove, *again], [*add, *again]
        for file_id in remove:
            _ignore_404(
                lambda file_id=file_id: retry.call(
                    "remove file from vector store",
                    lambda: self.client.vector_stores.files.delete(
                        file_id, vector_store_id=store.id
                    ),
                )
            )
        if add:
            self._add_files(store.id, store.name or store.id, add)
        retry.call(
            "update vector store",
            lambda: self.client.vector_stores.update(store.id, metadata=metadata),
        )
        return self._store(store.id)

    def delete_vector_store(self, store_id: str) -> None:
        """Delete; already gone is fine."""
        _ignore_404(
            lambda: retry.call(
                f"delete vector store {store_id}",
                lambda: self.client.vector_stores.delete(store_id),
            )
        )

    def _store(self, store_id: str) -> RemoteVectorStore:
        s = retry.call(
            "retrieve vector store", lambda: self.client.vector_stores.retrieve(store_id)
        )
        return RemoteVectorStore(
            id=s.id,
            name=s.name,
            metadata=dict(s.metadata or {}),
            files_total=s.file_counts.total,
            files_failed=s.file_counts.failed,
            created_at=s.created_at,
        )

    def _add_files(
        self, store_id: str, name: str, file_ids: list[str], timeout: float = 600.0
    ) -> None:
        batch = retry.call(
            f"index files into {name}",
            lambda: self.client.vector_stores.file_batches.create(store_id, file_ids=file_ids),
        )
        deadline = time.monotonic() + timeout
        batch_id = batch.id
        polls = 0
        while batch.status == "in_progress":
            if time.monotonic() > deadline:
                raise BackendError(f"indexing files into vector store {name} timed out")
            # small batches finish fast: start polling quickly, back off to poll_interval
            time.sleep(min(self.poll_interval, 0.01 * 2**polls))
            polls += 1
            batch = retry.call(
                "poll file batch",
                lambda: self.client.vector_stores.file_batches.retrieve(
                    batch_id, vector_store_id=store_id
                ),
            )
        if batch.status != "completed" or batch.file_counts.failed:
            failed = self._pages(
                "list failed files",
                lambda after: self.client.vector_stores.file_batches.list_files(
                    batch_id, vector_store_id=store_id, filter="failed", limit=PAGE, **_after(after)
                ),
            )
            detail = "; ".join(
                f"{f.id}: {f.last_error.message if f.last_error else 'failed'}" for f in failed
            )
            outcome = (
                f"failed for {batch.file_counts.failed} file(s)"
                if batch.status == "completed"
                else batch.status
            )
            raise BackendError(
                f"indexing files into vector store {name} {outcome}"
                f"{': ' + detail if detail else ''}"
            )


def _after(after: str | None) -> dict[str, str]:
    return {"after": after} if after else {}


def _ignore_404(func) -> None:
    try:
        func()
    except NotFoundError:
        pass
