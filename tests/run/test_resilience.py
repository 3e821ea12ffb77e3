"""`orch run` under trouble: injected faults, lost responses, timeouts, kill -9, Ctrl-C, retry.

Every test runs the real runner (through the CLI) against an engine started here, reached by a
URL target so the engine outlives the runner when the runner is killed. What is checked is the
durable outcome: results.jsonl and the history hold every item exactly once, and no thread on the
engine holds a duplicated message or run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import warnings
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from orch.cli import main
from orch.engine.server import EngineHandle, start_engine
from orch.results.history import History

from .chaos import ChaosProxy, audit_thread, client_for

CREATE_AND_RUN = "POST /v1/threads/runs"
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


@pytest.fixture
def root(make_project) -> Path:
    """A project with one assistant (its replies come from the engine's script)."""
    return make_project(
        {
            "orch.yml": "project: resilience\n",
            "assistants/echo.yml": "name: echo\nmodel: gpt-4o\ninstructions: Repeat the user.\n",
        }
    )


class Engines:
    """Engines on one database, one at a time: restart with another script or fault rate."""

    def __init__(self, db: Path):
        self.db = db
        self.current: EngineHandle | None = None

    def start(self, script: dict | None = None, **options) -> EngineHandle:
        """Stop the running engine (if any) and start a new one on the same database."""
        self.stop()
        self.current = start_engine(self.db, script=script or ECHO, poll_after_ms=20, **options)
        return self.current

    def stop(self) -> None:
        """Stop the running engine."""
        if self.current is not None:
            self.current.stop()
            self.current = None


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[Engines]:
    """Start engines on ``tmp_path/engine.db``; stopped at the end of the test."""
    pool = Engines(tmp_path / "engine.db")
    yield pool
    pool.stop()


@pytest.fixture(autouse=True)
def _quiet_deprecations():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


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


# -- injected faults -----------------------------------------------------------------------------


def test_engine_faults_lose_and_duplicate_nothing(root: Path, engines: Engines) -> None:
    n, steps = 30, 2
    root.joinpath("pipelines").mkdir()
    root.joinpath("pipelines/chaos.yml").write_text(pipeline_yaml(n, steps=steps, retries=6))
    sync(engines.start().base_url)
    faulty = engines.start(fault_rate=0.2, fault_seed=7)

    code, summary = orch("run", "pipelines/chaos.yml", "--target", faulty.base_url)

    assert code == 0, summary
    assert summary["counts"] == {"total": n, "passed": n, "failed": 0, "errors": 0}
    assert_complete(root, summary["run_id"], n)
    clean = engines.start()
    assert_threads_clean(clean.base_url, final_items(root, summary["run_id"]), steps)


@pytest.mark.parametrize("mode", ["lost", "cut"])
def test_lost_create_responses_are_found_not_repeated(
    root: Path, engines: Engines, mode: str
) -> None:
    """A run created server-side whose response never arrived is looked up, not re-created."""
    n, steps = 24, 2
    root.joinpath("pipelines").mkdir()
    root.joinpath("pipelines/chaos.yml").write_text(pipeline_yaml(n, steps=steps))
    engine = engines.start()
    sync(engine.base_url)
    engine.reset_stats()

    with ChaosProxy(engine.base_url, rate=0.3, seed=3, mode=mode) as proxy:
        code, summary = orch("run", "pipelines/chaos.yml", "--target", proxy.base_url)

    assert code == 0, summary
    assert_complete(root, summary["run_id"], n)
    assert_threads_clean(engine.base_url, final_items(root, summary["run_id"]), steps)
    dropped = Counter(proxy.dropped)
    assert dropped[CREATE_RUN] > 0, "the proxy never lost a later step's create"
    stats = engine.stats()
    # later steps: each create was sent exactly once, however many responses were lost
    assert stats[CREATE_RUN] == n
    # first steps (create thread + run): a cut stream has told us the thread, so it is polled;
    # a wholly lost response leaves an unknowable thread, so only then is a new one made
    orphans = dropped[CREATE_AND_RUN] if mode == "lost" else 0
    assert stats[CREATE_AND_RUN] == n + orphans


# -- timeouts ------------------------------------------------------------------------------------


def test_item_timeout_cancels_the_run_and_records_where(root: Path, engines: Engines) -> None:
    root.joinpath("pipelines").mkdir()
    root.joinpath("pipelines/chaos.yml").write_text(pipeline_yaml(4, timeout="1s"))
    slow = {
        "rules": [{"when": {"contains": "item 2"}, "delay_ms": 20000, "reply": "late"}],
        "default": ECHO["default"],
    }
    engine = engines.start(slow)
    sync(engine.base_url)

    code, summary = orch("run", "pipelines/chaos.yml", "--target", engine.base_url)

    assert code == 2
    assert summary["counts"] == {"total": 4, "passed": 3, "failed": 0, "errors": 1}
    items = final_items(root, summary["run_id"])
    error = items["2"]["error"]
    assert error["type"] == "timeout"
    assert error["thread_id"] and error["run_id"]
    assert items["2"]["thread_id"] == error["thread_id"]
    client = client_for(engine.base_url)
    run = client.beta.threads.runs.retrieve(error["run_id"], thread_id=error["thread_id"])
    assert run.status in ("cancelled", "cancelling")
    client.close()
    assert {k: r["status"] for k, r in items.items() if k != "2"} == dict.fromkeys("013", "passed")


# -- kill -9, Ctrl-C, resume, retry --------------------------------------------------------------


def _spawn(root: Path, url: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    return subprocess.Popen(
        [sys.executable, "-m", "orch", "run", "pipelines/chaos.yml", "--target", url, "-q"],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _wait_for_lines(root: Path, proc: subprocess.Popen, at_least: int) -> str:
    """Wait until the run in progress has ``at_least`` results; its run id."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        for path in (root / ".orch" / "runs").glob("*/results.jsonl"):
            if len(path.read_bytes().splitlines()) >= at_least:
                return path.parent.name
        time.sleep(0.02)
    proc.kill()
    pytest.fail(f"the run never reached {at_least} results")


def _recorded(root: Path, run_id: str) -> set[str]:
    history = History(root)
    try:
        return set(history.item_status(run_id))
    finally:
        history.close()


def _history(root: Path, run_id: str) -> dict:
    result = CliRunner().invoke(main, ["history", "--json"], catch_exceptions=False)
    return next(r for r in json.loads(result.stdout) if r["run_id"] == run_id)


@pytest.mark.parametrize("how", ["kill", "sigint"])
def test_resume_after_kill_or_interrupt_runs_only_the_rest(
    root: Path, engines: Engines, how: str
) -> None:
    n = 40
    root.joinpath("pipelines").mkdir()
    root.joinpath("pipelines/chaos.yml").write_text(pipeline_yaml(n, concurrency=4))
    engine = engines.start({"rules": [], "delay_ms": 120, "default": ECHO["default"]})
    sync(engine.base_url)

    proc = _spawn(root, engine.base_url)
    run_id = _wait_for_lines(root, proc, 8)
    if how == "kill":
        proc.kill()
        proc.wait(30)
        assert proc.returncode == -signal.SIGKILL
        assert _history(root, run_id)["status"] == "running"  # it never got to say more
    else:
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode in (2, 130), err
        assert _history(root, run_id)["status"] == "interrupted"
    done = _recorded(root, run_id)
    assert 0 < len(done) < n  # (the 8th line may not have reached the database)

    engine.reset_stats()
    code, summary = orch("run", "--resume", run_id, "--target", engine.base_url)

    assert code == 0, summary
    assert summary["run_id"] == run_id
    assert engine.stats()[CREATE_AND_RUN] == n - len(done)  # only the missing items ran
    # a kill may land between the results.jsonl line and the database row: that item runs
    # again and its second line supersedes the first
    assert_complete(root, run_id, n, exact_lines=False)
    lines = Counter(r["key"] for r in result_lines(root, run_id))
    assert {k for k, c in lines.items() if c > 1} <= {str(i) for i in range(n)} - done
    record = _history(root, run_id)
    assert (record["status"], record["total"], record["passed"]) == ("completed", n, n)


def test_retry_reruns_only_failed_and_errored_items(root: Path, engines: Engines) -> None:
    n = 10
    root.joinpath("pipelines").mkdir()
    root.joinpath("pipelines/chaos.yml").write_text(pipeline_yaml(n))
    flaky = {
        "rules": [
            {"when": {"regex": "item [37]$"}, "fail": {"code": "invalid_prompt", "message": "no"}},
            {"when": {"regex": "item 5$"}, "reply": "something else"},
        ],
        "default": ECHO["default"],
    }
    engine = engines.start(flaky)
    sync(engine.base_url)

    code, first = orch("run", "pipelines/chaos.yml", "--target", engine.base_url)

    assert code == 2
    assert first["counts"] == {"total": n, "passed": 7, "failed": 1, "errors": 2}
    before = final_items(root, first["run_id"])
    assert before["3"]["error"]["type"] == "run_failed"
    assert before["3"]["error"]["thread_id"] and before["3"]["error"]["run_id"]

    fixed = engines.start()  # same database, same assistant: now every reply is right
    code, second = orch("retry", first["run_id"], "--target", fixed.base_url)

    assert code == 0, second
    assert second["run_id"] == first["run_id"]
    assert second["counts"] == {"total": n, "passed": n, "failed": 0, "errors": 0}
    assert fixed.stats()[CREATE_AND_RUN] == 3
    after = final_items(root, first["run_id"])
    for key in set(before) - {"3", "5", "7"}:
        assert after[key] == before[key]  # untouched
    lines = Counter(r["key"] for r in result_lines(root, first["run_id"]))
    assert lines == Counter({str(i): 2 if i in (3, 5, 7) else 1 for i in range(n)})
    assert_complete(root, first["run_id"], n, exact_lines=False)
