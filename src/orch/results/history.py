"""Run history: a SQLite file plus one folder of artifacts per run.

``.orch/history.db`` lists runs and every finished item (append-only migrations, numbered by
``PRAGMA user_version``). ``.orch/runs/<run_id>/`` holds ``run.json`` (schema_version, run_id,
pipeline hash, target, timing, usage, counts), ``results.jsonl`` (one line per finished item
run, appended and flushed before the item is reported) and downloaded files. Reading a run back
takes the last line per item key, so a retried item supersedes its failure.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orch.errors import UsageError

SCHEMA_VERSION = 1

MIGRATIONS = [
    """
    CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        pipeline TEXT NOT NULL,
        pipeline_hash TEXT NOT NULL,
        target TEXT NOT NULL,
        status TEXT NOT NULL,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        total INTEGER NOT NULL DEFAULT 0,
        passed INTEGER NOT NULL DEFAULT 0,
        failed INTEGER NOT NULL DEFAULT 0,
        errors INTEGER NOT NULL DEFAULT 0,
        prompt_tokens INTEGER NOT NULL DEFAULT 0,
        completion_tokens INTEGER NOT NULL DEFAULT 0,
        meta TEXT NOT NULL
    );
    CREATE TABLE items (
        run_id TEXT NOT NULL REFERENCES runs(run_id),
        key TEXT NOT NULL,
        status TEXT NOT NULL,
        finished_at TEXT NOT NULL,
        record TEXT NOT NULL,
        PRIMARY KEY (run_id, key)
    );
    """,
]


def _migrate(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        conn.executescript(f"BEGIN; {script}; PRAGMA user_version = {number}; COMMIT;")


@dataclass
class RunRecord:
    """A row of ``orch history``."""

    run_id: str
    pipeline: str
    pipeline_hash: str
    target: str
    status: str
    started_at: str
    finished_at: str | None
    total: int
    passed: int
    failed: int
    errors: int
    prompt_tokens: int
    completion_tokens: int
    meta: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {k: v for k, v in self.__dict__.items()}


class History:
    """The project's run history under ``<root>/.orch``; safe to use from several threads.

    Opening creates ``.orch`` and migrates the database; ``close()`` it when done, or use it as
    a context manager (``with History(root) as history:``), which closes it on the way out.
    """

    def __init__(self, root: Path):
        self.base = root / ".orch"
        self.base.mkdir(parents=True, exist_ok=True)
        self.runs_dir = self.base / "runs"
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(
            self.base / "history.db", check_same_thread=False, isolation_level=None, timeout=30
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        _migrate(self._conn)

    def close(self) -> None:
        """Close the database."""
        self._conn.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def run_dir(self, run_id: str) -> Path:
        """The artifact folder of a run."""
        return self.runs_dir / run_id

    # -- writing -------------------------------------------------------------------------------

    def start_run(self, meta: dict[str, Any]) -> None:
        """Record a new run (or re-open one being resumed) and write its run.json."""
        folder = self.run_dir(meta["run_id"])
        folder.mkdir(parents=True, exist_ok=True)
        with self._lock:
            self._conn.execute(
                "INSERT INTO runs (run_id, pipeline, pipeline_hash, target, status, started_at,"
                " meta) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(run_id) DO UPDATE SET"
                " status = excluded.status, meta = excluded.meta",
                (
                    meta["run_id"],
                    meta["pipeline"],
                    meta["pipeline_hash"],
                    meta["target"],
                    "running",
                    meta["started_at"],
                    json.dumps(meta),
                ),
            )
        self.write_run_json(meta)

    def write_run_json(self, meta: dict[str, Any]) -> None:
        """Atomically replace ``run.json``."""
        path = self.run_dir(meta["run_id"]) / "run.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(meta, indent=2, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)

    def record_item(self, run_id: str, record: dict[str, Any]) -> None:
        """Persist one finished item run: results.jsonl (flushed) and the database."""
        line = json.dumps(record, ensure_ascii=False, default=str)
        with self._lock:
            with (self.run_dir(run_id) / "results.jsonl").open("a", encoding="utf-8") as fh:
                fh.write(line + "\n")
                fh.flush()
                os.fsync(fh.fileno())
            self._conn.execute(
                "INSERT OR REPLACE INTO items (run_id, key, status, finished_at, record)"
                " VALUES (?, ?, ?, ?, ?)",
                (run_id, record["key"], record["status"], record["finished_at"], line),
            )

    def finish_run(self, meta: dict[str, Any]) -> None:
        """Store the final counts and status; rewrite run.json."""
        counts, usage = meta["counts"], meta["usage"]
        with self._lock:
            self._conn.execute(
                "UPDATE runs SET status = ?, finished_at = ?, total = ?, passed = ?, failed = ?,"
                " errors = ?, prompt_tokens = ?, completion_tokens = ?, meta = ?"
                " WHERE run_id = ?",
                (
                    meta["status"],
                    meta.get("finished_at"),
                    counts["total"],
                    counts["passed"],
                    counts["failed"],
                    counts["errors"],
                    usage.get("prompt_tokens", 0),
                    usage.get("completion_tokens", 0),
                    json.dumps(meta),
                    meta["run_id"],
                ),
            )
        self.write_run_json(meta)

    # -- reading -------------------------------------------------------------------------------

    def runs(self, limit: int = 50, pipeline: str | None = None) -> list[RunRecord]:
        """Most recent runs first."""
        sql = "SELECT * FROM runs"
        args: list[Any] = []
        if pipeline:
            sql += " WHERE pipeline = ?"
            args.append(pipeline)
        sql += " ORDER BY started_at DESC, run_id DESC LIMIT ?"
        args.append(limit)
        with self._lock:
            rows = self._conn.execute(sql, args).fetchall()
        return [_record(row) for row in rows]

    def get(self, run_id: str) -> RunRecord:
        """One run by id (a unique prefix works too); UsageError when unknown."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT * FROM runs WHERE run_id = ? OR run_id LIKE ? ORDER BY run_id",
                (run_id, run_id + "%"),
            ).fetchall()
        exact = [r for r in rows if r[0] == run_id]
        if exact:
            return _record(exact[0])
        if len(rows) == 1:
            return _record(rows[0])
        if not rows:
            raise UsageError(
                f"no run {run_id!r} in {self.base / 'history.db'} (see `orch history`)"
            )
        raise UsageError(f"run id {run_id!r} is ambiguous: {', '.join(r[0] for r in rows[:5])}")

    def items(self, run_id: str) -> Iterator[dict[str, Any]]:
        """The latest record of every item of a run, in item order, streamed from the database.

        One record in memory at a time (a run may have 10,000s); the rows come through a
        connection of their own, so no lock is held while the caller works on each.
        """
        conn = sqlite3.connect(self.base / "history.db", timeout=30)
        try:
            rows = conn.execute(
                "SELECT record FROM items WHERE run_id = ? ORDER BY"
                " json_extract(record, '$.index'), json_extract(record, '$.repeat'), key",
                (run_id,),
            )
            for (record,) in rows:
                yield json.loads(record)
        finally:
            conn.close()

    def usage(self, run_id: str) -> dict[str, int]:
        """Token usage summed over the latest record of every item of a run (in SQL)."""
        keys = ("prompt_tokens", "completion_tokens", "total_tokens")
        sums = ", ".join(f"COALESCE(SUM(json_extract(record, '$.usage.{k}')), 0)" for k in keys)
        with self._lock:
            row = self._conn.execute(
                f"SELECT {sums} FROM items WHERE run_id = ?", (run_id,)
            ).fetchone()
        return dict(zip(keys, row, strict=True))

    def item_status(self, run_id: str) -> dict[str, str]:
        """Item key → status for a run (what a resume skips)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT key, status FROM items WHERE run_id = ?", (run_id,)
            ).fetchall()
        return dict(rows)


def _record(row: tuple) -> RunRecord:
    """A ``runs`` row as a :class:`RunRecord` (its columns are the fields, in order)."""
    *columns, meta = row  # meta, the last column, is JSON
    return RunRecord(*columns, meta=json.loads(meta))
