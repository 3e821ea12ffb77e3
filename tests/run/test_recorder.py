"""The recorder (finished items persisted off the dispatch path) when the history cannot be written.

Runs go through the CLI on the embedded engine. A write that fails on the recorder's thread must
end the run the way a failed write always did — exit 2, one line naming the file, nothing
reported that is not on disk — and leave it resumable: the items whose write failed run again.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from orch.run.progress import LineReporter

PIPELINE = """
name: q
assistant: helper
concurrency: 2
items: [{q: a}, {q: b}, {q: c}, {q: d}, {q: e}, {q: f}, {q: g}, {q: h}]
steps:
  - prompt: "ping {{ item.q }}"
    expect: [{contains: pong}]
"""


@pytest.fixture
def broken_after_first(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Once the first item is reported, results.jsonl becomes a folder: no append succeeds.

    Returns the keys the progress reported.
    """
    reported: list[str] = []
    original = LineReporter.item

    def item(self, record):
        reported.append(record["key"])
        if len(reported) == 1:
            results = next(Path(".orch/runs").iterdir()) / "results.jsonl"
            results.rename(results.with_name("saved.jsonl"))
            results.mkdir()
        original(self, record)

    monkeypatch.setattr(LineReporter, "item", item)
    return reported


def test_a_history_that_cannot_be_written_ends_the_run_and_it_resumes(
    project, invoke, broken_after_first: list[str]
) -> None:
    root = project({"pipelines/q.yml": PIPELINE})

    failed = invoke("run", "q")

    assert failed.exit_code == 2, failed.output
    errors = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "results.jsonl" in errors[0], failed.stderr
    assert "Traceback" not in failed.output
    run_dir = next((root / ".orch" / "runs").iterdir())
    saved = [json.loads(line) for line in (run_dir / "saved.jsonl").read_text().splitlines()]
    # what was reported is what the first write (a group: items that finished together) holds;
    # nothing was reported after the failed one
    assert [r["key"] for r in saved] == broken_after_first

    (run_dir / "results.jsonl").rmdir()  # the disk is fixed
    (run_dir / "saved.jsonl").rename(run_dir / "results.jsonl")
    resumed = invoke("run", "--resume", run_dir.name, "--json")  # --json: no LineReporter

    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["counts"]["passed"] == 8
    lines = (run_dir / "results.jsonl").read_text().splitlines()
    assert Counter(json.loads(line)["key"] for line in lines) == Counter(
        str(i) for i in range(8)
    )  # every item once: those whose write failed ran again, the first group's did not
