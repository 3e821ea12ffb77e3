"""Commands that run pipelines: run, retry.

Both build :class:`orch.run.runner.RunOptions` and hand them to :func:`run_pipeline`, which
runs, renders the pipeline's declared reports and prints the summary. The runner (and with it
the SDK) is imported only when a run starts.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

from orch.cli.exits import INTERRUPTED, output_closed
from orch.cli.options import json_option, project_and_target_options
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


@click.command()
@project_and_target_options
@click.argument("pipeline", required=False)
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
@run_options
def run(
    project_dir,
    target,
    pipeline,
    vars_,
    items_limit,
    resume,
    batch,
    shard,
    variants,
    max_cost,
    max_tokens_total,
    concurrency,
    poll,
    no_sync,
    switch_target,
    quiet,
    as_json,
) -> int:
    """Run a pipeline: every item × steps, each item on its own thread.

    PIPELINE is a pipeline name or file (pipelines/x.yml). The assistants it needs are synced
    first (--no-sync makes that a check). Runs stream over SSE; function calls are answered by
    the handlers declared in the assistants' YAML; code-interpreter files are downloaded. Every
    finished item is saved to .orch/runs/<run_id>/results.jsonl and the history before it is
    reported, so an interrupted run resumes with --resume RUN_ID.

    Exit codes: 0 all passed, 1 assertions failed (below pass_rate), 2 errors.

    \b
    Examples:
      orch run pipelines/quickstart.yml
      orch run pedro-batch --items-limit 5 --concurrency 8 --var model_hint=short
      orch run --resume 20261121-220512-3fa2c1
      orch run pedro-batch --shard 2/4            then: orch merge RUN_ID1 RUN_ID2 …
      orch run summarize --variant mini --variant large
    """

    if pipeline is None and not resume:
        raise click.UsageError("name a pipeline (or --resume RUN_ID)")
    if pipeline is not None and resume:
        raise click.UsageError("--resume RUN_ID continues that run's own pipeline: drop PIPELINE")
    if switch_target and not resume:
        raise click.UsageError("--switch-target applies to --resume RUN_ID")
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
    return run_pipeline(project_dir, pipeline, settings, quiet, as_json)


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


def check_vars(given: dict, project: Project, pipeline: Pipeline) -> None:
    """Refuse a --var the pipeline does not use (declared in vars:, or named as vars.NAME).

    Such a var would change nothing, so it is most likely a typo; raises UsageError.
    """
    import difflib

    from orch.project.references import pipeline_vars

    used = pipeline_vars(pipeline, [*dict(project.vars), *dict(pipeline.vars)])
    for name in sorted(set(given) - used):
        close = difflib.get_close_matches(name, sorted(used), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise UsageError(
            f"--var {name}: pipeline {pipeline.name!r} uses no var {name!r} "
            f"({hint}its vars: {', '.join(sorted(used)) or 'none'})"
        )


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
    from orch.results.history import History, strip_userinfo
    from orch.results.reports import render_declared
    from orch.run import progress
    from orch.run.runner import PipelineRunner
    from orch.run.summary import dumps, summary_lines

    project = load_project(path)
    settings.quiet = quiet
    if pipeline_spec is None:  # resuming or retrying: the run knows its pipeline
        history = History(project.root)
        record = history.get(settings.resume)
        history.close()
        pipeline_spec = record.pipeline
    pipeline = find_pipeline(project, pipeline_spec)
    check_vars(settings.vars, project, pipeline)
    silent = quiet or as_json
    reporter = progress.choose(silent)
    say = (lambda _line: None) if silent else (lambda line: click.echo(strip_userinfo(line)))
    summary = PipelineRunner(project, pipeline, settings, reporter, echo=say).run()
    if getattr(reporter, "closed", False):  # the progress's reader went away: the run stopped
        return output_closed(
            f"error: output closed (broken pipe); run {summary.run_id} is interrupted: "
            f"finish it with `orch run --resume {summary.run_id}`"
        )
    if summary.status != "interrupted":
        summary.reports = render_declared(project, pipeline, summary.run_id)
    if as_json:
        click.echo(dumps(summary.to_json()))
    elif not quiet:
        for line in summary_lines(summary):
            click.echo(line)
    killed = summary.status == "interrupted" and not summary.stop_reason  # a cap exits 2
    return INTERRUPTED if killed else summary.exit_code
