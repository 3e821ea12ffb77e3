"""Every command answers --help, the group lists them all, and loading the CLI stays light."""

from __future__ import annotations

import subprocess
import sys

import pytest
from click.testing import CliRunner

from orch.cli import main

COMMANDS = [
    "compare",
    "history",
    "import",
    "import-eval",
    "init",
    "merge",
    "plan",
    "prune",
    "report",
    "retry",
    "run",
    "serve",
    "show",
    "sync",
    "validate",
    "view",
]


def test_the_group_holds_every_command():
    assert sorted(main.commands) == COMMANDS


def test_top_level_help_lists_every_command():
    result = CliRunner().invoke(main, ["--help"])
    assert result.exit_code == 0, result.output
    listed = result.output.split("Commands:", 1)[1].split()
    assert all(name in listed for name in COMMANDS)


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_has_help(name: str):
    result = CliRunner().invoke(main, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"Usage: main {name} ")
    first_line = main.commands[name].help.splitlines()[0]
    assert first_line in " ".join(result.output.split())  # click wraps it to the terminal


@pytest.mark.parametrize("flag", ["-h", "--help"])
def test_short_and_long_help_flags(flag: str):
    result = CliRunner().invoke(main, ["sync", flag])
    assert result.exit_code == 0
    assert "--project-dir" in result.output
    assert "--target" in result.output


def test_shared_options_are_declared_alike():
    def option(command: str, name: str):
        return next(p for p in main.commands[command].params if p.name == name)

    for name in ("project_dir", "target"):
        first = option("plan", name)
        for command in ("sync", "prune", "import", "run", "retry"):
            other = option(command, name)
            assert (other.opts, other.help, other.envvar) == (first.opts, first.help, first.envvar)
    for command in ("history", "show", "report", "compare", "view"):
        assert option(command, "project_dir").help == option("plan", "project_dir").help


def test_version():
    result = CliRunner().invoke(main, ["--version"])
    assert result.exit_code == 0
    assert result.output.startswith("orch, version ")


HEAVY = (
    "openai",
    "jinja2",
    "uvicorn",
    "orch.engine",
    "orch.project",
    "orch.results",
    "orch.run",
    "orch.sync",
    "orch.targets",
)


def test_loading_the_cli_imports_no_command_body():
    # every command's module is loaded to build the group: `orch --help` must not pay for them
    code = "import sys, orch.cli; print('\\n'.join(sorted(sys.modules)))"
    loaded = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert [m for m in loaded if any(m == h or m.startswith(h + ".") for h in HEAVY)] == []
