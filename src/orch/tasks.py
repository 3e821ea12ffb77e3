"""What the sync commands do, between parsing (cli.py) and the core (sync.py, backends).

Each task loads the project, connects to the target, and returns an exit code; output goes
through the ``echo`` callable so the CLI decides about colour and streams.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from orch import sync
from orch.config import load_project
from orch.errors import ExitCode
from orch.targets import connect

Echo = Callable[[str], None]


def _plan(project, conn, prune: bool) -> tuple[sync.Plan, object]:
    backend = conn.backend()
    state = backend.fetch_state(project.name)
    desired = [a for _, a in project.assistants]
    return sync.plan(project.name, conn.label, desired, state, prune=prune), backend


def plan_task(path: Path | None, target: str | None, prune: bool, as_json: bool,
              verbose: bool, echo: Echo) -> int:
    """Show what sync would change. Exit 0 whatever the diff (``sync --check`` gates CI)."""
    project = load_project(path)
    with connect(project, target, quiet=as_json) as conn:
        result, _ = _plan(project, conn, prune)
    if as_json:
        echo(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
    else:
        for line in sync.render(result, verbose=verbose):
            echo(line)
    return ExitCode.OK


def sync_task(path: Path | None, target: str | None, prune: bool, check: bool,
              only_deletes: bool, echo: Echo) -> int:
    """Apply the plan (or with ``check``, exit 1 when anything would change, writing nothing)."""
    project = load_project(path)
    with connect(project, target) as conn:
        result, backend = _plan(project, conn, prune)
        if only_deletes:
            result.assistants = [c for c in result.assistants if c.action == "delete"]
            result.stores = [c for c in result.stores if c.action == "delete"]
            result.files = [c for c in result.files if c.action == "delete"]
        for line in sync.render(result):
            echo(line)
        if check:
            return ExitCode.FAILED if result.changes else ExitCode.OK
        if not result.changes:
            return ExitCode.OK

        def report(change: sync.Change) -> None:
            label = {"vector_store": "vector store"}.get(change.kind, change.kind)
            past = {"create": "created", "update": "updated", "delete": "deleted"}[change.action]
            if change.kind == "file" and change.action == "create":
                past = "uploaded"
            echo(f"  {sync.SYMBOLS[change.action]} {past} {label} {change.name}")

        echo("Applying:")
        writes = sync.apply(result, backend, project.root, report)
        echo(f"Done: {writes} change{'s' if writes != 1 else ''} applied to {conn.label}.")
    return ExitCode.OK


def import_task(path: Path | None, target: str | None, out: Path | None, names: list[str],
                force: bool, echo: Echo) -> int:
    """Write YAML for remote assistants not yet declared, then adopt them (tag + files)."""
    from orch.importer import import_assistants

    project = load_project(path)
    out = out or project.root / "assistants"
    with connect(project, target) as conn:
        backend = conn.backend()
        state = backend.fetch_state(project.name)
        declared = {name for name, _ in project.assistants}
        imported = import_assistants(backend, state, project.name, project.root, out,
                                     declared, names or None, force)
        if not imported:
            echo("Nothing to import: every assistant on the target is already declared.")
            return ExitCode.OK
        for item in imported:
            echo(f"  wrote {_rel(item.path)} (from {item.remote_id})")
            for note in item.notes:
                echo(f"      note: {note}")
        project = load_project(path)  # the new files must validate like any other
        adopt = {item.name: item.remote_id for item in imported}
        chosen = [a for name, a in project.assistants if name in adopt]
        result = sync.plan(project.name, conn.label, chosen, state, adopt=adopt)
        result.assistants = [c for c in result.assistants if c.name in adopt]
        result.files = [c for c in result.files if c.action == "create"]
        result.stores = [c for c in result.stores if c.action in ("create", "update")]
        writes = sync.apply(result, backend, project.root)
        echo(f"Imported {len(imported)} assistant{'s' if len(imported) != 1 else ''} and "
             f"adopted {'them' if len(imported) != 1 else 'it'} ({writes} write"
             f"{'s' if writes != 1 else ''}); `orch plan` now shows no changes for "
             f"{'them' if len(imported) != 1 else 'it'}.")
    return ExitCode.OK


def _rel(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)
