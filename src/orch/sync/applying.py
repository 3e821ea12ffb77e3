"""Carrying out a :class:`~orch.sync.planning.Plan` through a target's backend.

Uploads first, then vector stores, then assistants, deletes last, so an assistant never points
at something that does not exist yet.
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
    Backend,
)

Reporter = Callable[[Change], None]


def apply(plan_: Plan, backend: Backend, root: Path, report: Reporter = lambda c: None) -> int:
    """Carry out ``plan_`` on ``backend``; returns the number of writes. Deletes come last."""
    project = plan_.project
    writes = 0
    file_ids = {sha: f.id for sha, f in kept_files(project, plan_.remote.files).items()}
    for change in plan_.files:
        if change.action == "create":
            sha = next(s for s, f in plan_.uploads.items() if f.path == change.name)
            local = plan_.uploads[sha]
            uploaded = backend.upload_file(
                root / local.path, managed_filename(project, local.sha256, local.path)
            )
            file_ids[sha] = uploaded.id
            writes += 1
            report(change)

    store_ids = {owner: s.id for owner, s in kept_stores(plan_.remote.vector_stores).items()}
    for change in plan_.stores:
        owner = change.name.removeprefix(f"orch-{project}-")
        assistant = plan_.desired.get(owner)
        if change.action == "create" and assistant:
            files = assistant.files_for("file_search")
            store = backend.create_vector_store(
                change.name,
                _store_meta(project, owner, files),
                list(dict.fromkeys(file_ids[f.sha256[:SHA_LEN]] for f in files)),
            )
            store_ids[owner] = store.id
            writes += 1
            report(change)
        elif change.action == "update" and assistant:
            files = assistant.files_for("file_search")
            want = {file_ids[f.sha256[:SHA_LEN]] for f in files}
            have = set(backend.vector_store_file_ids(change.remote_id))
            remote = next(s for s in plan_.remote.vector_stores if s.id == change.remote_id)
            backend.update_vector_store(
                remote,
                _store_meta(project, owner, files),
                add=sorted(want - have),
                remove=sorted(have - want),
            )
            store_ids[owner] = remote.id
            writes += 1
            report(change)

    for change in plan_.assistants:
        if change.action not in ("create", "update") or change.name not in plan_.desired:
            continue
        spec = wire_spec(plan_.desired[change.name], project, file_ids, store_ids)
        if change.action == "create":
            backend.create_assistant(spec)
        else:
            backend.update_assistant(change.remote_id, spec)
        writes += 1
        report(change)

    for change in [*plan_.assistants, *plan_.stores, *plan_.files]:
        if change.action != "delete":
            continue
        {
            "assistant": backend.delete_assistant,
            "vector_store": backend.delete_vector_store,
            "file": backend.delete_file,
        }[change.kind](change.remote_id)
        writes += 1
        report(change)
    return writes


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
    }
