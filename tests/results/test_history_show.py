"""`orch history` columns (outcome, pass rate, duration) and `orch show` of the latest run."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
from click.testing import CliRunner

from orch.cli import main
from orch.results.outcomes import duration, outcome


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ORCH_TARGET", raising=False)

    def invoke(*args: str):
        return CliRunner().invoke(main, list(args))

    return invoke


def test_history_and_show_name_outcomes_labels_and_prompts(cli, tmp_path: Path):
    assert cli("init").exit_code == 0
    empty = cli("show")
    assert empty.exit_code == 0 and "No runs yet" in empty.output
    assert cli("run", "capitals").exit_code == 0
    pipeline = tmp_path / "pipelines" / "capitals.yml"
    pipeline.write_text(pipeline.read_text().replace("Kenya?", "Peru?"))
    assert cli("run", "capitals").exit_code == 1

    listed = cli("history")
    assert listed.exit_code == 0, listed.output
    header, newest, oldest = listed.output.splitlines()
    assert header.split()[:5] == ["RUN", "ID", "PIPELINE", "OUTCOME", "PASS"]
    assert "TIME" in header
    assert newest.split()[2:4] == ["FAILED", "66.7%"]
    assert oldest.split()[2:4] == ["PASSED", "100.0%"]
    assert newest.split()[4] == "21–94"  # the 95 % interval of 2 passed out of 3
    assert newest.split()[8].endswith("s")  # the duration, e.g. 1.3s
    runs = json.loads(cli("history", "--json").output)
    assert [r["outcome"] for r in runs] == ["failed", "passed"]
    assert runs[0]["pass_rate"] == pytest.approx(2 / 3)

    shown = cli("show")  # no id: the latest run
    assert shown.exit_code == 0, shown.output
    assert f"Run {runs[0]['run_id']} — pipeline capitals" in shown.output
    assert "FAILED" in shown.output
    assert "FAIL  #2 Kenya" in shown.output and "ok    #0 France" in shown.output
    assert "answer > What is the capital of Peru? Answer in one sentence." in shown.output
    assert "       < No rehearsal rule matches this prompt" in shown.output
    assert "✗ icontains: Nairobi" in shown.output
    by_id = cli("show", runs[1]["run_id"])
    assert "PASSED" in by_id.output and "capital of Kenya?" in by_id.output
    assert json.loads(cli("show", "--json").output)["outcome"] == "failed"


def run(status="completed", total=10, passed=10, errors=0, **meta):
    return SimpleNamespace(status=status, total=total, passed=passed, errors=errors, meta=meta)


def test_outcome_follows_the_exit_code_rule():
    assert outcome(run(), 1.0)["outcome"] == "passed"
    assert outcome(run(passed=9), 1.0) == {
        "outcome": "failed",
        "pass_rate": 0.9,
        "required_pass_rate": 1.0,
    }
    assert outcome(run(passed=9), 0.9)["outcome"] == "passed"
    assert outcome(run(passed=9, errors=1), 0.5)["outcome"] == "error"
    assert outcome(run(status="interrupted"), 1.0)["outcome"] == "interrupted"
    assert outcome(run(status="running", total=0, passed=0), 1.0)["outcome"] == "running"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "-"), (1.26, "1.3s"), (59.9, "59.9s"), (125, "2m05s"), (3725, "1h02m")],
)
def test_duration(seconds, text: str):
    assert duration(seconds) == text
