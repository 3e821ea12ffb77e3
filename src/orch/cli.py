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
      orch validate       check every YAML file, all errors at once
      orch serve          run the embedded Assistants-v2-compatible engine

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
    from orch.config import load_project, validate_path

    if path is not None and path.is_file():
        summary = validate_path(path)
    else:
        project = load_project(path)
        summary = project.summary()
    click.secho(f"✓ {summary}", fg="green")


def _project_options(func):
    """--project-dir and --target, shared by every command that talks to a target."""
    func = click.option(
        "--target", "-t", envvar="ORCH_TARGET",
        help="Target name from orch.yml, or an Assistants-v2 base URL (env ORCH_TARGET). "
             "Default: orch.yml's target, else the embedded engine.",
    )(func)
    return click.option(
        "--project-dir", "-C", type=click.Path(file_okay=False, path_type=Path),
        help="Project directory (default: nearest directory upwards with orch.yml).",
    )(func)


@main.command()
@_project_options
@click.option("--prune", is_flag=True,
              help="Also plan deleting managed assistants no longer declared.")
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
    from orch.tasks import plan_task

    sys.exit(plan_task(project_dir, target, prune, as_json, verbose, click.echo))


@main.command()
@_project_options
@click.option("--check", is_flag=True,
              help="Write nothing; exit 1 when anything would change (a CI drift gate).")
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
    from orch.tasks import sync_task

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
    from orch.tasks import sync_task

    sys.exit(sync_task(project_dir, target, True, False, True, click.echo))


@main.command("import")
@_project_options
@click.argument("names", nargs=-1)
@click.option("--out", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the YAML files (default: the project's assistants/).")
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
    from orch.tasks import import_task

    sys.exit(import_task(project_dir, target, out, list(names), force, click.echo))


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option("--port", default=8000, show_default=True, type=int,
              help="Port (0 picks a free one).")
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
