"""Files and vector stores over the SDK: the :class:`~orch.targets.base.FileStore` of every kind.

The endpoints are the same on Assistants-v2 servers and on Responses servers (OpenAI, the
embedded engine). Uses the official ``openai`` SDK with ``max_retries=0``; retrying is
:mod:`orch.targets.retry`'s job.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import openai

from orch.errors import BackendError, NotFoundError
from orch.targets import retry
from orch.targets.base import META_PROJECT, RemoteFile, RemoteVectorStore

PAGE = 100


def pages(what: str, fetch: Callable[[str | None], Any], missing: str | None = None) -> list[Any]:
    """Every item of a cursor-paginated list; ``fetch(after)`` returns one page.

    With ``missing``, a 404 (the server has no such list) is raised again as a
    :class:`NotFoundError` with that message instead of the server's.
    """
    items: list[Any] = []
    after = None
    while True:
        try:
            page = retry.call(what, lambda after=after: fetch(after))
        except NotFoundError as exc:
            if missing is None:
                raise
            raise NotFoundError(missing) from exc
        items.extend(page.data)
        if not page.has_more or not page.data:
            return items
        after = page.data[-1].id


def after_cursor(after: str | None) -> dict[str, str]:
    """The ``after`` keyword for a list call, absent on the first page."""
    return {"after": after} if after else {}


def ignore_missing(func: Callable[[], Any]) -> None:
    """Run a delete; an object that is already gone counts as deleted."""
    try:
        func()
    except NotFoundError:
        pass


def remote_file(f: Any) -> RemoteFile:
    """Normalise an SDK ``FileObject``."""
    return RemoteFile(f.id, f.filename, f.bytes, f.purpose, f.created_at)


def remote_store(s: Any) -> RemoteVectorStore:
    """Normalise an SDK ``VectorStore``."""
    return RemoteVectorStore(
        id=s.id,
        name=s.name,
        metadata=dict(s.metadata or {}),
        files_total=s.file_counts.total,
        files_failed=s.file_counts.failed,
        created_at=s.created_at,
    )


class Files:
    """Files and vector stores of one target. See :class:`orch.targets.base.FileStore`."""

    def __init__(self, client: openai.OpenAI, poll_interval: float = 0.2):
        self.client = client
        self.poll_interval = poll_interval

    # -- reads ---------------------------------------------------------------------------------

    def list_files(self, purpose: str | None = "assistants") -> list[RemoteFile]:
        """Every file of ``purpose`` (all purposes with None)."""
        scope = {"purpose": purpose} if purpose else {}
        found = pages(
            "list files",
            lambda after: self.client.files.list(
                limit=10000, order="asc", **scope, **after_cursor(after)
            ),
        )
        return [remote_file(f) for f in found]

    def list_vector_stores(self, project: str) -> list[RemoteVectorStore]:
        """The project's vector stores (by their ``orch_project`` tag)."""
        return [s for s in self._stores() if s.metadata.get(META_PROJECT) == project]

    def _stores(self) -> list[RemoteVectorStore]:
        found = pages(
            "list vector stores",
            lambda after: self.client.vector_stores.list(
                limit=PAGE, order="asc", **after_cursor(after)
            ),
        )
        return [remote_store(s) for s in found]

    def vector_store_file_ids(self, store_id: str) -> list[str]:
        """Ids of the files in a vector store (all pages)."""
        files = pages(
            "list vector store files",
            lambda after: self.client.vector_stores.files.list(
                store_id, limit=PAGE, **after_cursor(after)
            ),
        )
        return [f.id for f in files]

    def download_file(self, file_id: str) -> bytes:
        """A file's bytes."""
        response = retry.call(f"download {file_id}", lambda: self.client.files.content(file_id))
        return response.read()

    # -- files ---------------------------------------------------------------------------------

    def upload_file(self, path: Path, filename: str, purpose: str = "assistants") -> RemoteFile:
        """Upload; a retried upload is found by its (content-addressed) name first."""

        def create() -> RemoteFile:
            with path.open("rb") as fh:
                return remote_file(self.client.files.create(file=(filename, fh), purpose=purpose))

        def find() -> RemoteFile | None:
            size = path.stat().st_size
            matches = [
                f for f in self.list_files(purpose) if f.filename == filename and f.bytes == size
            ]
            return matches[0] if matches else None

        return retry.create_once(f"upload {path}", create, find)

    def delete_file(self, file_id: str) -> None:
        """Delete; already gone is fine."""
        ignore_missing(
            lambda: retry.call(f"delete file {file_id}", lambda: self.client.files.delete(file_id))
        )

    # -- vector stores -------------------------------------------------------------------------

    def create_vector_store(
        self,
        name: str,
        metadata: dict[str, str],
        file_ids: list[str],
        expires_after: dict | None = None,
    ) -> RemoteVectorStore:
        """Create an empty store, add the files as one batch, wait until indexed.

        A create that failed ambiguously is looked up (same name and tags) before it is tried
        again.
        """
        extra = {"expires_after": expires_after} if expires_after else {}

        def find() -> RemoteVectorStore | None:
            found = [s for s in self._stores() if s.name == name and s.metadata == metadata]
            return found[0] if found else None

        store = retry.create_once(
            f"create vector store {name}",
            lambda: remote_store(
                self.client.vector_stores.create(name=name, metadata=metadata, **extra)
            ),
            find,
        )
        if file_ids:
            self.add_files(store.id, name, file_ids)
            return self._store(store.id)
        return store

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
            again = [i for i in self._failed_files(store.id) if i not in remove and i not in add]
            remove, add = [*remove, *again], [*add, *again]
        for file_id in remove:
            ignore_missing(
                lambda file_id=file_id: retry.call(
                    "remove file from vector store",
                    lambda: self.client.vector_stores.files.delete(
                        file_id, vector_store_id=store.id
                    ),
                )
            )
        if add:
            self.add_files(store.id, store.name or store.id, add)
        retry.call(
            "update vector store",
            lambda: self.client.vector_stores.update(store.id, metadata=metadata),
        )
        return self._store(store.id)

    def delete_vector_store(self, store_id: str) -> None:
        """Delete; already gone is fine."""
        ignore_missing(
            lambda: retry.call(
                f"delete vector store {store_id}",
                lambda: self.client.vector_stores.delete(store_id),
            )
        )

    def _failed_files(self, store_id: str) -> list[str]:
        failed = pages(
            "list failed vector store files",
            lambda after: self.client.vector_stores.files.list(
                store_id, filter="failed", limit=PAGE, **after_cursor(after)
            ),
        )
        return [f.id for f in failed]

    def _store(self, store_id: str) -> RemoteVectorStore:
        found = retry.call(
            "retrieve vector store", lambda: self.client.vector_stores.retrieve(store_id)
        )
        return remote_store(found)

    def add_files(
        self, store_id: str, label: str, file_ids: list[str], timeout: float = 600.0
    ) -> None:
        """Add ``file_ids`` as one batch; wait until indexed; BackendError names failed files."""
        batch = retry.call(
            f"index files into {label}",
            lambda: self.client.vector_stores.file_batches.create(store_id, file_ids=file_ids),
        )
        deadline = time.monotonic() + timeout
        batch_id = batch.id
        polls = 0
        while batch.status == "in_progress":
            if time.monotonic() > deadline:
                raise BackendError(f"indexing files into vector store {label} timed out")
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
            raise self._indexing_error(store_id, batch, label)

    def _indexing_error(self, store_id: str, batch: Any, label: str) -> BackendError:
        failed = pages(
            "list failed files",
            lambda after: self.client.vector_stores.file_batches.list_files(
                batch.id,
                vector_store_id=store_id,
                filter="failed",
                limit=PAGE,
                **after_cursor(after),
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
        return BackendError(
            f"indexing files into vector store {label} {outcome}{': ' + detail if detail else ''}"
        )
