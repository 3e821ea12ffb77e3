"""Run ids sort in start order, also within one second (the newest run folder is the last)."""

from __future__ import annotations

import re
import time

from orch.run.summary import new_run_id


def test_run_ids_started_in_one_second_sort_in_start_order():
    ids = []
    for _ in range(20):
        ids.append(new_run_id())
        time.sleep(0.0015)  # a new millisecond
    assert ids == sorted(ids)
    assert len(set(ids)) == len(ids)
    assert all(re.fullmatch(r"\d{8}-\d{6}-\d{3}[0-9a-f]{3}", run_id) for run_id in ids)
