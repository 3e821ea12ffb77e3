"""The engine's state: store, model, run executor, vector stores and request counters."""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orch.engine.containers import Containers
from orch.engine.conversations import Conversations
from orch.engine.models import create_model
from orch.engine.models.base import Model
from orch.engine.responding import ResponseExecutor
from orch.engine.runs import RunExecutor
from orch.engine.store import Store, new_id
from orch.engine.vectors import VectorStores


@dataclass
class EngineConfig:
    """How an engine is set up (``orch serve`` options plus test knobs)."""

    db_path: str | Path = ".orch/engine.db"
    model: str = "scripted"
    script: str | Path | dict[str, Any] | None = None
    upstream_base_url: str | None = None
    upstream_api_key_env: str = "OPENAI_API_KEY"
    api_key: str | None = None
    fault_rate: float = 0.0
    fault_seed: int = 0
    run_expiry_seconds: float = 600.0
    poll_after_ms: int = 100
    commit_delay: float = 0.02


@dataclass
class RequestStats:
    """Thread-safe counts of requests by ``"METHOD /v1/path/{template}"``."""

    counts: Counter = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, key: str) -> None:
        """Count one request."""
        with self._lock:
            self.counts[key] += 1

    def snapshot(self) -> dict[str, int]:
        """A copy of the counts."""
        with self._lock:
            return dict(self.counts)

    def reset(self) -> None:
        """Forget every count."""
        with self._lock:
            self.counts.clear()


class Engine:
    """Everything the routes share; built on the server's event loop at startup."""

    def __init__(
        self, config: EngineConfig, stats: RequestStats | None = None, model: Model | None = None
    ):
        self.config = config
        self.stats = stats or RequestStats()
        self.store = Store(config.db_path, commit_delay=config.commit_delay)
        self.model: Model = model or create_model(
            config.model,
            script=config.script,
            upstream_base_url=config.upstream_base_url,
            upstream_api_key_env=config.upstream_api_key_env,
        )
        self.run_expiry_seconds = config.run_expiry_seconds
        self.runs = RunExecutor(self)
        self.vectors = VectorStores(self)
        self.responses = ResponseExecutor(self)
        self.conversations = Conversations(self)
        self.containers = Containers(self)

    def start(self) -> None:
        """Pick up runs and responses a previous process left behind (call on the event loop)."""
        self.runs.recover()
        self.responses.recover()

    async def close(self) -> None:
        """Stop runs and responses, release the model, commit and close the database."""
        await self.runs.close()
        await self.responses.close()
        await self.model.aclose()
        self.store.close()

    def create_file(self, content: bytes, filename: str, purpose: str) -> dict[str, Any]:
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

    @staticmethod
    def vector_store_ids(assistant: dict[str, Any], thread: dict[str, Any]) -> list[str]:
        """The vector stores a run searches: the assistant's and the thread's."""
        ids: list[str] = []
        for owner in (assistant, thread):
            fs = ((owner or {}).get("tool_resources") or {}).get("file_search") or {}
            for vs in fs.get("vector_store_ids") or []:
                if vs not in ids:
                    ids.append(vs)
        return ids
