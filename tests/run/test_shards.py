"""Shards: `--shard i/N` runs a deterministic share of the items, recorded in the run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from orch.errors import UsageError
from orch.run.shards import INDEX_ENV, Shard, parse_shard, shard_of

ITEMS = 12


def sharded_pipeline(repeat: int = 1) -> dict[str, str]:
    """Twelve items, every third one failing its assertion, each repeated ``repeat`` times."""
    words = ["ping" if i % 3 else "nope" for i in range(ITEMS)]
    items = ", ".join(f"{{word: {w}, n: {i}}}" for i, w in enumerate(words))
    return {
        "pipelines/many.yml": f"""
name: many
assistant: helper
vars: {{tone: plain}}
repeat: {repeat}
concurrency: 3
items: [{items}]
steps:
  - id: ask
    prompt: "{{{{ item.word }}}} {{{{ item.n }}}}"
    expect: [{{contains: pong}}]
"""
    }


def run_json(root: Path, run_id: str) -> dict:
    return json.loads((root / ".orch" / "runs" / run_id / "run.json").read_text())


def keys_of(root: Path, run_id: str) -> list[str]:
    lines = (root / ".orch" / "runs" / run_id / "results.jsonl").read_text().splitlines()
    return [json.loads(line)["key"] for line in lines]


def test_every_key_lands_in_exactly_one_shard_and_shards_are_balanced():
    for count in (1, 2, 4, 7):
        owners = [
            [s for s in range(1, count + 1) if Shard(s, count).holds(str(i))] for i in range(1000)
        ]
        assert all(len(o) == 1 for o in owners)
        sizes = [sum(1 for o in owners if o == [s]) for s in range(1, count + 1)]
        assert min(sizes) > 1000 / count * 0.8, sizes  # a hash, not a skewed rule


def test_the_assignment_is_stable_across_processes_and_hash_seeds():
    expected = [shard_of(str(i), 4) for i in range(50)]
    code = "from orch.run.shards import shard_of; print([shard_of(str(i), 4) for i in range(50)])"
    for seed in ("1", "12345"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        assert out.strip() == str(expected)
    # pinned: a change of the hash would silently reshuffle every CI matrix's shards
    assert expected[:12] == [1, 2, 3, 4, 3, 4, 4, 3, 4, 1, 1, 3]


def test_adding_items_moves_none_of_the_others():
    before = {str(i): shard_of(str(i), 4) for i in range(100)}
    after = {str(i): shard_of(str(i), 4) for i in range(150)}
    assert all(after[k] == s for k, s in before.items())


def test_parse_shard_reads_i_of_n_and_the_kubernetes_index():
    assert parse_shard("2/4", {}) == Shard(2, 4)
    assert parse_shard("auto/4", {INDEX_ENV: "0"}) == Shard(1, 4)
    assert parse_shard("auto/4", {INDEX_ENV: "3"}) == Shard(4, 4)
    for bad, env in [
        ("0/4", {}),
        ("5/4", {}),
        ("2", {}),
        ("a/4", {}),
        ("1/0", {}),
        ("auto/4", {}),
        ("auto/4", {INDEX_ENV: "4"}),
        ("auto/4", {INDEX_ENV: "x"}),
    ]:
        with pytest.raises(UsageError):
            parse_shard(bad, env)


def test_shards_split_the_items_and_record_the_shard(project, invoke):
    root = project(sharded_pipeline(repeat=2))
    seen: list[str] = []
    for index in range(1, 5):
        result = invoke("run", "many", "--shard", f"{index}/4", "--json")
        assert result.exit_code in (0, 1), result.output
        summary = json.loads(result.stdout)
        meta = run_json(root, summary["run_id"])
        assert meta["shard"] == {"index": index, "count": 4}
        keys = keys_of(root, summary["run_id"])
        # both repeats of an item go to the item's shard
        assert sorted(keys) == sorted(
            f"{i}.r{r}" for i in range(ITEMS) if shard_of(str(i), 4) == index for r in (0, 1)
        )
        seen += keys
    assert sorted(seen) == sorted(f"{i}.r{r}" for i in range(ITEMS) for r in (0, 1))


def test_auto_shard_reads_job_completion_index(project, invoke, monkeypatch):
    root = project(sharded_pipeline())
    monkeypatch.setenv(INDEX_ENV, "2")
    result = invoke("run", "many", "--shard", "auto/3", "--json")
    summary = json.loads(result.stdout)
    assert run_json(root, summary["run_id"])["shard"] == {"index": 3, "count": 3}
    assert sorted(keys_of(root, summary["run_id"]), key=int) == [
        str(i) for i in range(ITEMS) if shard_of(str(i), 3) == 3
    ]
    monkeypatch.delenv(INDEX_ENV)
    result = invoke("run", "many", "--shard", "auto/3")
    assert result.exit_code == 2
    assert "JOB_COMPLETION_INDEX is unset" in result.output


def test_a_resumed_shard_keeps_its_shard(project, invoke):
    root = project(sharded_pipeline())
    result = invoke("run", "many", "--shard", "1/2", "--items-limit", "6", "--json")
    run_id = json.loads(result.stdout)["run_id"]
    results = root / ".orch" / "runs" / run_id / "results.jsonl"
    lines = results.read_text().splitlines()
    results.write_text("\n".join(lines[:1]) + "\n")  # as if killed after the first item
    import sqlite3

    with sqlite3.connect(root / ".orch" / "history.db") as db:
        db.execute("DELETE FROM items WHERE run_id = ?", (run_id,))
    result = invoke("run", "--resume", run_id)
    assert result.exit_code in (0, 1), result.output
    assert sorted(keys_of(root, run_id), key=int) == [
        str(i) for i in range(6) if shard_of(str(i), 2) == 1
    ]
    assert invoke("run", "--resume", run_id, "--shard", "2/2").exit_code == 2
