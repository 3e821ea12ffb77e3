"""Config is code (README: Security), end to end: which commands run project code, what is kept.

A project's handler and ``python:`` modules leave a mark when imported, and hold their code in
the project; read-only commands must never import them, `validate --no-import` neither. A key
in a target's URL must not reach run.json, results.jsonl, the history, a report or stdout.
"""

from __future__ import annotations

import json
import sys
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner

from orch.cli import main
from orch.engine.server import start_engine

MARK = "from pathlib import Path\nPath('imported').open('a').write(__name__ + '\\n')\n"

FILES = {
    "orch.yml": """
        project: trust
        targets:
          embedded: {kind: engine, model: scripted, script: script.yml}
    """,
    "script.yml": "rules: []\ndefault: {reply: ok}\n",
    "tools.py": MARK + "def lookup(city: str) -> str:\n    return city\n",
    "checks.py": MARK + "def short(output):\n    return len(output) < 50\n",
    "assistants/bot.yml": """
        name: bot
        model: gpt-test
        tools:
          - function: {name: lookup, handler: "tools:lookup"}
    """,
    "pipelines/q.yml": """
        name: q
        assistant: bot
        items: [{q: one}]
        steps:
          - prompt: "{{ item.q }}"
            expect: [{python: "checks:short"}]
        report:
          - {template: builtin:markdown, output: out/q.md}
    """,
}


@pytest.fixture
def project(make_project) -> Path:
    return make_project(FILES)


def cli(*args: str):
    """``orch ARGS`` in-process; a traceback that would reach the user fails the test."""
    result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def forget_project_modules(root: Path) -> None:
    """Drop the project's modules from sys.modules, so importing them again leaves a mark."""
    for name, module in list(sys.modules.items()):
        if (getattr(module, "__file__", None) or "").startswith(str(root)):
            del sys.modules[name]
    (root / "imported").unlink(missing_ok=True)


def test_validate_imports_handlers_unless_told_not_to(project):
    ran = cli("validate", "--no-import")
    assert ran.exit_code == 0, ran.output
    assert not (project / "imported").exists()

    ran = cli("validate")
    assert ran.exit_code == 0, ran.output
    assert (project / "imported").read_text().split() == ["tools", "checks"]


def test_read_only_commands_never_import_project_code(project):
    ran = cli("run", "q", "--json")
    assert ran.exit_code == 0, ran.output
    run_id = json.loads(ran.stdout)["run_id"]
    forget_project_modules(project)

    for args in (
        ["history"],
        ["show", run_id],
        ["report", run_id],
        ["report", run_id, "-T", "builtin:json"],
        ["compare", run_id, run_id],
    ):
        assert cli(*args).exit_code == 0, args
    assert not (project / "imported").exists()
    assert not [
        m for m in sys.modules.values() if str(project) in (getattr(m, "__file__", None) or "")
    ]


def test_a_handler_outside_the_project_stops_every_command(project):
    (project / "assistants" / "bot.yml").write_text(
        "name: bot\nmodel: gpt-test\ntools:\n  - function: {name: sh, handler: 'os:system'}\n"
    )
    for args in (["validate"], ["validate", "--no-import"], ["run", "q"], ["history"]):
        ran = cli(*args)
        assert ran.exit_code == 2, args
        assert "module 'os' is not part of the project" in ran.stderr


def test_a_key_in_the_target_url_is_never_recorded(project, tmp_path):
    with start_engine(tmp_path / "engine" / "engine.db", poll_after_ms=10) as engine:
        url = engine.base_url.replace("http://", "http://user:SECRET-KEY@")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            ran = cli("run", "q", "--target", url)
    assert ran.exit_code == 0, ran.output
    run_id = json.loads(cli("history", "--json").stdout)[0]["run_id"]
    recorded = [
        *(project / ".orch" / "runs" / run_id).iterdir(),
        *(project / ".orch").glob("history.db*"),  # the WAL holds the latest writes
        project / "out" / "q.md",
    ]
    assert not [p for p in recorded if b"SECRET-KEY" in p.read_bytes()]
    assert "SECRET-KEY" not in ran.stdout + cli("show", run_id, "--json").stdout
    run_json = json.loads((project / ".orch" / "runs" / run_id / "run.json").read_text())
    assert run_json["target"] == engine.base_url
