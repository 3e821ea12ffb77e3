"""Saved agents as sync's assistant store, and the backend of kind ``agents``.

:class:`Agents` implements :class:`orch.targets.base.AssistantStore` over
``client.beta.agents`` (create, list, update, delete), translating with
:mod:`orch.targets.agents.wire`; files and vector stores are the ordinary Files API
(:class:`orch.targets.files.Files`), which holds the code_interpreter files sessions place in
their environment. The state :class:`AgentsBackend` fetches compares assistants as agents
store them (:meth:`AgentState.comparable`), so plan, sync, prune and import work unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import openai

from orch.targets import retry
from orch.targets.agents.wire import agent_params, comparable, remote_agent
from orch.targets.base import (
    META_HASH,
    META_NAME,
    META_PROJECT,
    Backend,
    RemoteAssistant,
    RemoteState,
)
from orch.targets.files import PAGE, after_cursor, ignore_missing, pages


class Agents:
    """Saved agents. See :class:`orch.targets.base.AssistantStore`."""

    def __init__(self, client: openai.OpenAI, label: str):
        self.agents = client.beta.agents
        self.label = label

    def list_assistants(self) -> list[RemoteAssistant]:
        """Every saved agent; a 404 means the server has no Agents API: say so."""
        found = pages(
            "list agents",
            lambda after: self.agents.list(limit=PAGE, order="asc", **after_cursor(after)),
            missing=f"{self.label} answered 404 for /agents: it does not serve the Agents API "
            "(OpenAI's saved agents, beta). Use a target of kind: responses or "
            "assistants for it.",
        )
        return [remote_agent(a) for a in found]

    def create_assistant(self, spec: dict[str, Any]) -> RemoteAssistant:
        """Create; after an ambiguous failure, adopt the agent if it did get created."""
        params = agent_params(spec)
        meta = params["metadata"]

        def find() -> RemoteAssistant | None:
            for existing in self.list_assistants():
                tags = existing.metadata
                if all(tags.get(k) == meta.get(k) for k in (META_PROJECT, META_NAME, META_HASH)):
                    return existing
            return None

        return retry.create_once(
            f"create agent {meta.get(META_NAME)}",
            lambda: remote_agent(self.agents.create(**params)),
            find,
        )

    def update_assistant(self, assistant_id: str, spec: dict[str, Any]) -> RemoteAssistant:
        """Replace every setting; idempotent, so retried."""
        params = agent_params(spec)
        agent = retry.call(
            f"update agent {assistant_id}", lambda: self.agents.update(assistant_id, **params)
        )
        return remote_agent(agent)

    def delete_assistant(self, assistant_id: str) -> None:
        """Delete; already gone is fine."""
        ignore_missing(
            lambda: retry.call(
                f"delete agent {assistant_id}", lambda: self.agents.delete(assistant_id)
            )
        )


@dataclass
class AgentState(RemoteState):
    """A target's state whose assistants are saved agents."""

    def comparable(self, source: Any, fields: dict[str, Any]) -> dict[str, Any]:
        """Only what a saved agent stores (:func:`orch.targets.agents.wire.comparable`)."""
        return comparable(source, fields)


class AgentsBackend(Backend):
    """Files through the Files API, assistants as saved agents."""

    def fetch_state(self, project: str, need_files: bool = True) -> RemoteState:
        """The agents, files and vector stores, compared as saved agents store them."""
        state = super().fetch_state(project, need_files)
        return AgentState(state.assistants, state.files, state.vector_stores)
