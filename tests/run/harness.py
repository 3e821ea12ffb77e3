"""The resilience tests' harness: engines on one database, the CLI in-process, durable checks.

Every test runs the real runner (through the CLI) against an engine started here, reached by a
URL target so the engine outlives the runner when the runner is killed.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from orch.cli import main
from orch.engine.server import EngineHandle, start_engine
from orch.results.history import History

from .chaos import EngineAudit, audit_thread, client_for

CREATE_THREAD = "POST /v1/threads"
CREATE_RUN = "POST /v1/threads/{thread_id}/runs"

ECHO = {"rules": [], "default": {"reply": "echo: {{ message }}"}}


def pipeline_yaml(
    n: int, *, steps: int = 1, concurrency: int = 8, timeout: str = "30s", retries: int = 4
) -> str:
    """A pipeline of ``n`` items whose every step expects its prompt echoed back."""
    lines = [
        "name: chaos",
        "assistant: echo",
        f"concurrency: {concurrency}",
        f"timeout: {timeout}",
        f"retries: {retries}",
        "items:",
        *[f"  - {{value: {i}}}" for i in range(n)],
        "steps:",
    ]
    for s in range(steps):
        lines += [
            f"  - id: s{s}",
            f'    prompt: "step {s} item {{{{ item.value }}}}"',
            "    expect:",
            f'      - contains: "step {s} item {{{{ item.value }}}}"',
        ]
    return "\n".join(lines) + "\n"


class Engines:
    """Engines on one database and one port, one at a time: restart with another script or
    fault rate, and the target's URL stays the same (a restarted server, not another one)."""

    def __init__(self, db: Path):
        self.db = db
        self.port = 0
        self.current: EngineHandle | None = None

    def start(self, script: dict | None = None, **options) -> EngineHandle:
        """Stop the running engine (if any) and start a new one on the same database."""
        self.stop()
        self.current = start_engine(
            self.db, script=script or ECHO, poll_after_ms=20, port=self.port, **options
        )
        self.port = self.current.port
        return self.current

    def stop(self) -> None:
        """Stop the running engine."""
        if self.current is not None:
            self.current.stop()
            self.current = None

    def audit(self) -> EngineAudit:
        """Stop the engine (its state committed) and read every thread, message and run."""
        self.stop()
        return EngineAudit.read(self.db)


def orch(*args: str) -> tuple[int, dict]:
    """Run the CLI in-process with ``--json``; (exit code, summary)."""
    result = CliRunner().invoke(main, [*args, "--json"], catch_exceptions=False)
    try:
        summary = json.loads(result.stdout)
    except ValueError:
        pytest.fail(f"orch {' '.join(args)} exited {result.exit_code}:\n{result.output}")
    return result.exit_code, summary


def sync(url: str) -> None:
    """Create the assistant on a fault-free engine (sync's creates are not retried blindly)."""
    result = CliRunner().invoke(main, ["sync", "--target", url], catch_exceptions=False)
    assert result.exit_code == 0, result.output


def result_lines(root: Path, run_id: str) -> list[dict]:
    """Every line of the run's results.jsonl."""
    path = root / ".orch" / "runs" / run_id / "results.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def final_items(root: Path, run_id: str) -> dict[str, dict]:
    """Key → the run's record in the history (the latest one)."""
    history = History(root)
    try:
        return {r["key"]: r for r in history.items(run_id)}
    finally:
        history.close()


def assert_complete(root: Path, run_id: str, n: int, *, exact_lines: bool = True) -> None:
    """Every item recorded once (results.jsonl and history), all passed."""
    lines = result_lines(root, run_id)
    keys = Counter(r["key"] for r in lines)
    assert set(keys) == {str(i) for i in range(n)}
    if exact_lines:
        assert max(keys.values()) == 1, {k: c for k, c in keys.items() if c > 1}
    last = {r["key"]: r for r in lines}
    assert {r["status"] for r in last.values()} == {"passed"}
    items = final_items(root, run_id)
    assert sorted(items) == sorted(last)
    assert {r["status"] for r in items.values()} == {"passed"}


def assert_threads_clean(url: str, items: dict[str, dict], steps: int) -> None:
    """Each recorded thread holds its item's prompts once each, and one run per step."""
    client = client_for(url)
    threads = set()
    for key, record in items.items():
        thread_id = record["thread_id"]
        assert thread_id and thread_id not in threads, f"item {key}: thread {thread_id} reused"
        threads.add(thread_id)
        texts, runs = audit_thread(client, thread_id)
        value = record["item"]["value"]
        assert texts == [f"step {s} item {value}" for s in range(steps)], (key, texts)
        assert len(runs) == steps, (key, runs)
        assert runs == [s["run_id"] for s in record["steps"]]
    client.close()
