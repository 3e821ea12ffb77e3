"""Writing item records to the history: groups in one write, and a torn line left by a kill."""

from __future__ import annotations

import json
from pathlib import Path

from orch.results.history import History, read_results

RUN = "20261129-000000-abcdef"


def record(key: str, status: str = "passed") -> dict:
    return {"key": key, "index": int(key), "repeat": 0, "status": status, "usage": {},
            "finished_at": f"2026-11-29T00:00:0{key}.000+00:00"}  # fmt: skip


def history(root: Path) -> History:
    opened = History(root)
    opened.start_run(
        {
            "run_id": RUN,
            "pipeline": "p",
            "pipeline_hash": "h",
            "target": "t",
            "started_at": "2026-11-29T00:00:00.000+00:00",
        }
    )
    return opened


def test_a_group_is_written_in_order_to_both_stores(tmp_path: Path) -> None:
    with history(tmp_path) as h:
        h.record_items(RUN, [record("0"), record("1", "failed"), record("2")])

        assert h.item_status(RUN) == {"0": "passed", "1": "failed", "2": "passed"}
        lines = (h.run_dir(RUN) / "results.jsonl").read_text().splitlines()
        assert [json.loads(line)["key"] for line in lines] == ["0", "1", "2"]


def test_the_line_after_a_torn_one_is_not_lost(tmp_path: Path) -> None:
    """A process killed mid-append leaves a line without its end; the next append ends it."""
    with history(tmp_path) as h:
        h.record_item(RUN, record("0"))
        results = h.run_dir(RUN) / "results.jsonl"
        with results.open("a") as fh:
            fh.write('{"key": "1", "status": "pas')  # the kill

        h.record_items(RUN, [record("1"), record("2")])  # the resumed run

        assert set(read_results(results)) == {"0", "1", "2"}
        assert [r["key"] for r in h.attempts(RUN)] == ["0", "1", "2"]
        assert h.recover_items(RUN) == 0  # the database holds what the file holds
