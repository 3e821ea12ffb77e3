"""`orch init`: a new project that validates and runs right away, and never clobbers files."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from orch.cli import main
from orch.cli.init import project_name

STARTED = [
    "orch.yml",
    ".gitignore",
    "assistants/geography-tutor.yml",
    "pipelines/capitals.yml",
    "scripts/rehearsal.yml",
    "schemas/orch.schema.json",
    "schemas/assistant.schema.json",
    "schemas/pipeline.schema.json",
    "schemas/script.schema.json",
]


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Invoke the CLI from ``tmp_path`` with a clean environment."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ORCH_TARGET", raising=False)

    def invoke(*args: str):
        return CliRunner().invoke(main, list(args))

    return invoke


def schema_refs(root: Path) -> dict[Path, Path]:
    """Every YAML file's `$schema=` comment, resolved against the file's folder."""
    refs = {}
    for path in root.rglob("*.yml"):
        found = re.search(r"\$schema=(\S+)", path.read_text(encoding="utf-8"))
        assert found, f"{path} has no $schema line"
        refs[path] = (path.parent / found[1]).resolve()
    return refs


def test_init_writes_a_project_that_validates_and_passes(cli, tmp_path: Path, monkeypatch):
    result = cli("init", "my evals")
    assert result.exit_code == 0, result.output
    root = tmp_path / "my evals"
    assert sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) == sorted(
        STARTED
    )
    assert yaml.safe_load((root / "orch.yml").read_text())["project"] == "my-evals"
    assert (root / ".gitignore").read_text().split().count(".orch/") == 1
    assert "out/" in (root / ".gitignore").read_text().split()
    for source, schema in schema_refs(root).items():
        assert schema.is_file(), f"{source}: $schema points at {schema}, which is missing"
        assert schema.parent == root / "schemas"
        kind = "orch" if source.name == "orch.yml" else source.parent.name.rstrip("s")
        assert schema.name == f"{kind}.schema.json"
    assert "cd my evals" in result.output and "orch run capitals" in result.output

    monkeypatch.chdir(root)
    validated = cli("validate")
    assert validated.exit_code == 0, validated.output
    assert "1 assistant, 1 pipeline" in validated.output
    ran = cli("run", "capitals")
    assert ran.exit_code == 0, ran.output
    assert "pipeline capitals: PASSED" in ran.output
    assert "REHEARSAL" in ran.output
    [run_json] = (root / ".orch" / "runs").glob("*/run.json")
    meta = json.loads(run_json.read_text())
    assert meta["scripted"] is True and meta["counts"]["passed"] == 3


def test_the_rehearsal_script_answers_nothing_else(cli, tmp_path: Path):
    """A prompt without a rule gets a reply that fails the check, not an echo that passes."""
    assert cli("init").exit_code == 0
    pipeline = tmp_path / "pipelines" / "capitals.yml"
    text = pipeline.read_text().replace("Kenya?", "Peru?").replace("Nairobi", "Lima")
    pipeline.write_text(text)
    ran = cli("run", "capitals")
    assert ran.exit_code == 1, ran.output
    assert "FAILED 66.7 % < 100 %" in ran.output
    assert "#2 Kenya · step answer: icontains" in ran.output


def test_init_refuses_to_overwrite_and_names_the_files(cli, tmp_path: Path):
    (tmp_path / "orch.yml").write_text("project: mine\n")
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "script.schema.json").write_text("{}")
    result = cli("init")
    assert result.exit_code == 2
    assert "orch.yml" in result.output and "schemas/script.schema.json" in result.output
    assert "--force" in result.output
    assert (tmp_path / "orch.yml").read_text() == "project: mine\n"
    assert not (tmp_path / "pipelines").exists()  # nothing written at all

    forced = cli("init", "--force")
    assert forced.exit_code == 0, forced.output
    assert "project: mine" not in (tmp_path / "orch.yml").read_text()
    assert json.loads((tmp_path / "schemas" / "script.schema.json").read_text())["title"]


def test_init_refuses_a_directory_where_a_file_goes(cli, tmp_path: Path):
    (tmp_path / "orch.yml").mkdir()
    result = cli("init", "--force")
    assert result.exit_code == 2
    assert "orch.yml is a directory" in result.output


def test_init_into_a_file_is_a_usage_error(cli, tmp_path: Path):
    (tmp_path / "taken").write_text("x")
    assert cli("init", "taken").exit_code == 2


@pytest.mark.parametrize(
    ("name", "expected"),
    [("my evals", "my-evals"), ("évals!", "vals"), ("...", "my-project"), ("a.b_c", "a.b_c")],
)
def test_project_name_is_valid_for_orch_yml(tmp_path: Path, name: str, expected: str):
    assert project_name(tmp_path / name) == expected
