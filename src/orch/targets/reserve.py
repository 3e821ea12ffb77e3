"""Empty threads made ahead of the items that will need them, off the items' critical path.

An item's first request on the Assistants wire creates its (empty) thread, and only then its
run: at 250 ms of model latency that thread costs each item ~4 % of its time. A run with more
items than its concurrency hands a :class:`Reserve` to its sessions: one background thread
keeps up to ``size`` empty threads ready while the items in flight wait on the model, and a
session claims one (:meth:`Reserve.take`) instead of creating its own.

Every item claims once. A claim takes a ready thread, or waits for the one being made when no
other claim waits for it, or gets None and the session makes its own, exactly as without a
reserve. Threads are made only while the claims to come outnumber the threads ready or being
made, so a run that claims for all its items makes one thread per item, as before. The threads
are interchangeable (empty, tagged with the run's label); a session notes a claimed thread in
its ledger before any run, as it does one it made. Threads nobody claimed (the run was stopped
or capped) are deleted when the run ends, best effort; a killed process leaves them empty,
like a lost create.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

#: how long a claim waits for the thread being made before making its own
WAIT_S = 10.0


class Reserve:
    """Threads made ahead for ``items`` claims, ``size`` ready at most; see the module docstring."""

    def __init__(
        self, create: Callable[[], str], delete: Callable[[str], None], size: int, items: int
    ):
        """Start making threads: ``create()`` makes one (its id), ``delete(id)`` removes one."""
        self._create, self._delete = create, delete
        self._size, self._items = size, items
        self._lock = threading.Condition()
        self._ready: list[str] = []
        self._making = False  # the filler is making a thread
        self._waiting = 0  # claims waiting for that thread (0 or 1)
        self._claimed = 0
        self._done = False  # closed, or a create failed: no more threads are made
        self._filler = threading.Thread(target=self._fill, name="orch-reserve", daemon=True)
        self._filler.start()

    def take(self) -> str | None:
        """A thread for one item's claim, or None (then the caller makes its own)."""
        with self._lock:
            self._claimed += 1
            self._lock.notify_all()
            if not self._ready and self._making and not self._waiting:
                self._waiting = 1  # the thread being made is this claim's
                self._lock.wait_for(lambda: self._ready or not self._making, timeout=WAIT_S)
                self._waiting = 0
            return self._ready.pop() if self._ready else None

    def close(self) -> None:
        """Make no more threads; delete those nobody claimed (failures are ignored)."""
        with self._lock:
            self._done = True
            self._lock.notify_all()
        self._filler.join(timeout=5)
        with self._lock:
            left, self._ready = self._ready, []
        for thread_id in left:
            self._delete_quietly(thread_id)

    def _committed(self) -> int:
        """Claims made plus threads ready for claims still to come.

        Only the filler asks, between two threads it makes: none is being made then.
        """
        return self._claimed + len(self._ready)

    def _fill(self) -> None:
        while True:
            with self._lock:
                self._lock.wait_for(
                    lambda: (
                        self._done
                        or self._committed() >= self._items
                        or len(self._ready) < self._size
                    )
                )
                if self._done or self._committed() >= self._items:
                    return  # claims only grow: no thread made now could be claimed
                self._making = True
            try:
                thread_id = self._create()
            except Exception:  # noqa: BLE001 - the sessions then make their own, as without it
                thread_id = None
            with self._lock:
                self._making = False
                if thread_id is None:
                    self._done = True  # a failed create is not retried here: claims go on
                elif not self._done:
                    self._ready.append(thread_id)
                    thread_id = None
                stop = self._done
                self._lock.notify_all()
            if thread_id is not None:
                self._delete_quietly(thread_id)  # made while closing: nobody will claim it
            if stop:
                return

    def _delete_quietly(self, thread_id: str) -> None:
        try:
            self._delete(thread_id)
        except Exception:  # noqa: BLE001 - an empty thread left behind is harmless
            pass
