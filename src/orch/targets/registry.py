"""Target kinds: the one place that says what a ``kind:`` in orch.yml means.

A kind is a module holding a :data:`KIND` (:class:`TargetKind`): how to open a connection, the
sync backend, the item session for runs, and the assistant fields it has no place for. Sync,
runs and validation ask this registry and never switch on a kind's name. Adding a kind is one
module plus one line in :data:`KINDS`. Modules are imported on first use, so commands that
never talk to a target stay fast.

A kind that refuses fields also names its rules in :data:`RULES`: ``orch validate`` asks them
for every assistant without importing the kind modules (which load the OpenAI SDK).
"""

from __future__ import annotations

import dataclasses
import difflib
import importlib
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from orch.errors import ConfigError, UsageError

if TYPE_CHECKING:  # annotations only: the registry imports no kind module up front
    from orch.project.model import Assistant, Project, Target
    from orch.targets.base import Backend
    from orch.targets.reserve import Reserve
    from orch.targets.session import Session, SessionSettings

#: kind name → module defining ``KIND``
KINDS: dict[str, str] = {
    "engine": "orch.targets.engine",
    "assistants": "orch.targets.assistants",
    "responses": "orch.targets.responses",
    "agents": "orch.targets.agents",
}

#: kind name → ``module:function`` of its ``refuse`` rules (see :attr:`TargetKind.refuse`),
#: in a module cheap to import; kinds not named refuse nothing
RULES: dict[str, str] = {
    "engine": "orch.targets.agents.rules:refuse_agent_fields",
    "assistants": "orch.targets.agents.rules:refuse_agent_fields",
    "responses": "orch.targets.agents.rules:refuse_agent_fields",
    "agents": "orch.targets.agents.rules:refuse",
}

#: what a kind's ``refuse`` returns: (field path in the assistant's YAML, why it cannot go there)
Refusal = tuple[tuple[str | int, ...], str]

_registered: dict[str, TargetKind] = {}


@dataclass(frozen=True)
class Opened:
    """What opening a target yields: a client for its API, a label for messages, a handle."""

    client: Any
    label: str
    #: the embedded engine's handle when the connection started one
    engine: Any = None


@dataclass
class Connection:
    """An open target: its kind, client and label; makes backends and sessions for it."""

    target: Target
    kind: TargetKind
    client: Any
    label: str
    engine: Any = None

    def backend(self) -> Backend:
        """The sync backend for this target."""
        return self.kind.backend(self)

    def session(self, settings: SessionSettings) -> Session:
        """A new session for one pipeline item."""
        return self.kind.session(self, settings)

    def reserve(self, label: str, size: int, items: int) -> Reserve | None:
        """Threads made ahead for ``items`` item sessions (None: the kind makes none).

        Worth it only when more items than ``size`` (the run's concurrency) run; close it after.
        """
        return self.kind.reserve(self, label, size, items) if items > size else None

    def assistant(self, assistant: Assistant) -> Assistant:
        """``assistant`` as this target runs it: the model renamed by the target's ``models:``.

        ConfigError (``file:line: field: why``) when the kind has no place for a field the
        assistant declares: nothing is sent that the target would drop.
        """
        refused = assistant.refused_by(self.kind.name)
        if refused:
            raise ConfigError(list(refused))
        model = self.target.model_for(assistant.model)
        if model == assistant.model:
            return assistant
        return dataclasses.replace(assistant, model=model)

    @property
    def rehearsal(self) -> bool:
        """Whether replies come from the scripted model, not an AI."""
        return self.kind.rehearsal(self.target)


@dataclass(frozen=True)
class TargetKind:
    """What one ``kind:`` means. Every callable receives the open :class:`Connection`."""

    name: str
    #: ``open(project, target, environ, quiet, timeout)``: a context manager yielding Opened
    open: Callable[[Project, Target, dict[str, str], bool, float], AbstractContextManager[Opened]]
    backend: Callable[[Connection], Backend]
    session: Callable[[Connection, SessionSettings], Session]
    rehearsal: Callable[[Target], bool] = lambda target: False
    #: the declared fields of an assistant this kind has no place for (default: none)
    refuse: Callable[[Assistant], list[Refusal]] = lambda assistant: []
    #: ``reserve(conn, label, size, items)``: conversations made ahead for a run's items
    #: (:mod:`orch.targets.reserve`), or None where the kind has none to make
    reserve: Callable[[Connection, str, int, int], Reserve | None] = lambda *_: None


def names() -> list[str]:
    """Every kind a target may have: the built-in ones first, then any registered later."""
    return [*KINDS, *(name for name in _registered if name not in KINDS)]


def get(name: str) -> TargetKind:
    """The kind called ``name``; UsageError (with a suggestion) when there is none."""
    if name in _registered:
        return _registered[name]
    if name not in KINDS:
        close = difflib.get_close_matches(name, names(), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else f" (known: {', '.join(names())})"
        raise UsageError(f"unknown target kind {name!r}{hint}")
    return importlib.import_module(KINDS[name]).KIND


def ruled() -> list[str]:
    """The kinds that may refuse assistant fields: those in :data:`RULES`, and registered ones."""
    return [*RULES, *(name for name in _registered if name not in RULES)]


def refusals(name: str, assistant: Assistant) -> list[Refusal]:
    """The fields of ``assistant`` that kind ``name`` has no place for, with the reasons.

    Built-in kinds are asked through :data:`RULES`, so no kind module (nor the SDK) is loaded;
    a registered kind through its :attr:`TargetKind.refuse`.
    """
    if name in _registered:
        return list(_registered[name].refuse(assistant))
    if name not in RULES:
        return []
    module, _, function = RULES[name].partition(":")
    return list(getattr(importlib.import_module(module), function)(assistant))


def register(kind: TargetKind) -> None:
    """Add (or replace) a kind at run time: plugins and test doubles."""
    _registered[kind.name] = kind


def unregister(name: str) -> None:
    """Remove a kind added with :func:`register`."""
    _registered.pop(name, None)
