"""Options several commands share, declared once so their names and help stay the same.

Each is a decorator, used like ``click.option``. ``project_and_target_options`` puts
``--project-dir`` before ``--target`` in ``--help``, as every command that talks to a target
lists them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

F = TypeVar("F", bound=Callable[..., object])

project_dir_option = click.option(
    "--project-dir",
    "-C",
    type=click.Path(file_okay=False, path_type=Path),
    help="Project directory (default: nearest directory upwards with orch.yml).",
)

target_option = click.option(
    "--target",
    "-t",
    envvar="ORCH_TARGET",
    help="Target name from orch.yml, or an Assistants-v2 base URL (env ORCH_TARGET). "
    "Default: orch.yml's target, else the embedded engine.",
)


def project_and_target_options(func: F) -> F:
    """Add --project-dir and --target, for every command that talks to a target."""
    return project_dir_option(target_option(func))


def json_option(help: str) -> Callable[[F], F]:
    """A ``--json`` flag (parameter ``as_json``) with this command's own help text."""
    return click.option("--json", "as_json", is_flag=True, help=help)


yes_option = click.option(
    "--yes",
    "-y",
    is_flag=True,
    help="Delete without asking (needed where there is no terminal to confirm, as in CI).",
)
