"""The plan: a pure function of the declared assistants and the remote state.

``plan()`` never talks to a server; it compares fields (normalised the way servers echo them)
and ``orch_hash`` tags, and classifies each object as create, update (with a field diff, drift
when the remote no longer matches its own hash), delete (prune) or unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from orch.project.model import Assistant, LocalFile
from orch.sync.naming import (
    SHA_LEN,
    files_hash,
    kept_files,
    kept_stores,
    parse_managed_filename,
    store_name,
)
from orch.targets.base import (
    META_HASH,
    META_NAME,
    META_PROJECT,
    RemoteAssistant,
    RemoteFile,
    RemoteState,
    RemoteVectorStore,
)

FIELDS = (
    "name",
    "model",
    "instructions",
    "description",
    "temperature",
    "top_p",
    "response_format",
    "tools",
    "tool_resources",
    "metadata",
)


@dataclass(frozen=True)
class FieldDiff:
    """One field that differs: remote value → declared value."""

    field: str
    old: Any
    new: Any


@dataclass(frozen=True)
class Change:
    """One planned action on one remote object."""

    action: str  # create | update | delete | unchanged
    kind: str  # assistant | vector_store | file
    name: str
    remote_id: str | None = None
    diffs: tuple[FieldDiff, ...] = ()
    drift: bool = False
    reason: str = ""


@dataclass
class Plan:
    """What sync would do. ``changes`` is empty when the target already matches the YAML."""

    project: str
    target: str
    assistants: list[Change] = field(default_factory=list)
    stores: list[Change] = field(default_factory=list)
    files: list[Change] = field(default_factory=list)
    unmanaged: list[RemoteAssistant] = field(default_factory=list)
    desired: dict[str, Assistant] = field(default_factory=dict)
    uploads: dict[str, LocalFile] = field(default_factory=dict)  # sha16 -> file
    remote: RemoteState = field(default_factory=RemoteState)

    @property
    def changes(self) -> list[Change]:
        """Every change that would write to the target."""
        return [c for c in (*self.files, *self.stores, *self.assistants) if c.action != "unchanged"]

    def count(self, action: str, kind: str = "assistant") -> int:
        """How many ``action`` changes of ``kind`` the plan holds."""
        pool = {"assistant": self.assistants, "vector_store": self.stores, "file": self.files}
        return sum(1 for c in pool[kind] if c.action == action)

    def to_json(self) -> dict:
        """The plan as JSON-able data (``orch plan --json``)."""

        def change(c: Change) -> dict:
            return {
                "action": c.action,
                "kind": c.kind,
                "name": c.name,
                "id": c.remote_id,
                "drift": c.drift,
                "reason": c.reason or None,
                "diff": [{"field": d.field, "remote": d.old, "local": d.new} for d in c.diffs],
            }

        return {
            "schema_version": 1,
            "project": self.project,
            "target": self.target,
            "changes": len(self.changes),
            "assistants": [change(c) for c in self.assistants],
            "vector_stores": [change(c) for c in self.stores],
            "files": [change(c) for c in self.files],
            "unmanaged": [{"id": a.id, "name": a.name} for a in self.unmanaged],
        }


def _default_format(value: Any) -> Any:
    if value in (None, "auto"):
        return "auto"
    if isinstance(value, str):
        return {"type": value}
    return value


def _norm_tool(tool: dict, declared: dict | None = None) -> dict:
    tool = dict(tool)
    kind = tool.get("type")
    if kind == "function":
        fn = {k: v for k, v in (tool.get("function") or {}).items() if v not in (None, False, "")}
        return {"type": "function", "function": fn}
    if kind == "file_search":
        options = tool.get("file_search") or {}
        wanted = (declared or {}).get("file_search") or {}
        # servers fill in defaults; only options the YAML sets are compared
        kept = {k: options.get(k) for k in wanted}
        return {"type": "file_search", **({"file_search": kept} if kept else {})}
    return {"type": kind}


def desired_fields(assistant: Assistant, project: str) -> dict[str, Any]:
    """The declared assistant in the comparable form :func:`remote_fields` produces."""
    resources: dict[str, Any] = {}
    if assistant.files_for("code_interpreter"):
        resources["code_interpreter"] = sorted(
            f.sha256[:SHA_LEN] for f in assistant.files_for("code_interpreter")
        )
    if assistant.files_for("file_search"):
        resources["file_search"] = files_hash(assistant.files_for("file_search"))
    metadata = {
        **dict(assistant.metadata),
        META_PROJECT: project,
        META_NAME: assistant.name,
        META_HASH: assistant.fingerprint(),
    }
    tools = [_norm_tool(t.wire(), t.wire()) for t in assistant.tools]
    return _comparable(assistant, tools, resources, metadata)


def remote_fields(
    remote: RemoteAssistant, state: RemoteState, project: str, declared: Assistant | None = None
) -> dict[str, Any]:
    """A remote assistant in the comparable form (file ids → content hashes)."""
    # only kept copies count: a reference to a duplicate (deleted by this sync) is a diff
    sha_by_id = {f.id: sha for sha, f in kept_files(project, state.files).items()}
    store_hash = {
        s.id: s.metadata.get(META_HASH) for s in kept_stores(state.vector_stores).values()
    }
    resources: dict[str, Any] = {}
    ci = (remote.tool_resources.get("code_interpreter") or {}).get("file_ids") or []
    if ci:
        resources["code_interpreter"] = sorted(sha_by_id.get(i, f"id:{i}") for i in ci)
    fs = (remote.tool_resources.get("file_search") or {}).get("vector_store_ids") or []
    if fs:
        hashes = [store_hash.get(i) or f"id:{i}" for i in fs]
        resources["file_search"] = hashes[0] if len(hashes) == 1 else hashes
    declared_tools = [t.wire() for t in declared.tools] if declared else []
    tools = []
    for i, tool in enumerate(remote.tools):
        match = declared_tools[i] if i < len(declared_tools) else None
        if match and match.get("type") != tool.get("type"):
            match = None
        tools.append(_norm_tool(tool, match))
    return _comparable(remote, tools, resources, dict(remote.metadata))


def _comparable(
    source: Assistant | RemoteAssistant, tools: list, resources: dict, metadata: dict
) -> dict[str, Any]:
    """The compared fields, with the defaults servers fill in made explicit on both sides."""
    return {
        "name": source.name or "",
        "model": source.model,
        "instructions": source.instructions or "",
        "description": source.description or "",
        "temperature": 1.0 if source.temperature is None else float(source.temperature),
        "top_p": 1.0 if source.top_p is None else float(source.top_p),
        "response_format": _default_format(source.response_format),
        "tools": tools,
        "tool_resources": resources,
        "metadata": metadata,
    }


def _diff(old: dict, new: dict) -> tuple[FieldDiff, ...]:
    """The fields that differ: :data:`FIELDS` in order, then any a target adds (reasoning)."""
    keys = [*FIELDS, *sorted((old.keys() | new.keys()) - set(FIELDS))]
    return tuple(FieldDiff(k, old.get(k), new.get(k)) for k in keys if old.get(k) != new.get(k))


def plan(
    project: str,
    target: str,
    desired: list[Assistant],
    state: RemoteState,
    prune: bool = False,
    adopt: dict[str, str] | None = None,
    local_assistants: bool = False,
) -> Plan:
    """Compare declared assistants with a target's state. Pure: no I/O.

    ``adopt`` maps declared names to ids of unmanaged assistants to take over (``orch import``);
    nothing else unmanaged is ever planned for. With ``local_assistants`` (Responses API
    targets) assistants exist only in the YAML and are sent with each request: only their files
    and vector stores are planned, and stores of undeclared assistants go only with ``prune``.
    """
    adopt = adopt or {}
    result = Plan(
        project=project, target=target, remote=state, desired={a.name: a for a in desired}
    )
    managed = _claim(result, state, adopt)
    owners = (
        set(managed)
        if not local_assistants
        else {s.metadata.get(META_NAME, "") for s in state.vector_stores}
    )
    keep_stale = not prune and any(name not in result.desired for name in owners)
    _plan_files(result, desired, state, keep_stale)
    _plan_stores(result, desired, state, managed, prune, local_assistants)
    for assistant in desired:
        if local_assistants:
            reason = "local definition, sent with each request"
            result.assistants.append(
                Change("unchanged", "assistant", assistant.name, reason=reason)
            )
        else:
            found = managed.get(assistant.name, [])
            result.assistants += _plan_assistant(assistant, found, state, project, adopt)
    for name, remotes in sorted(managed.items()):
        if name not in result.desired:
            for remote in remotes:
                result.assistants.append(_undeclared(name, remote, prune))
    return result


def _claim(
    result: Plan, state: RemoteState, adopt: dict[str, str]
) -> dict[str, list[RemoteAssistant]]:
    """Remote assistants by the name orch manages them under; the rest listed as unmanaged."""
    managed: dict[str, list[RemoteAssistant]] = {}
    for remote in state.assistants:
        adopted = next((n for n, i in adopt.items() if i == remote.id), None)
        if remote.managed_by(result.project):
            managed.setdefault(remote.metadata[META_NAME], []).append(remote)
        elif adopted:
            managed.setdefault(adopted, []).append(remote)
        else:
            result.unmanaged.append(remote)
    return managed


def _plan_assistant(
    assistant: Assistant,
    found: list[RemoteAssistant],
    state: RemoteState,
    project: str,
    adopt: dict[str, str],
) -> list[Change]:
    """Changes for one declared assistant: create, or keep one copy and update it if needed."""
    want = desired_fields(assistant, project)
    if not found:
        return [Change("create", "assistant", assistant.name)]
    found = sorted(found, key=lambda r: (r.created_at, r.id))
    digest = want["metadata"][META_HASH]
    keep = next((r for r in found if r.metadata.get(META_HASH) == digest), found[0])
    changes = [
        Change(
            "delete",
            "assistant",
            assistant.name,
            dup.id,
            reason=f"duplicate of {keep.id} (two managed objects claimed one name)",
        )
        for dup in found
        if dup is not keep
    ]
    # compared as the target stores them: a field it never keeps is no diff (orch_hash is)
    diffs = _diff(
        state.comparable(keep, remote_fields(keep, state, project, assistant)),
        state.comparable(assistant, want),
    )
    if not diffs:
        return [*changes, Change("unchanged", "assistant", assistant.name, keep.id)]
    drift = keep.metadata.get(META_HASH) == digest
    reason = "changed outside orch" if drift else ""
    if keep.id in adopt.values():
        reason = "adopting an unmanaged assistant"
    update = Change("update", "assistant", assistant.name, keep.id, diffs, drift, reason)
    return [*changes, update]


def _undeclared(name: str, remote: RemoteAssistant, prune: bool) -> Change:
    if prune:
        return Change("delete", "assistant", name, remote.id, reason="no longer declared")
    reason = "no longer declared; --prune deletes it"
    return Change("unchanged", "assistant", name, remote.id, reason=reason)


def _plan_files(
    result: Plan, desired: list[Assistant], state: RemoteState, keep_stale: bool
) -> None:
    """Uploads for new content; stale uploads deleted unless undeclared assistants may use them."""
    wanted: dict[str, LocalFile] = {}
    for assistant in desired:
        for _tool, files in assistant.files:
            for f in files:
                wanted.setdefault(f.sha256[:SHA_LEN], f)
    have: dict[str, list[RemoteFile]] = {}
    for remote in state.files:
        sha = parse_managed_filename(result.project, remote.filename)
        if sha:
            have.setdefault(sha, []).append(remote)
    for sha, local in sorted(wanted.items(), key=lambda kv: kv[1].path):
        if sha not in have:
            result.uploads[sha] = local
            result.files.append(
                Change("create", "file", local.path, reason=f"sha256 {sha}…, {local.size} bytes")
            )
    for sha, remotes in sorted(have.items()):
        remotes = sorted(remotes, key=lambda r: (r.created_at, r.id))
        stale = remotes[1:] if sha in wanted else ([] if keep_stale else remotes)
        for remote in stale:
            why = "duplicate upload" if sha in wanted else "content no longer declared"
            result.files.append(Change("delete", "file", remote.filename, remote.id, reason=why))


def _plan_stores(
    result: Plan,
    desired: list[Assistant],
    state: RemoteState,
    managed: dict[str, list[RemoteAssistant]],
    prune: bool,
    local_assistants: bool = False,
) -> None:
    """One store per assistant with file_search files; others deleted when nobody uses them."""
    by_owner: dict[str, list[RemoteVectorStore]] = {}
    for store in state.vector_stores:
        by_owner.setdefault(store.metadata.get(META_NAME, ""), []).append(store)
    for assistant in desired:
        stores = sorted(by_owner.pop(assistant.name, []), key=lambda s: (s.created_at, s.id))
        result.stores += _plan_store(result.project, assistant, stores)
    for owner, stores in sorted(by_owner.items()):
        orphan = prune or (owner not in managed and not local_assistants)
        if owner in result.desired or not orphan:
            continue
        for store in stores:
            label = store.name or store.id
            reason = "its assistant is gone"
            result.stores.append(Change("delete", "vector_store", label, store.id, reason=reason))


def _plan_store(
    project: str, assistant: Assistant, stores: list[RemoteVectorStore]
) -> list[Change]:
    """Changes for one assistant's vector store (``stores``: the ones it owns, oldest first)."""
    files = assistant.files_for("file_search")
    if not files:
        reason = "no file_search files declared"
        return [
            Change("delete", "vector_store", s.name or s.id, s.id, reason=reason) for s in stores
        ]
    name = store_name(project, assistant.name)
    if not stores:
        return [Change("create", "vector_store", name, reason=f"{len(files)} file(s)")]
    keep, *extra = stores
    changes = [
        Change("delete", "vector_store", name, s.id, reason=f"duplicate of {keep.id}")
        for s in extra
    ]
    digest = files_hash(files)
    # a store holds one file per content, however many declared paths share it
    healthy = keep.files_total == len({f.sha256 for f in files}) and keep.files_failed == 0
    if keep.metadata.get(META_HASH) == digest and healthy:
        return [*changes, Change("unchanged", "vector_store", name, keep.id)]
    drift = keep.metadata.get(META_HASH) == digest
    reason = "files changed outside orch" if drift else "declared files changed"
    return [*changes, Change("update", "vector_store", name, keep.id, drift=drift, reason=reason)]


def assistant_resources(assistant: Assistant, project: str, state: RemoteState) -> dict:
    """Remote ids of an assistant's synced files: its vector store and code-interpreter files.

    Used where assistants are local definitions (Responses API): every request names them.
    """
    file_ids: dict[str, str] = {}
    for remote in sorted(state.files, key=lambda f: (f.created_at, f.id)):
        sha = parse_managed_filename(project, remote.filename)
        if sha:
            file_ids.setdefault(sha, remote.id)
    stores = [
        s.id
        for s in sorted(state.vector_stores, key=lambda s: (s.created_at, s.id))
        if s.metadata.get(META_NAME) == assistant.name
    ]
    return {
        "vector_store_ids": stores[:1] if assistant.files_for("file_search") else [],
        "code_interpreter_file_ids": [
            file_ids[f.sha256[:SHA_LEN]]
            for f in assistant.files_for("code_interpreter")
            if f.sha256[:SHA_LEN] in file_ids
        ],
    }
