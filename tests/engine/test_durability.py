"""Issue 11.7: a 2xx means the state it reports is on disk; a failed commit is a 500."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import httpx2
import openai
import pytest
from openai import OpenAI

from orch.engine.errors import StorageError
from orch.engine.store import Store, new_object
from tests.engine.serving import served


def _client(base_url: str) -> OpenAI:
    return OpenAI(base_url=base_url, api_key="x", max_retries=0)


# The reply comes after the stream has started: its events must wait for their own writes.
SLOW_SCRIPT = "rules:\n  - when: {contains: remember}\n    delay_ms: 200\n    reply: noted\n"


def test_what_a_2xx_confirmed_survives_kill_9(tmp_path: Path):
    db = tmp_path / "engine.db"
    script = tmp_path / "script.yml"
    script.write_text(SLOW_SCRIPT)
    with served(db, script=script) as engine:
        client = _client(engine.base_url)
        assistant = client.beta.assistants.create(model="scripted", name="durable")
        upload = client.files.create(file=("notes.txt", b"kept"), purpose="assistants")
        stream = client.beta.threads.create_and_run(
            assistant_id=assistant.id,
            thread={"messages": [{"role": "user", "content": "remember me"}]},
            stream=True,
        )
        for event in stream:
            if event.event == "thread.run.completed":
                engine.kill()  # the moment it is confirmed: no shutdown, no final commit
                break
        run = event.data
    with served(db) as engine:
        client = _client(engine.base_url)
        assert client.files.content(upload.id).content == b"kept"
        kept = client.beta.threads.runs.retrieve(run_id=run.id, thread_id=run.thread_id)
        assert kept.status == "completed"
        messages = client.beta.threads.messages.list(thread_id=run.thread_id, order="asc").data
        assert [m.role for m in messages] == ["user", "assistant"]
        assert messages[1].status == "completed"
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "and me"}])
        engine.kill()
    with served(db) as engine:
        client = _client(engine.base_url)
        assert client.beta.threads.retrieve(thread.id).id == thread.id
        assert len(client.beta.threads.messages.list(thread_id=thread.id).data) == 1


def test_a_failed_commit_is_a_500_and_the_engine_reports_itself_unhealthy(tmp_path: Path):
    db = tmp_path / "engine.db"
    confirmed: list[str] = []
    # A "full disk": no file the server writes may grow past 1 MB; each assistant below
    # adds ~200 kB to the write-ahead log, so a commit fails within a few.
    with served(db, file_size_limit=1_000_000) as engine:
        client = _client(engine.base_url)
        with pytest.raises(openai.InternalServerError) as failed:
            for i in range(20):
                made = client.beta.assistants.create(
                    model="scripted", name=f"big-{i}", instructions=f"{i} " + "x" * 200_000
                )
                confirmed.append(made.id)
        assert failed.value.body["type"] == "server_error"
        assert "could not save its state" in failed.value.body["message"]
        health = httpx2.get(engine.base_url + "/_orch/health")
        assert health.status_code == 503
        assert health.json()["error"]["code"] == "engine_unhealthy"
        with pytest.raises(openai.InternalServerError):  # fail-stop: nothing more is said
            client.beta.assistants.list()
    assert confirmed, "the disk filled up before the first commit"
    with served(db) as engine:
        client = _client(engine.base_url)
        names = {a.id: a.name for a in client.beta.assistants.list(limit=100).data}
        assert sorted(names) == sorted(confirmed)  # all it confirmed, nothing it refused
        assert httpx2.get(engine.base_url + "/_orch/health").json() == {"status": "ok"}


class _SlowDisk:
    """Stands in for the fsync of the write-ahead log: blocks until released, counts calls."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.syncs = 0

    def __call__(self) -> None:
        self.syncs += 1
        assert self.release.wait(5)


def test_durable_waits_for_the_disk_and_shares_syncs(tmp_path: Path):
    async def scenario() -> None:
        store = Store(tmp_path / "s.db", commit_delay=60)  # no timer: only waiters flush
        await store.durable()  # nothing written: at once
        disk = _SlowDisk()
        store._tx._sync_log = disk
        store.insert("thread", new_object("thread", metadata={}))
        first = asyncio.ensure_future(store.durable())
        await asyncio.sleep(0.05)
        assert disk.syncs == 1 and not first.done()  # committed, but not yet on disk
        # While that sync runs, three more writers wait: they share the next one.
        later = []
        for _ in range(3):
            store.insert("thread", new_object("thread", metadata={}))
            later.append(asyncio.ensure_future(store.durable()))
        await asyncio.sleep(0.05)
        assert disk.syncs == 1 and not any(w.done() for w in later)
        disk.release.set()
        await asyncio.wait_for(asyncio.gather(first, *later), 5)
        assert disk.syncs == 2
        store.close()

    asyncio.run(scenario())


class _FailingCommits:
    """The sqlite connection, except that COMMIT fails as on a full disk."""

    def __init__(self, db: sqlite3.Connection):
        self._db = db

    def execute(self, sql: str, *args):
        if sql == "COMMIT":
            raise sqlite3.OperationalError("database or disk is full")
        return self._db.execute(sql, *args)

    def close(self) -> None:
        self._db.close()


def test_a_failed_commit_rolls_back_and_stops_the_store(tmp_path: Path):
    async def scenario() -> str:
        store = Store(tmp_path / "s.db", commit_delay=60)
        store._tx._db = _FailingCommits(store._db)  # the sqlite boundary
        thread = store.insert("thread", new_object("thread", metadata={}))
        with pytest.raises(StorageError) as failed:
            await store.durable()
        assert failed.value.status == 500 and failed.value.type == "server_error"
        assert not store.healthy
        with pytest.raises(StorageError):
            store.insert("thread", new_object("thread", metadata={}))
        with pytest.raises(StorageError):
            await store.durable()
        return thread["id"]

    thread_id = asyncio.run(scenario())
    reopened = Store(tmp_path / "s.db")
    assert reopened.get("thread", thread_id) is None  # rolled back, never acknowledged
    reopened.close()


def test_a_failed_sync_stops_the_store(tmp_path: Path):
    async def scenario() -> None:
        store = Store(tmp_path / "s.db", commit_delay=60)

        def broken_disk() -> None:
            raise OSError(5, "Input/output error")

        store._tx._sync_log = broken_disk
        store.insert("thread", new_object("thread", metadata={}))
        with pytest.raises(StorageError, match="Input/output error"):
            await store.durable()
        assert not store.healthy
        store.close()

    asyncio.run(scenario())
