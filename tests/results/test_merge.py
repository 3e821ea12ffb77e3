"""`orch merge`: shards' runs joined into one run equal, item by item, to an unsharded run."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

from orch.results.context import build_context, load_run
from orch.results.history import History
from orch.run.shards import shard_of
from tests.run.conftest import invoke, project  # noqa: F401 - fixtures are found by name
from tests.run.test_shards import ITEMS, sharded_pipeline

#: what differs between two runs of the same items whatever orch does: ids, clocks, paths
VOLATILE = {
    "id",
    "run_id",
    "runs",
    "thread_id",
    "started_at",
    "finished_at",
    "generated_at",
    "duration_s",
    "latency_s",
    "dir",
    "merged_from",
    "merge",
}
PORT = re.compile(r"127\.0\.0\.1:\d+")
#: times of day and durations, in the markdown report
CLOCKS = re.compile(r"\d{4}-\d\d-\d\dT[\d:.]+\+00:00|\b\d+(\.\d+)? m?s\b")
REPORTS = """
report:
  - {template: builtin:json, output: "out/{{ run.id }}.json"}
  - {template: builtin:markdown, output: "out/{{ run.id }}.md"}
"""


def stable(value, run_ids=()):
    """``value`` without the VOLATILE keys (at any depth) and with run ids blanked."""
    if isinstance(value, dict):
        return {k: stable(v, run_ids) for k, v in value.items() if k not in VOLATILE}
    if isinstance(value, list):
        return [stable(v, run_ids) for v in value]
    if isinstance(value, str):
        for run_id in run_ids:
            value = value.replace(run_id, "RUN")
        return PORT.sub("127.0.0.1:PORT", value)  # each run started its own embedded engine
    return value


def run(invoke, *args: str) -> tuple[int, dict]:  # noqa: F811 - the fixture, passed in
    result = invoke(*args, "--json")
    return result.exit_code, json.loads(result.stdout)


def shards(invoke, which=(1, 2, 3, 4)) -> list[str]:  # noqa: F811
    return [run(invoke, "run", "many", "--shard", f"{i}/4")[1]["run_id"] for i in which]


def row(root: Path, run_id: str) -> dict:
    with History(root) as history:
        record = history.get(run_id).to_json()
    # the target's label names the engine's URL, a port of the moment: its name is compared
    volatile = ("run_id", "started_at", "finished_at", "target", "meta")
    return {k: v for k, v in record.items() if k not in volatile} | {
        "finished": bool(record["finished_at"]),
        "target_name": record["meta"]["target_name"],
    }


def items(root: Path, run_id: str) -> list[dict]:
    with History(root) as history:
        return list(history.items(run_id))


def test_merged_shards_equal_the_unsharded_run(project, invoke):  # noqa: F811
    root = project(
        {"pipelines/many.yml": sharded_pipeline(repeat=2)["pipelines/many.yml"] + REPORTS}
    )
    code, whole = run(invoke, "run", "many")
    assert code == 1  # every third item fails its assertion: a mixed run
    parts = shards(invoke)
    code, merged = run(invoke, "merge", *parts)
    assert code == 1, merged
    ids = (whole["run_id"], merged["run_id"])
    assert merged["merge"] == {"overlaps": {}, "gaps": [], "missing_shards": []}
    # the history row
    assert row(root, ids[0]) == row(root, ids[1])
    # the results, item by item, in order
    a, b = items(root, ids[0]), items(root, ids[1])
    assert [r["key"] for r in a] == [r["key"] for r in b]
    assert len(a) == ITEMS * 2
    for x, y in zip(a, b, strict=True):
        assert stable(x, ids) == stable(y, ids), x["key"]
    # the reports (rendered by the merge as by the run) and what compare sees
    reports = [stable(json.loads((root / "out" / f"{r}.json").read_text()), ids) for r in ids]
    assert reports[0] == reports[1]
    markdown = [CLOCKS.sub("T", stable((root / "out" / f"{r}.md").read_text(), ids)) for r in ids]
    assert markdown[0] == markdown[1]
    contexts = [stable(build_context(load_project(root), load_run(root, r)), ids) for r in ids]
    assert contexts[0] == contexts[1]
    compared = json.loads(invoke("compare", *ids, "--json").stdout)
    assert compared["changes"] == [] and compared["unchanged"] == ITEMS * 2
    meta = json.loads((root / ".orch/runs" / ids[1] / "run.json").read_text())
    assert [p["run_id"] for p in meta["merged_from"]] == parts
    assert meta["shard"] is None and meta["status"] == "completed"


def load_project(root: Path):
    from orch.project.loading import load_project as load

    return load(root, import_handlers=False)


def test_artifact_folders_with_a_missing_shard_leave_gaps_that_a_resume_fills(
    project,  # noqa: F811
    invoke,  # noqa: F811
    tmp_path,
):
    root = project(sharded_pipeline())
    _, whole = run(invoke, "run", "many")
    parts = shards(invoke, which=(1, 2, 4))
    # a CI merge job: a fresh checkout, the shards' run folders downloaded as artifacts
    artifacts = tmp_path / "artifacts"
    for n, run_id in enumerate(parts):
        shutil.copytree(root / ".orch/runs" / run_id, artifacts / f"shard-{n}" / run_id)
    shutil.rmtree(root / ".orch")
    shutil.rmtree(root / "out", ignore_errors=True)
    result = invoke("merge", *map(str, sorted(artifacts.glob("shard-*/*"))))
    assert result.exit_code == 2, result.output
    missing = [str(i) for i in range(ITEMS) if shard_of(str(i), 4) == 3]
    assert "missing shards: 3/4" in result.output
    assert f"gaps: {len(missing)} item(s) no part ran: {', '.join(missing)}" in result.output
    with History(root) as history:
        [record] = history.runs()
    assert record.status == "interrupted" and record.meta["merge"]["gaps"] == missing
    assert record.total == ITEMS - len(missing)
    assert f"gaps: {len(missing)} item(s)" in invoke("show", record.run_id).output
    # the merged run is an ordinary interrupted run: a resume runs exactly the gaps
    result = invoke("run", "--resume", record.run_id)
    assert result.exit_code == 1, result.output  # every third item fails, as in the whole run
    resumed = items(root, record.run_id)
    assert [r["key"] for r in resumed] == [str(i) for i in range(ITEMS)]
    statuses = {r["key"]: r["status"] for r in resumed}
    assert statuses == {str(i): "failed" if i % 3 == 0 else "passed" for i in range(ITEMS)}
    assert whole["counts"] == {"total": ITEMS, "passed": 8, "failed": 4, "errors": 0}


def test_overlaps_are_reported_and_mismatched_runs_refused(project, invoke):  # noqa: F811
    project(sharded_pipeline())
    _, whole = run(invoke, "run", "many", "--items-limit", "4")
    _, first = run(invoke, "run", "many", "--shard", "1/4", "--items-limit", "4")
    result = invoke("merge", whole["run_id"], first["run_id"])
    assert result.exit_code == 1, result.output
    owned = [str(i) for i in range(4) if shard_of(str(i), 4) == 1]
    assert f"overlaps: {len(owned)} item(s) in several parts" in result.output
    assert f"{owned[0]} ({whole['run_id']} & {first['run_id']})" in result.output
    _, other = run(
        invoke, "run", "many", "--shard", "2/4", "--items-limit", "4", "--var", "tone=loud"
    )
    result = invoke("merge", first["run_id"], other["run_id"])
    assert result.exit_code == 2
    assert "differ in vars" in result.output
    result = invoke("merge", first["run_id"], first["run_id"][:-1])
    assert result.exit_code == 2 and "is given twice" in result.output
