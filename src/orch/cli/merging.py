"""``orch merge``: join the runs of a pipeline's shards into one run (no model is called).

The work is :func:`orch.results.merging.merge_runs`; this module parses the command line,
renders the pipeline's declared reports for the merged run (as ``orch run`` does), and prints
the summary with the overlaps and gaps found. Like ``orch report``, it imports no project code.
"""

from __future__ import annotations

from pathlib import Path

import click

from orch.cli.options import json_option, project_dir_option


@click.command()
@project_dir_option
@click.argument("runs", nargs=-1, required=True, metavar="RUN_ID…|DIR…")
@json_option("Print the merged run's summary as JSON.")
def merge(project_dir, runs, as_json) -> int:
    """Merge the runs of shards (`orch run --shard i/N`) into one run.

    Each argument is a run id (or unique prefix) of this project's history, or a run folder
    (run.json + results.jsonl, e.g. downloaded CI artifacts). The merged run gets a new id; its
    history row, results, reports and `orch compare` match those of one unsharded run of the
    same items. Items run by several parts (overlaps) and items no part ran (gaps, e.g. a
    missing shard) are reported; gaps leave the run interrupted, and `orch run --resume
    MERGED_ID` runs them.

    Exit codes: as `orch run` for the merged run (0 passed, 1 below pass_rate, 2 errors or gaps).

    \b
    Examples:
      orch merge 20261129-1200-aaaaaa 20261129-1200-bbbbbb
      orch merge artifacts/runs-*/*                run folders downloaded from CI
    """
    return merge_task(project_dir, list(runs), as_json)


def merge_task(path: Path | None, specs: list[str], as_json: bool) -> int:
    """Merge ``specs`` in the project at ``path``; print the summary; return its exit code."""
    from orch.project.loading import load_project
    from orch.results.history import History
    from orch.results.merging import merge_runs
    from orch.results.reports import render_declared
    from orch.run.summary import RunSummary, dumps, summary_lines

    project = load_project(path, import_handlers=False)
    with History(project.root) as history:
        merged = merge_runs(project, history, specs)
        run_dir = history.run_dir(merged.run_id)
    meta = merged.meta
    declared = project.pipeline(meta["pipeline"])
    counts = meta["counts"]
    summary = RunSummary(
        merged.run_id,
        meta["pipeline"],
        meta["status"],
        counts,
        meta["usage"],
        meta["duration_s"],
        run_dir,
        counts["passed"] / counts["total"] if counts["total"] else 1.0,
        declared.pass_rate if declared else 1.0,
    )
    if declared is not None and meta["status"] != "interrupted":
        summary.reports = render_declared(project, declared, merged.run_id)
    if as_json:
        click.echo(dumps({**summary.to_json(), "merge": meta["merge"]}))
        return summary.exit_code
    click.echo(f"Merged {len(specs)} runs into {merged.run_id}.")
    for line in merged.report_lines():
        click.secho(f"  {line}", fg="yellow", err=True)
    for line in summary_lines(summary):
        click.echo(line)
    return summary.exit_code
