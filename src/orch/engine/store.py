"""SQLite persistence: one JSON blob per API object, file contents, search chunks.

One connection, used only from the engine's event loop: SQLite in WAL mode, writes
group-committed and fsynced off the loop by :class:`orch.engine.commits.GroupCommit`. Nothing
written is acknowledged before it is on disk: the HTTP layer awaits :meth:`Store.durable`
before it sends a response (see :mod:`orch.engine.app`). A commit that fails (disk full, I/O
error) *fails stop*: every later write and every :meth:`Store.durable` raises
:class:`~orch.engine.errors.StorageError` (a 500 in OpenAI's shape) until the process restarts
and reads the last state that reached the disk.

Large uploaded contents live as files in :attr:`Store.blob_dir` (next to the database) rather
than in SQLite; :meth:`Store.get_blob` reads both. Keys starting with ``_`` in a stored object
are engine-private and stripped by :func:`public`.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import sqlite3
import string
import tempfile
import time
from pathlib import Path
from typing import Any

from orch.engine.commits import GroupCommit
from orch.engine.errors import StorageError

_ALPHABET = string.ascii_letters + string.digits
_SAFE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]*")

# Append-only: never edit a released step, add a new one.
MIGRATIONS = [
    """
    CREATE TABLE objects (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        id TEXT NOT NULL UNIQUE,
        kind TEXT NOT NULL,
        parent TEXT,
        data TEXT NOT NULL
    );
    CREATE INDEX objects_kind_parent ON objects(kind, parent, seq);
    CREATE TABLE blobs (id TEXT PRIMARY KEY, content BLOB NOT NULL);
    CREATE TABLE chunks (
        vector_store_id TEXT NOT NULL,
        file_id TEXT NOT NULL,
        idx INTEGER NOT NULL,
        text TEXT NOT NULL,
        PRIMARY KEY (vector_store_id, file_id, idx)
    );
    """,
]


def new_id(prefix: str, separator: str = "_") -> str:
    """An OpenAI-looking id such as ``run_3kT9...`` (24 random characters).

    OpenAI separates most prefixes with ``_`` but files with ``-`` (``file-3kT9...``).
    """
    return prefix + separator + "".join(secrets.choice(_ALPHABET) for _ in range(24))


#: The id prefix of each kind of API object (``"object"``) the engine creates.
ID_PREFIXES = {
    "assistant": "asst",
    "thread": "thread",
    "thread.message": "msg",
    "thread.run": "run",
    "thread.run.step": "step",
    "vector_store": "vs",
    "vector_store.files_batch": "vsfb",
    "container": "cntr",
    "conversation": "conv",
    "response": "resp",
}


def new_object(kind: str, created_at: int | None = None, **fields: Any) -> dict[str, Any]:
    """A new API object of ``kind``: ``id``, ``object``, ``created_at`` (default: now), ``fields``.

    The keys keep this order, OpenAI's, on the wire.
    """
    created = int(time.time()) if created_at is None else created_at
    return {"id": new_id(ID_PREFIXES[kind]), "object": kind, "created_at": created, **fields}


def child_key(parent_id: str, child_id: str) -> str:
    """Storage key of an object whose public id is only unique under its parent.

    A vector store file's id is the file's id, a container file or conversation item may
    share an id with one elsewhere: they are stored under ``"<parent id>/<own id>"``.
    """
    return f"{parent_id}/{child_id}"


def public(obj: dict[str, Any]) -> dict[str, Any]:
    """The object without engine-private (``_``-prefixed) keys."""
    return {k: v for k, v in obj.items() if not k.startswith("_")}


class Store:
    """Objects, blobs and chunks in one SQLite file (plus large blobs in :attr:`blob_dir`)."""

    def __init__(self, path: str | Path, commit_delay: float = 0.02):
        path = Path(path)
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        if str(path) == ":memory:":
            self._tmp = tempfile.TemporaryDirectory(prefix="orch-blobs-")
            self.blob_dir = Path(self._tmp.name)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.blob_dir = path.with_name(path.name + ".files")
            self.blob_dir.mkdir(exist_ok=True)
        self.path = path
        self.commit_delay = commit_delay
        # isolation_level=None: we manage transactions ourselves (BEGIN ... COMMIT in batches).
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        # NORMAL: a COMMIT does not wait for the disk; GroupCommit fsyncs the log off the loop.
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.execute("PRAGMA foreign_keys=OFF")
        self._migrate()
        wal = None if self._tmp is not None else path.with_name(path.name + "-wal")
        self._tx = GroupCommit(self._db, wal, commit_delay)
        self._write = self._tx.write
        self._maybe_commit_now = self._tx.settle
        self._sweep_blob_dir()

    def _migrate(self) -> None:
        version = self._db.execute("PRAGMA user_version").fetchone()[0]
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            self._db.executescript("BEGIN;" + script + f"PRAGMA user_version={number}; COMMIT;")

    # -- durability ----------------------------------------------------------------------------
    @property
    def failure(self) -> StorageError | None:
        """The commit failure that stopped the store, if one did (see :mod:`.commits`)."""
        return self._tx.failure

    @property
    def healthy(self) -> bool:
        """False once a commit has failed (the store refuses writes until a restart)."""
        return self._tx.failure is None

    async def durable(self) -> None:
        """Return once every write made so far is on disk (at once when it already is).

        Raises :class:`~orch.engine.errors.StorageError` when that commit fails, or failed
        before. Waiting callers share group commits (see :mod:`orch.engine.commits`).
        """
        await self._tx.durable()

    def commit(self) -> None:
        """Make every write so far durable now (blocking)."""
        self._tx.commit()

    def close(self) -> None:
        """Commit and close the connection."""
        self._tx.close()
        self._db.close()
        if self._tmp is not None:
            self._tmp.cleanup()

    # -- objects -----------------------------------------------------------------------------
    def insert(
        self, kind: str, obj: dict[str, Any], parent: str | None = None, key: str | None = None
    ) -> dict[str, Any]:
        """Store a new object under ``key`` (default: its ``id``) and return it."""
        self._write(
            "INSERT INTO objects (id, kind, parent, data) VALUES (?, ?, ?, ?)",
            (key or obj["id"], kind, parent, json.dumps(obj, separators=(",", ":"))),
        )
        self._maybe_commit_now()
        return obj

    def put(self, obj: dict[str, Any], key: str | None = None) -> dict[str, Any]:
        """Replace a stored object (under ``key``, default its ``id``) with this version."""
        self._write(
            "UPDATE objects SET data = ? WHERE id = ?",
            (json.dumps(obj, separators=(",", ":")), key or obj["id"]),
        )
        self._maybe_commit_now()
        return obj

    def get(self, kind: str, object_id: str, parent: str | None = None) -> dict[str, Any] | None:
        """The object with this id and kind (and parent, when given), or None."""
        row = self._db.execute(
            "SELECT data, parent FROM objects WHERE id = ? AND kind = ?", (object_id, kind)
        ).fetchone()
        if row is None or (parent is not None and row[1] != parent):
            return None
        return json.loads(row[0])

    def delete(self, object_id: str) -> None:
        """Forget an object."""
        self._write("DELETE FROM objects WHERE id = ?", (object_id,))
        self._maybe_commit_now()

    def delete_children(self, kind: str, parent: str) -> None:
        """Forget every object of a kind under a parent."""
        self._write("DELETE FROM objects WHERE kind = ? AND parent = ?", (kind, parent))
        self._maybe_commit_now()

    def all(self, kind: str, parent: str | None = None) -> list[dict[str, Any]]:
        """Every object of a kind (under a parent when given), oldest first."""
        if parent is None:
            rows = self._db.execute(
                "SELECT data FROM objects WHERE kind = ? ORDER BY seq", (kind,)
            ).fetchall()
        else:
            rows = self._db.execute(
                "SELECT data FROM objects WHERE kind = ? AND parent = ? ORDER BY seq",
                (kind, parent),
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def all_where(self, kind: str, key: str, values: tuple[str, ...]) -> list[dict[str, Any]]:
        """Every object of a kind whose top-level ``key`` is one of ``values``, oldest first."""
        marks = ",".join("?" * len(values))
        rows = self._db.execute(
            "SELECT data FROM objects WHERE kind = ? "
            f"AND json_extract(data, '$.{key}') IN ({marks}) ORDER BY seq",
            (kind, *values),
        ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def page(
        self,
        kind: str,
        parent: str | None,
        *,
        limit: int = 20,
        order: str = "desc",
        after: str | None = None,
        before: str | None = None,
        where: dict[str, Any] | None = None,
    ) -> tuple[list[dict[str, Any]], bool]:
        """One page of a list: ``(items, has_more)`` with OpenAI's cursor semantics."""
        sql = ["SELECT data FROM objects WHERE kind = ?"]
        args: list[Any] = [kind]
        if parent is not None:
            sql.append("AND parent = ?")
            args.append(parent)
        for key, value in (where or {}).items():
            sql.append(f"AND json_extract(data, '$.{key}') = ?")
            args.append(value)
        descending = order == "desc"
        # "after" goes on in the list's order, "before" against it.
        for cursor, earlier in ((after, descending), (before, not descending)):
            if cursor is not None:
                sql.append(
                    f"AND seq {'<' if earlier else '>'} (SELECT seq FROM objects WHERE id = ?)"
                )
                args.append(cursor)
        # The page just before the cursor: walk backwards from it, then restore the order.
        reverse = before is not None and after is None
        walk_desc = descending != reverse
        sql.append("ORDER BY seq " + ("DESC" if walk_desc else "ASC") + " LIMIT ?")
        args.append(limit + 1)
        rows = self._db.execute(" ".join(sql), args).fetchall()
        items = [json.loads(r[0]) for r in rows[:limit]]
        if reverse:
            items.reverse()
        return items, len(rows) > limit

    # -- blobs -------------------------------------------------------------------------------
    def put_blob(self, blob_id: str, content: bytes) -> None:
        """Store file content (in the database: for contents held in memory anyway)."""
        self._write("INSERT OR REPLACE INTO blobs (id, content) VALUES (?, ?)", (blob_id, content))
        self._maybe_commit_now()

    def get_blob(self, blob_id: str) -> bytes | None:
        """File content, or None."""
        row = self._db.execute("SELECT content FROM blobs WHERE id = ?", (blob_id,)).fetchone()
        if row is not None:
            return bytes(row[0])
        path = self.blob_file(blob_id)
        return None if path is None else path.read_bytes()

    def delete_blob(self, blob_id: str) -> None:
        """Forget file content (a blob file goes once the deletion is committed)."""
        self._write("DELETE FROM blobs WHERE id = ?", (blob_id,))
        path = self.blob_file(blob_id)
        if path is not None:
            self._tx.unlink_when_durable(path)
        self._maybe_commit_now()

    def blob_file(self, blob_id: str) -> Path | None:
        """The file holding a blob stored with :meth:`adopt_blob_file`, if there is one."""
        if not _SAFE_NAME.fullmatch(blob_id):
            return None
        path = self.blob_dir / blob_id
        return path if path.is_file() else None

    def blob_temp_path(self) -> Path:
        """A fresh path in :attr:`blob_dir` to write a blob to before :meth:`adopt_blob_file`."""
        return self.blob_dir / f"tmp-{secrets.token_hex(8)}"

    def adopt_blob_file(self, blob_id: str, written: Path) -> None:
        """Make an fsynced file (from :meth:`blob_temp_path`) the content of ``blob_id``.

        The rename is made durable here, before the object naming the blob is written, so a
        committed object never points at a missing file; a crash in between leaves a file
        no object names, removed at the next start.
        """
        if self._tx.failure is not None:
            raise self._tx.failure
        if not _SAFE_NAME.fullmatch(blob_id):
            raise ValueError(f"blob id {blob_id!r} cannot name a file")
        os.replace(written, self.blob_dir / blob_id)
        fd = os.open(self.blob_dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _sweep_blob_dir(self) -> None:
        """Remove unfinished uploads and blob files no stored object names (crash leftovers)."""
        for path in self.blob_dir.iterdir():
            named = self._db.execute("SELECT 1 FROM objects WHERE id = ?", (path.name,)).fetchone()
            if path.name.startswith("tmp-") or named is None:
                path.unlink(missing_ok=True)

    # -- search chunks -----------------------------------------------------------------------
    def put_chunks(self, vector_store_id: str, file_id: str, texts: list[str]) -> None:
        """Replace the searchable chunks of one file in one vector store."""
        self.delete_chunks(vector_store_id, file_id)
        for i, text in enumerate(texts):
            self._write(
                "INSERT INTO chunks (vector_store_id, file_id, idx, text) VALUES (?, ?, ?, ?)",
                (vector_store_id, file_id, i, text),
            )
        self._maybe_commit_now()

    def delete_chunks(self, vector_store_id: str, file_id: str | None = None) -> None:
        """Forget the chunks of a file (or of every file) in a vector store."""
        if file_id is None:
            self._write("DELETE FROM chunks WHERE vector_store_id = ?", (vector_store_id,))
        else:
            self._write(
                "DELETE FROM chunks WHERE vector_store_id = ? AND file_id = ?",
                (vector_store_id, file_id),
            )
        self._maybe_commit_now()

    def chunks(self, vector_store_ids: list[str]) -> list[tuple[str, str, int, str]]:
        """``(vector_store_id, file_id, idx, text)`` for every chunk of these stores."""
        if not vector_store_ids:
            return []
        marks = ",".join("?" * len(vector_store_ids))
        return self._db.execute(
            f"SELECT vector_store_id, file_id, idx, text FROM chunks "
            f"WHERE vector_store_id IN ({marks}) ORDER BY vector_store_id, file_id, idx",
            vector_store_ids,
        ).fetchall()
