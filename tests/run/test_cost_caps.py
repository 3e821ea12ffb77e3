"""Cost caps: `max_cost` / `max_tokens_total` stop new items; the run resumes with a higher cap."""

from __future__ import annotations

import json
from pathlib import Path

from orch.results.history import History
from orch.run.budget import Budget

ITEMS = 10
#: USD per million tokens: $0.10 a token, so a few items cross a cap of a dollar or two
PRICES = "prices:\n  gpt-4o: {input: 100000, output: 100000}\n"


def capped(cap: str = "") -> dict[str, str]:
    items = ", ".join(f"{{n: {i}}}" for i in range(ITEMS))
    return {
        "pipelines/capped.yml": f"""
name: capped
assistant: helper
concurrency: 1
items: [{items}]
{cap}
steps:
  - id: ask
    prompt: "ping {{{{ item.n }}}}"
    expect: [{{contains: pong}}]
"""
    }


def with_prices(project, files: dict[str, str]) -> Path:
    root = project(files)
    config = root / "orch.yml"
    config.write_text(config.read_text() + PRICES)
    return root


def lines(root: Path, run_id: str) -> list[dict]:
    text = (root / ".orch" / "runs" / run_id / "results.jsonl").read_text()
    return [json.loads(line) for line in text.splitlines()]


def spend(records: list[dict]) -> float:
    return sum(r["usage"]["total_tokens"] * 0.1 for r in records)


def test_max_cost_stops_new_items_and_a_higher_cap_finishes_the_run(project, invoke):
    root = with_prices(project, capped())
    result = invoke("run", "capped", "--max-cost", "2", "--json")
    assert result.exit_code == 2, result.output
    summary = json.loads(result.stdout)
    run_id = summary["run_id"]
    assert summary["status"] == "interrupted" and summary["stop_reason"] == "cost cap"
    done = lines(root, run_id)
    assert f"stopped at the cost cap (${spend(done):.4f} of max_cost $2)" in summary["message"]
    assert f"orch run --resume {run_id} --max-cost" in summary["message"]
    assert 1 <= len(done) < ITEMS
    # one item at a time: the last one started below the cap, and no item after the cap
    assert spend(done[:-1]) < 2 <= spend(done)
    meta = json.loads((root / ".orch/runs" / run_id / "run.json").read_text())
    assert (meta["status"], meta["stop_reason"], meta["max_cost"]) == ("interrupted", "cost cap", 2)
    shown = invoke("show", run_id).output
    assert "INTERRUPTED (interrupted: cost cap)" in shown and summary["message"] in shown
    [listed] = json.loads(invoke("history", "--json").stdout)
    assert (listed["outcome"], listed["meta"]["stop_reason"]) == ("interrupted", "cost cap")
    # the same cap again: what is recorded already reaches it, so nothing starts
    result = invoke("run", "--resume", run_id, "--max-cost", "2")
    assert result.exit_code == 2
    assert "INTERRUPTED (cost cap)" in result.output
    assert len(lines(root, run_id)) == len(done)
    # a higher cap finishes it: every item once, none run twice
    result = invoke("run", "--resume", run_id, "--max-cost", "1000")
    assert result.exit_code == 0, result.output
    assert sorted(r["key"] for r in lines(root, run_id)) == sorted(map(str, range(ITEMS)))
    with History(root) as history:
        record = history.get(run_id)
    assert (record.status, record.total, record.meta["stop_reason"]) == ("completed", ITEMS, None)


def test_max_tokens_total_from_the_pipeline_needs_no_prices(project, invoke):
    root = project(capped("max_tokens_total: 30"))
    result = invoke("run", "capped", "--json")
    assert result.exit_code == 2, result.output
    run_id = json.loads(result.stdout)["run_id"]
    done = lines(root, run_id)
    tokens = [r["usage"]["total_tokens"] for r in done]
    assert sum(tokens[:-1]) < 30 <= sum(tokens) and len(done) < ITEMS
    # raising the cap in the YAML keeps the pipeline's version: the run resumes
    project(capped("max_tokens_total: 100000"))
    result = invoke("run", "--resume", run_id)
    assert result.exit_code == 0, result.output
    assert len(lines(root, run_id)) == ITEMS


def test_max_cost_without_a_price_is_refused_before_anything_runs(project, invoke):
    root = project(capped("max_cost: 1.5"))
    result = invoke("run", "capped")
    assert result.exit_code == 2
    assert "no price for gpt-4o in orch.yml `prices:`" in result.output
    with History(root) as history:
        assert history.runs() == []


def test_items_in_flight_count_at_the_mean_cost_of_those_recorded():
    budget = Budget(10.0, None, {"a": "m"}, {"m": (1_000_000.0, 0.0)})
    record = {"steps": [{"assistant": "a", "usage": {"prompt_tokens": 2, "completion_tokens": 1}}]}
    assert budget.spend_of(record) == (2.0, 3)
    assert budget.allows(in_flight=100)  # nothing recorded yet: no estimate
    budget.charge(record)
    budget.charge(record)  # $4 spent, $2 per item
    assert budget.allows(in_flight=2)  # 4 + 2×2 = 8 < 10
    assert not budget.allows(in_flight=3)  # 4 + 3×2 = 10: the cap is reached
    resumed = Budget(None, 20, {"a": "m"}, {})  # tokens only: no prices needed
    resumed.preload([record] * 4)  # a resumed run's earlier records: spent, and sampled
    assert resumed.tokens == 12
    assert resumed.allows(in_flight=2)  # 12 + 2×3 = 18 < 20
    assert not resumed.allows(in_flight=3)  # 12 + 3×3 = 21


def test_a_batch_run_cannot_be_capped(project, invoke):
    root = project(capped())
    result = invoke("run", "capped", "--batch", "--max-tokens-total", "100")
    assert result.exit_code == 2
    assert "a batch run submits every item of a round at once" in result.output
    with History(root) as history:
        assert history.runs() == []
