"""The run's thread journal: each item's thread, noted before anything is sent on it.

``threads.jsonl`` in the run's folder gets one line ``{"key": …, "thread_id": …}`` per item try,
written before the first run on that thread is created (an unbuffered append: once written it
survives a kill -9 of orch; a power cut may lose the last lines, as it may lose results).

When a killed run is resumed, an item still to run gets back the last thread noted for it
(:meth:`ItemLedger.adopted`) unless that try already finished (its record names the thread):
its session lists the thread's runs and adopts those its steps started — runs carry a nonce
derived from thread, step and attempt — instead of sending them again. So a resumed item
never pays twice for a step whose run was created, and never repeats a message.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path

from orch.targets.session import ThreadLedger

FILE_NAME = "threads.jsonl"


class RunJournal:
    """The journal of one run; thread-safe; :meth:`close` it at the end of the run."""

    def __init__(self, run_dir: Path, finished: Iterable[tuple[str, str | None]] = ()):
        """Open ``run_dir``'s journal; ``finished`` gives (key, thread id) of recorded items.

        A thread whose item's record names it belongs to a try that ended: never adopted.
        """
        self.path = run_dir / FILE_NAME
        self.pending = _last_threads(self.path)
        if self.pending:
            for key, thread_id in finished:
                if self.pending.get(key) == thread_id:
                    del self.pending[key]
        self._lock = threading.Lock()
        run_dir.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def ledger(self, key: str) -> ItemLedger:
        """The ledger for one item's session."""
        return ItemLedger(self, key)

    def note(self, key: str, thread_id: str) -> None:
        """Append ``key``'s thread; on disk (the OS's cache) when this returns."""
        line = json.dumps({"key": key, "thread_id": thread_id}) + "\n"
        with self._lock:
            os.write(self._fd, line.encode("utf-8"))

    def take(self, key: str) -> str | None:
        """The thread a killed process left for ``key`` (once), or None."""
        with self._lock:
            return self.pending.pop(key, None)

    def close(self) -> None:
        """Close the file."""
        os.close(self._fd)


class ItemLedger(ThreadLedger):
    """One item's view of the run's journal."""

    def __init__(self, journal: RunJournal, key: str):
        self.journal = journal
        self.key = key

    def adopted(self) -> str | None:
        """The thread a killed process left for this item, if any."""
        return self.journal.take(self.key)

    def record(self, thread_id: str) -> None:
        """Note ``thread_id`` as this item's thread, before any run is created on it."""
        self.journal.note(self.key, thread_id)


def _last_threads(path: Path) -> dict[str, str]:
    """Key → the last thread noted for it; a torn last line (a kill mid-write) is ignored."""
    threads: dict[str, str] = {}
    if not path.exists():
        return threads
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            threads[entry["key"]] = entry["thread_id"]
    return threads
