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
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from orch.cli import main
from orch.results.history import History

from .chaos import ChaosProxy, client_for
from .harness import (
    CREATE_RUN,
    CREATE_THREAD,
    ECHO,
    Engines,
    assert_complete,
    assert_threads_clean,
    final_items,
    orch,
    pipeline_yaml,
    result_lines,
    sync,
)

pytestmark = pytest.mark.usefixtures("quiet_deprecations")


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
    assert dropped[CREATE_RUN] > 0, "the proxy never lost a run create"
    stats = engine.stats()
    # every step's run create was sent exactly once, however many answers were lost: each
    # lost one was found by its nonce; threads are created first, empty, one per item
    assert stats[CREATE_RUN] == n * steps
    assert stats[CREATE_THREAD] == n


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


def _spawn(root: Path, url: str, *flags: str) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    return subprocess.Popen(
        [sys.executable, "-m", "orch", "run", "pipelines/chaos.yml", "--target", url, *flags],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        # A shell that starts a job in the background (CI runners may) leaves SIGINT ignored,
        # and Python keeps an ignored SIGINT ignored: give the child the default, as a
        # terminal would, so the Ctrl-C case really interrupts it.
        preexec_fn=_sigint_default,
    )


def _sigint_default() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


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
    """A resumed run finishes every item once, and no step is run twice on the engine.

    Items in flight when the run died get their thread back from the run's journal: the runs
    their steps had started are adopted (a kill) or, cancelled by Ctrl-C, followed by one new
    run on the same thread without sending the message again.
    """
    n = 40
    root.joinpath("pipelines").mkdir()
    root.joinpath("pipelines/chaos.yml").write_text(pipeline_yaml(n, concurrency=4))
    engine = engines.start({"rules": [], "delay_ms": 120, "default": ECHO["default"]})
    sync(engine.base_url)

    proc = _spawn(root, engine.base_url, "-q")
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
    code, summary = orch("run", "--resume", run_id)  # on the run's own target

    assert code == 0, summary
    assert summary["run_id"] == run_id
    assert engine.stats()[CREATE_THREAD] <= n - len(done)  # only the missing items ran
    # recorded once: a line the database missed (a kill between the two writes) is recovered
    assert_complete(root, run_id, n)
    record = _history(root, run_id)
    assert (record["status"], record["total"], record["passed"]) == ("completed", n, n)
    audit = engines.audit()
    records = list(final_items(root, run_id).values())
    assert (audit.duplicated(), audit.orphans(records)) == (0, 0)
    answered = [r for runs in audit.runs.values() for r in runs]
    cancelled = {r for rec in records for s in rec["steps"] for r in s["runs"][:-1]}
    assert len(answered) == n + len(cancelled)  # one run per item, plus those Ctrl-C stopped
    assert how == "sigint" or not cancelled


def test_an_item_reported_done_survives_kill_9_and_none_runs_twice(
    root: Path, engines: Engines
) -> None:
    """Items are persisted off the dispatch path, but none is reported before it is durable.

    Killed with -9 right after its 20th progress line, the run has every reported item in
    results.jsonl and the history. Items that had finished but were not yet written are run
    again by the resume, which adopts their runs: no run is created twice.
    """
    n = 60
    root.joinpath("pipelines").mkdir()
    root.joinpath("pipelines/chaos.yml").write_text(pipeline_yaml(n, concurrency=12))
    engine = engines.start({"rules": [], "delay_ms": 60, "default": ECHO["default"]})
    sync(engine.base_url)

    proc = _spawn(root, engine.base_url)  # progress lines on stderr: `[k/n] ok    #key …`
    reported: list[str] = []
    for line in proc.stderr:
        if line.startswith(b"["):
            reported.append(line.split(b"#")[1].split()[0].decode())
        if len(reported) == 20:
            proc.kill()
            break
    proc.wait(30)
    assert proc.returncode == -signal.SIGKILL, proc.stderr.read()
    run_id = next((root / ".orch" / "runs").iterdir()).name
    on_disk = {r["key"] for r in result_lines(root, run_id)}
    assert set(reported) <= on_disk and set(reported) <= _recorded(root, run_id)
    assert len(on_disk) < n

    code, summary = orch("run", "--resume", run_id)

    assert code == 0, summary
    assert_complete(root, run_id, n)
    audit = engines.audit()
    assert (audit.duplicated(), audit.orphans(list(final_items(root, run_id).values()))) == (0, 0)
    assert sum(len(runs) for runs in audit.runs.values()) == n  # one run per item, ever


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
    assert fixed.stats()[CREATE_THREAD] == 3
    after = final_items(root, first["run_id"])
    for key in set(before) - {"3", "5", "7"}:
        assert after[key] == before[key]  # untouched
    lines = Counter(r["key"] for r in result_lines(root, first["run_id"]))
    assert lines == Counter({str(i): 2 if i in (3, 5, 7) else 1 for i in range(n)})
    assert_complete(root, first["run_id"], n, exact_lines=False)
