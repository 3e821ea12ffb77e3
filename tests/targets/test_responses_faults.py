"""A responses target under spoiled answers (issue 11, points 2 and 3), through the CLI.

What can be retried safely is: reads, and the conversation create (a lost answer leaves at most
an empty conversation). A response create on a conversation whose answer is lost or spoiled
cannot be looked up (the Responses API lists no responses, and conversation items carry no
response id): it is the item's error, one clear line, and never sent a second time.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from orch.cli import main
from orch.engine.server import EngineHandle, start_engine

from ..run.chaos import ChaosProxy

ECHO = {"rules": [], "default": {"reply": "echo: {{ message }}"}}
CREATE_RESPONSE = "POST /v1/responses"
CREATE_CONVERSATION = "POST /v1/conversations"


@pytest.fixture
def engine(tmp_path: Path):
    with start_engine(tmp_path / "engine.db", script=ECHO) as handle:
        yield handle


def project(make_project, url: str, n: int, concurrency: int = 4) -> Path:
    items = "\n".join(f"  - {{value: {i}}}" for i in range(n))
    return make_project(
        {
            "orch.yml": f"""
                project: respfaults
                target: local
                targets:
                  local: {{kind: responses, base_url: "{url}"}}
            """,
            "assistants/echo.yml": "name: echo\nmodel: gpt-4o\n",
            "pipelines/p.yml": f"""name: p
assistant: echo
retries: 4
concurrency: {concurrency}
items:
{items}
steps:
  - prompt: "item {{{{ item.value }}}}"
    expect: [{{contains: "item {{{{ item.value }}}}"}}]
""",
        }
    )


def run(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(main, ["run", "p", *args, "--json"], catch_exceptions=False)
    return result.exit_code, json.loads(result.stdout)


def items(root: Path) -> list[dict]:
    folder = sorted((root / ".orch/runs").iterdir())[-1]
    return [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]


def test_spoiled_conversation_creates_are_retried(
    make_project, engine: EngineHandle, monkeypatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "unused")
    n = 6
    conversations = lambda method, path: path == "/v1/conversations"  # noqa: E731
    with ChaosProxy(engine.base_url, faults={"truncated": 1}, match=conversations, every=2) as p:
        # one item at a time: with several, the items' retries can interleave so that one of
        # them lands on the spoiled turn every time and runs out of attempts (the likely cause
        # of two exit-2 failures seen in full-suite runs; the assertion now prints the errors)
        root = project(make_project, p.base_url, n, concurrency=1)
        code, summary = run()

    assert code == 0, [item["error"] for item in items(root) if item.get("error")]
    stats = engine.stats()
    spoiled = p.injected[("truncated", CREATE_CONVERSATION)]
    assert spoiled >= n // 2  # every 2nd create, retries included
    assert stats[CREATE_CONVERSATION] == n + spoiled  # each spoiled one left an empty one
    assert stats[CREATE_RESPONSE] == n


@pytest.mark.parametrize("mode", ["lost", "truncated", "empty"])
def test_a_spoiled_response_create_is_an_item_error_never_sent_again(
    make_project, engine: EngineHandle, monkeypatch, mode: str
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "unused")
    n = 4
    creates = lambda method, path: method == "POST" and path == "/v1/responses"  # noqa: E731
    with ChaosProxy(engine.base_url, faults={mode: 1}, match=creates, every=2) as proxy:
        root = project(make_project, proxy.base_url, n)
        code, summary = run()

    assert code == 2
    assert summary["counts"] == {"total": n, "passed": n // 2, "failed": 0, "errors": n // 2}
    errors = [r["error"]["message"] for r in items(root) if r["status"] == "error"]
    assert all(m.startswith("create response: ") and "\n" not in m for m in errors), errors
    assert engine.stats()[CREATE_RESPONSE] == n  # the spoiled ones were not sent again
