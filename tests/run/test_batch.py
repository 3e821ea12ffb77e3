"""``orch run --batch`` end to end on the engine's /v1/batches, through the CLI.

The engine executes each batch line through its own /v1/responses, so these runs answer what
normal runs answer; the tests check that the records match a normal run's, that each step round
(and each function-call round) is one batch, that a failed line is its item's error, and that a
run killed with its batch in flight re-attaches to it on ``--resume`` instead of resubmitting.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from orch.cli import main
from orch.engine.server import start_engine

SCRIPT = {
    "rules": [
        {
            "when": {"contains": "Grade the reply"},
            "reply": {"pass": True, "score": 1, "reason": "it says pong"},
        },
        {"when": {"contains": "slow"}, "delay_ms": 1500, "reply": "finally {{ message }}"},
        {"when": {"regex": "what did I say"}, "reply": "You asked me to remember."},
        {"when": {"contains": "ping"}, "reply": "pong {{ message }}"},
        {"when": {"contains": "refuse"}, "fail": {"code": "invalid_prompt", "message": "no"}},
        {
            "when": {"assistant": "tools-bot", "after_tool_outputs": True},
            "reply": "outputs: {{ tool_outputs | join(' | ') }}",
        },
        {
            "when": {"assistant": "tools-bot", "contains": "weather"},
            "tool_calls": [
                {"function": "get_weather", "arguments": {"city": "Paris"}},
                {"function": "get_weather", "arguments": {"city": "Tokyo"}},
            ],
        },
    ],
    "default": {"reply": "[scripted] default"},
}

HANDLERS = '''
import json


def get_weather(city: str) -> str:
    """Weather for a city."""
    return json.dumps({"city": city, "temp": len(city)})
'''

PIPELINES = {
    "pipelines/two.yml": """
        name: two
        assistant: helper
        items:
          - {v: a}
          - {v: b}
          - {v: c}
        steps:
          - id: first
            prompt: "ping {{ item.v }}"
            expect: [{contains: "pong ping {{ item.v }}"}]
          - id: second
            prompt: "what did I say"
            expect: [{contains: remember}]
    """,
    "pipelines/tools.yml": """
        name: tools
        assistant: tools-bot
        items: [{city: x}]
        steps:
          - prompt: "weather please"
            expect: [{contains: '"city": "Tokyo"'}, {tool_called: get_weather}]
    """,
    "pipelines/broken.yml": """
        name: broken
        assistant: helper
        items: [{p: "ping one"}, {p: "refuse this"}]
        steps:
          - id: first
            prompt: "{{ item.p }}"
          - id: capped
            prompt: "ping again"
            max_tokens: 8
    """,
    "pipelines/graded.yml": """
        name: graded
        assistant: helper
        items: [{v: a}, {v: b}]
        steps:
          - prompt: "ping {{ item.v }}"
            expect: [{llm_rubric: {rubric: "says pong", grader: helper}}]
    """,
    "pipelines/slow.yml": """
        name: slow
        assistant: helper
        items: [{v: 1}, {v: 2}, {v: 3}]
        steps:
          - prompt: "slow {{ item.v }}"
            expect: [{contains: "finally slow {{ item.v }}"}]
    """,
}


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    with start_engine(tmp_path_factory.mktemp("engine") / "engine.db", script=SCRIPT) as handle:
        yield handle


@pytest.fixture
def project(make_project, engine, monkeypatch):
    monkeypatch.setenv("BATCH_TEST_KEY", "unused")
    return make_project(
        {
            "orch.yml": f"""
            project: batchtest
            target: local
            targets:
              local: {{kind: responses, base_url: "{engine.base_url}",
                       api_key_env: BATCH_TEST_KEY}}
              embedded: {{kind: engine, model: scripted, script: script.json}}
            prices:
              gpt-4o: {{input: 2.5, output: 10, batch_discount: 0.4}}
        """,
            "handlers.py": HANDLERS,
            "script.json": json.dumps(SCRIPT),
            "assistants/helper.yml": """
            name: helper
            model: gpt-4o
            instructions: You help.
        """,
            "assistants/tools-bot.yml": """
            name: tools-bot
            model: gpt-4o
            tools:
              - function: {name: get_weather, handler: "handlers:get_weather"}
        """,
            **PIPELINES,
        }
    )


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def last_run(root):
    return sorted((root / ".orch/runs").iterdir(), key=lambda p: p.stat().st_mtime)[-1]


def results(run_dir):
    rows = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    return sorted(rows, key=lambda r: r["key"])


def batches(run_dir):
    return json.loads((run_dir / "run.json").read_text())["batch"]["batches"]


def comparable(record):
    """What a batch run must record as a normal run does."""
    steps = [
        (s["id"], s["status"], s["output"], s["passed"], [c["name"] for c in s["tool_calls"]])
        for s in record["steps"]
    ]
    return record["key"], record["status"], steps


def test_a_batch_run_records_what_a_normal_run_does_one_batch_per_step(project, engine):
    normal = invoke("run", "two", "--json")
    assert normal.exit_code == 0, normal.output
    expected = [comparable(r) for r in results(last_run(project))]
    engine.reset_stats()
    batched = invoke("run", "two", "--batch", "--json")
    assert batched.exit_code == 0, batched.output
    run_dir = last_run(project)
    assert [comparable(r) for r in results(run_dir)] == expected
    stats = engine.stats()
    assert stats.get("POST /v1/batches") == 2  # step 1 of every item, then step 2
    # the batches' 6 lines, run through the engine's own route; no conversation: each line
    # carries its item's history
    assert stats.get("POST /v1/responses") == 6
    assert stats.get("POST /v1/conversations", 0) == 0
    recorded = batches(run_dir)
    assert [b["status"] for b in recorded] == ["completed", "completed"]
    assert all(b["input_file_id"] and b["output_file_id"] for b in recorded)
    assert json.loads(batched.output)["counts"]["passed"] == 3
    shown = invoke("show", run_dir.name)
    assert shown.exit_code == 0 and "pong ping a" in shown.output


def test_function_calls_are_answered_in_a_further_batch(project, engine):
    engine.reset_stats()
    result = invoke("run", "tools", "--batch")
    assert result.exit_code == 0, result.output
    (record,) = results(last_run(project))
    assert record["status"] == "passed"
    assert [c["name"] for c in record["steps"][0]["tool_calls"]] == ["get_weather"] * 2
    assert engine.stats().get("POST /v1/batches") == 2  # the calls, then the outputs


def test_failed_lines_are_their_items_errors(project, engine):
    result = invoke("run", "broken", "--batch")
    assert result.exit_code == 2, result.output
    one, refused = results(last_run(project))
    # the engine refused the capped step's line (max_output_tokens < 16): the error file
    assert one["status"] == "error" and one["steps"][0]["output"] == "pong ping one"
    assert "HTTP 400" in one["error"]["message"]
    assert "max_output_tokens" in one["error"]["message"]
    # a response that failed is in the output file, and the item's error like a failed run's
    assert refused["status"] == "error" and refused["error"]["type"] == "run_failed"
    assert len(refused["steps"]) == 1
    errors = [b for b in batches(last_run(project)) if b.get("error_file_id")]
    assert len(errors) == 1 and errors[0]["request_counts"]["failed"] == 1
    # a retry sends the failed items' requests again, in new batches of the same run
    engine.reset_stats()
    retried = invoke("retry", last_run(project).name)
    assert retried.exit_code == 2, retried.output
    assert engine.stats().get("POST /v1/batches") == 2  # step 1 of both, then the capped step
    assert len(batches(last_run(project))) == 4


def test_a_killed_batch_run_resumes_on_its_batch_in_flight(project, engine):
    engine.reset_stats()
    env = {**os.environ, "BATCH_TEST_KEY": "unused", "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen(
        [sys.executable, "-m", "orch", "run", "slow", "--batch", "--quiet"],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 30
        journal = None
        while journal is None:
            assert time.monotonic() < deadline, "the batch was never recorded"
            assert child.poll() is None, child.stderr.read().decode()
            found = list((project / ".orch/runs").glob("*/batches.jsonl"))
            journal = found[0] if found and found[0].read_text().strip() else None
            time.sleep(0.02)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    run_dir = journal.parent
    assert not (run_dir / "results.jsonl").exists() or not results(run_dir)
    (in_flight,) = batches(run_dir)  # in the history before the run waited for it
    assert in_flight["status"] in ("validating", "in_progress")
    resumed = invoke("run", "--resume", run_dir.name)
    assert resumed.exit_code == 0, resumed.output
    assert [r["status"] for r in results(run_dir)] == ["passed"] * 3
    assert engine.stats().get("POST /v1/batches") == 1  # re-attached, not resubmitted
    assert [b["batch_id"] for b in batches(run_dir)] == [in_flight["batch_id"]]
    assert batches(run_dir)[0]["status"] == "completed"


def test_reports_say_a_batch_run_used_batch_pricing(project):
    assert invoke("run", "two", "--json").exit_code == 0
    normal = last_run(project).name
    assert invoke("run", "two", "--batch", "--json").exit_code == 0
    batched = last_run(project).name
    costs = {}
    for run_id in (normal, batched):
        out = invoke("report", run_id, "-T", "builtin:json", "-o", f"{run_id}.json")
        assert out.exit_code == 0, out.output
        report = json.loads((project / f"{run_id}.json").read_text())
        costs[run_id] = (report["run"]["pricing"], report["usage"]["cost"])
        tokens = (report["usage"]["prompt_tokens"], report["usage"]["completion_tokens"])
    assert costs[normal][0] == "standard" and costs[batched][0] == "batch"
    # the same tokens (scripted replies), at 60% of the price: batch_discount 0.4
    standard = (tokens[0] * 2.5 + tokens[1] * 10) / 1e6
    assert costs[normal][1] == pytest.approx(standard)
    assert costs[batched][1] == pytest.approx(standard * 0.6)
    md = invoke("report", batched, "-T", "builtin:markdown", "-o", "b.md")
    assert md.exit_code == 0, md.output
    text = (project / "b.md").read_text()
    assert "Batch run (2 batches), batch pricing" in text and "(batch pricing)" in text
    junit = invoke("report", batched, "-T", "builtin:junit", "-o", "b.xml")
    assert (
        junit.exit_code == 0 and 'name="pricing" value="batch"' in (project / "b.xml").read_text()
    )
    html = invoke("report", batched, "-T", "builtin:html", "-o", "b.html")
    assert html.exit_code == 0 and "batch pricing" in (project / "b.html").read_text()


def test_a_batch_run_on_the_embedded_engine_target(project):
    result = invoke("run", "tools", "--batch", "--target", "embedded")
    assert result.exit_code == 0, result.output
    run_dir = last_run(project)
    (record,) = results(run_dir)
    assert record["status"] == "passed"
    assert [b["status"] for b in batches(run_dir)] == ["completed", "completed"]


def test_grader_questions_ride_in_a_further_batch(project, engine):
    engine.reset_stats()
    result = invoke("run", "graded", "--batch")
    assert result.exit_code == 0, result.output
    records = results(last_run(project))
    assert [r["status"] for r in records] == ["passed", "passed"]
    assert records[0]["steps"][0]["assertions"][0]["reason"] == "it says pong"
    assert engine.stats().get("POST /v1/batches") == 2  # the steps, then the grader's questions
