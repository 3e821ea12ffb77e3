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
