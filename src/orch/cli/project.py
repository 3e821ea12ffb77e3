"""Commands on the project and its target: validate, plan, sync, prune, import.

The bodies load the project, connect to the target, call :mod:`orch.sync` and print; they
return the exit code. Heavy modules (the SDK, the sync core) are imported inside them, so that
``orch --help`` and the read-only commands never pay for them.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import click

from orch.cli.options import json_option, project_and_target_options
from orch.errors import ExitCode

Echo = Callable[[str], None]


def say(line: str) -> None:
    """Print ``line`` on stdout without the userinfo of any URL in it (a key in a base_url)."""
    from orch.results.history import strip_userinfo

    click.echo(strip_userinfo(line))


PAST = {"create": "created", "update": "updated", "delete": "deleted"}
LABELS = {"vector_store": "vector store"}


@click.command()
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option(
    "--no-import",
    is_flag=True,
    help="Do not import handler and python: modules; only check they are files of the project.",
)
def validate(path: Path | None, no_import: bool) -> None:
    """Check orch.yml, assistants and pipelines against the schemas.

    PATH is a project directory (default: the nearest directory upwards holding orch.yml, else
    the current one) or a single YAML file. Every problem is shown at once as
    ``file:line: field.path: message``; the exit code is 2 when anything is wrong.

    Handlers (function tools' `handler:`) and `python:` assertions must be modules of the
    project. Validate imports those modules, and nothing else of the project's, to check that
    they load and to derive parameters from signatures: that runs their code (README:
    Security). --no-import skips the import.

    \b
    Examples:
      orch validate                       the whole project
      orch validate assistants/tutor.yml  one file (cross-file checks still run)
      orch validate --no-import           check an untrusted change without running its code
    """
    from orch.project.loading import load_project, validate_path

    if path is not None and path.is_file():
        summary = validate_path(path, import_handlers=not no_import)
    else:
        project = load_project(path, import_handlers=not no_import)
        summary = project.summary()
    click.secho(f"✓ {summary}", fg="green")


@click.command()
@project_and_target_options
@click.option(
    "--prune", is_flag=True, help="Also plan deleting managed assistants no longer declared."
)
@json_option("Print the plan as JSON.")
@click.option("--verbose", "-v", is_flag=True, help="List unchanged objects too.")
def plan(project_dir, target, prune, as_json, verbose) -> int:
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
    return show_plan(project_dir, target, prune, as_json, verbose)


@click.command()
@project_and_target_options
@click.option(
    "--check",
    is_flag=True,
    help="Write nothing; exit 1 when anything would change (a CI drift gate).",
)
@click.option("--prune", is_flag=True, help="Delete managed assistants no longer declared.")
def sync(project_dir, target, check, prune) -> int:
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
    return sync_assistants(project_dir, target, prune=prune, check=check, only_deletes=False)


@click.command()
@project_and_target_options
def prune(project_dir, target) -> int:
    """Delete managed assistants (and their vector stores and files) no longer declared.

    Same as the delete part of `orch sync --prune`; nothing is created or updated. Objects
    not tagged with this project are never deleted.

    \b
    Example:
      orch prune --target azure
    """
    return sync_assistants(project_dir, target, prune=True, check=False, only_deletes=True)


@click.command("import")
@project_and_target_options
@click.argument("names", nargs=-1)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the YAML files (default: the project's assistants/).",
)
@click.option("--force", is_flag=True, help="Overwrite existing YAML files.")
def import_(project_dir, target, names, out, force) -> int:
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
    return import_remote(project_dir, target, out, list(names), force)


def show_plan(
    path: Path | None, target: str | None, prune: bool, as_json: bool, verbose: bool
) -> int:
    """Print what sync would change. Exit 0 whatever the diff (``sync --check`` gates CI)."""
    from orch.project.loading import load_project
    from orch.sync import render
    from orch.sync.workflow import plan_project
    from orch.targets.connection import connect

    project = load_project(path)
    with connect(project, target, quiet=as_json) as conn:
        result = plan_project(project, conn, prune)
    if as_json:
        say(json.dumps(result.to_json(), indent=2, ensure_ascii=False))
    else:
        for line in render(result, verbose=verbose):
            say(line)
    return ExitCode.OK


def sync_assistants(
    path: Path | None,
    target: str | None,
    prune: bool,
    check: bool,
    only_deletes: bool,
    echo: Echo | None = None,
) -> int:
    """Apply the plan (or with ``check``, exit 1 when anything would change, writing nothing).

    ``echo`` receives every line (default: :func:`say`): bench/sync.py times this path without
    click around it.
    """
    echo = echo or say
    from orch.project.loading import load_project
    from orch.sync import SYMBOLS, Change, apply, render
    from orch.sync.workflow import keep_deletes, plan_project
    from orch.targets.connection import connect

    project = load_project(path)
    with connect(project, target) as conn:
        backend = conn.backend()
        result = plan_project(project, conn, prune)
        if only_deletes:
            keep_deletes(result)
        for line in render(result):
            echo(line)
        if check:
            return ExitCode.FAILED if result.changes else ExitCode.OK
        if not result.changes:
            return ExitCode.OK

        def report(change: Change) -> None:
            label = LABELS.get(change.kind, change.kind)
            past = PAST[change.action]
            if change.kind == "file" and change.action == "create":
                past = "uploaded"
            echo(f"  {SYMBOLS[change.action]} {past} {label} {change.name}")

        echo("Applying:")
        writes = apply(result, backend, project.root, report)
        echo(f"Done: {writes} change{'s' if writes != 1 else ''} applied to {conn.label}.")
    return ExitCode.OK


def import_remote(
    path: Path | None, target: str | None, out: Path | None, names: list[str], force: bool
) -> int:
    """Write YAML for remote assistants not yet declared, then adopt them (tag + files)."""
    from orch.project.documents import display_path
    from orch.project.loading import load_project
    from orch.sync.importing import import_assistants
    from orch.sync.workflow import adopt
    from orch.targets.connection import connect

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
            click.echo("Nothing to import: every assistant on the target is already declared.")
            return ExitCode.OK
        for item in imported:
            click.echo(f"  wrote {display_path(item.path)} (from {item.remote_id})")
            for note in item.notes:
                click.echo(f"      note: {note}")
        project = load_project(path)  # the new files must validate like any other
        ids = {item.name: item.remote_id for item in imported}
        writes = adopt(project, conn, state, ids)
        click.echo(describe_adoption(len(imported), writes))
    return ExitCode.OK


def describe_adoption(count: int, writes: int) -> str:
    """The last line of ``orch import``: how many were imported and adopted, with what writes."""
    them = "them" if count != 1 else "it"
    return (
        f"Imported {count} assistant{'s' if count != 1 else ''} and adopted {them} ({writes} "
        f"write{'s' if writes != 1 else ''}); `orch plan` now shows no changes for {them}."
    )
