"""Runs you can trust (issue 11): one target per run, no step twice, spoiled answers survived.

End to end through the CLI and real HTTP on loopback: engines started here, the chaos proxy in
front of them injecting refusals (429, 5xx, resets: never processed) and spoiled answers (lost,
empty, untyped, truncated JSON or SSE: processed). The engine's own state is the judge.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from click.testing import CliRunner

from orch.cli import main

from .chaos import ChaosProxy, run_creates
from .harness import (
    CREATE_RUN,
    CREATE_THREAD,
    ECHO,
    Engines,
    assert_complete,
    final_items,
    orch,
    pipeline_yaml,
    sync,
)

pytestmark = pytest.mark.usefixtures("quiet_deprecations")

#: a fifth of all requests fail: half refused before the engine sees them, half spoiled after
SPOILED = {"lost": 0.02, "empty": 0.02, "untyped": 0.02, "truncated": 0.02, "cut": 0.02}
REFUSED = {"429": 0.04, "500": 0.03, "reset": 0.03}
#: what sync (and the run's sync check) asks before any item
SETUP = {"GET /v1/assistants", "GET /v1/files", "GET /v1/vector_stores", "POST /v1/assistants"}


# -- 1. a run stays on its target ----------------------------------------------------------------


def test_a_run_continues_on_its_own_target_unless_switched(
    make_project, tmp_path: Path, engines: Engines
) -> None:
    other = Engines(tmp_path / "other.db")

    def failing(items: str) -> dict:
        rule = {
            "when": {"regex": f"item [{items}]$"},
            "fail": {"code": "invalid_prompt", "message": "no"},
        }
        return {"rules": [rule], "default": ECHO["default"]}

    a, b = engines.start(failing("12")), other.start()
    root = make_project(
        {
            "orch.yml": f"""
                project: pinned
                target: b
                targets:
                  a: {{kind: assistants, base_url: "{a.base_url}"}}
                  b: {{kind: assistants, base_url: "{b.base_url}"}}
            """,
            "assistants/echo.yml": "name: echo\nmodel: gpt-4o\n",
            "pipelines/chaos.yml": pipeline_yaml(4),
        }
    )
    try:
        for name in ("a", "b"):
            sync(name)
        code, first = orch("run", "chaos", "--target", "a")
        assert (code, first["counts"]["errors"]) == (2, 2)
        run_id = first["run_id"]
        b.reset_stats()

        refused = CliRunner().invoke(main, ["retry", run_id, "--target", "b"])
        assert refused.exit_code == 2
        lines = refused.output.strip().splitlines()
        assert len(lines) == 1 and "ran on target 'a'" in lines[0], refused.output
        assert "--switch-target" in lines[0]
        assert CREATE_THREAD not in b.stats()  # nothing ran on b

        a = engines.start(failing("2"))
        code, again = orch("retry", run_id)  # orch.yml's default is b: the run stays on a
        assert (code, again["counts"]["errors"]) == (2, 1)
        assert a.stats()[CREATE_THREAD] == 2 and CREATE_THREAD not in b.stats()

        code, switched = orch("retry", run_id, "--target", "b", "--switch-target")
        assert (code, switched["counts"]["passed"]) == (0, 4)
        assert b.stats()[CREATE_THREAD] == 1
    finally:
        other.stop()
    meta = json.loads((root / ".orch/runs" / run_id / "run.json").read_text())
    assert meta["target_name"] == "b"
    assert [t["target_name"] for t in meta["target_history"]] == ["a", "b"]
    assert meta["target_history"][1]["items_before"] == 4
    assert "switched from a" in meta["target"]


def test_switch_target_needs_a_run_to_resume(root: Path) -> None:
    result = CliRunner().invoke(main, ["run", "x", "--switch-target"])
    assert result.exit_code == 2
    assert "--switch-target applies to --resume" in result.output


# -- 2. no message, no model run twice -----------------------------------------------------------


@pytest.mark.parametrize("poll", [False, True], ids=["stream", "poll"])
def test_no_step_runs_twice_under_refusals_and_lost_answers(
    root: Path, engines: Engines, poll: bool
) -> None:
    """Every create is processed once on the engine; a lost thread create leaves only an
    empty thread; nothing is lost, duplicated or orphaned."""
    n, steps = 16, 2
    root.joinpath("pipelines").mkdir()
    root.joinpath("pipelines/chaos.yml").write_text(pipeline_yaml(n, steps=steps, retries=8))
    engine = engines.start()
    sync(engine.base_url)
    engine.reset_stats()

    with ChaosProxy(engine.base_url, seed=11, faults={**SPOILED, **REFUSED}) as proxy:
        flags = ["--poll"] if poll else []
        code, summary = orch("run", "pipelines/chaos.yml", "--target", proxy.base_url, *flags)

    assert code == 0, summary
    assert_complete(root, summary["run_id"], n)
    injected = Counter(mode for mode, _ in proxy.injected.elements())
    assert sum(injected[m] for m in SPOILED) and sum(injected[m] for m in REFUSED), injected
    stats = engine.stats()
    assert stats[CREATE_RUN] == n * steps  # each step's run create was processed once
    records = list(final_items(root, summary["run_id"]).values())
    audit = engines.audit()
    assert (audit.lost(records, {str(i) for i in range(n)}), audit.duplicated()) == (0, 0)
    assert audit.orphans(records) == 0
    lost_threads = sum(
        c for (m, key), c in proxy.injected.items() if m in SPOILED and key == CREATE_THREAD
    )
    assert audit.empty_threads() == lost_threads == stats[CREATE_THREAD] - n


# -- 3. an empty or truncated 200 is transient ---------------------------------------------------


@pytest.mark.parametrize(
    ("mode", "poll"),
    [("empty", False), ("untyped", False), ("truncated", False), ("truncated", True)],
    ids=["empty-sse", "untyped", "truncated-sse", "truncated-json"],
)
def test_spoiled_200s_are_retried_or_looked_up_from_setup_to_last_step(
    root: Path, engines: Engines, mode: str, poll: bool
) -> None:
    """Setup (sync, the run's sync check) and every step survive 200s whose body is empty,
    untyped or truncated: reads are retried, run creates looked up by their nonce."""
    n = 8
    root.joinpath("pipelines").mkdir()
    root.joinpath("pipelines/chaos.yml").write_text(pipeline_yaml(n, steps=2, retries=6))
    engine = engines.start()
    flags = ["--poll"] if poll else []

    # every 2nd run create and every 6th request of any kind get a spoiled 200
    with (
        ChaosProxy(engine.base_url, faults={mode: 1}, match=run_creates, every=2) as creates,
        ChaosProxy(creates.base_url, faults={mode: 1}, every=6) as proxy,
    ):
        sync(proxy.base_url)  # sync itself reads (and creates) through the spoiled answers
        code, summary = orch("run", "pipelines/chaos.yml", "--target", proxy.base_url, *flags)

    assert code == 0, summary
    assert_complete(root, summary["run_id"], n)
    assert creates.injected[(mode, CREATE_RUN)] >= n  # half of the 2n run creates, at least
    assert {key for _, key in proxy.injected} & SETUP
    assert engine.stats()[CREATE_RUN] == 2 * n  # none was repeated
    audit = engines.audit()
    records = list(final_items(root, summary["run_id"]).values())
    assert (audit.duplicated(), audit.orphans(records)) == (0, 0)


def test_an_answer_that_stays_empty_is_one_line_and_exit_2(root: Path, engines: Engines) -> None:
    engine = engines.start()
    listing = lambda method, path: path == "/v1/assistants"  # noqa: E731
    with ChaosProxy(engine.base_url, faults={"truncated": 1.0}, match=listing) as proxy:
        result = CliRunner().invoke(main, ["sync", "--target", proxy.base_url])

    assert result.exit_code == 2
    [line] = result.output.strip().splitlines()
    assert line.startswith("error: list assistants: the server's answer was empty or cut short")
