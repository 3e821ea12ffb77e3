"""The repository's example project: every pipeline passes on both kinds of target.

The same YAML runs on the embedded engine through the Assistants v2 wire (the default target)
and on a target of kind `responses` pointing at the engine's /v1/responses.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from orch.cli import main
from orch.engine.server import start_engine

REPO = Path(__file__).resolve().parents[1]
PIPELINES = sorted(p.stem for p in (REPO / "pipelines").glob("*.yml"))


@pytest.fixture(scope="module")
def example(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("example")
    for name in ("orch.yml", "assistants", "pipelines", "schemas", "tests/scripts"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, root / name)
        else:
            (root / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, root / name)
    return root


@pytest.fixture(scope="module")
def responses_engine(example):
    with start_engine(
        example / ".orch/responses-engine.db", script=example / "tests/scripts/quickstart.yml"
    ) as handle:
        yield handle


def run(root: Path, *args: str):
    return CliRunner().invoke(
        main, ["run", "--project-dir", str(root), *args], catch_exceptions=False
    )


def test_the_examples_validate(example):
    result = CliRunner().invoke(main, ["validate", str(example)])
    assert result.exit_code == 0, result.output
    assert "5 assistants, 5 pipelines" in result.output


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_example_pipeline_on_the_assistants_wire(example, pipeline, monkeypatch):
    monkeypatch.chdir(example)
    result = run(example, pipeline)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_example_pipeline_on_a_responses_target(example, responses_engine, pipeline, monkeypatch):
    monkeypatch.chdir(example)
    monkeypatch.setenv("ORCH_EXAMPLE_KEY", "unused")
    config = (example / "orch.yml").read_text()
    if "responses-local" not in config:
        target = (
            f"targets:\n  responses-local: {{kind: responses, base_url: "
            f'"{responses_engine.base_url}", api_key_env: ORCH_EXAMPLE_KEY}}\n'
        )
        (example / "orch.yml").write_text(config.replace("targets:\n", target, 1))
    result = run(example, pipeline, "--target", "responses-local")
    assert result.exit_code == 0, result.output
