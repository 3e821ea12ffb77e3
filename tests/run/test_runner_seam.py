"""The runner against a fake target kind: no HTTP, only the seam's contracts."""

from __future__ import annotations

import json

import pytest

from orch.project.loading import load_project
from orch.run.progress import choose
from orch.run.runner import PipelineRunner, RunOptions

from .fakes import Reply, install

HANDLERS = '''
def get_weather(city: str) -> dict:
    """Weather for a city."""
    return {"city": city, "temp": len(city)}
'''


def fake_reply(text: str, attempt: int) -> Reply:
    if "flaky" in text and attempt == 1:
        return Reply(status="failed", error_code="server_error")
    if "weather" in text:
        return Reply(calls=[("get_weather", {"city": "Paris"}), ("get_weather", {"city": "Oslo"})])
    if "broken" in text:
        return Reply(status="failed", error_code="invalid_prompt")
    return Reply(text=f"echo: {text}")


@pytest.fixture
def fake(make_project):
    server, uninstall = install(fake_reply)
    make_project(
        {
            "orch.yml": "project: seam\ntarget: fake\ntargets:\n  fake: {kind: fake}\n",
            "handlers.py": HANDLERS,
            "notes.txt": "some notes\n",
            "assistants/bot.yml": """
                name: bot
                model: gpt-4o
                tools:
                  - function: {name: get_weather, handler: "handlers:get_weather"}
            """,
        }
    )
    yield server
    uninstall()


def run(make_project, pipeline: str, **options):
    root = make_project({"pipelines/p.yml": pipeline})
    project = load_project(root)
    runner = PipelineRunner(
        project,
        project.pipeline("p"),
        RunOptions(quiet=True, **options),
        choose(True),
        echo=lambda line: None,
    )
    summary = runner.run()
    lines = (summary.run_dir / "results.jsonl").read_text().splitlines()
    return summary, [json.loads(line) for line in lines]


def test_items_share_nothing_steps_share_a_thread(fake, make_project):
    summary, records = run(
        make_project,
        """
        name: p
        assistant: bot
        items: [{q: one}, {q: two}, {q: three}]
        steps:
          - id: ask
            prompt: "say {{ item.q }}"
            expect: [{icontains: "{{ item.q }}"}]
          - id: again
            prompt: "and again"
            expect: [{icontains: "again"}]
        """,
    )
    assert summary.exit_code == 0 and summary.counts["passed"] == 3
    threads = {r["thread_id"] for r in records}
    assert len(threads) == 3  # one per item
    for r in records:
        assert {s["thread_id"] for s in r["steps"]} == {r["thread_id"]}
        assert [m["role"] for m in fake.threads[r["thread_id"]]] == ["user", "assistant"] * 2
    # the assistant was synced through the seam once, before the first item
    assert fake.calls.count("create_assistant bot") == 1


def test_a_transient_failure_is_retried_by_the_session_base(fake, make_project):
    summary, records = run(
        make_project,
        """
        name: p
        assistant: bot
        retries: 1
        items: [{q: flaky}]
        steps: [{id: s, prompt: "{{ item.q }}", expect: [{icontains: flaky}]}]
        """,
    )
    step = records[0]["steps"][0]
    assert summary.exit_code == 0
    assert step["attempts"] == 2 and step["status"] == "completed"
    # the retried attempt did not send the user message twice
    assert [m["role"] for m in fake.threads[records[0]["thread_id"]]] == [
        "user",
        "assistant",
        "assistant",
    ]


def test_a_deterministic_failure_is_an_item_error_not_retried(fake, make_project):
    summary, records = run(
        make_project,
        """
        name: p
        assistant: bot
        retries: 2
        items: [{q: broken}]
        steps: [{id: s, prompt: "{{ item.q }}"}]
        """,
    )
    assert summary.exit_code == 2
    assert records[0]["status"] == "error"
    assert records[0]["steps"][0]["attempts"] == 1
    assert records[0]["error"]["type"] == "run_failed"


def test_function_calls_go_through_the_declared_handlers(fake, make_project):
    summary, records = run(
        make_project,
        """
        name: p
        assistant: bot
        items: [{q: weather}]
        steps:
          - id: s
            prompt: "{{ item.q }}"
            expect: [{tool_called: get_weather}, {icontains: Oslo}]
        """,
    )
    calls = records[0]["steps"][0]["tool_calls"]
    assert summary.exit_code == 0
    assert [c["arguments"] for c in calls] == [{"city": "Paris"}, {"city": "Oslo"}]
    assert json.loads(calls[1]["output"]) == {"city": "Oslo", "temp": 4}


def test_attachments_are_uploaded_once_through_the_file_store(fake, make_project):
    summary, records = run(
        make_project,
        """
        name: p
        assistant: bot
        items: [{q: a}, {q: b}]
        steps:
          - id: s
            prompt: "{{ item.q }}"
            attachments: [{path: notes.txt, tools: [file_search]}]
        """,
    )
    assert summary.exit_code == 0
    uploads = [c for c in fake.calls if c.startswith("upload orchrun-seam-")]
    assert len(uploads) == 1 and uploads[0].endswith("-notes.txt")


def test_retry_reruns_only_failed_items_on_a_new_session(fake, make_project):
    pipeline = """
        name: p
        assistant: bot
        items: [{q: fine}, {q: broken}]
        steps: [{id: s, prompt: "{{ item.q }}"}]
        """
    first, _ = run(make_project, pipeline)
    assert first.counts == {"total": 2, "passed": 1, "failed": 0, "errors": 1}
    threads_before = set(fake.threads)
    again, _ = run(make_project, pipeline, resume=first.run_id, retry_failed=True)
    assert again.run_id == first.run_id
    assert len(set(fake.threads) - threads_before) == 1  # only the failed item ran again
