"""The end of `orch run`: an outcome word, the failures by label, the next command.

One project from `orch init` with one item whose prompt no rehearsal rule answers (Kenya asks
about Peru), so it fails its `icontains`; runs on a terminal go through `script -qc` (a real
pseudo-terminal, so the live bar is drawn) and in CI through plain lines.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from orch.cli import main
from orch.run.progress import item_label
from orch.run.summary import RunSummary, first_failures, percent, summary_lines

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|\r")


@pytest.fixture
def failing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An `orch init` project in which item #2 (label Kenya) fails."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ORCH_TARGET", raising=False)
    assert CliRunner().invoke(main, ["init"]).exit_code == 0
    pipeline = tmp_path / "pipelines" / "capitals.yml"
    text = pipeline.read_text().replace("Kenya?", "Peru?").replace("Nairobi", "Lima")
    pipeline.write_text(text)
    return tmp_path


def latest_run(root: Path) -> str:
    [run_dir] = (root / ".orch" / "runs").iterdir()
    return run_dir.name


@pytest.mark.skipif(shutil.which("script") is None, reason="needs script(1) from util-linux")
def test_summary_on_a_terminal_names_the_failing_item(failing: Path):
    command = shlex.join([sys.executable, "-m", "orch", "run", "capitals"])
    env = {**os.environ, "COLUMNS": "120", "TERM": "xterm"}
    done = subprocess.run(
        ["script", "-qec", command, "/dev/null"],
        cwd=failing,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )
    out = ANSI.sub("", done.stdout)
    assert done.returncode == 1, out
    assert "━" in out or "capitals" in out  # the live bar was drawn: a terminal
    run_id = latest_run(failing)
    assert f"Run {run_id} — pipeline capitals: FAILED 66.7 % < 100 %" in out
    assert "completed" not in out
    assert "Failures:" in out
    assert "FAIL  #2 Kenya · step answer: icontains: Lima: 'Lima' (any case) not found" in out
    assert "#0 France ·" not in out  # a passed item is not a failure
    assert f"`orch show {run_id}`" in out
    assert "REHEARSAL" in out


def test_progress_lines_and_summary_without_a_terminal(failing: Path):
    done = subprocess.run(
        [sys.executable, "-m", "orch", "run", "capitals"],
        cwd=failing,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    assert re.search(r"\[\d/3\] ok    #0 France\n", done.stderr)
    assert re.search(r"\[\d/3\] FAIL  #2 Kenya: 'Lima' \(any case\) not found", done.stderr)
    assert "item 2" not in done.stderr
    assert "FAIL  #2 Kenya · step answer: icontains: Lima: 'Lima'" in done.stdout

    as_json = CliRunner().invoke(main, ["run", "capitals", "--json"])
    assert json.loads(as_json.stdout)["outcome"] == "failed"


def summary(tmp_path: Path, counts: dict, required: float = 1.0, status="completed"):
    total = counts["total"]
    return RunSummary(
        "r1", "p", status, counts, {}, 1.0, tmp_path, counts["passed"] / total, required
    )


def test_outcome_words(tmp_path: Path):
    ok = {"total": 10, "passed": 10, "failed": 0, "errors": 0}
    nine = {"total": 10, "passed": 9, "failed": 1, "errors": 0}
    err = {"total": 10, "passed": 9, "failed": 0, "errors": 1}
    assert summary(tmp_path, ok).outcome == "PASSED"
    assert summary(tmp_path, nine).outcome == "FAILED 90 % < 100 %"
    assert summary(tmp_path, nine, required=0.9).outcome == "PASSED"
    assert summary(tmp_path, err).outcome == "ERROR"
    assert summary(tmp_path, ok, status="interrupted").outcome == "INTERRUPTED"
    assert (percent(0.999), percent(0.5), percent(1)) == ("99.9 %", "50 %", "100 %")


def record(key: str, index: int, status: str, **more) -> dict:
    return {"key": key, "index": index, "repeat": 0, "status": status, "steps": [], **more}


def test_first_failures_reads_the_last_record_of_each_item(tmp_path: Path):
    failed_step = {
        "id": "ask",
        "assertions": [
            {"name": "contains", "passed": True, "reason": "ok"},
            {"name": "regex", "passed": False, "reason": "no match\nfor x"},
        ],
    }
    lines = [
        record("1", 1, "failed", item={"q": "first"}, steps=[failed_step]),
        record("0", 0, "error", item={"name": "zero"}, error={"message": "boom"}),
        record("1", 1, "passed", item={"q": "first"}),  # a retry that passed supersedes it
        record("3", 3, "failed", item=["not", "a", "dict"], steps=[failed_step]),
        record("2", 2, "error", item={}, steps=[{"id": "s", "error": {"message": "lost"}}]),
    ]
    path = tmp_path / "results.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in lines) + "\n{torn")
    assert first_failures(path, 5) == [
        "ERROR #0 zero: boom",
        "ERROR #2 · step s: lost",
        "FAIL  #3 · step ask: regex: no match for x",
    ]
    assert len(first_failures(path, 2)) == 2
    assert first_failures(tmp_path / "missing.jsonl", 5) == []

    counts = {"total": 4, "passed": 1, "failed": 1, "errors": 2}
    text = "\n".join(summary_lines(summary(tmp_path, counts)))
    assert "Failures (first 3 of 3)" not in text and "Failures:" in text
    assert "REHEARSAL" not in text  # no run.json saying the model was scripted


@pytest.mark.parametrize(
    ("item", "label"),
    [
        ({"question": "What?", "label": "L"}, "#4 L"),
        ({"n": 3, "id": 17}, "#4 17"),
        ({"n": 3, "text": "  two\nlines "}, "#4 two lines"),
        ({"n": 3}, "#4"),
        ("scalar", "#4"),
        ({"q": "x" * 80}, "#4 " + "x" * 47 + "…"),
    ],
)
def test_item_label(item, label: str):
    assert item_label(item, "4") == label
