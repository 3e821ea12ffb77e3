"""Commands on the project and its target: validate, plan, sync, prune, import.

The bodies load the project, connect to the target, call :mod:`orch.sync` and print; they
return the exit code. Heavy modules (the SDK, the sync core) are imported inside them, so that
``orch --help`` and the read-only commands never pay for them.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path

import click

from orch.cli.options import json_option, project_and_target_options, yes_option
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
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "github", "json"]),
    default="text",
    show_default=True,
    help="github: GitHub Actions annotations (::error file=…,line=…::…) on stdout; "
    "json: {valid, summary, problems} on stdout.",
)
@json_option("Same as --format json.")
def validate(path: Path | None, no_import: bool, fmt: str, as_json: bool) -> int:
    """Check orch.yml, assistants and pipelines against the schemas.

    PATH is a project directory (default: the nearest directory upwards holding orch.yml, else
    the current one) or a single YAML file. Every problem is shown at once as
    ``file:line: field.path: message``; the exit code is 2 when anything is wrong.

    Beyond the schemas, it checks what would otherwise fail only once a run has spent model
    calls: templates naming an item field the items do not have, a step that has not run, an
    undeclared var; invalid JSONPaths; `tool_called` tools the assistant lacks; unknown
    built-in reports. `orch run` makes the same checks before it calls anything.

    Handlers (function tools' `handler:`) and `python:` assertions must be modules of the
    project. Validate imports those modules, and nothing else of the project's, to check that
    they load and to derive parameters from signatures: that runs their code (README:
    Security). --no-import skips the import.

    \b
    Examples:
      orch validate                       the whole project
      orch validate assistants/tutor.yml  one file (cross-file checks still run)
      orch validate --no-import           check an untrusted change without running its code
      orch validate --format github       annotate a pull request's files in GitHub Actions
    """
    from orch.errors import ConfigError
    from orch.project.loading import load_project, validate_path

    fmt = "json" if as_json else fmt
    try:
        if path is not None and path.is_file():
            summary = validate_path(path, import_handlers=not no_import)
        else:
            summary = load_project(path, import_handlers=not no_import).summary()
    except ConfigError as exc:
        if fmt == "text":
            raise  # printed, one line per problem, where every command's errors are
        for line in problem_report(exc.problems, fmt):
            click.echo(line)
        return ExitCode.ERROR
    if fmt == "json":
        click.echo(json.dumps({"valid": True, "summary": summary, "problems": []}))
    else:
        click.secho(f"✓ {summary}", fg="green")
    return ExitCode.OK


def problem_report(problems: list, fmt: str) -> list[str]:
    """Config problems as GitHub workflow commands (one per line), or one JSON document."""
    if fmt == "json":
        found = [
            {"file": p.file, "line": p.line, "field": p.field, "message": p.message}
            for p in problems
        ]
        return [json.dumps({"valid": False, "summary": None, "problems": found})]
    lines = []
    for p in problems:
        where = f"file={_escape(p.file, True)}" + (f",line={p.line}" if p.line else "")
        text = f"{p.field}: {p.message}" if p.field else p.message
        lines.append(f"::error {where},title=orch validate::{_escape(text, False)}")
    return lines


def _escape(text: str, in_property: bool) -> str:
    # GitHub's workflow-command escaping: a newline would end the command, and in a property
    # a ':' or ',' would end the property.
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    return text.replace(":", "%3A").replace(",", "%2C") if in_property else text


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
@yes_option
def sync(project_dir, target, check, prune, yes) -> int:
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
      orch sync --prune --yes       the same in CI (no terminal to confirm the deletes)
    """
    return sync_assistants(
        project_dir, target, prune=prune, check=check, only_deletes=False, yes=yes
    )


@click.command()
@project_and_target_options
@yes_option
def prune(project_dir, target, yes) -> int:
    """Delete managed assistants (and their vector stores and files) no longer declared.

    Same as the delete part of `orch sync --prune`; nothing is created or updated. Objects
    not tagged with this project are never deleted. What will be deleted is listed first and
    confirmed at the terminal; without one (CI), --yes is needed, else nothing is deleted
    (exit 2).

    \b
    Examples:
      orch prune --target azure
      orch prune --target azure --yes     in CI
    """
    return sync_assistants(project_dir, target, prune=True, check=False, only_deletes=True, yes=yes)


@click.command("import")
@project_and_target_options
@click.argument("names", nargs=-1)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Folder for the YAML files, relative to the project root (default: assistants/).",
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
    yes: bool = False,
) -> int:
    """Apply the plan (or with ``check``, exit 1 when anything would change, writing nothing).

    A plan that deletes anything is applied only when confirmed: by ``yes``, or by the user
    at a terminal; otherwise nothing at all is applied and the exit is 2. ``echo`` receives
    every line (default: :func:`say`): bench/sync.py times this path without click around it.
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
        refused = confirm_deletes(result.changes, conn.label, yes) if prune else None
        if refused is not None:
            return refused

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


def confirm_deletes(changes: list, where: str, yes: bool) -> int | None:
    """None when a pruning plan may go ahead, else the exit code to stop with.

    Like terraform's apply: deleting an assistant needs a yes at a terminal, or ``--yes`` (its
    -auto-approve) where there is no terminal to ask. Refused or declined, nothing is applied.
    A plan that deletes no assistant (only orch's own stale uploads, as every sync may) goes
    ahead unasked.
    """
    deletes = [c for c in changes if c.action == "delete"]
    if yes or not any(c.kind == "assistant" for c in deletes):
        return None
    counts: dict[str, int] = {}
    for change in deletes:
        label = LABELS.get(change.kind, change.kind)
        counts[label] = counts.get(label, 0) + 1
    what = ", ".join(f"{n} {label}{'s' if n != 1 else ''}" for label, n in counts.items())
    if not interactive():
        click.echo(
            f"Not deleting {what} on {where}: there is no terminal to confirm it. "
            "Pass --yes to delete without asking (nothing was changed).",
            err=True,
        )
        return ExitCode.ERROR
    if not click.confirm(f"Delete {what} (listed above) on {where}?", default=False):
        click.echo("Cancelled: nothing was changed.", err=True)
        return ExitCode.ERROR
    return None


def interactive() -> bool:
    """Whether a person can answer a question: stdin and stdout are terminals."""
    return sys.stdin.isatty() and sys.stdout.isatty()


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
    out = project.root / (out or "assistants")  # an absolute --out stays as it is
    with connect(project, target) as conn:
        backend = conn.backend()
        state = backend.fetch_state(project.name)
        # a variant's derived assistant is declared by its pipeline, not to be imported
        declared = {name for name, _ in [*project.assistants, *project.variant_assistants()]}
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
