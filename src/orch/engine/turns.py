"""What Assistants runs and Responses share: one model turn per asyncio task.

:class:`TurnExecutor` owns the life of a turn: the task that executes it, the ladder that
turns every way it can end (a cancel, the model's error, a bug, a deadline) into the object's
terminal state, the turn itself (ask the model, then write its tool calls and its reply), and
what happens on startup and shutdown. It also gives the model the code interpreter: a
``run_code`` bound to the object's sandbox session and files (:meth:`TurnExecutor._offer_code`).
The subclasses, :class:`orch.engine.runs.RunExecutor` and
:class:`orch.engine.responding.ResponseExecutor`, say what each stage writes for their API.
"""

from __future__ import annotations

import asyncio
import logging
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
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
from orch.engine.retrieval import Ranking
from orch.engine.sandbox import CodeResult, InputFile, Sandbox, SandboxError
from orch.engine.sse import Channels, pieces
from orch.engine.store import Store
from orch.engine.vectors import VectorStores

log = logging.getLogger("orch.engine")


@dataclass
class Draft:
    """What one turn has written so far through the model's streaming hooks.

    ``reply`` is the executor's handle on the reply message being streamed (None while no text
    has come, and again after a tool call closed it); ``text`` is what it has streamed.
    ``images`` (what the executor shows of each image the turn's code made), ``outputs``
    (``{path the model was told: file id}`` of the files it wrote) and ``files`` (``{file id:
    filename}`` of what its searches found) gather what the turn's tool calls made and found,
    for the reply.
    """

    reply: Any = None
    text: list[str] = field(default_factory=list)
    images: list[Any] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)

    @property
    def streamed(self) -> str:
        """The text streamed into the open reply."""
        return "".join(self.text)


@dataclass(frozen=True)
class TurnServices:
    """What every turn executor works with, built once by the engine and shared.

    The store, the model, the vector stores, and the code interpreter's sandbox (None: no code
    runs) with each code call's timeout in seconds.
    """

    store: Store
    model: Model
    vectors: VectorStores
    sandbox: Sandbox | None = None
    code_timeout: float = 60.0


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

    def __init__(self, services: TurnServices):
        self.store = services.store
        self.model = services.model
        self.vectors = services.vectors
        self.sandbox = services.sandbox
        self.code_timeout = services.code_timeout
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
        """Ask the model, then write what it answered: tool steps, then calls or a reply.

        The model may stream: its text goes out as it comes (:meth:`_on_text`) and the hosted
        tool calls it runs itself are written when they happen (:meth:`_on_call`).
        """
        self._begin(obj)
        draft = Draft()
        ctx = await self._context(obj)
        ctx.emit_text = lambda delta: self._on_text(obj, draft, delta)
        ctx.emit_call = lambda call: self._on_call(obj, draft, call)
        turn = await self.model.respond(ctx)
        if turn.delay_ms:
            await asyncio.sleep(turn.delay_ms / 1000)
        if turn.fail is not None:
            self._fail(obj, *turn.fail)
            return
        if not self._count_usage(obj, turn):
            return
        if turn.code:
            self._write_code(obj, turn.code, draft)
        if turn.search is not None:
            draft.files.update(self._write_search(obj, turn.search))
        if turn.tool_calls:
            self._close_draft(obj, draft)
            self._write_calls(obj, turn)
            return
        incomplete = self._over_limit(obj, turn)
        self._write_reply(obj, turn, draft, incomplete)
        self._finish(obj, "incomplete" if incomplete else "completed")

    async def _on_text(self, obj: dict[str, Any], draft: Draft, delta: str) -> None:
        """Stream a piece of the reply, opening the reply message on the first one."""
        if not delta:
            return
        if draft.reply is None:
            draft.reply = self._open_reply(obj, draft)
        draft.text.append(delta)
        self._reply_delta(obj, draft, delta)

    async def _on_call(
        self, obj: dict[str, Any], draft: Draft, call: CodeCall | SearchCall
    ) -> None:
        """Write a hosted tool call the model ran (text streamed before it is its own message)."""
        self._close_draft(obj, draft)
        if isinstance(call, SearchCall):
            draft.files.update(self._write_search(obj, call))
        else:
            self._write_code(obj, call, draft)

    def _close_draft(self, obj: dict[str, Any], draft: Draft) -> None:
        """Complete the reply message being streamed, if any (a tool call comes after it)."""
        if draft.reply is not None:
            self._close_reply(obj, draft, Turn(text=draft.streamed), False)
            draft.reply = None
            draft.text = []

    @abstractmethod
    def _begin(self, obj: dict[str, Any]) -> None:
        """Mark the object in progress (stored and announced)."""

    @abstractmethod
    async def _context(self, obj: dict[str, Any]) -> TurnContext:
        """What the model reads for this turn."""

    def _searcher(
        self, store_ids: list[str], cap: int | None = None
    ) -> Callable[..., Awaitable[list[SearchHit]]]:
        """The turn's file_search: over these vector stores, at most ``cap`` hits if given.

        It ranks with the model's embeddings when the model has them (``model.embed``).
        """
        vectors = self.vectors
        embed = getattr(self.model, "embed", None)

        async def search(query: str, limit: int, ranking: Ranking | None = None) -> list[SearchHit]:
            limit = limit if cap is None else min(limit, cap)
            return await vectors.search(store_ids, query, limit, ranking, embed)

        return search

    async def _offer_code(
        self,
        ctx: TurnContext,
        key: str,
        files: list[InputFile],
        keep: Callable[[CodeResult], None] | None = None,
    ) -> None:
        """Give the model ``run_code`` in the sandbox session ``key`` with ``files`` placed.

        ``keep`` sees each result first (Responses keep the files as container files). A
        sandbox that cannot start a kernel fails the turn (a ModelError), the way an upstream
        that cannot answer does; an engine without a sandbox offers nothing.
        """
        sandbox, timeout = self.sandbox, self.code_timeout
        if sandbox is None:
            return

        async def run_code(code: str) -> CodeResult:
            try:
                result = await sandbox.run(key, code, files, timeout)
            except SandboxError as exc:
                raise ModelError(f"The code interpreter is unavailable: {exc}") from exc
            if keep is not None:
                keep(result)
            return result

        ctx.run_code = run_code
        await asyncio.to_thread(lambda: sandbox.isolation)  # the first use probes: off the loop
        ctx.code_dir = sandbox.data_path(key)
        ctx.code_files = [f"{ctx.code_dir}/{name}" for name in sandbox.names(files)]

    @abstractmethod
    def _count_usage(self, obj: dict[str, Any], turn: Turn) -> bool:
        """Record the turn's token usage; False when that alone ended the object."""

    @abstractmethod
    def _write_code(self, obj: dict[str, Any], code: CodeCall, draft: Draft) -> None:
        """Write a code-interpreter call; add what the reply shows of it to ``draft``."""

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
    def _open_reply(self, obj: dict[str, Any], draft: Draft) -> Any:
        """Open the reply message for streaming (showing ``draft.images``); returns its handle."""

    @abstractmethod
    def _reply_delta(self, obj: dict[str, Any], draft: Draft, delta: str) -> None:
        """Send one streamed piece of the open reply."""

    @abstractmethod
    def _close_reply(self, obj: dict[str, Any], draft: Draft, turn: Turn, incomplete: bool) -> None:
        """Complete the open reply with ``turn``'s citations (its text is what was streamed)."""

    def _write_reply(self, obj: dict[str, Any], turn: Turn, draft: Draft, incomplete: bool) -> None:
        """Write the model's reply: close the streamed one, or stream the finished text in pieces.

        A reply cut by the output limit is cut before it is sent, unless it was streamed
        already (then the model stopped at the limit itself).
        """
        if draft.reply is None:
            text = self._cut(obj, turn.text or "") if incomplete else turn.text or ""
            draft.reply = self._open_reply(obj, draft)
            for piece in pieces(text) or [""]:
                draft.text.append(piece)
                self._reply_delta(obj, draft, piece)
        self._close_reply(obj, draft, turn, incomplete)
        draft.reply = None

    @abstractmethod
    def _cut(self, obj: dict[str, Any], text: str) -> str:
        """The text cut to the object's output token limit (about 4 characters a token)."""

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
