"""Carrying out a :class:`~orch.sync.planning.Plan` through a target's backend.

Uploads first, then vector stores, then assistants, deletes last, so an assistant never points
at something that does not exist yet. After creating assistants the target is listed again, so
two syncs running at once still leave one assistant per name.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from orch.project.model import Assistant, LocalFile
from orch.sync.naming import SHA_LEN, files_hash, kept_files, kept_stores, managed_filename
from orch.sync.planning import Change, Plan, desired_fields
from orch.targets.base import (
    META_HASH,
    META_NAME,
    META_PROJECT,
    AssistantStore,
    Backend,
    FileStore,
    RemoteAssistant,
)

Reporter = Callable[[Change], None]


def apply(plan_: Plan, backend: Backend, root: Path, report: Reporter = lambda c: None) -> int:
    """Carry out ``plan_`` on ``backend``; returns the number of writes. Deletes come last."""
    file_ids = _upload(plan_, backend.files, root, report)
    store_ids = _write_stores(plan_, backend.files, file_ids, report)
    writes = len(file_ids.written) + len(store_ids.written)
    created = []
    for change in plan_.assistants:
        if change.action not in ("create", "update") or change.name not in plan_.desired:
            continue
        spec = wire_spec(plan_.desired[change.name], plan_.project, file_ids, store_ids)
        if change.action == "create":
            created.append(backend.assistants.create_assistant(spec))
        else:
            backend.assistants.update_assistant(change.remote_id, spec)
        writes += 1
        report(change)
    if created:
        writes += _remove_younger_twins(plan_.project, backend.assistants, created, report)
    for change in [*plan_.assistants, *plan_.stores, *plan_.files]:
        if change.action != "delete":
            continue
        {
            "assistant": lambda i: backend.assistants.delete_assistant(i),
            "vector_store": backend.files.delete_vector_store,
            "file": backend.files.delete_file,
        }[change.kind](change.remote_id)
        writes += 1
        report(change)
    return writes


def _remove_younger_twins(
    project: str, assistants: AssistantStore, created: list[RemoteAssistant], report: Reporter
) -> int:
    """Delete younger copies of what this sync created; returns the number deleted.

    Two syncs running at once both plan a create and both create. Each re-lists after its
    creates; the oldest copy (ties by id) is the one every sync agrees to keep, so whichever
    sync re-lists last sees both and deletes the younger, and one object per name remains.
    """
    names = {a.metadata.get(META_NAME) for a in created}
    twins: dict[str, list[RemoteAssistant]] = {}
    for remote in assistants.list_assistants():
        name = remote.metadata.get(META_NAME)
        if remote.managed_by(project) and name in names:
            twins.setdefault(name, []).append(remote)
    deleted = 0
    for name, copies in sorted(twins.items()):
        keep, *younger = sorted(copies, key=lambda r: (r.created_at, r.id))
        for remote in younger:
            assistants.delete_assistant(remote.id)
            reason = f"duplicate of {keep.id} made by a concurrent sync"
            report(Change("delete", "assistant", name, remote.id, reason=reason))
            deleted += 1
    return deleted


class _Ids(dict):
    """Remote ids by local key, remembering which ones this sync wrote."""

    def __init__(self, known: dict[str, str]):
        super().__init__(known)
        self.written: list[str] = []


def _upload(plan_: Plan, files: FileStore, root: Path, report: Reporter) -> _Ids:
    """Upload the planned files; remote file ids by content hash prefix."""
    project = plan_.project
    ids = _Ids({sha: f.id for sha, f in kept_files(project, plan_.remote.files).items()})
    for change in plan_.files:
        if change.action != "create":
            continue
        sha = next(s for s, f in plan_.uploads.items() if f.path == change.name)
        local = plan_.uploads[sha]
        name = managed_filename(project, local.sha256, local.path)
        ids[sha] = files.upload_file(root / local.path, name).id
        ids.written.append(sha)
        report(change)
    return ids


def _write_stores(plan_: Plan, files: FileStore, file_ids: dict[str, str], report) -> _Ids:
    """Create or update the planned vector stores; store ids by owning assistant."""
    project = plan_.project
    ids = _Ids({owner: s.id for owner, s in kept_stores(plan_.remote.vector_stores).items()})
    for change in plan_.stores:
        owner = change.name.removeprefix(f"orch-{project}-")
        assistant = plan_.desired.get(owner)
        if change.action not in ("create", "update") or not assistant:
            continue
        local = assistant.files_for("file_search")
        meta = _store_meta(project, owner, local)
        want = list(dict.fromkeys(file_ids[f.sha256[:SHA_LEN]] for f in local))
        if change.action == "create":
            ids[owner] = files.create_vector_store(change.name, meta, want).id
        else:
            have = set(files.vector_store_file_ids(change.remote_id))
            remote = next(s for s in plan_.remote.vector_stores if s.id == change.remote_id)
            files.update_vector_store(
                remote, meta, add=sorted(set(want) - have), remove=sorted(have - set(want))
            )
            ids[owner] = remote.id
        ids.written.append(owner)
        report(change)
    return ids


def _store_meta(project: str, owner: str, files: tuple[LocalFile, ...]) -> dict[str, str]:
    return {META_PROJECT: project, META_NAME: owner, META_HASH: files_hash(files)}


def wire_spec(
    assistant: Assistant, project: str, file_ids: dict[str, str], store_ids: dict[str, str]
) -> dict[str, Any]:
    """Full Assistants-API fields for create/update (every field, so updates also reset)."""
    resources: dict[str, Any] = {
        "code_interpreter": {
            "file_ids": [
                file_ids[f.sha256[:SHA_LEN]] for f in assistant.files_for("code_interpreter")
            ]
        },
        "file_search": {
            "vector_store_ids": [store_ids[assistant.name]]
            if assistant.files_for("file_search")
            else []
        },
    }
    response_format = assistant.response_format
    if isinstance(response_format, str) and response_format != "auto":
        response_format = {"type": response_format}
    return {
        "name": assistant.name,
        "model": assistant.model,
        "instructions": assistant.instructions or "",
        "description": assistant.description or "",
        "temperature": 1.0 if assistant.temperature is None else assistant.temperature,
        "top_p": 1.0 if assistant.top_p is None else assistant.top_p,
        "response_format": response_format or "auto",
        "tools": [t.wire() for t in assistant.tools],
        "tool_resources": resources,
        "metadata": desired_fields(assistant, project)["metadata"],
        # only when declared: the kinds that take it (agents) are the only ones it reaches
        **({"reasoning": dict(assistant.reasoning)} if assistant.reasoning else {}),
    }
