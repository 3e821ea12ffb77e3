"""Deleting is confirmed: `orch prune` and `orch sync --prune` list the deletes, then ask.

Without a terminal to ask (CI, a pipe), they need --yes (terraform's -auto-approve); without
it they exit 2 and change nothing at all, as the engine's request counts show. At a terminal,
"n" cancels (exit 2, nothing changed) and "y" deletes.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from openai import OpenAI

from orch.cli import main
from orch.cli import project as project_cli
from orch.engine.server import EngineHandle

from .conftest import Orch, writes

TUTOR = "name: tutor\nmodel: gpt-4o\ninstructions: Explain step by step.\n"
GRADER = "name: grader\nmodel: gpt-4o-mini\n"


@pytest.fixture
def stale(make_project, engine: EngineHandle, orch: Orch):
    """A project synced with two assistants, then one removed from assistants/."""
    root = make_project(
        {
            "orch.yml": "project: demo\n",
            "assistants/tutor.yml": TUTOR,
            "assistants/grader.yml": GRADER,
        }
    )
    assert orch("sync", "--target", engine.base_url).exit_code == 0
    (root / "assistants/grader.yml").unlink()
    make_project({"assistants/tutor.yml": TUTOR.replace("step by step", "briefly")})
    engine.reset_stats()
    return root


def names(sdk: OpenAI) -> list[str]:
    return sorted(a.name for a in sdk.beta.assistants.list(limit=100).data)


@pytest.mark.parametrize("command", [["prune"], ["sync", "--prune"]])
def test_without_a_terminal_deleting_needs_yes(command, stale, engine, sdk, orch: Orch):
    ran = orch(*command, "--target", engine.base_url)

    assert ran.exit_code == 2, ran.stdout + ran.stderr
    assert "  - delete    assistant grader  (no longer declared)" in ran.stdout.splitlines()
    assert "Not deleting 1 assistant on" in ran.stderr
    assert "Pass --yes" in ran.stderr
    assert writes(engine.stats()) == {}  # nothing deleted, nor (sync) updated
    assert names(sdk) == ["grader", "tutor"]
    assert (
        "step by step"
        in [a for a in sdk.beta.assistants.list().data if a.name == "tutor"][0].instructions
    )


@pytest.mark.parametrize("command", [["prune"], ["sync", "--prune"]])
def test_yes_deletes_without_asking(command, stale, engine, sdk, orch: Orch):
    ran = orch(*command, "-y", "--target", engine.base_url)

    assert ran.exit_code == 0, ran.stderr
    assert "  - deleted assistant grader" in ran.stdout.splitlines()
    assert names(sdk) == ["tutor"]


@pytest.mark.parametrize(
    ("answer", "code", "left"), [("n\n", 2, ["grader", "tutor"]), ("y\n", 0, ["tutor"])]
)
def test_at_a_terminal_it_asks(answer, code, left, stale, engine, sdk, monkeypatch):
    monkeypatch.setattr(project_cli, "interactive", lambda: True)

    ran = CliRunner().invoke(main, ["prune", "--target", engine.base_url], input=answer)

    assert ran.exit_code == code, ran.output
    assert "Delete 1 assistant (listed above) on" in ran.stdout
    assert names(sdk) == left
    if code:
        assert "Cancelled: nothing was changed." in ran.stderr
        assert writes(engine.stats()) == {}


def test_nothing_to_delete_asks_nothing(make_project, engine, orch: Orch):
    make_project({"orch.yml": "project: demo\n", "assistants/tutor.yml": TUTOR})

    ran = orch("sync", "--prune", "--target", engine.base_url)

    assert ran.exit_code == 0, ran.stderr
    assert ran.stderr == ""
