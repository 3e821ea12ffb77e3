"""Group commit over one SQLite connection: writes acknowledged only once they are on disk.

SQLite runs in WAL mode with ``synchronous=NORMAL``, so a ``COMMIT`` appends the batch to the
write-ahead log without waiting for the disk; :class:`GroupCommit` then fsyncs the log in a
worker thread, which makes the batch exactly as durable as ``synchronous=FULL`` would, without
blocking the event loop for the disk. Writes open a transaction; it is committed as soon as
somebody awaits :meth:`GroupCommit.durable` (or ``delay`` seconds after the first write, for
writes nobody waits on). While one fsync is in flight the next batch gathers, so however
many requests wait, the disk sees one fsync at a time.

A failed commit or fsync (disk full, I/O error) stops everything (*fail-stop*): the batch is
rolled back when it can be, every waiter and every later write or wait raises
:class:`~orch.engine.errors.StorageError` (a 500 in OpenAI's shape) until the process
restarts and reads the last state that reached the disk.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sqlite3
from pathlib import Path

from orch.engine.errors import StorageError

log = logging.getLogger("orch.engine")


class GroupCommit:
    """Transactions on ``db`` (``isolation_level=None``), committed and fsynced in groups.

    ``wal`` is the database's write-ahead log (``None`` for ``:memory:``, which has no disk
    to reach). Call everything from one thread: the event loop's, or any when no loop runs
    (then every write is committed and synced at once).
    """

    def __init__(self, db: sqlite3.Connection, wal: Path | None, delay: float):
        self._db = db
        self._wal = wal
        self._wal_fd: int | None = None
        self.delay = delay
        self._in_tx = False
        self._written = 0  # writes made so far (a counter) ...
        self._committed = 0  # ... of which the last COMMIT covered this many ...
        self._synced = 0  # ... and this many are on disk
        self._syncing = False
        self._timer: asyncio.TimerHandle | None = None
        self._flush_queued = False
        self._waiters: list[tuple[int, asyncio.Future[None]]] = []
        self._unlinks: list[tuple[int, Path]] = []
        self._closed = False
        #: The failure that stopped the store, if one did.
        self.failure: StorageError | None = None

    # -- writing -----------------------------------------------------------------------------
    def write(self, sql: str, args: tuple = ()) -> sqlite3.Cursor:
        """Execute a write inside the current batch (opening one if needed)."""
        if self.failure is not None:
            raise self.failure
        if not self._in_tx:
            self._db.execute("BEGIN")
            self._in_tx = True
            self._arm_timer()
        cursor = self._db.execute(sql, args)
        self._written += 1
        return cursor

    def unlink_when_durable(self, path: Path) -> None:
        """Remove ``path`` once the writes made so far are on disk (a deleted blob's file)."""
        self._unlinks.append((self._written, path))

    def settle(self) -> None:
        """Commit and sync at once when there is no event loop to do it later."""
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            self.commit()
            return
        if self.delay <= 0:
            self.commit()

    def _arm_timer(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return  # settle() commits right after the write
        if self._timer is None and self.delay > 0:
            self._timer = loop.call_later(self.delay, self._flush)

    # -- waiting -----------------------------------------------------------------------------
    async def durable(self) -> None:
        """Return once every write made so far is on disk (at once when it already is).

        Raises :class:`StorageError` when the commit or sync fails, or failed before.
        """
        if self.failure is not None:
            raise self.failure
        target = self._written
        if self._synced >= target:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append((target, waiter))
        self._queue_flush()
        await waiter

    def _queue_flush(self) -> None:
        """Flush on the loop's next turn: the writes of this turn join the batch."""
        if not self._flush_queued and not self._syncing:
            self._flush_queued = True
            asyncio.get_running_loop().call_soon(self._flush)

    def _flush(self) -> None:
        """COMMIT the open batch and fsync the log in a worker thread (one sync at a time)."""
        self._flush_queued = False
        if self._syncing or self.failure is not None or self._closed:
            return
        self._commit_batch()
        if self.failure is not None or self._committed <= self._synced:
            return
        self._syncing = True
        target = self._committed
        done = asyncio.get_running_loop().run_in_executor(None, self._sync_log)
        done.add_done_callback(lambda f: self._synced_to(target, f.exception()))

    def _synced_to(self, target: int, error: BaseException | None) -> None:
        self._syncing = False
        if self._closed:
            return
        if error is not None:
            self._stop(error)
            return
        self._reached(target)
        if self._waiters:
            self._queue_flush()

    # -- committing --------------------------------------------------------------------------
    def commit(self) -> None:
        """COMMIT and sync now, blocking (shutdown, tests, code without a loop)."""
        self._commit_batch()
        if self.failure is None and self._committed > self._synced:
            try:
                self._sync_log()
            except OSError as exc:
                self._stop(exc)
                return
            self._reached(self._committed)

    def _commit_batch(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._in_tx:
            return
        self._in_tx = False
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error as exc:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
            self._stop(exc)
            return
        self._committed = self._written

    def _sync_log(self) -> None:
        """Sync the write-ahead log to disk (the first time, also the directory holding it)."""
        if self._wal is None:
            return
        if self._wal_fd is None:
            self._wal_fd = os.open(self._wal, os.O_RDONLY)
            fsync_path(self._wal.parent)
        os.fsync(self._wal_fd)

    def _reached(self, target: int) -> None:
        """Writes up to ``target`` are on disk: wake their waiters, do their unlinks."""
        self._synced = max(self._synced, target)
        keep = []
        for written, path in self._unlinks:
            if written <= self._synced:
                path.unlink(missing_ok=True)
            else:
                keep.append((written, path))
        self._unlinks = keep
        still = []
        for wanted, waiter in self._waiters:
            if wanted > self._synced:
                still.append((wanted, waiter))
            elif not waiter.done():
                waiter.set_result(None)
        self._waiters = still

    def _stop(self, exc: BaseException) -> None:
        """Fail-stop: refuse every write and wait from now on, starting with the waiters."""
        log.error("engine database commit failed, refusing writes until restart: %s", exc)
        self.failure = StorageError(
            f"The engine could not save its state ({exc}); the request was not completed. "
            "Restart the engine once the disk is usable again."
        )
        self._unlinks = []
        waiters, self._waiters = self._waiters, []
        for _, waiter in waiters:
            if not waiter.done():
                waiter.set_exception(self.failure)

    def close(self) -> None:
        """Commit and sync what is pending; later syncs finishing in threads are ignored."""
        self.commit()
        self._closed = True
        if self._wal_fd is not None:
            os.close(self._wal_fd)
            self._wal_fd = None


def fsync_path(path: Path) -> None:
    """Sync the file or directory at ``path`` to disk; raises ``OSError`` as ``os.fsync`` does."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
