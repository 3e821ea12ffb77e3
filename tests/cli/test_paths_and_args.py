"""Smaller CLI edges (issue 15 point 6): -C on every command, paths against the project root,
and arguments refused before anything runs (--var nobody uses, PIPELINE with --resume, -n -5).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from orch.cli import main

PROJECT = {
    "orch.yml": "project: demo\n",
    "assistants/bot.yml": "name: bot\nmodel: gpt-4o\n",
    "pipelines/p.yml": """\
        name: p
        assistant: bot
        vars: {tone: dry}
        items: [{q: a}]
        steps:
          - prompt: "{{ item.q }} {{ vars.tone }} {{ vars.extra | default('') }}"
        """,
    "scripts/s.yml": "default: {reply: ok}\n",
}


def invoke(*args: str, **kwargs):
    return CliRunner().invoke(main, list(args), **kwargs)


@pytest.mark.parametrize(
    "args",
    [["validate"], ["history"], ["plan", "--json"], ["validate", "pipelines/p.yml"]],
)
def test_group_option_C_works_for_every_command(args, make_project, tmp_path, monkeypatch):
    root = make_project(PROJECT)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)

    result = invoke("-C", str(root), *args)

    assert result.exit_code == 0, result.output
    assert Path.cwd() == root  # as if orch was started there, like git -C


def test_group_option_C_needs_a_directory(make_project):
    make_project(PROJECT)
    result = invoke("-C", "no/such/dir", "validate")
    assert result.exit_code == 2
    assert "does not exist" in result.stderr


def capture_serve(monkeypatch) -> dict:
    import orch.engine.server as server

    seen: dict = {}
    monkeypatch.setattr(server, "serve_forever", lambda **options: seen.update(options))
    return seen


def test_serve_db_and_script_resolve_against_the_project_root(make_project, monkeypatch):
    root = make_project(PROJECT)
    monkeypatch.chdir(root / "pipelines")
    seen = capture_serve(monkeypatch)

    result = invoke("serve", "--script", "scripts/s.yml")

    assert result.exit_code == 0, result.output
    assert seen["db"] == root / ".orch" / "engine.db"
    assert seen["script"] == root / "scripts" / "s.yml"
    assert invoke("serve", "--db", "/tmp/x.db").exit_code == 0
    assert seen["db"] == Path("/tmp/x.db")  # an absolute path stays as it is


def test_serve_script_not_found_in_the_project(make_project, monkeypatch):
    make_project(PROJECT)
    seen = capture_serve(monkeypatch)

    result = invoke("serve", "--script", "scripts/none.yml")

    assert result.exit_code == 2
    assert "no such file" in result.stderr
    assert seen == {}


def test_var_the_pipeline_does_not_use_is_refused(make_project):
    root = make_project(PROJECT)

    result = invoke("run", "p", "--var", "tnoe=wet")

    assert result.exit_code == 2, result.output
    assert "--var tnoe: pipeline 'p' uses no var 'tnoe' (did you mean 'tone'?" in result.stderr
    assert not (root / ".orch" / "runs").exists()  # refused before any run started


@pytest.mark.parametrize("var", ["tone=wet", "extra=!"])
def test_var_declared_or_named_is_accepted(var, make_project):
    make_project(PROJECT)
    result = invoke("run", "p", "--var", var, "--json")
    assert result.exit_code == 0, result.output


def test_pipeline_and_resume_together_are_refused(make_project):
    make_project(PROJECT)
    result = invoke("run", "p", "--resume", "20261129-000000-abcdef")
    assert result.exit_code == 2
    assert "--resume RUN_ID continues that run's own pipeline: drop PIPELINE" in result.stderr


@pytest.mark.parametrize("limit", ["-5", "0"])
def test_history_limit_must_be_positive(limit, make_project):
    make_project(PROJECT)
    result = invoke("history", "-n", limit)
    assert result.exit_code == 2
    assert "x>=1" in result.stderr


def test_shell_completion_as_the_readme_documents_it():
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text(encoding="utf-8")
    assert 'eval "$(_ORCH_COMPLETE=bash_source orch)"' in readme
    env = {"_ORCH_COMPLETE": "bash_complete", "COMP_WORDS": "orch pr", "COMP_CWORD": "1"}

    result = CliRunner().invoke(main, [], env=env, prog_name="orch")

    assert result.exit_code == 0
    assert "plain,prune" in result.output.splitlines()
