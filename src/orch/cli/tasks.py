"""What the sync commands do, between parsing (cli.py) and the core (sync.py, backends).

Each task loads the project, connects to the target, and returns an exit code; output goes
through the ``echo`` callable so the CLI decides about colour and streams.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from orch import sync
from orch.errors import ExitCode
from orch.project.documents import display_path
from orch.project.loading import load_project
from orch.targets.connection import connect

Echo = Callable[[str], None]


def _plan(project, conn, prune: bool) -> tuple[sync.Plan, object]:
    backend = conn.backend()
    state = backend.fetch_state(project.name)
    desired = [a for _, a in project.assistants]
    return sync.plan(
        project.name,
        conn.label,
        desired,
        state,
        prune=prune,
        local_assistants=backend.local_assistants,
    ), backend


def plan_task(
    path: Path | None, target: str | None, prune: bool, as_json: bool, verbose: bool, echo: Echo
) -> int:
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


def sync_task(
    path: Path | None, target: str | None, prune: bool, check: bool, only_deletes: bool, echo: Echo
) -> int:
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


def import_task(
    path: Path | None,
    target: str | None,
    out: Path | None,
    names: list[str],
    force: bool,
    echo: Echo,
) -> int:
    """Write YAML for remote assistants not yet declared, then adopt them (tag + files)."""
    from orch.sync.importing import import_assistants

    project = load_project(path)
    out = out or project.root / "assistants"
    with connect(project, target) as conn:
        backend = conn.backend()
        state = backend.fetch_state(project.name)
        declared = {name for name, _ in project.assistants}
        imported = import_assistants(
            backend, state, project.name, project.root, out, declared, names or None, force
        )
        if not imported:
            echo("Nothing to import: every assistant on the target is already declared.")
            return ExitCode.OK
        for item in imported:
            echo(f"  wrote {display_path(item.path)} (from {item.remote_id})")
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
        echo(
            f"Imported {len(imported)} assistant{'s' if len(imported) != 1 else ''} and "
            f"adopted {'them' if len(imported) != 1 else 'it'} ({writes} write"
            f"{'s' if writes != 1 else ''}); `orch plan` now shows no changes for "
            f"{'them' if len(imported) != 1 else 'it'}."
        )
    return ExitCode.OK


def find_pipeline(project, spec: str):
    """A pipeline by name or by its file path."""
    by_name = project.pipeline(spec)
    if by_name:
        return by_name
    path = Path(spec)
    if path.exists():
        target = path.resolve()
        for _, pipeline in project.pipelines:
            if (project.root / pipeline.source).resolve() == target or Path(
                pipeline.source
            ).resolve() == target:
                return pipeline
    from orch.errors import UsageError

    known = ", ".join(name for name, _ in project.pipelines) or "none"
    raise UsageError(f"no pipeline {spec!r} (pipelines: {known})")


def parse_vars(pairs: list[str]) -> dict:
    """``k=v`` pairs from --var; values are read as YAML scalars (numbers, booleans)."""
    import yaml

    from orch.errors import UsageError

    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--var {pair!r}: expected key=value")
        try:
            parsed = yaml.safe_load(value) if value else ""
        except yaml.YAMLError:
            parsed = value
        out[key.strip()] = parsed if isinstance(parsed, str | int | float | bool) else value
    return out


def run_task(
    path: Path | None, pipeline_spec: str | None, options, quiet: bool, as_json: bool, echo: Echo
) -> int:
    """Run (or resume/retry) a pipeline; print the summary; return its exit code."""
    from orch.results.history import History
    from orch.run import progress
    from orch.run.runner import PipelineRunner, dumps, summary_lines

    project = load_project(path)
    options.quiet = quiet
    if pipeline_spec is None:
        history = History(project.root)
        record = history.get(options.resume)
        history.close()
        pipeline_spec = record.pipeline
    pipeline = find_pipeline(project, pipeline_spec)
    reporter = progress.choose(quiet or as_json)
    say = (lambda _line: None) if (quiet or as_json) else echo
    runner = PipelineRunner(project, pipeline, options, reporter, echo=say)
    summary = runner.run()
    try:
        from orch.results.reports import render_declared
    except ImportError:  # reports arrive with the evaluations issue
        render_declared = None
    if render_declared is not None and summary.status != "interrupted":
        summary.reports = render_declared(project, pipeline, summary.run_id)
    if as_json:
        echo(dumps(summary.to_json()))
    elif not quiet:
        for line in summary_lines(summary):
            echo(line)
    return summary.exit_code


def history_task(
    path: Path | None, limit: int, pipeline: str | None, as_json: bool, echo: Echo
) -> int:
    """List runs, newest first."""
    from orch.results.history import History
    from orch.run.runner import dumps

    project = load_project(path)
    history = History(project.root)
    runs = history.runs(limit=limit, pipeline=pipeline)
    history.close()
    if as_json:
        echo(dumps([r.to_json() for r in runs]))
        return ExitCode.OK
    if not runs:
        echo("No runs yet: start one with `orch run pipelines/<name>.yml`.")
        return ExitCode.OK
    echo(
        f"{'RUN ID':<24} {'PIPELINE':<18} {'STATUS':<12} {'ITEMS':>5} {'PASS':>5} "
        f"{'FAIL':>5} {'ERR':>5} {'TOKENS':>8}  STARTED"
    )
    for r in runs:
        echo(
            f"{r.run_id:<24} {r.pipeline[:18]:<18} {r.status:<12} {r.total:>5} {r.passed:>5} "
            f"{r.failed:>5} {r.errors:>5} {r.prompt_tokens + r.completion_tokens:>8}  "
            f"{r.started_at[:19].replace('T', ' ')}"
        )
    return ExitCode.OK


def show_task(path: Path | None, run_id: str, as_json: bool, echo: Echo) -> int:
    """Show one run: its summary and every item's outcome."""
    from orch.results.history import History
    from orch.run.runner import dumps

    project = load_project(path)
    history = History(project.root)
    record = history.get(run_id)
    items = list(history.items(record.run_id))
    history.close()
    if as_json:
        echo(dumps({**record.to_json(), "items": items}))
        return ExitCode.OK
    meta = record.meta
    echo(f"Run {record.run_id} — pipeline {record.pipeline} on {record.target}: {record.status}")
    echo(
        f"  started {record.started_at}, finished {record.finished_at or '-'}; "
        f"{record.total} items: {record.passed} passed, {record.failed} failed, "
        f"{record.errors} errors; tokens {record.prompt_tokens + record.completion_tokens}"
    )
    if meta.get("scripted"):
        echo("  model: scripted (rehearsal replies, not an AI)")
    for item in items:
        mark = {"passed": "ok", "failed": "FAIL", "error": "ERROR"}[item["status"]]
        echo(f"  {mark:<5} item {item['key']}  thread {item.get('thread_id') or '-'}")
        for step in item.get("steps", []):
            reply = (step.get("output") or "").replace("\n", " ")
            echo(f"        {step['id']}: {reply[:100]}{'…' if len(reply) > 100 else ''}")
            for verdict in step.get("assertions", []):
                if not verdict["passed"]:
                    echo(f"          ✗ {verdict['name']}: {verdict['reason']}")
        if item.get("error"):
            err = item["error"]
            echo(
                f"        error ({err.get('type')}): {err.get('message')} "
                f"[thread {err.get('thread_id')}, run {err.get('run_id')}]"
            )
    return ExitCode.OK
