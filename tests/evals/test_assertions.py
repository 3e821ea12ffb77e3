"""Every assertion kind passing and failing, end to end: CLI → embedded engine → scripted model."""

from __future__ import annotations

import json

from .conftest import results

ALL_KINDS = {
    "equals",
    "contains",
    "icontains",
    "not_contains",
    "contains_any",
    "contains_all",
    "regex",
    "json",
    "json_schema",
    "jsonpath",
    "tool_called",
    "range",
    "max_latency",
    "max_tokens",
    "python",
    "llm_rubric",
}


def verdicts(record: dict) -> list[dict]:
    return [v for step in record["steps"] for v in step["assertions"]]


def test_every_assertion_kind_passes(project, runs):
    ran = runs("all-pass")
    assert ran.exit_code == 0, ran.stderr
    (record,) = results(project, ran.summary["run_id"])
    assert record["status"] == "passed"
    kinds = {v["kind"] for v in verdicts(record)}
    assert kinds == ALL_KINDS
    failed = [v for v in verdicts(record) if not v["passed"]]
    # only the two deliberate misses: one forgiven by the step threshold, one with weight 0
    assert sorted(v["name"] for v in failed) == ["a miss the threshold forgives", "informational"]
    steps = {s["id"]: s for s in record["steps"]}
    assert steps["number"]["passed"] and steps["number"]["score"] == 0.6  # (1 + 1 + 0·2 + 1) / 5
    assert steps["greet"]["score"] == 1.0
    rubric = [v for v in verdicts(record) if v["kind"] == "llm_rubric"]
    assert [v["score"] for v in rubric] == [0.9, 0.9]
    python = [v for v in verdicts(record) if v["name"] == "python: checks:friendly"]
    assert python[0]["score"] == 0.9
    # default_expect was added to every step
    assert all(
        s["assertions"][-1]["kind"] == "max_latency" or s["id"] == "greet" for s in record["steps"]
    )
    assert sum(v["kind"] == "max_latency" for v in verdicts(record)) == 4


def test_every_assertion_kind_fails_with_a_reason(project, runs):
    ran = runs("all-fail")
    assert ran.exit_code == 1, ran.stderr
    assert ran.summary["counts"] == {"total": 1, "passed": 0, "failed": 1, "errors": 0}
    (record,) = results(project, ran.summary["run_id"])
    assert record["status"] == "failed" and record["error"] is None
    found = verdicts(record)
    assert {v["kind"] for v in found} == ALL_KINDS
    assert [v for v in found if v["passed"]] == []
    assert all(v["reason"] and not v["error"] for v in found)
    reasons = {v["name"]: v["reason"] for v in found}
    assert (
        reasons["tool_called: get_forecast"] == "get_forecast was not called (called: get_weather)"
    )
    assert (
        "never with"
        in reasons['tool_called: {"name": "get_weather", "arguments": {"city": "Tokyo"}}']
    )
    assert (
        reasons['jsonpath: {"path": "$.city", "equals": "Rome"}']
        == '$.city is "Paris", expected "Rome"'
    )
    assert reasons["json_schema: strict answer"] == "(root): 'humidity' is a required property"
    assert reasons["max_tokens: 5"] == "used 15 tokens, limit 5"
    assert reasons["llm_rubric: The reply is a friendly greeting."] == "the reply is rude"
    assert reasons["python: checks:grumpy"] == "score 0.20 below threshold 0.5"
    assert reasons['range: {"path": "$.temp", "max": 10}'] == "21 is outside [-inf, 10]"
    assert reasons["max_latency: 1ms"].startswith("took ")


def test_results_artifact_is_versioned_json(project, runs):
    ran = runs("all-pass")
    run_dir = project / ".orch" / "runs" / ran.summary["run_id"]
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["schema_version"] == 1 and meta["scripted"] is True
    assert meta["models"] == {"bot": "gpt-test", "grader": "gpt-grader"}
