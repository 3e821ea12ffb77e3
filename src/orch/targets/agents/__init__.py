"""Target kind ``agents``: OpenAI's saved agents (the Agents API, beta; ``client.beta.agents``).

Since the Assistants API closed (2026-08-26) and prompt objects retire (2026-11-30), the object
that holds an assistant's settings on OpenAI is the saved agent. With this kind the same YAML
is synced to saved agents (``orch plan/sync/prune/import``, identity in their metadata) and
pipelines run as agent sessions, one per item, one turn per step.

Modules: ``rules`` (what a saved agent has no place for; read by ``orch validate``, so this
package imports nothing heavy up front), ``wire`` (assistant ↔ agent), ``store`` (sync's
backend), ``records`` (a turn's items as a step's outcome), ``session`` (an item's session).

Target options: ``keep_sessions`` (default false: each item's session is deleted when the item
ends).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from orch.targets.agents.rules import refuse
from orch.targets.registry import Connection, Opened, TargetKind

if TYPE_CHECKING:
    from orch.project.model import Project, Target
    from orch.targets.base import Backend
    from orch.targets.session import Session, SessionSettings


@contextmanager
def open_agents(
    project: Project, target: Target, environ: dict[str, str], quiet: bool, timeout: float
) -> Iterator[Opened]:
    """An SDK client for the target, as for any remote kind (``base_url``, ``api_key_env``)."""
    # the SDK, and its Agents resources and types: only commands that connect load them, and
    # they do it here, not within the first item's time limit
    import orch.targets.agents.session  # noqa: F401
    from orch.targets.client import open_remote

    with open_remote(project, target, environ, quiet, timeout) as opened:
        yield opened


def sync_backend(conn: Connection) -> Backend:
    """Saved agents as the assistant store; files through the Files API."""
    from orch.targets.agents.store import Agents, AgentsBackend
    from orch.targets.files import Files

    return AgentsBackend(conn.label, Files(conn.client), Agents(conn.client, conn.label))


def item_session(conn: Connection, settings: SessionSettings) -> Session:
    """One item's agent session (kept after the item with ``keep_sessions: true``)."""
    from orch.targets.agents.session import AgentSession

    return AgentSession(conn.client, settings, keep=bool(conn.target.option("keep_sessions")))


KIND = TargetKind(
    name="agents", open=open_agents, backend=sync_backend, session=item_session, refuse=refuse
)
