"""The sync steps the commands share: plan a project against a target, narrow a plan, adopt.

Each step fetches the target's state through a backend and then uses the pure
:func:`~orch.sync.planning.plan` and :func:`~orch.sync.applying.apply`; printing is left to
the caller.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from orch.sync.applying import apply
from orch.sync.planning import Plan, plan

if TYPE_CHECKING:
    from orch.project.model import Project
    from orch.targets.base import RemoteState
    from orch.targets.registry import Connection


def plan_project(project: Project, conn: Connection, prune: bool = False) -> Plan:
    """What syncing every declared assistant of ``project`` to the target would change.

    Assistants are planned as the target runs them (its ``models:`` map applied); the ones
    pipelines' variants derive are planned like declared ones (:mod:`orch.project.variants`).
    """
    backend = conn.backend()
    declared = [*project.assistants, *project.variant_assistants()]
    desired = [conn.assistant(a) for _, a in declared]
    state = backend.fetch_state(project.name, need_files=any(a.files for a in desired) or prune)
    return plan(
        project.name,
        conn.label,
        desired,
        state,
        prune=prune,
        local_assistants=backend.local_assistants,
    )


def keep_deletes(result: Plan) -> Plan:
    """Narrow ``result`` (in place) to its deletes: what ``orch prune`` applies."""
    result.assistants = [c for c in result.assistants if c.action == "delete"]
    result.stores = [c for c in result.stores if c.action == "delete"]
    result.files = [c for c in result.files if c.action == "delete"]
    return result


def adopt(project: Project, conn: Connection, state: RemoteState, ids: dict[str, str]) -> int:
    """Take over just-imported assistants (``ids``: declared name → remote id); return writes.

    They are tagged as this project's and their files uploaded under managed names, so the next
    plan shows no changes for them.
    """
    chosen = [conn.assistant(a) for name, a in project.assistants if name in ids]
    result = plan(project.name, conn.label, chosen, state, adopt=ids)
    return apply(additions_for(result, set(ids)), conn.backend(), project.root)


def additions_for(result: Plan, names: set[str]) -> Plan:
    """Narrow ``result`` (in place) to the assistants ``names`` and what they need added.

    Used where only some assistants were planned (a run's, just-imported ones): every other
    file and store then looks stale, so nothing is deleted; the next full sync decides.
    """
    result.assistants = [c for c in result.assistants if c.name in names]
    result.files = [c for c in result.files if c.action == "create"]
    result.stores = [c for c in result.stores if c.action in ("create", "update")]
    return result
