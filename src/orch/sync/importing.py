"""``orch import``: write YAML for assistants that already exist on a server, then adopt them.

For each remote assistant not yet declared, a file ``assistants/<name>.yml`` is written (long
instructions go to ``assistants/prompts/<name>.md`` through ``!file``; files attached to its
tools are downloaded under ``assistants/files/<name>/``). The assistant is then adopted: tagged
with this project's metadata (and its files re-uploaded as managed copies) so that the next
``orch plan`` shows no changes. The original, unmanaged files and vector stores are left alone.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from orch.errors import UsageError
from orch.project.schemas import load_schema
from orch.sync.naming import SHA_LEN, parse_managed_filename
from orch.targets.base import META_NAME, META_PROJECT, Backend, RemoteAssistant, RemoteState

INLINE_LIMIT = 200
#: what an assistant's ``name`` may be (the schema's pattern), so an import keeps what it can
_NAME = re.compile(load_schema("assistant")["properties"]["name"]["pattern"])


@dataclass(frozen=True)
class _Include:
    path: str


class _Dumper(yaml.SafeDumper):
    """Block-style YAML with ``!file`` includes and literal blocks for multi-line text."""


def _str(dumper: yaml.SafeDumper, value: str):
    style = "|" if "\n" in value else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)


_Dumper.add_representer(_Include, lambda d, v: d.represent_scalar("!file", v.path))
_Dumper.add_representer(str, _str)


def dump_yaml(data: Any) -> str:
    """``data`` as the YAML orch writes for people: block style, literal blocks, keys in order."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True, width=100)


def slug(name: str | None, fallback: str) -> str:
    """A file-name stem (1-64 of letters, digits, '-', '_', '.') from a display name."""
    text = re.sub(r"[^A-Za-z0-9_.-]+", "-", (name or "").strip()).strip("-._").lower()
    return (text or fallback)[:64]


def local_name(remote: RemoteAssistant, taken: set[str], notes: list[str]) -> str:
    """The ``name`` the YAML declares for ``remote``: its own name, unchanged, when it can be.

    The name is what ``orch sync`` sends, so changing it here would rename the object on the
    server. Only a name the schema cannot take (none, too long, on several lines) or one
    another assistant of the project already has is replaced, with a note saying so.
    """
    own = remote.metadata.get(META_NAME) or remote.name
    valid = bool(own) and _NAME.fullmatch(own) is not None
    name = own if valid else slug(own, remote.id.lower())
    base, n = name, 2
    while name in taken:
        name, n = f"{base[:60]}-{n}", n + 1
    if name != own:
        why = (
            "another assistant of the project has it"
            if valid
            else "an orch name is 1-64 characters on one line, starting with a letter or digit"
            if own
            else "it has none"
        )
        notes.append(f"named {name!r}, not {own!r}: {why}; `orch sync` will rename it")
    return name


@dataclass
class Imported:
    """One imported assistant: its local name, the YAML written, the remote id adopted."""

    name: str
    path: Path
    remote_id: str
    notes: list[str]


def import_assistants(
    backend: Backend,
    state: RemoteState,
    project: str,
    root: Path,
    out: Path,
    declared: set[str],
    only: list[str] | None = None,
    force: bool = False,
) -> list[Imported]:
    """Write YAML (and prompt/data files) for remote assistants; return what was written."""
    chosen = []
    for remote in state.assistants:
        label = remote.metadata.get(META_NAME) or remote.name or remote.id
        if only and label not in only and remote.id not in only:
            continue
        if remote.metadata.get(META_PROJECT) == project and label in declared:
            continue
        chosen.append(remote)
    if only:
        missing = (
            set(only)
            - {r.metadata.get(META_NAME) or r.name for r in chosen}
            - {r.id for r in chosen}
        )
        if missing:
            raise UsageError(f"no importable assistant named {', '.join(sorted(missing))}")
    taken, stems = set(declared), set()
    results = []
    for remote in chosen:
        notes: list[str] = []
        name = local_name(remote, taken, notes)
        taken.add(name)
        stem = base = slug(name, remote.id.lower())  # the file's name; the name stays as it is
        n = 2
        while stem in stems:
            stem, n = f"{base[:60]}-{n}", n + 1
        stems.add(stem)
        target = out / f"{stem}.yml"
        if target.exists() and not force:
            raise UsageError(f"{target} exists; pass --force to overwrite it")
        data = _yaml_data(backend, state, project, root, out, remote, (name, stem), notes)
        header = (
            f"# yaml-language-server: $schema={_schema_ref(out, root)}\n"
            f"# Imported by `orch import` from {remote.id}.\n"
        )
        for note in notes:
            header += f"# NOTE: {note}\n"
        out.mkdir(parents=True, exist_ok=True)
        target.write_text(header + dump_yaml(data), encoding="utf-8")
        results.append(Imported(name, target, remote.id, notes))
    return results


def _schema_ref(out: Path, root: Path) -> str:
    try:
        depth = len(out.resolve().relative_to(root.resolve()).parts)
    except ValueError:
        return str(root / "schemas/assistant.schema.json")
    return "../" * depth + "schemas/assistant.schema.json"


def _yaml_data(
    backend, state, project, root, out, remote: RemoteAssistant, names: tuple, notes: list[str]
) -> dict[str, Any]:
    """The YAML for ``remote``; ``names`` is its (name, file stem): files are named by stem."""
    name, stem = names
    data: dict[str, Any] = {"name": name}
    if remote.description:
        data["description"] = remote.description
    data["model"] = remote.model
    instructions = remote.instructions or ""
    if len(instructions) > INLINE_LIMIT or "\n" in instructions.strip():
        prompt = out / "prompts" / f"{stem}.md"
        prompt.parent.mkdir(parents=True, exist_ok=True)
        prompt.write_text(instructions, encoding="utf-8")
        data["instructions"] = _Include(f"prompts/{stem}.md")
    elif instructions:
        data["instructions"] = instructions
    if remote.temperature not in (None, 1.0):
        data["temperature"] = remote.temperature
    if remote.top_p not in (None, 1.0):
        data["top_p"] = remote.top_p
    if remote.reasoning:
        data["reasoning"] = dict(remote.reasoning)
    if remote.response_format not in (None, "auto"):
        fmt = remote.response_format
        data["response_format"] = fmt["type"] if isinstance(fmt, dict) and len(fmt) == 1 else fmt
    tools = []
    for tool in remote.tools:
        kind = tool.get("type")
        if kind == "function":
            fn = {k: v for k, v in tool["function"].items() if v not in (None, False)}
            tools.append({"function": fn})
            notes.append(
                f"function {fn['name']} has no handler: add `handler: module:function` "
                "so `orch run` can answer its calls"
            )
        elif kind == "file_search" and tool.get("file_search", {}).get("max_num_results"):
            tools.append(
                {"file_search": {"max_num_results": tool["file_search"]["max_num_results"]}}
            )
        else:
            tools.append(kind)
    if tools:
        data["tools"] = tools
    files = _download_files(backend, state, project, root, out, remote, stem, notes)
    if files:
        data["files"] = files
    metadata = {k: v for k, v in remote.metadata.items() if not k.startswith("orch_")}
    if metadata:
        data["metadata"] = metadata
    return data


def _download_files(backend, state, project, root, out, remote, name, notes) -> dict:
    by_id = {f.id: f for f in state.files}
    wanted: dict[str, list[str]] = {}
    ci = (remote.tool_resources.get("code_interpreter") or {}).get("file_ids") or []
    if ci:
        wanted["code_interpreter"] = list(ci)
    stores = (remote.tool_resources.get("file_search") or {}).get("vector_store_ids") or []
    for store_id in stores:
        wanted.setdefault("file_search", []).extend(backend.files.vector_store_file_ids(store_id))
    result: dict[str, list[str]] = {}
    folder = out / "files" / name
    for tool, ids in wanted.items():
        for file_id in ids:
            remote_file = by_id.get(file_id)
            filename = remote_file.filename if remote_file else file_id
            if parse_managed_filename(project, filename):
                filename = filename[len(f"orch-{project}-") + SHA_LEN + 1 :]
            try:
                content = backend.files.download_file(file_id)
            except Exception as exc:  # noqa: BLE001 - any refusal is reported, not fatal
                notes.append(
                    f"{tool} file {file_id} ({filename}) could not be downloaded "
                    f"({exc}); add it under files.{tool} by hand"
                )
                continue
            path = folder / _safe_name(filename, file_id)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            result.setdefault(tool, []).append(_rel(path, root))
    return result


def _safe_name(filename: str, file_id: str) -> str:
    """A server-chosen file name usable as one path component inside the import folder.

    Names come from the server, so ``..``, ``.``, an empty name or a name with separators must
    not reach outside the folder or clash with it: such a name falls back to the file id.
    """
    name = Path(filename.replace("\\", "/")).name
    if name in ("", ".", "..") or "\x00" in name:
        return file_id
    return name


def _rel(path: Path, root: Path) -> str:
    try:
        return path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:
        return str(path)
