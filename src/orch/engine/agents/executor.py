"""Session turns: the third user of :class:`orch.engine.turns.TurnExecutor`.

A session runs one turn at a time; input that comes while a turn is open waits as a
``queued`` turn. A turn is ``in_progress`` while the model works, ``waiting`` (its session in
``requires_action``) while the client runs the function calls it asked for, ``in_progress``
again once every call is answered, and ends ``completed``, ``failed`` or ``cancelled``. Then
the session starts its next queued turn, or settles ``idle``.

What a turn makes becomes session items, announced as it happens: the reply message (text
streamed as ``output_text.delta``), ``function_call`` items for the client, and the code it
ran in the session's environment as ``command_execution`` items. The model layer is the one
runs and responses use: the session's items are presented as a Responses context
(:func:`orch.engine.items.turn_inputs`), the agent as an Assistants-shaped run.
"""

from __future__ import annotations

import time
from typing import Any

from orch.engine.agents.environments import sandbox_key
from orch.engine.agents.events import SessionEvents
from orch.engine.agents.files import input_files
from orch.engine.agents.objects import (
    AGENT,
    ITEM,
    SESSION,
    TURN,
    TURN_ENDED,
    assistant_message,
    command_execution,
    function_call,
    function_output,
    model_items,
    new_turn,
    now,
    required_action,
    usage,
    user_message,
)
from orch.engine.items import turn_inputs
from orch.engine.models.base import CodeCall, SearchCall, Turn, TurnContext
from orch.engine.sandbox import CodeResult
from orch.engine.turns import Draft, TurnExecutor, TurnServices

#: ``SessionTurnError.code`` values a model's error code maps to; others are server errors.
_ERROR_CODES = {
    "rate_limit_exceeded": "rate_limit_exceeded",
    "invalid_prompt": "invalid_request",
    "server_error": "server_error",
    "internal_error": "internal_error",
    "request_timeout": "request_timeout",
    "sandbox_error": "sandbox_error",
}


def run_view(session: dict[str, Any]) -> dict[str, Any]:
    """The session's agent as the models see a run: Assistants-shaped tools and format.

    The code interpreter is offered when the session's environment is the engine's sandbox.
    """
    agent = session["agent"]
    tools: list[dict[str, Any]] = [
        {
            "type": "function",
            "function": {k: t[k] for k in ("name", "description", "parameters")},
        }
        for t in agent["tools"]
        if t["type"] == "function"
    ]
    if sandbox_key(session["environment"]) is not None:
        tools.append({"type": "code_interpreter"})
    fmt = agent["text"]["format"]
    if fmt["type"] == "json_schema":
        fmt = {"type": "json_schema", "json_schema": {"name": "output", "schema": fmt["schema"]}}
    return {
        "id": session["id"],
        "model": agent["model"],
        "instructions": agent.get("instructions") or "",
        "tools": tools,
        "tool_choice": "auto",
        "parallel_tool_calls": True,
        "temperature": None,
        "top_p": None,
        "response_format": fmt,
        "metadata": session["metadata"],
    }


class SessionTurnExecutor(TurnExecutor):
    """Queues, executes, pauses for function calls, and ends session turns."""

    kind = TURN
    crash_message = "The engine failed while taking the turn: {}"
    unfinished = ("queued", "in_progress", "waiting")

    def __init__(self, services: TurnServices, events: SessionEvents):
        super().__init__(services)
        self.events = events

    # -- lookup --------------------------------------------------------------------------------
    def turn(self, turn_id: str) -> dict[str, Any] | None:
        """The turn (its live version while it is open), or None."""
        return self.live.get(turn_id) or self.store.get(TURN, turn_id)

    def session(self, session_id: str) -> dict[str, Any] | None:
        """The stored session, or None (read afresh: every change is written at once)."""
        return self.store.get(SESSION, session_id)

    # -- items ---------------------------------------------------------------------------------
    def _add(self, turn: dict[str, Any], item: dict[str, Any], indexed: bool = True) -> None:
        """Store a new item of the turn and announce it (``indexed``: an output of the turn)."""
        if indexed:
            item["_index"] = turn["_outputs"]
            turn["_outputs"] += 1
        self.store.insert(ITEM, item, parent=turn["session_id"])
        self.events.item(turn["session_id"], item, "added", item.get("_index"))

    def _done(self, turn: dict[str, Any], item: dict[str, Any]) -> None:
        """Store an output item's final version and announce it."""
        self.store.put(item)
        self.events.item(turn["session_id"], item, "done", item["_index"])

    # -- input ---------------------------------------------------------------------------------
    def enqueue(self, session: dict[str, Any], messages: list[list[dict[str, Any]]]) -> None:
        """A new turn for the user's messages: started now if the session is free, else queued."""
        turn = new_turn(session)
        self.store.insert(TURN, turn, parent=session["id"])
        self.live[turn["id"]] = turn
        self.events.turn(turn, "created")
        for parts in messages:
            self._add(turn, user_message(turn["id"], parts), indexed=False)
        session["_queue"].append(turn["id"])
        if session["_active"] is None:
            self._start_next(session)
        else:
            self.store.put(session)

    def pending(self, session: dict[str, Any]) -> set[tuple[str, str]]:
        """``(turn id, call id)`` of the function calls the session waits for."""
        turn = self.live.get(session["_active"] or "")
        if turn is None or turn["status"] != "waiting":
            return set()
        return {(turn["id"], call_id) for call_id in turn["_pending"]}

    def answer(self, session: dict[str, Any], result: dict[str, Any]) -> None:
        """Record the client's result of a pending call; the turn goes on once all are in."""
        turn = self.live[result["turn_id"]]
        self._add(turn, function_output(turn["id"], result))
        call = next(
            i
            for i in self.store.all(ITEM, session["id"])
            if i["type"] == "function_call" and i["call_id"] == result["call_id"]
        )
        call["status"] = "completed" if result["success"] else "failed"
        self._done(turn, call)
        turn["_pending"].remove(result["call_id"])
        session["required_actions"] = [
            a for a in session["required_actions"] if a["call_id"] != result["call_id"]
        ]
        if turn["_pending"]:
            self.store.put(turn)
            self.store.put(session)
            return
        turn["_resumed"] = True
        self.store.put(turn)
        session["status"] = "in_progress"
        session["last_active_at"] = now()
        self.store.put(session)
        self.events.session(session)
        self._spawn(turn)

    def cancel(self, session: dict[str, Any]) -> None:
        """End every open turn of the session as cancelled (queued ones first)."""
        for turn_id in [*session["_queue"], session["_active"]]:
            turn = self.live.get(turn_id or "")
            if turn is None:
                continue
            task = self.tasks.get(turn["id"])
            self._cancelled(turn)
            if task is not None:
                task.cancel()

    def _start_next(self, session: dict[str, Any]) -> None:
        """Start the session's next queued turn, or settle the session ``idle``."""
        queue = session["_queue"]
        while queue:
            turn = self.turn(queue.pop(0))
            if turn is None or turn["status"] != "queued":
                continue
            self.live[turn["id"]] = turn
            session.update(_active=turn["id"], status="in_progress", last_active_at=now())
            self.store.put(session)
            self.events.session(session)
            self._spawn(turn)
            return
        session.update(_active=None, status="idle", required_actions=[])
        self.store.put(session)
        self.events.session(session)

    # -- the turn ------------------------------------------------------------------------------
    def _begin(self, turn: dict[str, Any]) -> None:
        turn["status"] = "in_progress"
        if turn["started_at"] is None:
            turn["started_at"] = now()
        self.store.put(turn)
        self.events.turn(turn, "in_progress")

    async def _context(self, turn: dict[str, Any]) -> TurnContext:
        session = self.session(turn["session_id"])
        assert session is not None  # deleting a session cancels its turns first
        # Turn by turn: a message sent while an earlier turn worked comes after that turn's
        # reply, and the input of turns still queued is not there yet.
        order = {t["id"]: i for i, t in enumerate(self.store.all(TURN, session["id"]))}
        queued = set(session["_queue"])
        items = [i for i in self.store.all(ITEM, session["id"]) if i["turn_id"] not in queued]
        items.sort(key=lambda i: order[i["turn_id"]])
        inputs = turn_inputs(model_items(items), {}, turn["_resumed"])
        agent = session["agent"]
        saved = self.store.get(AGENT, agent["id"]) or {}
        ctx = TurnContext(
            run=run_view(session),
            assistant={
                "id": agent["id"],
                "name": agent.get("name"),
                "instructions": agent.get("instructions"),
                "metadata": saved.get("metadata") or {},
                "model": agent["model"],
            },
            messages=inputs.messages,
            user_text=inputs.user_text,
            tool_outputs=inputs.tool_outputs,
            state=turn["_state"] if turn["_resumed"] else {},
            search=self._searcher([]),
            load_file=self.store.get_blob,
            rounds_in_messages=True,
        )
        key = sandbox_key(session["environment"])
        if key is not None:
            # The environment is a sandbox session: its variables and files last as it does.
            await self._offer_code(ctx, key, input_files(self.store, session["environment"]))
            turn["_cwd"] = ctx.code_dir
            self._time_code(ctx, turn)
        return ctx

    @staticmethod
    def _time_code(ctx: TurnContext, turn: dict[str, Any]) -> None:
        """Measure each ``run_code`` call: a command execution reports its duration."""
        run = ctx.run_code
        if run is None:
            return

        async def timed(code: str) -> CodeResult:
            started = time.monotonic()
            try:
                return await run(code)
            finally:
                turn["_ms"] = int((time.monotonic() - started) * 1000)

        ctx.run_code = timed

    def _count_usage(self, turn: dict[str, Any], result: Turn) -> bool:
        if result.usage:
            turn["_usage"][0] += result.usage[0]
            turn["_usage"][1] += result.usage[1]
        return True

    def _write_code(self, turn: dict[str, Any], code: CodeCall, draft: Draft) -> None:
        """The code the model ran, as a command execution with its output."""
        item = command_execution(turn["id"], code.input, turn.get("_cwd"))
        self._add(turn, item)
        if code.logs:
            self.events.send(
                turn["session_id"],
                "agent.output.command_execution_output.delta",
                delta=code.logs,
                item_id=item["id"],
                output_index=item["_index"],
                session_id=turn["session_id"],
                turn_id=turn["id"],
            )
        item.update(
            duration_ms=turn.pop("_ms", None),
            exit_code=1 if code.error else 0,
            output=code.logs or "",
            status="failed" if code.error else "completed",
        )
        self._done(turn, item)

    def _write_search(self, turn: dict[str, Any], search: SearchCall) -> dict[str, str]:
        """Agents have no vector stores: a model's search finds nothing and leaves no item."""
        return {}

    def _write_calls(self, turn: dict[str, Any], result: Turn) -> None:
        """Hand the function calls to the client: the turn waits, the session requires action."""
        calls = []
        for fc in result.tool_calls:
            item = function_call(turn["id"], fc)
            self._add(turn, item)
            calls.append(item)
        turn.update(status="waiting", _state=result.state, _resumed=False)
        turn["_pending"] = [c["call_id"] for c in calls]
        self.store.put(turn)
        session = self.session(turn["session_id"])
        assert session is not None
        session.update(status="requires_action", last_active_at=now())
        session["required_actions"] = [required_action(c) for c in calls]
        self.store.put(session)
        self.events.session(session)

    def _over_limit(self, turn: dict[str, Any], result: Turn) -> bool:
        return result.truncated

    def _cut(self, turn: dict[str, Any], text: str) -> str:
        return text  # agents set no output limit of their own

    def _write_reply(
        self, turn: dict[str, Any], result: Turn, draft: Draft, incomplete: bool
    ) -> None:
        # The reply that ends the turn is its final answer; text closed before a tool call
        # (see TurnExecutor._close_draft) is commentary.
        turn["_final"] = True
        super()._write_reply(turn, result, draft, incomplete)

    def _open_reply(self, turn: dict[str, Any], draft: Draft) -> dict[str, Any]:
        item = assistant_message(turn["id"])
        self._add(turn, item)
        part = {"type": "output_text", "text": ""}
        self.events.text(turn["session_id"], item, item["_index"], "content_part.added", part=part)
        return item

    def _reply_delta(self, turn: dict[str, Any], draft: Draft, delta: str) -> None:
        item = draft.reply
        self.events.text(turn["session_id"], item, item["_index"], "output_text.delta", delta=delta)

    def _close_reply(
        self, turn: dict[str, Any], draft: Draft, result: Turn, incomplete: bool
    ) -> None:
        item, text = draft.reply, draft.streamed
        sid, index = turn["session_id"], item["_index"]
        self.events.text(sid, item, index, "output_text.done", text=text)
        part = {"type": "output_text", "text": text}
        self.events.text(sid, item, index, "content_part.done", part=part)
        item.update(
            content=[part],
            status="incomplete" if incomplete else "completed",
            phase="final_answer" if turn.pop("_final", False) else "commentary",
        )
        self._done(turn, item)

    # -- endings -------------------------------------------------------------------------------
    def _finish(self, turn: dict[str, Any], status: str) -> None:
        if status == "incomplete":
            message = "The model reached its output token limit before finishing the response."
            self._end(turn, "failed", {"code": "max_output_tokens", "message": message})
        else:
            self._end(turn, "completed")

    def _fail(self, turn: dict[str, Any], code: str, message: str) -> None:
        self._end(
            turn, "failed", {"code": _ERROR_CODES.get(code, "server_error"), "message": message}
        )

    def _cancelled(self, turn: dict[str, Any]) -> None:
        self._end(turn, "cancelled")

    def _end(self, turn: dict[str, Any], status: str, error: dict[str, Any] | None = None) -> None:
        """End the turn, then let its session go on (its next turn, or idle)."""
        if turn["status"] in TURN_ENDED:
            return
        self._close_items(turn)
        turn.update(status=status, error=error, usage=usage(*turn["_usage"]), _pending=[])
        if status == "completed":
            turn["completed_at"] = now()
        self.live.pop(turn["id"], None)
        self.store.put(turn)
        self.events.turn(turn, status)
        session = self.session(turn["session_id"])
        if session is None:
            return
        spent = session["usage"] or usage(0, 0)
        session["usage"] = usage(
            spent["input_tokens"] + turn["_usage"][0], spent["output_tokens"] + turn["_usage"][1]
        )
        if turn["id"] in session["_queue"]:
            session["_queue"].remove(turn["id"])
        if session["_active"] == turn["id"]:
            self._start_next(session)
        else:
            self.store.put(session)

    def _close_items(self, turn: dict[str, Any]) -> None:
        """Items the turn left open (a reply cut short, unanswered calls) end ``incomplete``."""
        for item in self.store.all(ITEM, turn["session_id"]):
            if item["turn_id"] == turn["id"] and item["status"] == "in_progress":
                item["status"] = "incomplete"
                self._done(turn, item)

    # -- startup / shutdown --------------------------------------------------------------------
    def recover(self) -> None:
        """Turns a restart interrupted fail; waiting ones wait on; queues start again."""
        sessions = set()
        for turn in self.store.all_where(TURN, "status", self.unfinished):
            if turn["id"] not in self.live:
                sessions.add(turn["session_id"])
                self._resume(turn)
        for session_id in sorted(sessions):
            session = self.session(session_id)
            if session is not None and session["_active"] is None and session["_queue"]:
                self._start_next(session)

    def _resume(self, turn: dict[str, Any]) -> None:
        self.live[turn["id"]] = turn
        if turn["status"] == "in_progress":
            message = "The engine restarted while this turn was in progress."
            self._end(turn, "failed", {"code": "internal_error", "message": message})

    async def close(self) -> None:
        """Stop executing turns (their stored state stays) and end every event stream."""
        await super().close()
        self.events.close_all()
