"""Run history: a SQLite file plus one folder of artifacts per run.

``.orch/history.db`` lists runs and every finished item (append-only migrations, numbered by
``PRAGMA user_version``). ``.orch/runs/<run_id>/`` holds ``run.json`` (schema_version, run_id,
pipeline hash, target, timing, usage, counts), ``results.jsonl`` (one line per finished item
run, appended and flushed before the item is reported) and downloaded files. Reading a run back
takes the last line per item key, so a retried item supersedes its failure.

What is recorded never holds a URL's userinfo: ``http://user:KEY@host`` is stored as
``http://host`` (a key in a target's ``base_url`` must not end up in run.json, the database or
a report). Every failure to read or write the history (SQLite errors, a full disk, a ``.orch``
that is a file) is a :class:`HistoryError`, one line naming the file.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orch.errors import OrchError, UsageError
from orch.project.documents import display_path
from orch.results.files import cannot_write, write_atomic

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


#: ``scheme://userinfo@``: the userinfo (``user:password``, an API key) is dropped when recorded.
#: Backslashes and quotes end it, so it never runs across a JSON string's boundary.
_USERINFO = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]*://)[^\s/?#@\"'<>\\]+@")


class HistoryError(OrchError):
    """The run history under ``.orch/`` cannot be read or written (exit 2, one line)."""


def strip_userinfo(text: str) -> str:
    """``text`` with the userinfo of every URL in it removed (``http://u:KEY@h`` → ``http://h``)."""
    if "@" not in text or "://" not in text:  # the common case, without a regex
        return text
    return _USERINFO.sub(r"\1", text)


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
    Every method raises :class:`HistoryError` when the files cannot be read or written.
    """

    def __init__(self, root: Path):
        self.base = root / ".orch"
        self.db_path = self.base / "history.db"
        self.runs_dir = self.base / "runs"
        self._lock = threading.Lock()
        try:
            self.base.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HistoryError(cannot_write(self.base, exc)) from exc
        with self._guard("open"):
            self._conn = sqlite3.connect(
                self.db_path, check_same_thread=False, isolation_level=None, timeout=30
            )
            try:
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")
                _migrate(self._conn)
            except BaseException:
                self._conn.close()
                raise

    def close(self) -> None:
        """Close the database."""
        self._conn.close()

    def __enter__(self) -> History:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    @contextmanager
    def _guard(self, doing: str) -> Iterator[None]:
        """Turn a SQLite error while ``doing`` something into a HistoryError naming the file."""
        try:
            yield
        except sqlite3.Error as exc:
            where = display_path(self.db_path)
            raise HistoryError(f"run history {where}: cannot {doing}: {exc}") from exc

    def run_dir(self, run_id: str) -> Path:
        """The artifact folder of a run."""
        return self.runs_dir / run_id

    # -- writing -------------------------------------------------------------------------------

    def start_run(self, meta: dict[str, Any]) -> None:
        """Record a new run (or re-open one being resumed) and write its run.json."""
        meta = _clean(meta)
        folder = self.run_dir(meta["run_id"])
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise HistoryError(cannot_write(folder, exc)) from exc
        with self._lock, self._guard(f"record run {meta['run_id']}"):
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
        """Atomically replace ``run.json`` (URLs without their userinfo)."""
        path = self.run_dir(meta["run_id"]) / "run.json"
        try:
            write_atomic(path, json.dumps(_clean(meta), indent=2, ensure_ascii=False))
        except OSError as exc:
            raise HistoryError(cannot_write(path, exc)) from exc

    def record_item(self, run_id: str, record: dict[str, Any]) -> None:
        """Persist one finished item run: results.jsonl (fsync'd), then the database."""
        self.record_items(run_id, [record])

    def import_items(self, run_id: str, records: list[dict[str, Any]]) -> None:
        """Persist the records of another run's files (``orch merge``); see :meth:`record_items`."""
        self.record_items(run_id, records)

    def record_items(self, run_id: str, records: list[dict[str, Any]]) -> None:
        """Persist finished item runs together, in order (a group commit).

        One append to results.jsonl and one fsync, then one transaction in the database: when
        this returns every record is durable. A kill before that leaves, at worst, lines in
        results.jsonl that the database lacks (:meth:`recover_items` puts them there) and a
        torn last line, which every reader skips and the next append does not run into.
        """
        lines = [strip_userinfo(json.dumps(r, ensure_ascii=False, default=str)) for r in records]
        path = self.run_dir(run_id) / "results.jsonl"
        data = "".join(line + "\n" for line in lines).encode("utf-8")
        with self._lock:
            try:
                with path.open("a+b") as fh:
                    if fh.tell() and (fh.seek(-1, os.SEEK_END), fh.read(1))[1] != b"\n":
                        data = b"\n" + data  # end the torn line a killed write left
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
            except OSError as exc:
                raise HistoryError(cannot_write(path, exc)) from exc
            what = f"record item {records[0]['key']}" if len(records) == 1 else "record items"
            with self._guard(f"{what} of run {run_id}"):
                rows = [
                    (run_id, r["key"], r["status"], r["finished_at"], line)
                    for r, line in zip(records, lines, strict=True)
                ]
                self._conn.execute("BEGIN")
                try:
                    self._conn.executemany(
                        "INSERT OR REPLACE INTO items (run_id, key, status, finished_at, record)"
                        " VALUES (?, ?, ?, ?, ?)",
                        rows,
                    )
                except BaseException:
                    self._conn.execute("ROLLBACK")
                    raise
                self._conn.execute("COMMIT")

    def recover_items(self, run_id: str) -> int:
        """Put into the database the latest results.jsonl records it lacks; returns how many.

        A run killed between the two writes of :meth:`record_item` has an item's line but not
        its row; a resume calls this first, so that item counts as finished and is not run (nor
        recorded) again. A torn last line (killed mid-write) is ignored.
        """
        latest: dict[str, str] = {}  # key → finished_at of its last line
        for record in _lines(self.run_dir(run_id) / "results.jsonl"):
            latest[record["key"]] = record["finished_at"]
        with self._lock:
            known = dict(
                self._conn.execute(
                    "SELECT key, finished_at FROM items WHERE run_id = ?", (run_id,)
                ).fetchall()
            )
        stale = {key for key, at in latest.items() if known.get(key) != at}
        found = {
            r["key"]: r
            for r in _lines(self.run_dir(run_id) / "results.jsonl")
            if r["key"] in stale and r["finished_at"] == latest[r["key"]]
        }
        with self._lock:
            for key, record in found.items():
                self._conn.execute(
                    "INSERT OR REPLACE INTO items (run_id, key, status, finished_at, record)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (run_id, key, record["status"], record["finished_at"], json.dumps(record)),
                )
        return len(found)

    def finish_run(self, meta: dict[str, Any]) -> None:
        """Store the final counts and status; rewrite run.json."""
        meta = _clean(meta)
        counts, usage = meta["counts"], meta["usage"]
        with self._lock, self._guard(f"finish run {meta['run_id']}"):
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
        with self._lock, self._guard("list runs"):
            rows = self._conn.execute(sql, args).fetchall()
        return [_record(row) for row in rows]

    def get(self, run_id: str) -> RunRecord:
        """One run by id (a unique prefix works too); UsageError when unknown."""
        with self._lock, self._guard(f"read run {run_id}"):
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
            raise UsageError(f"no run {run_id!r} in {self.db_path} (see `orch history`)")
        raise UsageError(f"run id {run_id!r} is ambiguous: {', '.join(r[0] for r in rows[:5])}")

    def items(self, run_id: str) -> Iterator[dict[str, Any]]:
        """The latest record of every item of a run, in item order, streamed from the database.

        One record in memory at a time (a run may have 10,000s); the rows come through a
        connection of their own, so no lock is held while the caller works on each.
        """
        with self._guard(f"read the items of run {run_id}"):
            conn = sqlite3.connect(self.db_path, timeout=30)
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

    def attempts(self, run_id: str) -> Iterator[dict[str, Any]]:
        """Every record results.jsonl holds for a run, superseded ones too (each was paid for)."""
        return _lines(self.run_dir(run_id) / "results.jsonl")

    def usage(self, run_id: str) -> dict[str, int]:
        """Token usage summed over the latest record of every item of a run (in SQL)."""
        keys = ("prompt_tokens", "completion_tokens", "total_tokens")
        sums = ", ".join(f"COALESCE(SUM(json_extract(record, '$.usage.{k}')), 0)" for k in keys)
        with self._lock, self._guard(f"sum the usage of run {run_id}"):
            row = self._conn.execute(
                f"SELECT {sums} FROM items WHERE run_id = ?", (run_id,)
            ).fetchone()
        return dict(zip(keys, row, strict=True))

    def item_status(self, run_id: str) -> dict[str, str]:
        """Item key → status for a run (what a resume skips)."""
        with self._lock, self._guard(f"read the items of run {run_id}"):
            rows = self._conn.execute(
                "SELECT key, status FROM items WHERE run_id = ?", (run_id,)
            ).fetchall()
        return dict(rows)


def _clean(meta: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``meta`` with the userinfo of every URL in it removed."""
    return json.loads(strip_userinfo(json.dumps(meta, ensure_ascii=False, default=str)))


def _record(row: tuple) -> RunRecord:
    """A ``runs`` row as a :class:`RunRecord` (its columns are the fields, in order)."""
    *columns, meta = row  # meta, the last column, is JSON
    return RunRecord(*columns, meta=json.loads(meta))


def read_results(path: Path) -> dict[str, dict[str, Any]]:
    """Item key → the last record of a results.jsonl (a retry supersedes a failure).

    A missing file is {}; a torn or keyless line is skipped; an unreadable file raises OSError.
    """
    return {
        record["key"]: record
        for record in _lines(path)
        if isinstance(record, dict) and "key" in record
    }


def _lines(path: Path) -> Iterator[dict[str, Any]]:
    """The records of a results.jsonl, one at a time; a torn line is skipped."""
    if not path.exists():
        return
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                yield json.loads(line)
            except ValueError:
                continue
