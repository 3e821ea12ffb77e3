"""The repository's example project on a target of kind ``agents`` (the engine's Agents API).

The same YAML as on the other kinds: the pipelines whose assistants fit a saved agent pass;
those whose assistants declare what a saved agent has no place for (file_search, temperature)
are refused before anything is sent, each field at its file and line.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from orch.cli import main
from orch.engine.server import start_engine

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("agents-example")
    for name in ("orch.yml", "assistants", "pipelines", "schemas", "tests/scripts"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name)
        else:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, root / name)
    return root


@pytest.fixture(scope="module")
def agents_target(example):
    script = example / "tests/scripts/quickstart.yml"
    with start_engine(example / ".orch/agents-engine.db", script=script) as handle:
        config = (example / "orch.yml").read_text()
        target = (
            f'targets:\n  openai-agents: {{kind: agents, base_url: "{handle.base_url}", '
            "api_key_env: ORCH_EXAMPLE_KEY}\n"
        )
        (example / "orch.yml").write_text(config.replace("targets:\n", target, 1))
        yield "openai-agents"


def run(root: Path, pipeline: str, target: str):
    args = ["run", "--project-dir", str(root), pipeline, "--target", target, "--json"]
    return CliRunner().invoke(main, args, catch_exceptions=False)


@pytest.fixture(autouse=True)
def _env(example, monkeypatch):
    monkeypatch.chdir(example)
    monkeypatch.setenv("ORCH_EXAMPLE_KEY", "unused")
    monkeypatch.delenv("ORCH_TARGET", raising=False)


@pytest.mark.parametrize("pipeline", ["weather", "tutor-multiturn"])
def test_the_pipelines_that_fit_a_saved_agent_pass(example, agents_target, pipeline):
    result = run(example, pipeline, agents_target)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"]["errors"] == 0


REFUSED = {
    "pedro-batch": [
        "assistants/pedro-rater.yml:7: temperature: a target of kind agents has no place for "
        "it: saved agents have no temperature (the Agents API sets none)",
        "assistants/pedro-rater.yml:31: tools[0]: a target of kind agents has no place for it: "
        "saved agents have no file_search tool (no vector stores)",
        "assistants/pedro-rater.yml:34: files.file_search: a target of kind agents has no place "
        "for it: saved agents have no vector stores to search",
    ],
    "quickstart": [
        "assistants/history-tutor.yml:9: temperature: a target of kind agents has no place for "
        "it: saved agents have no temperature (the Agents API sets none)"
    ],
}


@pytest.mark.parametrize("pipeline", sorted(REFUSED))
def test_the_others_are_refused_at_their_file_and_line(example, agents_target, pipeline):
    result = run(example, pipeline, agents_target)
    assert result.exit_code == 2
    assert not (example / ".orch/runs").exists() or not any(
        json.loads(p.read_text()).get("pipeline") == pipeline
        for p in (example / ".orch/runs").glob("*/run.json")
    )  # refused before a run started
    lines = result.stderr.splitlines()
    for expected in REFUSED[pipeline]:
        assert expected in lines, result.stderr


def test_code_interpreter_files_go_to_the_sessions_environment(example, agents_target):
    """sales-chart's CSV is placed in the hosted environment (``environment.files``): the
    analyst's code reads it in the engine's sandbox, so the reply has the computed numbers."""
    result = run(example, "sales-chart", agents_target)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["counts"]["errors"] == 0
    folder = sorted((example / ".orch/runs").iterdir())[-1]
    [item] = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    assert "north: revenue 2400 -> 3800 (+58%)" in json.dumps(item), item
