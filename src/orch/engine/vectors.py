"""Vector stores, their files and file batches: indexing in the background, searching."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from orch.engine.models.base import SearchHit
from orch.engine.retrieval import (
    Ranking,
    SearchIndex,
    UnsupportedFile,
    chunk_sizes,
    cosine,
    extract_text,
    split_chunks,
)
from orch.engine.store import Store, child_key, new_object

log = logging.getLogger("orch.engine")

#: Turns texts into embedding vectors, one per text (an embeddings upstream).
Embedder = Callable[[list[str]], Awaitable[list[list[float]]]]
#: Texts sent to the embedder in one request, at most.
EMBED_BATCH = 64


class VectorStores:
    """Creates and indexes vector stores; answers searches over them."""

    def __init__(self, store: Store):
        self.store = store
        self.pending: dict[str, set[asyncio.Task[None]]] = {}
        self._indexes: dict[tuple[str, ...], tuple[int, SearchIndex]] = {}
        self._version = 0
        # Chunk embeddings by the sha256 of their text: a chunk is embedded once.
        self._vectors: dict[str, list[float]] = {}

    # -- objects ---------------------------------------------------------------------------------
    def create(
        self,
        name: str | None,
        metadata: dict[str, str] | None,
        expires_after: dict[str, Any] | None,
    ) -> dict[str, Any]:
        """Store a new, empty vector store."""
        now = int(time.time())
        vs = new_object(
            "vector_store",
            created_at=now,
            name=name or "",
            usage_bytes=0,
            file_counts={
                "in_progress": 0,
                "completed": 0,
                "failed": 0,
                "cancelled": 0,
                "total": 0,
            },
            status="completed",
            expires_after=expires_after,
            expires_at=now + expires_after["days"] * 86400 if expires_after else None,
            last_active_at=now,
            metadata=metadata or {},
        )
        return self.store.insert("vector_store", vs)

    def _files(self, vector_store_id: str) -> list[dict[str, Any]]:
        return self.store.all("vector_store_file", vector_store_id)

    @staticmethod
    def _counts(files: list[dict[str, Any]]) -> dict[str, int]:
        counts = {
            "in_progress": 0,
            "completed": 0,
            "failed": 0,
            "cancelled": 0,
            "total": len(files),
        }
        for f in files:
            counts[f["status"]] += 1
        return counts

    def view(self, vs: dict[str, Any]) -> dict[str, Any]:
        """The vector store with live ``file_counts``, ``status`` and ``usage_bytes``."""
        files = self._files(vs["id"])
        counts = self._counts(files)
        out = dict(vs)
        out["file_counts"] = counts
        out["usage_bytes"] = sum(f["usage_bytes"] for f in files)
        if out.get("expires_at") and out["expires_at"] < time.time():
            out["status"] = "expired"
        else:
            out["status"] = "in_progress" if counts["in_progress"] else "completed"
        return out

    def view_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        """The file batch with live ``file_counts`` and ``status``."""
        files = [
            self.store.get("vector_store_file", child_key(batch["vector_store_id"], fid))
            for fid in batch["_file_ids"]
        ]
        counts = self._counts([f for f in files if f is not None])
        out = dict(batch)
        out["file_counts"] = counts
        if batch["status"] == "cancelled":
            out["status"] = "cancelled"
        elif counts["in_progress"]:
            out["status"] = "in_progress"
        else:
            out["status"] = "completed"
        return out

    def add_file(
        self,
        vector_store_id: str,
        file_id: str,
        *,
        batch_id: str | None = None,
        attributes: dict[str, Any] | None = None,
        chunking_strategy: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Attach an uploaded file to a vector store and start indexing it."""
        key = child_key(vector_store_id, file_id)
        existing = self.store.get("vector_store_file", key)
        vsf = {
            "id": file_id,
            "object": "vector_store.file",
            "created_at": int(time.time()),
            "vector_store_id": vector_store_id,
            "status": "in_progress",
            "usage_bytes": 0,
            "last_error": None,
            "attributes": attributes or {},
            "chunking_strategy": chunking_strategy
            or {
                "type": "static",
                "static": {"max_chunk_size_tokens": 800, "chunk_overlap_tokens": 400},
            },
        }
        if batch_id is not None:
            vsf["_batch_id"] = batch_id
        if existing is not None:
            self.store.put(vsf, key=key)
        else:
            self.store.insert("vector_store_file", vsf, parent=vector_store_id, key=key)
        task = asyncio.get_running_loop().create_task(self._index(vector_store_id, file_id))
        tasks = self.pending.setdefault(vector_store_id, set())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return vsf

    async def _index(self, vector_store_id: str, file_id: str) -> None:
        key = child_key(vector_store_id, file_id)
        file = self.store.get("file", file_id)
        content = self.store.get_blob(file_id)
        error = None
        chunks: list[str] = []
        if file is None or content is None:
            error = {"code": "invalid_file", "message": f"File {file_id} not found."}
        else:
            try:
                if content[:5] == b"%PDF-":
                    text = await asyncio.to_thread(extract_text, file["filename"], content)
                else:
                    text = extract_text(file["filename"], content)
                vsf = self.store.get("vector_store_file", key) or {}
                chunks = split_chunks(text, *chunk_sizes(vsf.get("chunking_strategy")))
            except UnsupportedFile as exc:
                error = {"code": "unsupported_file", "message": str(exc)}
        vsf = self.store.get("vector_store_file", key)
        if vsf is None or vsf["status"] != "in_progress":
            return  # removed or cancelled meanwhile
        if error is None:
            self.store.put_chunks(vector_store_id, file_id, chunks)
            vsf["status"] = "completed"
            vsf["usage_bytes"] = sum(len(c.encode()) for c in chunks)
        else:
            vsf["status"] = "failed"
            vsf["last_error"] = error
        self.store.put(vsf, key=key)
        self._version += 1

    def remove_file(self, vector_store_id: str, file_id: str) -> None:
        """Detach a file from a vector store (the file itself stays)."""
        self.store.delete(child_key(vector_store_id, file_id))
        self.store.delete_chunks(vector_store_id, file_id)
        self._version += 1

    def delete(self, vector_store_id: str) -> None:
        """Delete a vector store and its file attachments."""
        self.store.delete_children("vector_store_file", vector_store_id)
        self.store.delete_children("vector_store_file_batch", vector_store_id)
        self.store.delete_chunks(vector_store_id)
        self.store.delete(vector_store_id)
        self._version += 1

    def cancel_batch(self, batch: dict[str, Any]) -> None:
        """Cancel a batch: its files still in progress become cancelled."""
        for fid in batch["_file_ids"]:
            key = child_key(batch["vector_store_id"], fid)
            vsf = self.store.get("vector_store_file", key)
            if vsf is not None and vsf["status"] == "in_progress":
                vsf["status"] = "cancelled"
                self.store.put(vsf, key=key)
        batch["status"] = "cancelled"
        self.store.put(batch)

    # -- search ----------------------------------------------------------------------------------
    async def wait(self, vector_store_ids: list[str]) -> None:
        """Wait until the files being indexed in these stores are done."""
        tasks = [t for vs in vector_store_ids for t in self.pending.get(vs, ())]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def search(
        self,
        vector_store_ids: list[str],
        query: str,
        limit: int,
        ranking: Ranking | None = None,
        embed: Embedder | None = None,
    ) -> list[SearchHit]:
        """The best chunks for ``query`` across these vector stores.

        With ``embed``, the ranking is hybrid (keyword and embedding similarity, see
        :class:`~orch.engine.retrieval.Ranking`); whatever ``embed`` raises propagates.
        """
        if not vector_store_ids:
            return []
        await self.wait(vector_store_ids)
        key = tuple(sorted(vector_store_ids))
        cached = self._indexes.get(key)
        if cached is None or cached[0] != self._version:
            cached = (self._version, SearchIndex(self.store.chunks(list(key))))
            self._indexes[key] = cached
        index = cached[1]
        names = {}
        for doc in index.docs:
            if doc.file_id not in names:
                f = self.store.get("file", doc.file_id)
                names[doc.file_id] = f["filename"] if f else doc.file_id
        similarities = None
        if embed is not None and index.docs:
            vectors = await self._embeddings([d.text for d in index.docs], embed)
            [wanted] = await embed([query])
            similarities = [cosine(wanted, v) for v in vectors]
        return index.search(query, limit, names, ranking, similarities)

    async def _embeddings(self, texts: list[str], embed: Embedder) -> list[list[float]]:
        """The texts' embeddings, asking ``embed`` only for those not seen before."""
        keys = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
        missing = list(dict.fromkeys(k for k in keys if k not in self._vectors))
        by_key = dict(zip(keys, texts, strict=True))
        for start in range(0, len(missing), EMBED_BATCH):
            batch = missing[start : start + EMBED_BATCH]
            vectors = await embed([by_key[k] for k in batch])
            self._vectors.update(zip(batch, vectors, strict=True))
        return [self._vectors[k] for k in keys]
