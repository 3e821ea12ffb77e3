"""The run history read without writing: what ``orch view`` shows, and nothing it could change.

:class:`orch.results.history.History` creates ``.orch`` and migrates the database when it opens;
the viewer must do neither (it may run beside a run that is writing, or over a copy of someone
else's history). :class:`ReadOnlyHistory` opens ``.orch/history.db`` through SQLite's
``mode=ro`` URI, once per call, and never creates a file of its own: a project without a
history is simply one with no runs.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from orch.project.documents import display_path
from orch.results.context import RunData
from orch.results.history import HistoryError, RunRecord

#: a run the viewer does not know, or a prefix that names several
UNKNOWN, AMBIGUOUS = "unknown", "ambiguous"


class RunNotFound(LookupError):
    """No run, or more than one, answers to an id; ``why`` is UNKNOWN or AMBIGUOUS."""

    def __init__(self, run_id: str, why: str):
        super().__init__(run_id)
        self.run_id, self.why = run_id, why


class ReadOnlyHistory:
    """Runs and their items from ``<root>/.orch``, read only (``mode=ro``; no migration)."""

    def __init__(self, root: Path):
        self.base = root / ".orch"
        self.db_path = self.base / "history.db"
        self.runs_dir = self.base / "runs"

    def exists(self) -> bool:
        """Whether any run was ever recorded here (the database file exists)."""
        return self.db_path.is_file()

    @contextmanager
    def _connect(self, doing: str) -> Iterator[sqlite3.Connection]:
        """A read-only connection; a SQLite error becomes a HistoryError naming the file."""
        uri = self.db_path.resolve().as_uri() + "?mode=ro"
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=30)
            try:
                yield conn
            finally:
                conn.close()
        except sqlite3.Error as exc:
            where = display_path(self.db_path)
            raise HistoryError(f"run history {where}: cannot {doing}: {exc}") from exc

    def runs(self, limit: int = 500, pipeline: str | None = None) -> list[RunRecord]:
        """Most recent runs first (none when there is no history yet)."""
        if not self.exists():
            return []
        sql, args = "SELECT * FROM runs", []
        if pipeline:
            sql += " WHERE pipeline = ?"
            args.append(pipeline)
        sql += " ORDER BY started_at DESC, run_id DESC LIMIT ?"
        with self._connect("list runs") as conn:
            rows = conn.execute(sql, [*args, limit]).fetchall()
        return [to_record(row) for row in rows]

    def pipelines(self) -> list[str]:
        """The names of every pipeline with a recorded run, sorted."""
        if not self.exists():
            return []
        with self._connect("list pipelines") as conn:
            rows = conn.execute("SELECT DISTINCT pipeline FROM runs ORDER BY pipeline").fetchall()
        return [name for (name,) in rows]

    def with_variants(self, run_ids: list[str]) -> set[str]:
        """Which of ``run_ids`` have items that record a ``variant``.

        A run of variants records one on every item, so one item per run is looked at (an
        index lookup each: a list of runs stays fast however many items they hold).
        """
        if not self.exists() or not run_ids:
            return set()
        found: set[str] = set()
        with self._connect("find runs with variants") as conn:
            for run_id in run_ids:
                row = conn.execute(
                    "SELECT json_extract(record, '$.variant') FROM items WHERE run_id = ? LIMIT 1",
                    (run_id,),
                ).fetchone()
                if row and row[0] is not None:
                    found.add(run_id)
        return found

    def get(self, run_id: str) -> RunRecord:
        """One run by id or unique prefix; :class:`RunNotFound` otherwise."""
        if not self.exists() or not run_id:
            raise RunNotFound(run_id, UNKNOWN)
        with self._connect(f"read run {run_id}") as conn:
            rows = conn.execute(
                "SELECT * FROM runs WHERE run_id = ? OR substr(run_id, 1, ?) = ? ORDER BY run_id",
                (run_id, len(run_id), run_id),
            ).fetchall()
        exact = [row for row in rows if row[0] == run_id]
        if exact or len(rows) == 1:
            return to_record((exact or rows)[0])
        raise RunNotFound(run_id, AMBIGUOUS if rows else UNKNOWN)

    def items(self, run_id: str) -> list[dict[str, Any]]:
        """The latest record of every item of a run, in item order."""
        with self._connect(f"read the items of run {run_id}") as conn:
            rows = conn.execute(
                "SELECT record FROM items WHERE run_id = ? ORDER BY"
                " json_extract(record, '$.index'), json_extract(record, '$.repeat'), key",
                (run_id,),
            ).fetchall()
        return [json.loads(record) for (record,) in rows]

    def load(self, run_id: str) -> RunData:
        """A run and its items, as :func:`orch.results.context.load_run` reads them."""
        record = self.get(run_id)
        return RunData(record, self.items(record.run_id), self.runs_dir / record.run_id)


def to_record(row: tuple) -> RunRecord:
    """A ``runs`` row as a :class:`RunRecord` (its columns are the fields; meta is JSON)."""
    *columns, meta = row
    return RunRecord(*columns, meta=json.loads(meta))
