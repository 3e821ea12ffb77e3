"""The engine's state: its configuration, its parts put together, and request counters."""

from __future__ import annotations

import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orch.engine.agents import AgentSessions
from orch.engine.containers import Containers
from orch.engine.conversations import Conversations
from orch.engine.files import Files
from orch.engine.messages import Messages
from orch.engine.models import create_model
from orch.engine.models.base import Model
from orch.engine.responding import ResponseExecutor
from orch.engine.runs import RunExecutor
from orch.engine.sandbox import Sandbox
from orch.engine.store import Store
from orch.engine.turns import TurnServices
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
    # The code interpreter's sandbox: "auto" (bubblewrap if it works, else rlimits),
    # "bubblewrap", "rlimits", or "off" (no code runs: the code_interpreter tool is not offered
    # to models); a call's timeout; where the sessions' directories live (a temporary
    # directory when None); how long an idle session lives.
    sandbox: str = "auto"
    code_timeout: float = 60.0
    sandbox_dir: str | Path | None = None
    sandbox_idle_seconds: float = 20 * 60.0


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
    """Everything the routes share; built on the server's event loop at startup.

    This is where the engine's parts are put together: each gets, through its constructor,
    exactly the parts it uses, and none of them knows this class.
    """

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
        self.sandbox = (
            None
            if config.sandbox == "off"
            else Sandbox(
                config.sandbox_dir,
                isolation=config.sandbox,
                idle_seconds=config.sandbox_idle_seconds,
            )
        )
        self.files = Files(self.store)
        self.vectors = VectorStores(self.store)
        self.containers = Containers(self.store, self.sandbox)
        self.conversations = Conversations(self.store)
        self.messages = Messages(self.store, self.vectors)
        services = TurnServices(
            self.store, self.model, self.vectors, self.sandbox, config.code_timeout
        )
        self.runs = RunExecutor(services, self.files, config.run_expiry_seconds)
        self.responses = ResponseExecutor(services, self.containers, self.conversations)
        self.agents = AgentSessions(services)

    def start(self) -> None:
        """Pick up runs and responses a previous process left behind (call on the event loop)."""
        self.runs.recover()
        self.responses.recover()
        self.agents.recover()

    async def close(self) -> None:
        """Stop runs, responses and kernels, release the model, commit, close the database."""
        await self.runs.close()
        await self.responses.close()
        await self.agents.close()
        if self.sandbox is not None:
            await self.sandbox.close()
        await self.model.aclose()
        self.store.close()
