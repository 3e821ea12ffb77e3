"""Read-only commands over past runs: history, show, report, compare.

They read ``.orch/`` and never call a model or a target, nor run project code: the project is
loaded without importing its handler or ``python:`` modules (a pull request's YAML cannot make
`orch history` run anything). What they need is imported inside each body, so a command starts
fast and ``orch --help`` loads none of it.
"""

from __future__ import annotations

from pathlib import Path

import click

from orch.cli.options import json_option, project_dir_option
from orch.errors import ExitCode

REPLY_WIDTH = 100  # characters of each step's prompt and reply that `orch show` prints


@click.command()
@project_dir_option
@click.option(
    "--limit",
    "-n",
    default=20,
    show_default=True,
    type=click.IntRange(1),
    help="How many runs to list (at least 1).",
)
@click.option("--pipeline", help="Only runs of this pipeline.")
@json_option("Print JSON.")
def history(project_dir, limit, pipeline, as_json) -> int:
    """List past runs, newest first.

    \b
    Examples:
      orch history
      orch history --pipeline quickstart --json
    """
    return list_runs(project_dir, limit, pipeline, as_json)


@click.command()
@project_dir_option
@click.argument("run_id", required=False)
@json_option("Print the run and its items as JSON.")
def show(project_dir, run_id, as_json) -> int:
    """Show one run (the latest without RUN_ID): each item's prompts, replies and what failed.

    RUN_ID may be a unique prefix.

    \b
    Examples:
      orch show                  the latest run
      orch show 20261121-2205
    """
    return show_run(project_dir, run_id, as_json)


@click.command()
@project_dir_option
@click.argument("run_id")
@click.option(
    "--template",
    "-T",
    metavar="TEMPLATE",
    help="builtin:markdown|html|junit|json or a Jinja template file. Default: the "
    "pipeline's `report:` entries (builtin:markdown when it has none).",
)
@click.option(
    "--output",
    "-o",
    metavar="PATH",
    help="Write here (a Jinja template over the run, relative to the project root); "
    "'-' or omitted with --template: print to stdout.",
)
def report(project_dir, run_id, template, output) -> int:
    """Render reports for a past run from the history, without calling any model.

    RUN_ID may be a unique prefix. Without --template, the pipeline's `report:` entries are
    written again (handy after fixing a template). Templates see the context described in the
    README (run, pipeline, assistant, steps, items, assertions, usage).

    \b
    Examples:
      orch report 20261121-2205                          re-render the declared reports
      orch report 20261121-2205 -T builtin:html -o out/run.html
      orch report 20261121-2205 -T reports/summary.md.j2 print a user template
    """
    from orch.results.reports import report_task

    return report_task(project_dir, run_id, template, output, click.echo)


FAIL_ON_REGRESSION = ("any", "significant")


class CompareCommand(click.Command):
    """``orch compare``, whose ``--fail-on-regression`` may stand alone anywhere (``any``).

    Click would take the word after a bare ``--fail-on-regression`` as its value (a run id
    before it, ``orch compare --fail-on-regression A B``, would be refused), so the bare flag is
    written ``--fail-on-regression=any`` before parsing, unless a value follows it.
    """

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        """Parse ``args`` with each bare ``--fail-on-regression`` given its value."""
        out: list[str] = []
        for i, arg in enumerate(args):
            if arg == "--fail-on-regression" and (
                i + 1 == len(args) or args[i + 1] not in FAIL_ON_REGRESSION
            ):
                arg = "--fail-on-regression=any"
            out.append(arg)
        return super().parse_args(ctx, out)


@click.command(cls=CompareCommand)
@project_dir_option
@click.argument("run_a")
@click.argument("run_b", required=False)
@click.option(
    "--variants",
    nargs=2,
    metavar="A B",
    help="Compare two variants of the one run RUN_A (its pipeline's variants:), A the "
    "baseline, item by item; give no RUN_B.",
)
@click.option(
    "--markdown",
    "--md",
    "markdown",
    is_flag=True,
    help="Markdown (for a pull-request comment) instead of text.",
)
@json_option("Print the comparison as JSON.")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of stdout.",
)
@click.option(
    "--fail-on-regression",
    type=click.Choice(FAIL_ON_REGRESSION),
    help="Exit 1 on a regression. `any` (the bare flag): a case that passed in RUN_A fails or "
    "errors in RUN_B. `significant`: RUN_B's pass rate is lower and the test over items says "
    "chance does not explain the drop (p < 0.05).",
)
def compare(
    project_dir, run_a, run_b, variants, markdown, as_json, output, fail_on_regression
) -> int:
    """Show what changed between two runs: pass→fail, fail→pass, score deltas.

    Cases (item × step) are matched by item key and step id; RUN_A is the baseline, RUN_B the
    new run. Both may be unique prefixes. Reads the history only.

    Each pass rate comes with its 95 % confidence interval (Wilson), and the change in pass
    rate is tested over items: McNemar's exact test when both runs hold the same items (each
    item is its own control), else a two-proportion z-test. "significant" means p < 0.05: on a
    handful of items even a large drop may be chance.

    \b
    Examples:
      orch compare 20261120-0900 20261121-2205
      orch compare 20261120-0900 20261121-2205 --markdown -o out/compare.md
      orch compare 20261120-0900 20261121-2205 --fail-on-regression    a CI gate
      orch compare BASE NEW --fail-on-regression=significant    gate on real drops only
      orch compare 20261121-2205 --variants base mini    two variants of one run
    """
    from orch.results.compare import compare_task

    if (run_b is None) == (not variants):
        raise click.UsageError("compare RUN_A with RUN_B, or two variants of RUN_A: --variants A B")
    return compare_task(
        project_dir,
        run_a,
        run_b,
        markdown,
        as_json,
        output,
        fail_on_regression,
        click.echo,
        variants=tuple(variants) if variants else None,
    )


def list_runs(path: Path | None, limit: int, pipeline: str | None, as_json: bool) -> int:
    """Print the runs, newest first, as a table or JSON (with each run's outcome)."""
    from orch.project.loading import load_project
    from orch.results.history import History
    from orch.results.outcomes import duration, outcome, required_rate
    from orch.results.statistics import format_interval, wilson_interval
    from orch.run.summary import dumps

    project = load_project(path, import_handlers=False)
    history = History(project.root)
    runs = history.runs(limit=limit, pipeline=pipeline)
    history.close()
    rows = [(r, outcome(r, required_rate(project, r))) for r in runs]
    # the pass rate's 95 % interval (Wilson), from the counts the history holds
    cis = [wilson_interval(min(r.passed, r.total), r.total) for r in runs]
    if as_json:
        rows_json = [
            {**r.to_json(), **o, "pass_rate_ci95": list(ci)}
            for (r, o), ci in zip(rows, cis, strict=True)
        ]
        click.echo(dumps(rows_json))
        return ExitCode.OK
    if not runs:
        click.echo("No runs yet: start one with `orch run pipelines/<name>.yml`.")
        return ExitCode.OK
    click.echo(
        f"{'RUN ID':<24} {'PIPELINE':<18} {'OUTCOME':<11} {'PASS %':>6} {'95% CI':>7} {'ITEMS':>5} "
        f"{'FAIL':>5} {'ERR':>5} {'TIME':>7} {'TOKENS':>8}  STARTED"
    )
    for (r, o), ci in zip(rows, cis, strict=True):
        click.echo(
            f"{r.run_id:<24} {r.pipeline[:18]:<18} {o['outcome'].upper():<11} "
            f"{o['pass_rate'] * 100:>5.1f}% {format_interval(*ci, ''):>7} "
            f"{r.total:>5} {r.failed:>5} {r.errors:>5} "
            f"{duration(r.meta.get('duration_s')):>7} {r.prompt_tokens + r.completion_tokens:>8}  "
            f"{r.started_at[:19].replace('T', ' ')}"
        )
    return ExitCode.OK


def show_run(path: Path | None, run_id: str | None, as_json: bool) -> int:
    """Print one run (the latest when ``run_id`` is None): its summary and every item."""
    from orch.project.loading import load_project
    from orch.results.history import History
    from orch.results.outcomes import outcome, required_rate
    from orch.run.summary import dumps

    project = load_project(path, import_handlers=False)
    with History(project.root) as history:
        if run_id is None:
            latest = history.runs(limit=1)
            if not latest:
                click.echo("No runs yet: start one with `orch run pipelines/<name>.yml`.")
                return ExitCode.OK
            run_id = latest[0].run_id
        record = history.get(run_id)
        items = list(history.items(record.run_id))
    result = outcome(record, required_rate(project, record))
    why = f": {record.meta['stop_reason']}" if record.meta.get("stop_reason") else ""  # cost cap
    if as_json:
        click.echo(dumps({**record.to_json(), **result, "items": items}))
        return ExitCode.OK
    click.echo(
        f"Run {record.run_id} — pipeline {record.pipeline} on {record.target}: "
        f"{result['outcome'].upper()} ({record.status}{why})"
    )
    if record.meta.get("message"):  # a cost cap's, or a merge's overlaps and gaps
        click.echo(f"  {record.meta['message']}")
    click.echo(
        f"  started {record.started_at}, finished {record.finished_at or '-'}; "
        f"{record.total} items: {record.passed} passed, {record.failed} failed, "
        f"{record.errors} errors; tokens {record.prompt_tokens + record.completion_tokens}"
    )
    if record.meta.get("scripted"):
        click.echo("  model: scripted (rehearsal replies, not an AI)")
    for item in items:
        show_item(item)
    return ExitCode.OK


def show_item(item: dict) -> None:
    """Print one item of `orch show`: status, label, each step's prompt and reply, what failed."""
    from orch.run.progress import item_label

    mark = {"passed": "ok", "failed": "FAIL", "error": "ERROR"}[item["status"]]
    label = item_label(item.get("item"), item["key"])
    click.echo(f"  {mark:<5} {label}  thread {item.get('thread_id') or '-'}")
    for step in item.get("steps", []):
        click.echo(f"        {step['id']} > {clip(step.get('prompt'))}")
        click.echo(f"        {' ' * len(step['id'])} < {clip(step.get('output'))}")
        for verdict in step.get("assertions", []):
            if not verdict["passed"]:
                click.echo(f"          ✗ {verdict['name']}: {verdict['reason']}")
    if item.get("error"):
        err = item["error"]
        click.echo(
            f"        error ({err.get('type')}): {err.get('message')} "
            f"[thread {err.get('thread_id')}, run {err.get('run_id')}]"
        )


def clip(text: str | None) -> str:
    """``text`` on one line, cut to REPLY_WIDTH characters."""
    flat = (text or "").replace("\n", " ")
    return flat[:REPLY_WIDTH] + ("…" if len(flat) > REPLY_WIDTH else "")
