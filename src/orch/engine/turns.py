"""What Assistants runs and Responses share: one model turn per asyncio task.

:class:`TurnExecutor` owns the life of a turn: the task that executes it, the ladder that
turns every way it can end (a cancel, the model's error, a bug, a deadline) into the object's
terminal state, the turn itself (ask the model, then write its tool calls and its reply), and
what happens on startup and shutdown. The subclasses, :class:`orch.engine.runs.RunExecutor`
and :class:`orch.engine.responding.ResponseExecutor`, say what each stage writes for their API.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from typing import Any, ClassVar

from orch.engine.models.base import (
    CodeCall,
    Model,
    ModelError,
    SearchCall,
    SearchHit,
    Turn,
    TurnContext,
)
from orch.engine.sse import Channels
from orch.engine.store import Store
from orch.engine.vectors import VectorStores

log = logging.getLogger("orch.engine")


class TurnExecutor(ABC):
    """Executes model turns for one kind of object (a run, a response), one task each.

    While an object is not terminal, its dict in :attr:`live` is the source of truth (every
    transition is also written to the store); :attr:`channels` carries its stream events.
    """

    #: The store kind of the objects, also their name in the log.
    kind: ClassVar[str]
    #: The objects' ``last_error``/``error`` message when the engine itself fails; ``{}`` is
    #: the exception.
    crash_message: ClassVar[str]
    #: Statuses :meth:`recover` hands to :meth:`_resume` after a restart.
    unfinished: ClassVar[tuple[str, ...]]

    def __init__(self, store: Store, model: Model, vectors: VectorStores):
        self.store = store
        self.model = model
        self.vectors = vectors
        self.live: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.channels = Channels()
        self.closing = False

    # -- events --------------------------------------------------------------------------------
    def subscribe(self, object_id: str) -> asyncio.Queue[bytes | None]:
        """A queue receiving the object's SSE frames until its stream ends."""
        return self.channels.subscribe(object_id)

    def unsubscribe(self, object_id: str, queue: asyncio.Queue[bytes | None]) -> None:
        """Stop sending frames to ``queue``."""
        self.channels.unsubscribe(object_id, queue)

    # -- the task ------------------------------------------------------------------------------
    def _spawn(self, obj: dict[str, Any]) -> asyncio.Task[None]:
        """Schedule the object's next turn on the running loop."""
        task = asyncio.get_running_loop().create_task(self._execute(obj))
        self.tasks[obj["id"]] = task

        def done(t: asyncio.Task[None]) -> None:
            self.tasks.pop(obj["id"], None)
            if t.cancelled() and not self.closing:
                self._cancelled(obj)  # cancelled before it ever ran

        task.add_done_callback(done)
        return task

    async def _execute(self, obj: dict[str, Any]) -> None:
        try:
            async with asyncio.timeout(self._time_left(obj)):
                await self._take_turn(obj)
        except TimeoutError as exc:
            self._timed_out(obj, exc)
        except asyncio.CancelledError:
            # On shutdown the stored state stays as it is, for recover() to pick up.
            if not self.closing:
                self._cancelled(obj)
        except ModelError as exc:
            self._fail(obj, exc.code, exc.message)
        except Exception as exc:  # a bug or an upstream surprise must not leave it hanging
            self._crashed(obj, exc)

    def _crashed(self, obj: dict[str, Any], exc: BaseException) -> None:
        """Fail the object for an unexpected exception (call while handling it: it is logged)."""
        log.exception("%s %s failed", self.kind, obj["id"])
        self._fail(obj, "server_error", self.crash_message.format(exc))

    def _time_left(self, obj: dict[str, Any]) -> float | None:
        """Seconds the turn may take (None: no deadline)."""
        return None

    def _timed_out(self, obj: dict[str, Any], exc: TimeoutError) -> None:
        """The turn passed its deadline, or something in it timed out."""
        self._crashed(obj, exc)

    # -- the turn ------------------------------------------------------------------------------
    async def _take_turn(self, obj: dict[str, Any]) -> None:
        """Ask the model, then write what it answered: tool steps, then calls or a reply."""
        self._begin(obj)
        turn = await self.model.respond(await self._context(obj))
        if turn.delay_ms:
            await asyncio.sleep(turn.delay_ms / 1000)
        if turn.fail is not None:
            self._fail(obj, *turn.fail)
            return
        if not self._count_usage(obj, turn):
            return
        image = self._write_code(obj, turn.code) if turn.code else None
        files = self._write_search(obj, turn.search) if turn.search is not None else {}
        if turn.tool_calls:
            self._write_calls(obj, turn)
            return
        incomplete = self._over_limit(obj, turn)
        self._write_reply(obj, turn, image, files, incomplete)
        self._finish(obj, "incomplete" if incomplete else "completed")

    @abstractmethod
    def _begin(self, obj: dict[str, Any]) -> None:
        """Mark the object in progress (stored and announced)."""

    @abstractmethod
    async def _context(self, obj: dict[str, Any]) -> TurnContext:
        """What the model reads for this turn."""

    def _searcher(
        self, store_ids: list[str], cap: int | None = None
    ) -> Callable[[str, int], Awaitable[list[SearchHit]]]:
        """The turn's file_search: over these vector stores, at most ``cap`` hits if given."""
        vectors = self.vectors

        async def search(query: str, limit: int) -> list[SearchHit]:
            return await vectors.search(store_ids, query, limit if cap is None else min(limit, cap))

        return search

    @abstractmethod
    def _count_usage(self, obj: dict[str, Any], turn: Turn) -> bool:
        """Record the turn's token usage; False when that alone ended the object."""

    @abstractmethod
    def _write_code(self, obj: dict[str, Any], code: CodeCall) -> Any:
        """Write a code-interpreter call; returns the image a reply may show, if any."""

    @abstractmethod
    def _write_search(self, obj: dict[str, Any], search: SearchCall) -> dict[str, str]:
        """Write a file_search call; returns ``{file id: filename}`` for the reply's citations."""

    @abstractmethod
    def _write_calls(self, obj: dict[str, Any], turn: Turn) -> None:
        """Hand the turn's function calls to the client (this ends the turn)."""

    @abstractmethod
    def _over_limit(self, obj: dict[str, Any], turn: Turn) -> bool:
        """Whether the reply is cut short by the object's output token limit."""

    @abstractmethod
    def _write_reply(
        self, obj: dict[str, Any], turn: Turn, image: Any, files: dict[str, str], incomplete: bool
    ) -> None:
        """Write the model's reply message."""

    # -- endings -------------------------------------------------------------------------------
    @abstractmethod
    def _finish(self, obj: dict[str, Any], status: str) -> None:
        """End a turn that went through: ``completed`` or ``incomplete``."""

    @abstractmethod
    def _fail(self, obj: dict[str, Any], code: str, message: str) -> None:
        """End the object as failed (nothing when it is already terminal)."""

    @abstractmethod
    def _cancelled(self, obj: dict[str, Any]) -> None:
        """End the object as cancelled, its task having stopped."""

    # -- startup / shutdown --------------------------------------------------------------------
    def recover(self) -> None:
        """Pick up what a previous process left unfinished (call on the event loop)."""
        for obj in self.store.all_where(self.kind, "status", self.unfinished):
            self._resume(obj)

    @abstractmethod
    def _resume(self, obj: dict[str, Any]) -> None:
        """Continue or end one object a restart interrupted."""

    async def close(self) -> None:
        """Stop executing turns without changing their stored state."""
        self.closing = True
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
