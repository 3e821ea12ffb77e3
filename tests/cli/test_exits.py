"""The error funnel: what commands return or raise becomes one message and one exit code.

A throwaway group built on the same class checks each mapping alone; the real commands then show
it end to end (a config problem, a usage error, an interrupt, an engine that cannot start).
"""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

import orch.engine.errors
from orch.cli import main
from orch.cli.exits import ExitCodeGroup
from orch.errors import ConfigError, NotFoundError, Problem, UsageError

RAISED: dict[str, BaseException] = {
    "usage": UsageError("no run 'nope'"),
    "not-found": NotFoundError("no such assistant"),
    "config": ConfigError(
        [
            Problem("assistants/b.yml", 3, "model", "required"),
            Problem("assistants/a.yml", 7, "tools[0]", "unknown tool 'x'"),
        ]
    ),
    "config-one": ConfigError(Problem("orch.yml", 1, "", "not a mapping")),
    "interrupt": KeyboardInterrupt(),
    "engine": orch.engine.errors.EngineSetupError("cannot listen on 127.0.0.1:80000"),
    "bug": RuntimeError("a bug in orch"),
}


@click.group(cls=ExitCodeGroup)
def toy() -> None:
    """A group with the CLI's exit handling and commands that misbehave on demand."""


@toy.command()
@click.argument("what")
def fail(what: str) -> None:
    """Raise the exception named WHAT."""
    raise RAISED[what]


@toy.command("return")
@click.argument("code", type=int, required=False)
def return_(code: int | None) -> int | None:
    """Return CODE (nothing when omitted)."""
    return code


@toy.command()
def misuse() -> None:
    """Raise click's own usage error, which click reports."""
    raise click.UsageError("name a pipeline")


def invoke(group: click.Group, *args: str, **env: str):
    return CliRunner().invoke(group, list(args), env=env or None)


@pytest.fixture(autouse=True)
def _no_raise(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.delenv("ORCH_RAISE_ERRORS", raising=False)


def test_an_orch_error_is_one_line_and_exit_2():
    result = invoke(toy, "fail", "usage")
    assert result.exit_code == 2
    assert result.stderr == "error: no run 'nope'\n"
    assert result.stdout == ""
    assert "Traceback" not in result.output


def test_a_subclass_exits_with_its_own_code(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(NotFoundError, "exit_code", 3)
    result = invoke(toy, "fail", "not-found")
    assert result.exit_code == 3
    assert result.stderr == "error: no such assistant\n"


def test_a_config_error_lists_every_problem_then_counts_them():
    result = invoke(toy, "fail", "config")
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        "assistants/a.yml:7: tools[0]: unknown tool 'x'",
        "assistants/b.yml:3: model: required",
        "✗ 2 problems found",
    ]


def test_one_config_problem_is_counted_in_the_singular():
    result = invoke(toy, "fail", "config-one")
    assert result.stderr.splitlines() == ["orch.yml:1: not a mapping", "✗ 1 problem found"]


def test_an_interrupt_exits_130():
    result = invoke(toy, "fail", "interrupt")
    assert result.exit_code == 130
    assert result.stderr == "interrupted\n"


def test_the_engine_failing_to_start_is_a_usage_error():
    result = invoke(toy, "fail", "engine")
    assert result.exit_code == 2
    assert result.stderr == "error: cannot listen on 127.0.0.1:80000\n"


def test_a_bug_keeps_its_traceback():
    result = invoke(toy, "fail", "bug")
    assert isinstance(result.exception, RuntimeError)
    assert result.exit_code == 1


@pytest.mark.parametrize("what", ["usage", "config", "engine"])
def test_orch_raise_errors_lets_errors_propagate(what: str):
    result = invoke(toy, "fail", what, ORCH_RAISE_ERRORS="1")
    assert result.exception is RAISED[what]
    assert result.stderr == ""


def test_orch_raise_errors_leaves_an_interrupt_to_click():
    result = invoke(toy, "fail", "interrupt", ORCH_RAISE_ERRORS="1")
    assert result.exit_code == 1
    assert "interrupted" not in result.stderr
    assert "Aborted!" in result.stderr


@pytest.mark.parametrize(("args", "code"), [(["1"], 1), (["0"], 0), ([], 0)])
def test_a_returned_code_is_the_exit_code(args: list[str], code: int):
    assert invoke(toy, "return", *args).exit_code == code


def test_click_usage_errors_stay_clicks():
    result = invoke(toy, "misuse")
    assert result.exit_code == 2
    assert "Error: name a pipeline" in result.stderr


# --- the real commands ------------------------------------------------------------------------


def test_validate_lists_the_problems(make_project):
    make_project({"assistants/bad.yml": "name: bad\ntemperature: 9\n"})
    result = invoke(main, "validate")
    assert result.exit_code == 2
    lines = result.stderr.splitlines()
    assert lines[-1] == f"✗ {len(lines) - 1} problem{'s' if len(lines) != 2 else ''} found"
    assert all(line.startswith("assistants/bad.yml:") for line in lines[:-1])
    assert "Traceback" not in result.output


def test_an_unknown_run_is_one_line(make_project):
    make_project({"orch.yml": "project: demo\n"})
    result = invoke(main, "show", "nope")
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ")
    assert len(result.stderr.splitlines()) == 1


def test_ctrl_c_in_a_command_exits_130(make_project, monkeypatch: pytest.MonkeyPatch):
    import orch.project.loading

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    make_project({"orch.yml": "project: demo\n"})
    monkeypatch.setattr(orch.project.loading, "load_project", interrupted)
    result = invoke(main, "history")
    assert result.exit_code == 130
    assert result.stderr == "interrupted\n"


def test_serve_refusing_a_public_bind_is_exit_2(monkeypatch: pytest.MonkeyPatch, tmp_path):
    monkeypatch.delenv("ORCH_ENGINE_API_KEY", raising=False)
    result = invoke(main, "serve", "--host", "0.0.0.0", "--port", "0", "--db", str(tmp_path / "e"))
    assert result.exit_code == 2
    assert result.stderr.startswith("error: refusing to listen on 0.0.0.0")
    assert len(result.stderr.splitlines()) == 1
