"""`orch run` end to end through the CLI against the in-process engine (scripted model)."""

from __future__ import annotations

import json
import warnings

import openai
import pytest

from orch.engine.server import start_engine


def pipeline(name: str, body: str) -> dict[str, str]:
    return {f"pipelines/{name}.yml": f"name: {name}\n" + body}


def test_multi_turn_steps_share_one_thread(project, invoke, results):
    root = project(
        pipeline(
            "chat",
            """
assistant: helper
steps:
  - id: first
    prompt: "please remember the number 7"
    expect: [{contains: remember}]
  - id: second
    prompt: "what did I say? (you said: {{ steps.first.output }})"
    expect: [{contains: "You asked"}]
""",
        )
    )
    result = invoke("run", "chat")
    assert result.exit_code == 0, result.output
    [record] = results(root)
    first, second = record["steps"]
    assert record["status"] == "passed"
    assert first["thread_id"] == second["thread_id"] == record["thread_id"]
    assert "you said: I will remember that." in second["prompt"]
    # the thread holds both turns, in order, with no duplicates
    with start_engine(root / ".orch/engine.db") as engine:
        client = openai.OpenAI(base_url=engine.base_url, api_key="x", max_retries=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            messages = client.beta.threads.messages.list(record["thread_id"], order="asc").data
    roles = [m.role for m in messages]
    assert roles == ["user", "assistant", "user", "assistant"]


def test_parallel_function_calls_are_answered_by_handlers(project, invoke, results):
    root = project(
        pipeline(
            "tools",
            """
assistant: tools-bot
steps:
  - prompt: "what's the weather?"
    expect:
      - tool_called: {name: get_weather, arguments: {city: Tokyo}}
      - contains: '"city": "Paris"'
""",
        )
    )
    result = invoke("run", "tools")
    assert result.exit_code == 0, result.output
    [record] = results(root)
    calls = record["steps"][0]["tool_calls"]
    assert sorted(c["arguments"]["city"] for c in calls) == ["Paris", "Tokyo"]
    assert all(c["error"] is None for c in calls)
    assert '"temp": 5' in record["steps"][0]["output"]


def test_a_raising_handler_becomes_an_error_output_not_a_crash(project, invoke, results):
    root = project(
        pipeline(
            "boom",
            """
assistant: tools-bot
steps:
  - prompt: "please explode"
    expect: [{contains: "handler exploded"}]
""",
        )
    )
    result = invoke("run", "boom")
    assert result.exit_code == 0, result.output
    [record] = results(root)
    [call] = record["steps"][0]["tool_calls"]
    assert call["name"] == "explode"
    assert "RuntimeError: handler exploded: boom" in call["error"]
    assert json.loads(call["output"]) == {"error": "RuntimeError: handler exploded: boom"}


@pytest.mark.parametrize("mode", [[], ["--poll"]])
def test_code_interpreter_image_is_downloaded(project, invoke, results, mode):
    root = project(
        pipeline(
            "chart",
            """
assistant: helper
steps:
  - prompt: "draw a chart"
    expect: [{contains: chart}]
""",
        )
    )
    result = invoke("run", "chart", *mode)
    assert result.exit_code == 0, result.output
    [record] = results(root)
    [rel] = record["steps"][0]["files"]
    run_dir = sorted((root / ".orch/runs").iterdir())[-1]
    assert (run_dir / rel).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    [call] = record["steps"][0]["tool_calls"]
    assert call["type"] == "code_interpreter" and call["input"] == "plot()"


def test_batch_over_files_uploads_each_content_once(project, invoke, results):
    root = project(
        {
            "data/a.txt": "alpha facts about otters",
            "data/b.txt": "beta facts about otters",
            "data/c.txt": "alpha facts about otters",  # same bytes as a.txt
            **pipeline(
                "batch",
                """
assistant: helper
items: {files: "data/*.txt"}
concurrency: 3
steps:
  - prompt: "search {{ item.name }} for otters"
    attachments: [{path: "{{ item.path }}", tools: [file_search]}]
    expect: [{contains: Found}]
""",
            ),
        }
    )
    result = invoke("run", "batch")
    assert result.exit_code == 0, result.output
    records = results(root)
    assert sorted(r["item"]["name"] for r in records) == ["a.txt", "b.txt", "c.txt"]
    assert all(r["status"] == "passed" for r in records)
    assert all(r["steps"][0]["citations"] for r in records)
    with start_engine(root / ".orch/engine.db") as engine:
        client = openai.OpenAI(base_url=engine.base_url, api_key="x", max_retries=0)
        names = [f.filename for f in client.files.list().data]
    uploads = [n for n in names if n.startswith("orchrun-runtest-")]
    assert len(uploads) == 2, uploads


def test_items_from_csv_vars_and_limit(project, invoke, results):
    root = project(
        {
            "data/q.csv": "word,expected\nping,pong\nping again,pong\nthird,never\n",
            **pipeline(
                "csvrun",
                """
assistant: helper
items: {csv: data/q.csv}
vars: {suffix: "!"}
steps:
  - prompt: "{{ item.word }}{{ vars.suffix }}"
    expect: [{contains: "{{ item.expected }}"}, {contains: "{{ vars.suffix }}"}]
""",
            ),
        }
    )
    result = invoke("run", "pipelines/csvrun.yml", "--items-limit", "2", "--var", "suffix=?")
    assert result.exit_code == 0, result.output
    records = results(root)
    assert [r["steps"][0]["prompt"] for r in sorted(records, key=lambda r: r["index"])] == [
        "ping?",
        "ping again?",
    ]


def test_an_items_own_index_field_stays_the_users(project, invoke, results):
    """A pandas CSV export has an ``index`` column: templates, checks and results keep it;
    orch's position is ``orch.index`` in templates and ``index`` at the record's top level."""
    root = project(
        {
            "data/q.csv": "index,word\n17,ping\n4,ping again\n",
            **pipeline(
                "indexed",
                """
assistant: helper
items: {csv: data/q.csv}
repeat: 2
steps:
  - prompt: "ping {{ item.index }} at {{ orch.index }}.{{ orch.repeat }} ({{ orch.key }})"
    expect: [{contains: "ping {{ item.index }} at {{ orch.index }}"}]
""",
            ),
        }
    )
    result = invoke("run", "pipelines/indexed.yml")
    assert result.exit_code == 0, result.output
    records = sorted(results(root), key=lambda r: r["key"])
    assert [r["steps"][0]["prompt"] for r in records] == [
        "ping 17 at 0.0 (0.r0)",
        "ping 17 at 0.1 (0.r1)",
        "ping 4 at 1.0 (1.r0)",
        "ping 4 at 1.1 (1.r1)",
    ]
    assert [(r["index"], r["item"]["index"]) for r in records] == [
        (0, "17"),
        (0, "17"),
        (1, "4"),
        (1, "4"),
    ]
    run_id = sorted((root / ".orch" / "runs").iterdir())[-1].name
    report = invoke("report", run_id, "-T", "builtin:markdown", "-o", "out/r.md")
    assert report.exit_code == 0, report.output
    text = (root / "out/r.md").read_text()
    assert "| 0 ping | 2 |" in text and "| 1 ping again | 2 |" in text  # repeats, by orch index
    assert invoke("show", run_id).exit_code == 0


def test_failed_assertion_exits_1_and_show_explains(project, invoke, results):
    project(
        pipeline(
            "strict",
            """
assistant: helper
steps:
  - prompt: "ping"
    expect: [{contains: "nothing like this"}]
""",
        )
    )
    result = invoke("run", "strict")
    assert result.exit_code == 1, result.output
    history = invoke("history", "--json")
    [run] = json.loads(history.output)
    assert run["failed"] == 1 and run["status"] == "completed"
    shown = invoke("show", run["run_id"][:15])
    assert "'nothing like this' not found in reply" in shown.output


def test_timeout_cancels_and_records_failure(project, invoke, results):
    root = project(
        pipeline(
            "slow",
            """
assistant: helper
timeout: 1s
items: [{q: slow}, {q: ping}]
steps:
  - prompt: "{{ item.q }}"
""",
        )
    )
    result = invoke("run", "slow")
    assert result.exit_code == 2, result.output
    by_key = {r["key"]: r for r in results(root)}
    assert by_key["1"]["status"] == "passed"
    error = by_key["0"]["error"]
    assert by_key["0"]["status"] == "error" and error["type"] == "timeout"
    assert error["thread_id"].startswith("thread_") and error["run_id"].startswith("run_")


def test_unknown_pipeline_is_a_clear_usage_error(project, invoke, results):
    result = invoke("run", "nope")
    assert result.exit_code == 2
    assert "no pipeline 'nope'" in result.output
    assert "Traceback" not in result.output


def test_json_summary(project, invoke, results):
    project(
        pipeline(
            "p",
            """
assistant: helper
steps: [{prompt: ping, expect: [{icontains: PONG}]}]
""",
        )
    )
    result = invoke("run", "p", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["counts"] == {"total": 1, "passed": 1, "failed": 0, "errors": 0}
    assert summary["usage"]["total_tokens"] > 0
