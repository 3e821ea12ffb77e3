"""Before a run's first item: the assistants it needs, synced (or checked) on the target."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from orch import sync
from orch.errors import UsageError
from orch.evals.graders import uses_model
from orch.project.model import Pipeline, Project, canonical_json, sha256_text
from orch.sync.workflow import additions_for
from orch.targets.base import META_NAME
from orch.targets.registry import Connection


@dataclass
class Prepared:
    """Remote ids of the needed assistants, and the files/stores their hosted tools use."""

    ids: dict[str, str]
    resources: dict[str, dict]


def needed_assistants(project: Project, pipeline: Pipeline) -> list[str]:
    """Names of the assistants a pipeline talks to: its own, its variants', steps', graders'."""
    names = {pipeline.assistant, *(v.assistant for v in pipeline.variants)}
    for step in pipeline.steps:
        if step.assistant:
            names.add(step.assistant)
        for a in step.expect:
            if a.kind == "llm_rubric":
                grader = a.value.get("grader") if isinstance(a.value, dict) else None
                names.add(grader or project.grader)
            elif a.kind == "grader" and uses_model(a.value):
                names.add(project.grader)
    return sorted(n for n in names if n)


def pipeline_hash(project: Project, pipeline: Pipeline) -> str:
    """What a run records as ``pipeline_hash``: the pipeline and its assistants' fingerprints.

    A resume (and ``orch merge``) refuses runs whose hash differs: their items would mix two
    versions of the pipeline.
    """
    assistants = {
        n: project.assistant(n).fingerprint()
        for n in needed_assistants(project, pipeline)
        if project.assistant(n)
    }
    fingerprints = {"pipeline": pipeline.fingerprint(), "assistants": assistants}
    return sha256_text(canonical_json(fingerprints))


def prepare(
    project: Project, conn: Connection, needed: list[str], allow_sync: bool, echo: Callable
) -> Prepared:
    """Sync the assistants in ``needed`` (or, without ``allow_sync``, refuse when out of sync)."""
    _check_hosted_tools(project, conn, needed)
    backend = conn.backend()
    desired = [conn.assistant(project.assistant(n)) for n in needed]
    need_files = any(a.files for a in desired)
    state = backend.fetch_state(project.name, need_files)
    result = sync.plan(
        project.name, conn.label, desired, state, local_assistants=backend.local_assistants
    )
    additions_for(result, set(needed))
    if result.changes:
        if not allow_sync:
            names = ", ".join(
                sorted({c.name for c in result.assistants if c.action != "unchanged"})
            )
            raise UsageError(
                f"assistants not in sync on {conn.label}: {names or 'files'}; "
                "run `orch sync` first (or drop --no-sync)"
            )
        writes = sync.apply(result, backend, project.root)
        echo(
            f"Synced {writes} change{'s' if writes != 1 else ''} for "
            f"{', '.join(needed)} on {conn.label}."
        )
        state = backend.fetch_state(project.name, need_files)
    ids: dict[str, str] = {}
    for remote in state.assistants:
        if remote.managed_by(project.name):
            ids.setdefault(remote.metadata[META_NAME], remote.id)
    resources = {
        n: sync.assistant_resources(project.assistant(n), project.name, state) for n in needed
    }
    return Prepared(ids, resources)


def _check_hosted_tools(project: Project, conn: Connection, needed: list[str]) -> None:
    capabilities = conn.target.option("capabilities") or {}
    if capabilities.get("hosted_tools") is not False:
        return
    for name in needed:
        hosted = [t.type for t in project.assistant(name).tools if not t.function]
        if hosted:
            raise UsageError(
                f"assistant {name!r} uses {', '.join(hosted)}, which target "
                f"{conn.target.name!r} does not support (capabilities.hosted_tools: false)"
            )
