"""The ``orch`` command group: its help, and the command families registered on it.

Commands live with their bodies in one module per family (:mod:`~orch.cli.project`,
:mod:`~orch.cli.run`, :mod:`~orch.cli.results`, :mod:`~orch.cli.serve`); what they return or
raise becomes the exit in :mod:`orch.cli.exits`, the only place that happens.
"""

from __future__ import annotations

import os
from pathlib import Path

import click

from orch import __version__
from orch.cli.exits import ExitCodeGroup
from orch.cli.init import init
from orch.cli.merging import merge
from orch.cli.migration import import_eval
from orch.cli.project import import_, plan, prune, sync, validate
from orch.cli.results import compare, history, report, show
from orch.cli.run import retry, run
from orch.cli.serve import serve
from orch.cli.view import view


@click.group(
    cls=ExitCodeGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, "--version", "-V", prog_name="orch")
@click.option(
    "--project-dir",
    "-C",
    "project_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    help="Run as if orch was started in DIR (like git -C), for every command: "
    "its project is the nearest directory upwards from DIR with orch.yml.",
)
def main(project_dir: Path | None) -> None:
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
      orch init my-evals          a new project that runs offline right away
      orch validate               check every YAML file, all errors at once
      orch plan / orch sync       reconcile the assistants with the target
      orch run pipelines/x.yml    run a pipeline, evaluate it, write its reports
      orch history / orch show    past runs; orch report / orch compare re-render and diff them
      orch view                   browse past runs in a local web page (read-only)
      orch serve                  run the embedded Assistants-v2-compatible engine
      orch import-eval EVAL.json  an OpenAI eval definition as a pipeline

    With no target configured, sync and run start the embedded engine in-process
    (scripted model, state in .orch/), so everything works offline.

    Paths in configs and in options (--db, --out, -o) are relative to the project root.

    Exit codes: 0 ok, 1 assertions failed, 2 configuration/usage/infrastructure error.
    """
    if project_dir is not None:
        os.chdir(project_dir)  # what git -C does: every later relative path starts there


def register(group: click.Group, *commands: click.Command) -> None:
    """Add ``commands`` to ``group`` (``--help`` lists them alphabetically)."""
    for command in commands:
        group.add_command(command)


register(main, init, validate, plan, sync, prune, import_, import_eval)
register(main, run, retry, merge)
register(main, history, show, report, compare, view)
register(main, serve)


if __name__ == "__main__":  # pragma: no cover
    main()
