"""Commands that run pipelines: run, retry.

Both build :class:`orch.run.runner.RunOptions` and hand them to :func:`run_pipeline`, which
runs, renders the pipeline's declared reports and prints the summary. ``orch run A B …`` runs
several pipelines one after the other on one connection (:func:`run_several`), and
``--dry-run`` only renders what a run would send (:func:`preview_pipelines`). The runner (and
with it the SDK) is imported only when a run starts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from orch.cli.options import json_option, project_and_target_options
from orch.cli.runs import (
    execute,
    exit_code,
    preview_pipelines,
    report,
    report_closed,
    run_several,
)
from orch.errors import UsageError

if TYPE_CHECKING:
    from orch.project.model import Pipeline, Project
    from orch.run.runner import RunOptions

F = TypeVar("F", bound=Callable[..., object])


def run_settings(target, concurrency, poll: bool, no_sync: bool, **more) -> RunOptions:
    """The runner's options from the flags `orch run` and `orch retry` share."""
    from orch.run.runner import RunOptions

    return RunOptions(
        target=target,
        concurrency=concurrency,
        stream=False if poll else None,
        sync=not no_sync,
        **more,
    )


def run_options(func: F) -> F:
    """Add the options shared by `orch run` and `orch retry`."""
    func = json_option("Print the summary as JSON on stdout (no progress).")(func)
    func = click.option(
        "--switch-target",
        is_flag=True,
        help="Resuming or retrying: continue the run on --target although it started on "
        "another one (recorded in the run). Without it, a run stays on its own target.",
    )(func)
    func = click.option("--quiet", "-q", is_flag=True, help="No progress, no summary.")(func)
    func = click.option(
        "--no-sync", is_flag=True, help="Do not sync the assistants first; fail if they differ."
    )(func)
    func = click.option(
        "--poll", is_flag=True, help="Poll runs instead of streaming them (SSE is the default)."
    )(func)
    return click.option(
        "--concurrency",
        "-c",
        type=click.IntRange(1, 256),
        help="Items in flight at once (default: the pipeline's).",
    )(func)


def complete_pipelines(ctx: click.Context, _param, incomplete: str) -> list[str]:
    """Shell completion for PIPELINE: the names the project's pipelines/*.yml declare.

    Read with a regex, not by loading the project: completion runs at every Tab, and a
    half-edited file must not stop it. The project is found as every command finds it
    (-C, else the nearest directory upwards with orch.yml).
    """
    import re

    start = Path(ctx.params.get("project_dir") or ".").resolve()
    root = next((d for d in (start, *start.parents) if (d / "orch.yml").is_file()), start)
    names = []
    for path in sorted((root / "pipelines").glob("*.y*ml")):
        try:
            found = re.search(r"^name:\s*['\"]?([^'\"#\s]+)", path.read_text("utf-8"), re.M)
        except (OSError, UnicodeDecodeError):
            continue
        if found and found.group(1).startswith(incomplete):
            names.append(found.group(1))
    return names


@click.command()
@project_and_target_options
@click.argument("pipelines", nargs=-1, metavar="[PIPELINE]...", shell_complete=complete_pipelines)
@click.option(
    "--var",
    "vars_",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a template variable (repeatable).",
)
@click.option("--items-limit", type=click.IntRange(1), help="Run only the first N items.")
@click.option(
    "--resume",
    metavar="RUN_ID",
    help="Finish an interrupted run: only missing items, on the target it started on.",
)
@click.option(
    "--batch",
    is_flag=True,
    help="Send the requests through the Batch API (responses or engine targets): one batch "
    "per step round, batch pricing; --resume re-attaches to a batch in flight.",
)
@click.option(
    "--shard",
    metavar="i/N",
    help="Run only shard i of N (1-based; a stable hash of each item's key decides); "
    "auto/N takes i from JOB_COMPLETION_INDEX. Join the shards with `orch merge`.",
)
@click.option(
    "--variant",
    "variants",
    multiple=True,
    metavar="NAME",
    help="Run only this variant of the pipeline's variants: (repeatable; default: all). "
    "Each item runs once per variant; reports show them side by side.",
)
@click.option(
    "--max-cost",
    type=click.FloatRange(min=0, min_open=True),
    metavar="USD",
    help="Start no new item once the run's spend (orch.yml prices:) reaches USD; the run "
    "ends interrupted (cost cap), exit 2. Overrides the pipeline's max_cost.",
)
@click.option(
    "--max-tokens-total",
    type=click.IntRange(1),
    metavar="N",
    help="Like --max-cost, in tokens (prompt + completion); overrides max_tokens_total.",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Call no model: print every prompt, instruction and attachment (path, size) the run "
    "would send, item by item (--items-limit, --shard, --variant and repeat select them as in "
    "a run); an earlier step's reply shows as <output of step ID>. Syncs, uploads and records "
    "nothing; a template or attachment a run would fail on exits 2 with file:line. --json: "
    "one JSON document.",
)
@run_options
def run(
    project_dir,
    target,
    pipelines,
    vars_,
    items_limit,
    resume,
    batch,
    shard,
    variants,
    max_cost,
    max_tokens_total,
    dry_run,
    concurrency,
    poll,
    no_sync,
    switch_target,
    quiet,
    as_json,
) -> int:
    """Run pipelines: every item × steps, each item on its own thread.

    PIPELINE is a pipeline name or file (pipelines/x.yml); several run one after the other,
    each its own run, once all are checked and the assistants they need synced (--no-sync makes
    that a check). Runs stream over SSE; function calls are answered by the handlers declared in
    the assistants' YAML; code-interpreter files are downloaded. Every finished item is saved to
    .orch/runs/<run_id>/results.jsonl and the history before it is reported, so an interrupted
    run resumes with --resume RUN_ID.

    Exit codes: 0 passed, 1 assertions failed (below pass_rate), 2 errors; several: the worst.

    \b
    Examples:
      orch run pipelines/quickstart.yml
      orch run quickstart weather                 two runs, one exit code
      orch run quickstart --dry-run --items-limit 2
      orch run pedro-batch --items-limit 5 --concurrency 8 --var model_hint=short
      orch run --resume 20261121-220512-3fa2c1
      orch run pedro-batch --shard 2/4            then: orch merge RUN_ID1 RUN_ID2 …
      orch run summarize --variant mini --variant large
    """
    check_arguments(pipelines, resume, switch_target, dry_run, max_cost, max_tokens_total, variants)
    settings = run_settings(
        target,
        concurrency,
        poll,
        no_sync,
        vars=parse_vars(list(vars_)),
        items_limit=items_limit,
        resume=resume,
        switch_target=switch_target,
        batch=batch,
        shard=parse_shard(shard, resume),
        variants=tuple(variants),
        max_cost=max_cost,
        max_tokens_total=max_tokens_total,
    )
    if dry_run or len(pipelines) > 1:
        return run_or_preview(project_dir, list(pipelines), settings, dry_run, quiet, as_json)
    return run_pipeline(project_dir, next(iter(pipelines), None), settings, quiet, as_json)


def run_or_preview(
    path: Path | None,
    specs: list[str],
    settings: RunOptions,
    dry_run: bool,
    quiet: bool,
    as_json: bool,
) -> int:
    """Several pipelines' runs, or (``dry_run``) the preview of one or more; its exit code."""
    settings.quiet = quiet
    project, pipelines = resolve_pipelines(path, specs, settings.vars)
    act = preview_pipelines if dry_run else run_several
    return act(project, pipelines, settings, quiet, as_json)


def check_arguments(
    pipelines: tuple[str, ...],
    resume: str | None,
    switch_target: bool,
    dry_run: bool,
    max_cost: float | None,
    max_tokens_total: int | None,
    variants: tuple[str, ...],
) -> None:
    """Refuse (click.UsageError, exit 2) flag combinations that cannot mean anything."""
    if not pipelines and not resume:
        raise click.UsageError("name a pipeline (or --resume RUN_ID)")
    if pipelines and resume:
        raise click.UsageError("--resume RUN_ID continues that run's own pipeline: drop PIPELINE")
    if switch_target and not resume:
        raise click.UsageError("--switch-target applies to --resume RUN_ID")
    if dry_run and resume:
        raise click.UsageError("--dry-run shows a new run's prompts: drop --resume")
    twice = sorted({p for p in pipelines if pipelines.count(p) > 1})
    if twice:
        raise click.UsageError(f"pipeline {twice[0]!r} is named twice")
    if variants and len(pipelines) > 1:
        raise click.UsageError("--variant names one pipeline's variants: run it on its own")
    capped = max_cost is not None or max_tokens_total is not None
    if capped and len(pipelines) > 1 and not dry_run:
        raise click.UsageError(
            "--max-cost / --max-tokens-total cap one run, and several pipelines are several "
            "runs: set max_cost / max_tokens_total in each pipeline's YAML, or run them one "
            "at a time"
        )


@click.command()
@project_and_target_options
@click.argument("run_id")
@run_options
def retry(
    project_dir, target, run_id, concurrency, poll, no_sync, switch_target, quiet, as_json
) -> int:
    """Run again only the failed and errored items of a past run (same run id).

    Finished items stay as they are; each retried item's new result supersedes the old one.

    \b
    Example:
      orch retry 20261121-220512-3fa2c1
    """

    settings = run_settings(
        target,
        concurrency,
        poll,
        no_sync,
        resume=run_id,
        retry_failed=True,
        switch_target=switch_target,
    )
    return run_pipeline(project_dir, None, settings, quiet, as_json)


def find_pipeline(project: Project, spec: str) -> Pipeline:
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
    known = ", ".join(name for name, _ in project.pipelines) or "none"
    raise UsageError(f"no pipeline {spec!r} (pipelines: {known})")


def parse_shard(spec: str | None, resume: str | None):
    """``--shard i/N`` or ``auto/N`` as a :class:`orch.run.shards.Shard` (UsageError if not).

    None without ``--shard``; refused with ``--resume``, since a resumed run keeps its shard.
    """
    if spec is None:
        return None
    if resume:
        raise click.UsageError("--shard: a resumed run keeps its own shard")
    from orch.run.shards import parse_shard as parse

    return parse(spec)


def parse_vars(pairs: list[str]) -> dict:
    """``k=v`` pairs from --var; values are read as YAML scalars (numbers, booleans)."""
    import yaml

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


def check_vars(given: dict, project: Project, *pipelines: Pipeline) -> None:
    """Refuse a --var no pipeline uses (declared in its vars:, or named as vars.NAME).

    Such a var would change nothing, so it is most likely a typo; raises UsageError.
    """
    import difflib

    from orch.project.references import pipeline_vars

    used: set[str] = set()
    for pipeline in pipelines:
        used |= pipeline_vars(pipeline, [*dict(project.vars), *dict(pipeline.vars)])
    names = ", ".join(repr(p.name) for p in pipelines)
    who = f"pipeline {names} uses" if len(pipelines) == 1 else f"pipelines {names} use"
    for name in sorted(set(given) - used):
        close = difflib.get_close_matches(name, sorted(used), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise UsageError(
            f"--var {name}: {who} no var {name!r} "
            f"({hint}{'its' if len(pipelines) == 1 else 'their'} vars: "
            f"{', '.join(sorted(used)) or 'none'})"
        )


def resolve_pipelines(
    path: Path | None, specs: list[str], given_vars: dict
) -> tuple[Project, list[Pipeline]]:
    """The project and every pipeline named, all found and checked before any runs.

    The project is loaded (and with it every pipeline validated) once; an unknown name or a
    --var no pipeline uses is a UsageError, so a bad last pipeline stops the command before
    the first has spent anything.
    """
    from orch.project.loading import load_project

    project = load_project(path)
    pipelines = [find_pipeline(project, spec) for spec in specs]
    check_vars(given_vars, project, *pipelines)
    return project, pipelines


def run_pipeline(
    path: Path | None,
    pipeline_spec: str | None,
    settings: RunOptions,
    quiet: bool,
    as_json: bool,
) -> int:
    """Run (or resume/retry) a pipeline; print the summary; return its exit code.

    An interrupted run (Ctrl-C, SIGTERM) exits 130 after its summary; one whose progress
    output was closed (a broken pipe) exits 2 quietly. Either is recorded as interrupted and
    resumable.
    """
    from orch.project.loading import load_project
    from orch.results.history import History

    project = load_project(path)
    settings.quiet = quiet
    if pipeline_spec is None:  # resuming or retrying: the run knows its pipeline
        history = History(project.root)
        record = history.get(settings.resume)
        history.close()
        pipeline_spec = record.pipeline
    pipeline = find_pipeline(project, pipeline_spec)
    check_vars(settings.vars, project, pipeline)
    summary, closed = execute(project, pipeline, settings, quiet or as_json)
    if closed:  # the progress's reader went away: the run stopped
        return report_closed(summary)
    report(summary, quiet, as_json)
    return exit_code(summary)
