"""Threads made ahead for a run's items: one per item in all, none left over, never a hang."""

from __future__ import annotations

import itertools
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from click.testing import CliRunner

from orch.cli import main
from orch.engine.server import start_engine
from orch.targets.reserve import Reserve


class Server:
    """Counts what a reserve asks of a server; ``create`` takes ``delay`` seconds."""

    def __init__(self, delay: float = 0.002, fail_after: int | None = None):
        self.delay, self.fail_after = delay, fail_after
        self.ids = itertools.count(1)
        self.made: list[str] = []
        self.deleted: list[str] = []
        self.lock = threading.Lock()

    def create(self) -> str:
        time.sleep(self.delay)
        with self.lock:
            if self.fail_after is not None and len(self.made) >= self.fail_after:
                raise ConnectionError("server down")
            thread_id = f"thread_{next(self.ids)}"
            self.made.append(thread_id)
            return thread_id

    def delete(self, thread_id: str) -> None:
        self.deleted.append(thread_id)


def claim_all(reserve: Reserve, server: Server, items: int, workers: int) -> list[str]:
    """Each item claims once and, given None, makes its own thread (as a session does)."""

    def item(_: int) -> str:
        time.sleep(0.005)  # the item's model wait: the filler gets ahead meanwhile
        return reserve.take() or server.create()

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(item, range(items)))


def test_every_item_gets_its_own_thread_and_none_is_made_in_vain():
    for _ in range(20):  # the races are at the start and the end: try them often
        server = Server()
        reserve = Reserve(server.create, server.delete, size=4, items=30)
        got = claim_all(reserve, server, items=30, workers=4)
        reserve.close()
        assert len(set(got)) == 30  # no thread shared by two items
        assert len(server.made) == 30 and server.deleted == []


def test_threads_nobody_claimed_are_deleted_when_the_run_stops():
    server = Server()
    reserve = Reserve(server.create, server.delete, size=4, items=30)
    got = claim_all(reserve, server, items=10, workers=2)  # stopped after 10 of 30
    reserve.close()
    left = set(server.made) - set(got)
    assert left and set(server.deleted) == left
    assert reserve.take() is None  # closed: nothing more is handed out


def test_a_failing_server_leaves_each_item_to_make_its_own_without_waiting():
    server = Server(fail_after=3)
    reserve = Reserve(server.create, server.delete, size=4, items=20)
    t0 = time.monotonic()
    got = [reserve.take() for _ in range(20)]
    reserve.close()
    assert time.monotonic() - t0 < 2
    assert len([g for g in got if g]) <= 3  # what it made before failing, then None


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    script = {"rules": [], "default": {"reply": "echo: {{ message }}", "delay_ms": 30}}
    with start_engine(tmp_path_factory.mktemp("engine") / "engine.db", script=script) as handle:
        yield handle


@pytest.mark.parametrize(
    ("kind", "create"),
    [("assistants", "POST /v1/threads"), ("responses", "POST /v1/conversations")],
)
def test_a_run_makes_one_conversation_per_item_whoever_makes_it(
    make_project, engine, monkeypatch, kind: str, create: str
):
    monkeypatch.setenv("RESERVE_KEY", "unused")
    n = 12
    items = ", ".join(f"{{q: 'item {i}'}}" for i in range(n))
    root = make_project(
        {
            "orch.yml": f"project: reserve-{kind}\ntarget: t\ntargets:\n  t: {{kind: {kind}, "
            f'base_url: "{engine.base_url}", api_key_env: RESERVE_KEY}}\n',
            "assistants/bot.yml": "name: bot\nmodel: gpt-4o\n",
            "pipelines/p.yml": f"name: p\nassistant: bot\nconcurrency: 3\nitems: [{items}]\n"
            "steps:\n  - prompt: '{{ item.q }}'\n    expect: [{contains: '{{ item.q }}'}]\n",
        }
    )
    engine.reset_stats()
    result = CliRunner().invoke(main, ["run", "p"])
    assert result.exit_code == 0, result.output
    [run_dir] = (root / ".orch/runs").iterdir()
    records = [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines()]
    assert len({r["thread_id"] for r in records}) == n  # each item on its own conversation
    stats = engine.stats()
    assert stats[create] == n  # made ahead or by the items themselves, none in vain
    assert not any(key.startswith("DELETE") for key in stats)
