"""The ``orch`` command line: parse, call the core, turn ``OrchError`` into a message and exit code.

This module is the only place exceptions become exits. Set ``ORCH_RAISE_ERRORS=1`` to let
errors propagate with their tracebacks (useful when debugging orch itself).
"""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import click

from orch import __version__
from orch.errors import ConfigError, OrchError


def _handle_errors(func):
    """Run a command body, mapping ``OrchError`` to one clear message per problem and an exit."""

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except OrchError as exc:
            if os.environ.get("ORCH_RAISE_ERRORS"):
                raise
            if isinstance(exc, ConfigError):
                for problem in exc.problems:
                    click.echo(str(problem), err=True)
                n = len(exc.problems)
                click.secho(f"✗ {n} problem{'s' if n != 1 else ''} found", fg="red", err=True)
            else:
                click.secho(f"error: {exc}", fg="red", err=True)
            sys.exit(exc.exit_code)
        except KeyboardInterrupt:
            if os.environ.get("ORCH_RAISE_ERRORS"):
                raise
            click.secho("interrupted", fg="yellow", err=True)
            sys.exit(130)

    return wrapper


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, "--version", "-V", prog_name="orch")
def main() -> None:
    """orch: assistants as code.

    Declare assistants (model, instructions, tools, files) and pipelines of prompts in YAML,
    keep them in git, reconcile them with a server and run evaluations in CI.

    \b
    A project looks like:
      orch.yml            project name and targets (optional)
      assistants/*.yml    one assistant per file
      pipelines/*.yml     prompts to run against assistants, with expectations and reports

    \b
    Start with:
      orch validate               check every YAML file, all errors at once
      orch plan / orch sync       reconcile the assistants with the target
      orch run pipelines/x.yml    run a pipeline, evaluate it, write its reports
      orch history / orch show    past runs; orch report / orch compare re-render and diff them
      orch serve                  run the embedded Assistants-v2-compatible engine

    With no target configured, sync and run start the embedded engine in-process
    (scripted model, state in .orch/), so everything works offline.

    Exit codes: 0 ok, 1 assertions failed, 2 configuration/usage/infrastructure error.
    """


@main.command()
@click.argument("path", required=False, type=click.Path(path_type=Path))
@_handle_errors
def validate(path: Path | None) -> None:
    """Check orch.yml, assistants and pipelines against the schemas.

    PATH is a project directory (default: the nearest directory upwards holding orch.yml, else
    the current one) or a single YAML file. Every problem is shown at once as
    ``file:line: field.path: message``; the exit code is 2 when anything is wrong.

    \b
    Examples:
      orch validate                       the whole project
      orch validate assistants/tutor.yml  one file (cross-file checks still run)
    """
    from orch.project.loading import load_project, validate_path

    if path is not None and path.is_file():
        summary = validate_path(path)
    else:
        project = load_project(path)
        summary = project.summary()
    click.secho(f"✓ {summary}", fg="green")


def _project_options(func):
    """--project-dir and --target, shared by every command that talks to a target."""
    func = click.option(
        "--target",
        "-t",
        envvar="ORCH_TARGET",
        help="Target name from orch.yml, or an Assistants-v2 base URL (env ORCH_TARGET). "
        "Default: orch.yml's target, else the embedded engine.",
    )(func)
    return click.option(
        "--project-dir",
        "-C",
        type=click.Path(file_okay=False, path_type=Path),
        help="Project directory (default: nearest directory upwards with orch.yml).",
    )(func)


@main.command()
@_project_options
@click.option(
    "--prune", is_flag=True, help="Also plan deleting managed assistants no longer declared."
)
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.option("--verbose", "-v", is_flag=True, help="List unchanged objects too.")
@_handle_errors
def plan(project_dir, target, prune, as_json, verbose) -> None:
    """Show what `orch sync` would change on the target, without changing anything.

    Compares the declared assistants with what the target holds, using only what is on the
    server (orch_project/orch_name/orch_hash metadata), so a fresh checkout plans correctly.
    Shows creates, updates with a field-level diff (instructions as a unified diff), deletes
    (with --prune), drift (objects edited outside orch) and unmanaged objects.

    \b
    Examples:
      orch plan                     against the default target
      orch plan --target azure      against a target from orch.yml
      orch plan --json | jq .changes
    """
    from orch.cli.tasks import plan_task

    sys.exit(plan_task(project_dir, target, prune, as_json, verbose, click.echo))


@main.command()
@_project_options
@click.option(
    "--check",
    is_flag=True,
    help="Write nothing; exit 1 when anything would change (a CI drift gate).",
)
@click.option("--prune", is_flag=True, help="Delete managed assistants no longer declared.")
@_handle_errors
def sync(project_dir, target, check, prune) -> None:
    """Create or update the declared assistants on the target, idempotently.

    Files are uploaded once per content (sha256) and stale uploads removed; file_search files
    go into a managed vector store, waited on until indexed. Only objects tagged with this
    project are ever changed; unmanaged ones are listed and left alone. Running it twice in a
    row makes no writes the second time.

    \b
    Examples:
      orch sync                     apply to the default target
      orch sync --check             CI: fail if the target drifted from the YAML
      orch sync --prune             also delete assistants removed from assistants/
    """
    from orch.cli.tasks import sync_task

    sys.exit(sync_task(project_dir, target, prune, check, False, click.echo))


@main.command()
@_project_options
@_handle_errors
def prune(project_dir, target) -> None:
    """Delete managed assistants (and their vector stores and files) no longer declared.

    Same as the delete part of `orch sync --prune`; nothing is created or updated. Objects
    not tagged with this project are never deleted.

    \b
    Example:
      orch prune --target azure
    """
    from orch.cli.tasks import sync_task

    sys.exit(sync_task(project_dir, target, True, False, True, click.echo))


@main.command("import")
@_project_options
@click.argument("names", nargs=-1)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the YAML files (default: the project's assistants/).",
)
@click.option("--force", is_flag=True, help="Overwrite existing YAML files.")
@_handle_errors
def import_(project_dir, target, names, out, force) -> None:
    """Write YAML for assistants that already exist on a target, and adopt them.

    NAMES (assistant names or ids) limits the import; by default every assistant not yet
    declared is imported. Long instructions go to assistants/prompts/<name>.md (via !file);
    files attached to tools are downloaded under assistants/files/<name>/. The assistants are
    then tagged as managed by this project, so the next `orch plan` shows no changes.

    \b
    Examples:
      orch import --target azure                 everything not yet declared
      orch import --target azure "Math Tutor"    one assistant
    """
    from orch.cli.tasks import import_task

    sys.exit(import_task(project_dir, target, out, list(names), force, click.echo))


def _run_options(func):
    """Options shared by `orch run` and `orch retry`."""
    func = click.option(
        "--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout (no progress)."
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


@main.command()
@_project_options
@click.argument("pipeline", required=False)
@click.option(
    "--var",
    "vars_",
    multiple=True,
    metavar="KEY=VALUE",
    help="Override a template variable (repeatable).",
)
@click.option("--items-limit", type=click.IntRange(1), help="Run only the first N items.")
@click.option("--resume", metavar="RUN_ID", help="Finish an interrupted run: only missing items.")
@_run_options
@_handle_errors
def run(
    project_dir,
    target,
    pipeline,
    vars_,
    items_limit,
    resume,
    concurrency,
    poll,
    no_sync,
    quiet,
    as_json,
) -> None:
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
    """
    from orch.cli.tasks import parse_vars, run_task
    from orch.run.runner import RunOptions

    if pipeline is None and not resume:
        raise click.UsageError("name a pipeline (or --resume RUN_ID)")
    options = RunOptions(
        target=target,
        vars=parse_vars(list(vars_)),
        items_limit=items_limit,
        concurrency=concurrency,
        resume=resume,
        stream=False if poll else None,
        sync=not no_sync,
    )
    sys.exit(run_task(project_dir, pipeline, options, quiet, as_json, click.echo))


@main.command()
@_project_options
@click.argument("run_id")
@_run_options
@_handle_errors
def retry(project_dir, target, run_id, concurrency, poll, no_sync, quiet, as_json) -> None:
    """Run again only the failed and errored items of a past run (same run id).

    Finished items stay as they are; each retried item's new result supersedes the old one.

    \b
    Example:
      orch retry 20261121-220512-3fa2c1
    """
    from orch.cli.tasks import run_task
    from orch.run.runner import RunOptions

    options = RunOptions(
        target=target,
        concurrency=concurrency,
        resume=run_id,
        retry_failed=True,
        stream=False if poll else None,
        sync=not no_sync,
    )
    sys.exit(run_task(project_dir, None, options, quiet, as_json, click.echo))


@main.command()
@click.option(
    "--project-dir",
    "-C",
    type=click.Path(file_okay=False, path_type=Path),
    help="Project directory (default: nearest directory upwards with orch.yml).",
)
@click.option("--limit", "-n", default=20, show_default=True, help="How many runs to list.")
@click.option("--pipeline", help="Only runs of this pipeline.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@_handle_errors
def history(project_dir, limit, pipeline, as_json) -> None:
    """List past runs, newest first.

    \b
    Examples:
      orch history
      orch history --pipeline quickstart --json
    """
    from orch.cli.tasks import history_task

    sys.exit(history_task(project_dir, limit, pipeline, as_json, click.echo))


@main.command()
@click.option(
    "--project-dir",
    "-C",
    type=click.Path(file_okay=False, path_type=Path),
    help="Project directory (default: nearest directory upwards with orch.yml).",
)
@click.argument("run_id")
@click.option("--json", "as_json", is_flag=True, help="Print the run and its items as JSON.")
@_handle_errors
def show(project_dir, run_id, as_json) -> None:
    """Show one run: counts, each item's replies, failed assertions and errors.

    RUN_ID may be a unique prefix.

    \b
    Example:
      orch show 20261121-2205
    """
    from orch.cli.tasks import show_task

    sys.exit(show_task(project_dir, run_id, as_json, click.echo))


@main.command()
@click.option(
    "--project-dir",
    "-C",
    type=click.Path(file_okay=False, path_type=Path),
    help="Project directory (default: nearest directory upwards with orch.yml).",
)
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
@_handle_errors
def report(project_dir, run_id, template, output) -> None:
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

    sys.exit(report_task(project_dir, run_id, template, output, click.echo))


@main.command()
@click.option(
    "--project-dir",
    "-C",
    type=click.Path(file_okay=False, path_type=Path),
    help="Project directory (default: nearest directory upwards with orch.yml).",
)
@click.argument("run_a")
@click.argument("run_b")
@click.option(
    "--markdown",
    "--md",
    "markdown",
    is_flag=True,
    help="Markdown (for a pull-request comment) instead of text.",
)
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file instead of stdout.",
)
@click.option(
    "--fail-on-regression",
    is_flag=True,
    help="Exit 1 when a case that passed in RUN_A fails or errors in RUN_B.",
)
@_handle_errors
def compare(project_dir, run_a, run_b, markdown, as_json, output, fail_on_regression) -> None:
    """Show what changed between two runs: pass→fail, fail→pass, score deltas.

    Cases (item × step) are matched by item key and step id; RUN_A is the baseline, RUN_B the
    new run. Both may be unique prefixes. Reads the history only.

    \b
    Examples:
      orch compare 20261120-0900 20261121-2205
      orch compare 20261120-0900 20261121-2205 --markdown -o out/compare.md
      orch compare 20261120-0900 20261121-2205 --fail-on-regression    a CI gate
    """
    from orch.results.compare import compare_task

    sys.exit(
        compare_task(
            project_dir, run_a, run_b, markdown, as_json, output, fail_on_regression, click.echo
        )
    )


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port", default=8000, show_default=True, type=int, help="Port (0 picks a free one)."
)
@click.option(
    "--db",
    type=click.Path(path_type=Path),
    default=Path(".orch/engine.db"),
    show_default=True,
    help="SQLite file holding the engine's state; it survives restarts.",
)
@click.option(
    "--model",
    "model",
    type=click.Choice(["scripted", "openai-chat"]),
    default="scripted",
    show_default=True,
    help="What answers runs: deterministic rules, or any Chat Completions server.",
)
@click.option(
    "--script",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Rules for the scripted model (schemas/script.schema.json); built-in default if omitted.",
)
@click.option(
    "--upstream-base-url",
    envvar="ORCH_UPSTREAM_BASE_URL",
    help="Chat Completions base URL for --model openai-chat (e.g. http://localhost:11434/v1).",
)
@click.option(
    "--upstream-api-key-env",
    default="OPENAI_API_KEY",
    show_default=True,
    help="Name of the environment variable holding the upstream API key.",
)
@click.option(
    "--api-key",
    envvar="ORCH_ENGINE_API_KEY",
    help="Require 'Authorization: Bearer KEY' (env ORCH_ENGINE_API_KEY). "
    "Needed for non-loopback hosts.",
)
@click.option(
    "--fault-rate",
    type=click.FloatRange(0.0, 1.0),
    default=0.0,
    help="Fail this fraction of requests with 429/500/dropped connections (for resilience tests).",
)
@_handle_errors
def serve(**options) -> None:
    """Run the embedded Assistants-v2-compatible engine.

    Scripts written against OpenAI's Assistants API work unchanged by pointing the SDK's
    ``base_url`` at it:

    \b
      orch serve --port 8000 &
      python -c "from openai import OpenAI
      c = OpenAI(base_url='http://127.0.0.1:8000/v1', api_key='x')
      print(c.beta.assistants.create(model='scripted', name='demo').id)"

    \b
    Examples:
      orch serve                                   scripted model, built-in replies
      orch serve --script tests/scripts/quickstart.yml --port 0
      orch serve --model openai-chat --upstream-base-url http://localhost:11434/v1
    """
    from orch.engine.server import serve_forever

    serve_forever(**options)


if __name__ == "__main__":  # pragma: no cover
    main()
