"""What `orch run` does with pipelines it has resolved: run one, run several, or preview.

:mod:`orch.cli.run` parses the command line, loads the project and finds the pipelines (all of
them, before anything runs); these functions run them and print what a user reads. Several
pipelines share one connection to the target, whose assistants are synced (or, with
``--no-sync``, checked) once for all of them before the first run, so a second pipeline whose
assistants a target refuses stops the command before the first has spent a model call. Each
pipeline is its own run (run id, summary, reports); a last line gives the overall outcome, and
the exit code is the worst run's. A dry run renders what the runs would send
(:mod:`orch.run.preview`) and sends nothing.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from orch.cli.exits import INTERRUPTED, output_closed
from orch.errors import ConfigError, ExitCode, OrchError, UsageError

if TYPE_CHECKING:
    from orch.project.model import Pipeline, Project
    from orch.run.runner import RunOptions
    from orch.run.summary import RunSummary
    from orch.targets.registry import Connection

#: outcome words, worst first: the overall outcome of several runs is the worst of theirs
SEVERITY = ("interrupted", "error", "failed", "passed")


def execute(
    project: Project,
    pipeline: Pipeline,
    settings: RunOptions,
    silent: bool,
    conn: Connection | None = None,
) -> tuple[RunSummary, bool]:
    """Run ``pipeline`` (on ``conn`` when given) and render its declared reports.

    Returns the summary and whether the progress output was closed under the run (a broken
    pipe, which stops the run as Ctrl-C does).
    """
    from orch.results.reports import render_declared
    from orch.run import progress
    from orch.run.runner import PipelineRunner

    reporter = progress.choose(silent)
    summary = PipelineRunner(project, pipeline, settings, reporter, echo=speaker(silent)).run(conn)
    closed = bool(getattr(reporter, "closed", False))
    if not closed and summary.status != "interrupted":
        summary.reports = render_declared(project, pipeline, summary.run_id)
    return summary, closed


def speaker(silent: bool) -> Callable[[str], None]:
    """How a run says what it does (``Synced …``): echoed without URL userinfo, or not at all."""
    from orch.results.history import strip_userinfo

    return (lambda _line: None) if silent else (lambda line: click.echo(strip_userinfo(line)))


def report_closed(summary: RunSummary) -> int:
    """Exit 2 quietly, saying on stderr how to finish the run the closed output stopped."""
    return output_closed(
        f"error: output closed (broken pipe); run {summary.run_id} is interrupted: "
        f"finish it with `orch run --resume {summary.run_id}`"
    )


def report(summary: RunSummary, quiet: bool, as_json: bool) -> None:
    """Print a run's summary: JSON, the lines for humans, or (quiet) nothing."""
    from orch.run.summary import dumps, summary_lines

    if as_json:
        click.echo(dumps(summary.to_json()))
    elif not quiet:
        for line in summary_lines(summary):
            click.echo(line)


def exit_code(summary: RunSummary) -> int:
    """A run's exit: 130 when killed (Ctrl-C, SIGTERM), else its summary's (a cap exits 2)."""
    killed = summary.status == "interrupted" and not summary.stop_reason
    return INTERRUPTED if killed else summary.exit_code


def run_several(
    project: Project, pipelines: list[Pipeline], settings: RunOptions, quiet: bool, as_json: bool
) -> int:
    """Run ``pipelines`` one after the other; print each summary, then the overall outcome.

    The exit code is the worst run's: 2 when any errored (or hit a cap, or could not start),
    else 1 when any failed, else 0. A run killed by Ctrl-C stops the command (exit 130) and
    the pipelines after it do not run.
    """
    from orch.run.preparation import needed_assistants, prepare
    from orch.targets.connection import connect

    settings.quiet = quiet
    check_caps(pipelines, settings)
    outcomes: list[dict[str, Any]] = []
    with connect(project, settings.target, quiet=quiet) as conn:
        needed = sorted({n for p in pipelines for n in needed_assistants(project, p)})
        prepare(project, conn, needed, settings.sync, speaker(quiet or as_json))
        for pipeline in pipelines:
            if outcomes and outcomes[-1]["exit_code"] == INTERRUPTED:
                outcomes.append({"pipeline": pipeline.name, "outcome": "not run"})
                continue
            try:
                options = dataclasses.replace(settings, vars=dict(settings.vars))
                summary, gone = execute(project, pipeline, options, quiet or as_json, conn)
            except OrchError as exc:  # this pipeline's; the others may run
                outcomes.append(_failed_to_run(pipeline, exc, quiet or as_json))
                continue
            if gone:
                return report_closed(summary)
            if not as_json:
                report(summary, quiet, as_json)
            outcomes.append({**summary.to_json(), "exit_code": exit_code(summary)})
    code = max((o["exit_code"] for o in outcomes if "exit_code" in o), default=ExitCode.OK)
    if as_json:
        click.echo(json.dumps({"runs": outcomes, **overall(outcomes, code)}, indent=2))
    elif not quiet:
        click.echo("")
        click.echo(overall_line(outcomes, code))
    return code


def check_caps(pipelines: list[Pipeline], settings: RunOptions) -> None:
    """Refuse up front what a later run would refuse only once the earlier ones have run.

    A batch run cannot honour a cost cap (its rounds hold every item at once), so a capped
    pipeline among several with --batch is a UsageError before the first run starts.
    """
    capped = [p.name for p in pipelines if (p.max_cost, p.max_tokens_total) != (None, None)]
    if settings.batch and capped:
        raise UsageError(
            f"pipeline {capped[0]!r} caps its spend (max_cost / max_tokens_total), and a batch "
            "run submits every item of a round at once; drop --batch, or run it on its own"
        )


def _failed_to_run(pipeline: Pipeline, exc: OrchError, silent: bool) -> dict[str, Any]:
    """The outcome of a pipeline whose run could not start, said on stderr unless silent."""
    from orch.results.history import strip_userinfo

    message = strip_userinfo(str(exc))
    if not silent:
        click.secho(f"error: pipeline {pipeline.name}: {message}", fg="red", err=True)
    return {"pipeline": pipeline.name, "outcome": "error", "error": message, "exit_code": 2}


def overall(outcomes: list[dict[str, Any]], code: int) -> dict[str, Any]:
    """The overall outcome word (the worst run's) and the exit code, for ``--json``."""
    words = [o["outcome"] for o in outcomes if o["outcome"] in SEVERITY]
    worst = min(words, key=SEVERITY.index, default="passed")
    return {"outcome": worst, "exit_code": code}


def overall_line(outcomes: list[dict[str, Any]], code: int) -> str:
    """``Overall: FAILED — 3 pipelines: 2 passed, 1 failed (weather); exit 1``."""
    counts: dict[str, list[str]] = {}
    for o in outcomes:
        counts.setdefault(o["outcome"], []).append(o["pipeline"])
    parts = []
    for word in (*reversed(SEVERITY), "not run"):
        names = counts.get(word, [])
        if names:
            who = "" if word == "passed" else f" ({', '.join(names)})"
            parts.append(f"{len(names)} {word}{who}")
    worst = overall(outcomes, code)["outcome"].upper()
    return f"Overall: {worst} — {len(outcomes)} pipelines: {', '.join(parts)}; exit {code}"


def preview_pipelines(
    project: Project, pipelines: list[Pipeline], settings: RunOptions, quiet: bool, as_json: bool
) -> int:
    """Print what runs of ``pipelines`` would send, without sending, syncing or recording.

    Returns 0 when every prompt and attachment renders; else the problems are printed (on
    stderr as ``file:line: field: message``, or in the JSON document) and it returns 2.
    """
    from orch.project.variants import choose_variants
    from orch.run.preview import Preview, item_lines
    from orch.targets.connection import resolve_target

    target = resolve_target(project, settings.target)
    found, documents = [], []
    for pipeline in pipelines:
        preview = Preview(
            project,
            pipeline,
            target,
            settings.vars,
            settings.items_limit,
            settings.shard,
            choose_variants(pipeline, settings.variants),
        )
        items, prompts = [], 0
        if not (quiet or as_json):
            click.echo(_preview_header(pipeline, target))
        for item in preview.items():
            prompts += len(item.steps)
            if as_json:
                items.append(item.to_json())
            elif not quiet:
                click.echo("\n".join(item_lines(item)))
        problems = preview.problems()
        found += problems
        if as_json:
            documents.append(_preview_json(pipeline, items, problems))
        elif not quiet:
            click.echo(f"{prompts} prompt{'s' if prompts != 1 else ''} rendered; none sent.\n")
    if as_json:
        document = {"dry_run": True, "target": target.name, "pipelines": documents}
        click.echo(json.dumps({**document, "valid": not found}, indent=2, ensure_ascii=False))
        return ExitCode.ERROR if found else ExitCode.OK
    if found:
        raise ConfigError(found)
    return ExitCode.OK


def _preview_header(pipeline: Pipeline, target) -> str:
    return (
        f"Dry run of pipeline {pipeline.name} ({pipeline.source}) for target {target.name} "
        f"(kind {target.kind}): nothing is sent, synced, uploaded or recorded."
    )


def _preview_json(pipeline: Pipeline, items: list[dict], problems: list) -> dict[str, Any]:
    return {
        "pipeline": pipeline.name,
        "file": pipeline.source,
        "items": items,
        "problems": [
            {"file": p.file, "line": p.line, "field": p.field, "message": p.message}
            for p in problems
        ],
    }
