"""The run's recorder: finished items persisted on a thread of their own, in groups.

The runner hands each finished item's record to :meth:`Recorder.put` and goes straight on to
start the next item: persisting (an fsync'd append to ``results.jsonl``, then the SQLite
history) happens on the recorder's thread, so a slow disk never delays a dispatch. Records that
finish while a write is under way are written together by the next one (one fsync, one
transaction for the group: a group commit).

A record is reported (progress line, live bar) only once it is durable, so what a user sees is
never ahead of what a resume finds. An item that finished but was not yet written when the
process was killed is simply not in ``results.jsonl``: ``--resume`` runs it again, and its
session adopts the runs its steps started (the run's journal, :mod:`orch.run.journal`), so it is
never paid for twice.

What goes wrong on the recorder's thread is raised on the runner's: a history that cannot be
written (:class:`~orch.results.history.HistoryError`; nothing more is written, so the records
after it are run again by a resume) or a reporter whose reader went away
(:class:`~orch.run.progress.OutputClosed`; writing goes on, the runner stops as on Ctrl-C).
"""

from __future__ import annotations

import queue
import threading
from typing import Any

from orch.results.history import History
from orch.run.progress import Reporter

_STOP = object()  # ends the recorder's thread once everything queued before it is written


class Recorder:
    """Persists and then reports the finished items of one run; :meth:`close` it at the end.

    Its methods are for one thread (the runner's); the reporter is called from the recorder's
    thread only, so never from two threads at once.
    """

    def __init__(self, history: History, run_id: str, reporter: Reporter):
        self.history = history
        self.run_id = run_id
        self.reporter = reporter
        self._queue: queue.Queue = queue.Queue()
        self._failure: BaseException | None = None  # to raise on the runner's thread, once
        self._failure_lock = threading.Lock()
        self._broken = False  # the history failed: nothing more is written
        # a daemon: a second Ctrl-C while it drains must end the process, not wait for it (an
        # append cut short is a torn line, which every reader of results.jsonl skips)
        self._thread = threading.Thread(target=self._loop, name="orch-recorder", daemon=True)
        self._thread.start()

    def put(self, record: dict[str, Any]) -> None:
        """Queue a finished item's record, to be written and then reported; returns at once."""
        self._queue.put(record)

    def check(self, stopping: bool = False) -> None:
        """Raise what went wrong on the recorder's thread since the last check, if anything.

        ``stopping``: the run is stopping anyway, so an interruption (``OutputClosed``) is
        dropped; a failure to write the history is still raised.
        """
        with self._failure_lock:
            failure, self._failure = self._failure, None
        if failure is not None and not (stopping and isinstance(failure, KeyboardInterrupt)):
            raise failure

    def drain(self) -> None:
        """Wait until every queued record is durable and reported; then :meth:`check`."""
        self._queue.join()
        self.check()

    def close(self) -> None:
        """Write what is queued, then end the thread; never raises (:meth:`check` does)."""
        if self._thread.is_alive():
            self._queue.put(_STOP)
            self._thread.join()

    def _fail(self, exc: BaseException) -> None:
        with self._failure_lock:
            if self._failure is None:  # the first one says what happened
                self._failure = exc

    def _loop(self) -> None:
        while True:
            group = [self._queue.get()]
            while True:  # everything that finished meanwhile goes into the same write
                try:
                    group.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            records = [r for r in group if r is not _STOP]
            try:
                if records and not self._broken:
                    self._write(records)
            finally:
                for _ in group:
                    self._queue.task_done()
            if len(records) < len(group):
                return

    def _write(self, records: list[dict[str, Any]]) -> None:
        try:
            self.history.record_items(self.run_id, records)
        except BaseException as exc:  # noqa: BLE001 - raised on the runner's thread instead
            self._broken = True
            self._fail(exc)
            return
        for record in records:
            try:
                self.reporter.item(record)
            except BaseException as exc:  # noqa: BLE001 - OutputClosed: the runner stops
                self._fail(exc)
