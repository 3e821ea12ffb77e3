"""One pipeline item on a saved agent: one Agents-API session, one turn per step.

* The first step creates the session (``agent_id``: the synced agent; environment ``none``, or
  ``openai_hosted`` when the assistant has code_interpreter) with the step's message as its
  input: the API requires input at creation. The create carries a nonce in its metadata, so
  one whose answer is lost is found (listed by metadata), never made twice. The session is
  noted in the run's ledger as soon as its id is known.
* Every later step (and a new attempt of a failed one) posts an ``agent.session.input.message``
  event with an ``Idempotency-Key`` derived from the session, the step and the attempt: a post
  whose answer is lost is sent again with the same key, and the server takes it once, so a
  lost answer never doubles a turn. Turn *k* answers message *k*, so the step's turn is found
  by listing the session's turns, whatever happened to the answer.
* Events are streamed (``GET …/events``, subscribed before the post; the create's own stream
  for the first step) until the step's turn ends; a dropped stream, or ``stream: false``, is
  followed by polling the turn.
* A turn that calls function tools waits (``requires_action``): the declared handlers answer
  through :func:`orch.targets.functions.call_handlers`, and their results go back as
  ``agent.session.input.tool_result`` events in one post, keyed by the calls it answers.
* The finished turn's items give the reply, the tool-call records and (with the turn) the
  usage; the session is deleted when the item ends, unless the target says ``keep_sessions``.

A resumed item adopts the session its killed process noted: turns that exist are taken as the
steps' (by position) instead of being asked again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from typing import Any

import openai

# The SDK imports the Agents resources (and their pydantic types) on first use; import them with
# this module, which orch loads when it connects, so no item's time limit pays for it.
import openai.resources.beta.agents.sessions.sessions  # noqa: F401

from orch.errors import BackendError, NotFoundError, UsageError
from orch.targets import retry
from orch.targets.agents.records import arguments_json, record_items, reply_text
from orch.targets.agents.wire import environment
from orch.targets.files import PAGE, after_cursor, pages
from orch.targets.functions import ToolRequest, call_handlers
from orch.targets.session import Session, SessionSettings, StepOutcome, Turn
from orch.targets.stream import StreamReader

#: turn statuses after which it changes no more, and the one where it waits for orch
ENDED = frozenset({"completed", "failed", "cancelled"})
WAITING = "waiting"
TURN_ENDS = frozenset(f"agent.session.turn.{s}" for s in ENDED)
SETTLED = frozenset({"agent.session.idle", "agent.session.failed"})


class AgentSession(Session):
    """An item's session on the Agents API (``thread_id``: the session, ``run_id``: the turn)."""

    def __init__(self, client: openai.OpenAI, settings: SessionSettings, keep: bool = False):
        super().__init__(settings)
        self.sessions = client.beta.agents.sessions
        self.keep = keep
        self.turn_ids: list[str] = []  # the session's turns known so far, oldest first
        self.next_turn = 0  # position of the turn the next message starts
        self.instructions: str | None = None  # the session's instructions override, if any
        self.answered: dict[str, tuple[str, str | None]] = {}  # call id → (output, error)
        self.agent: str | None = None  # the assistant whose saved agent the session runs

    # -- the step ------------------------------------------------------------------------------

    def step(self, turn: Turn) -> StepOutcome:
        """Refuse what a session has no place for, adopt a killed process's session, run."""
        _check_turn(turn)
        if self.agent not in (None, turn.assistant.name):
            raise UsageError(
                f"a step on an agents target asks for assistant {turn.assistant.name} on a "
                f"session of {self.agent}: a session runs one saved agent"
            )
        self.agent = turn.assistant.name
        if self.thread_id is None:
            self._adopt()
        return super().step(turn)

    def attempt(self, turn: Turn, first: bool) -> StepOutcome:
        """Start the step's turn (or adopt it) and follow it to its end."""
        outcome = StepOutcome()
        index = self.next_turn
        adopted = index < len(self.turn_ids)
        reader = None
        if adopted:
            turn_id = self.turn_ids[index]  # a killed process started it: follow it
        elif self.thread_id is None:
            turn_id, reader = self._create(turn)
        else:
            turn_id, reader = self._send(turn, index)
        self.next_turn, self.run_id = index + 1, turn_id
        current = self._follow(reader, turn_id, turn, outcome)
        outcome.run_id, outcome.status = turn_id, outcome.status or current.status
        # a turn the stopped process cancelled answered nothing: the step needs a new one
        outcome.interrupted = adopted and current.status == "cancelled"
        outcome.add_response_usage(current.usage)
        if current.error and outcome.last_error is None:
            outcome.last_error = {"code": current.error.code, "message": current.error.message}
        return outcome

    def finish(self, outcome: StepOutcome) -> None:
        """The final turn's items → the reply text and the tool-call records."""
        if not (self.thread_id and outcome.run_id):
            return
        items = pages(
            "list turn items",
            lambda after: self.sessions.turns.items.list(
                outcome.run_id,
                session_id=self.thread_id,
                order="asc",
                limit=PAGE,
                **after_cursor(after),
            ),
        )
        outcome.output = reply_text(items)
        record_items(items, outcome)

    def cancel(self) -> None:
        """Cancel the open turn, if any (best effort)."""
        if self.thread_id is None:
            return
        try:
            cancel = {"type": "agent.session.input.cancel"}
            self.sessions.events.create(self.thread_id, events=[cancel], timeout=10)
        except retry.FAILURES:
            pass

    def close(self) -> None:
        """Delete the session when the item is over, unless the target keeps sessions."""
        if self.thread_id is None or self.keep:
            return
        try:
            retry.call(
                f"delete session {self.thread_id}",
                lambda: self.sessions.delete(self.thread_id, timeout=30),
                attempts=self.settings.attempts,
            )
        except (NotFoundError, BackendError):
            pass  # gone already, or a turn still running (cancelled): nothing more to do

    # -- starting turns ------------------------------------------------------------------------

    def _adopt(self) -> None:
        """The session a killed process noted for this item (its turns adoptable), if any."""
        left = self.settings.ledger.adopted()
        if left is None:
            return
        try:
            session = retry.call("retrieve session", lambda: self.sessions.retrieve(left))
            turns = pages(
                "list turns",
                lambda after: self.sessions.turns.list(
                    left, order="asc", limit=PAGE, **after_cursor(after)
                ),
            )
        except NotFoundError:
            return  # deleted meanwhile: start afresh
        self.thread_id, self.instructions = left, session.agent.instructions
        self.turn_ids = [t.id for t in turns if t.subagent_id is None]

    def _create(self, turn: Turn) -> tuple[str, StreamReader | None]:
        """Create the session with the step's message; (its first turn, the event stream).

        Not blindly repeated: a create whose answer is lost or spoiled is looked up by the
        nonce in its metadata first (see :func:`orch.targets.retry.create_once`).
        """
        if turn.assistant_id is None:
            raise BackendError(f"assistant {turn.assistant.name} has no saved agent on the target")
        nonce = self.nonce()
        params: dict[str, Any] = {
            "agent_id": turn.assistant_id,
            "environment": self._environment(turn),
            "input": [_message(turn)],
            "metadata": {"orch": self.settings.label, "orch_nonce": nonce},
        }
        wanted = _instructions(turn)
        if wanted != turn.assistant.instructions:
            params["agent"] = {"instructions": wanted}
        stream = self.settings.stream

        def create() -> tuple[str, StreamReader | None]:
            self.check()
            made = self.sessions.create(stream=stream, timeout=self.remaining(), **params)
            if not stream:
                return made.id, None
            reader = StreamReader.prime(made, lambda kind: kind == "agent.session.created")
            first = reader.head[-1]
            if first.type != "agent.session.created":  # an error event came first
                reader.close()
                raise BackendError(f"create session: {first.error.message}")
            return first.session.id, reader

        def find() -> tuple[str, None] | None:
            page = retry.call(
                "list sessions",
                lambda: self.sessions.list(metadata={"orch_nonce": nonce}, limit=10),
            )
            return (page.data[0].id, None) if page.data else None

        session_id, reader = retry.create_once(
            "create session", create, find, attempts=self.settings.attempts, sleep=self.pause
        )
        self.thread_id, self.instructions = session_id, params.get("agent", {}).get("instructions")
        self.settings.ledger.record(session_id)
        return self._turn_at(0), reader

    def _send(self, turn: Turn, index: int) -> tuple[str, StreamReader | None]:
        """Post the step's message (subscribed first); (the turn it started, the stream)."""
        self._set_instructions(turn)
        reader = None
        if self.settings.stream:
            try:
                reader = StreamReader(self.sessions.events.stream(self.thread_id))
            except retry.FAILURES:
                reader = None  # no stream: the turn is polled
        message = {"type": "agent.session.input.message", "input": [_message(turn)]}
        key = self.nonce()  # the same for every retry of this post: the server takes it once
        try:
            retry.call(
                "send message",
                lambda: self.sessions.events.create(
                    self.thread_id, events=[message], idempotency_key=key, timeout=self.remaining()
                ),
                attempts=self.settings.attempts,
                sleep=self.pause,
            )
            return self._turn_at(index), reader
        except BaseException:
            if reader is not None:
                reader.close()
            raise

    def _turn_at(self, index: int) -> str:
        """The id of the session's turn at ``index`` (turn *k* answers message *k*)."""
        delay = 0.02
        while len(self.turn_ids) <= index:
            turns = pages(
                "list turns",
                lambda after: self.sessions.turns.list(
                    self.thread_id, order="asc", limit=PAGE, **after_cursor(after)
                ),
            )
            self.turn_ids = [t.id for t in turns if t.subagent_id is None]
            if len(self.turn_ids) <= index:  # accepted, not started yet: 202 is not durable
                self.pause(delay)
                delay = min(delay * 2, 1.0)
        return self.turn_ids[index]

    def _set_instructions(self, turn: Turn) -> None:
        """Give the session the step's instructions, when they differ from those in effect."""
        wanted = _instructions(turn)
        in_effect = self.instructions
        if in_effect is None:  # no override: the saved agent's
            in_effect = turn.assistant.instructions
        if wanted == in_effect:
            return
        retry.call(
            "update session",
            lambda: self.sessions.update(self.thread_id, agent={"instructions": wanted}),
        )
        self.instructions = wanted

    def _environment(self, turn: Turn) -> dict[str, Any]:
        """``openai_hosted`` (with the code_interpreter files) or ``none``."""
        assistant = turn.assistant
        local = [f.path for f in assistant.files_for("code_interpreter")]
        ids = (self.settings.resources.get(assistant.name) or {}).get(
            "code_interpreter_file_ids", []
        )
        if len(ids) != len(local):
            raise BackendError(
                f"assistant {assistant.name}: its code_interpreter files are not all uploaded; "
                "run `orch sync`"
            )
        tools = [t.type for t in assistant.tools]
        return environment(tools, list(zip(ids, local, strict=True)))

    # -- following turns -----------------------------------------------------------------------

    def _follow(self, reader: StreamReader | None, turn_id: str, turn: Turn, outcome):
        """Follow the turn to its end, answering its function calls; returns the Turn."""
        rounds = 0
        try:
            while True:
                if reader is not None:
                    reader = self._read(reader, turn_id)
                current = self._poll(turn_id)
                if current.status in ENDED:
                    return current
                if current.status == WAITING and rounds == self.settings.max_tool_rounds:
                    self.cancel()  # the turn would wait for results until it expires
                    outcome.stop_tool_loop(rounds)
                    return current
                if current.status == WAITING:
                    rounds += self._answer(turn_id, turn, outcome)
        finally:
            if reader is not None:
                reader.close()

    def _read(self, reader: StreamReader, turn_id: str) -> StreamReader | None:
        """Read events until the turn ends or waits for orch, or the stream ends.

        Returns the reader when the turn waits for function results (reading goes on after
        they are sent), None when the turn ended or the stream broke or ended (the turn is
        then polled).
        """
        try:
            for event in _events(reader, self.check):
                kind = event.type
                if kind in TURN_ENDS and event.turn_id == turn_id:
                    break
                if kind == "agent.session.requires_action" and _asks(event.session, turn_id):
                    return reader
                if kind in SETTLED:
                    break
        except retry.FAILURES as exc:
            if not retry.is_transient(exc):
                raise retry.to_backend_error("stream session events", exc) from exc
        reader.close()
        return None

    def _poll(self, turn_id: str):
        """Retrieve the turn until it has ended or waits for orch."""
        delay = 0.05
        while True:
            self.check()
            current = retry.call(
                "retrieve turn",
                lambda: self.sessions.turns.retrieve(turn_id, session_id=self.thread_id),
                attempts=self.settings.attempts,
            )
            if current.status in ENDED or current.status == WAITING:
                return current
            self.pause(delay)
            delay = min(delay * 2, 1.0)

    def _answer(self, turn_id: str, turn: Turn, outcome: StepOutcome) -> bool:
        """Answer the turn's pending function calls (each handler runs once per call).

        False when the turn waits but lists no calls yet (nothing was sent).
        """
        session = retry.call("retrieve session", lambda: self.sessions.retrieve(self.thread_id))
        actions = [a for a in session.required_actions if getattr(a, "turn_id", None) == turn_id]
        calls = [a for a in actions if a.type == "function_call"]
        if len(calls) < len(actions):
            kinds = sorted({a.type for a in actions} - {"function_call"})
            raise BackendError(
                f"turn {turn_id} waits for {', '.join(kinds)}, which orch cannot give"
            )
        if not calls:
            self.pause(0.05)  # waiting, but its actions are not listed yet
            return False
        self._call(calls, turn, outcome)
        events = [_result_event(turn_id, c.call_id, *self.answered[c.call_id]) for c in calls]
        ids = ",".join(c.call_id for c in calls)
        key = hashlib.sha256(f"{self.thread_id}/{turn_id}/{ids}".encode()).hexdigest()[:32]
        retry.call(
            "send tool results",
            lambda: self.sessions.events.create(
                self.thread_id, events=events, idempotency_key=key, timeout=self.remaining()
            ),
            attempts=self.settings.attempts,
            sleep=self.pause,
        )
        return True

    def _call(self, calls: list[Any], turn: Turn, outcome: StepOutcome) -> None:
        """Run the handlers of the calls not answered yet; remember (output, error) per call."""
        fresh = [
            ToolRequest(c.call_id, c.name, arguments_json(c.arguments))
            for c in calls
            if c.call_id not in self.answered
        ]
        settings = self.settings
        outputs = call_handlers(
            fresh, turn.assistant, settings.handler_pool, settings.root, outcome.tool_calls
        )
        errors = {r["id"]: r.get("error") for r in outcome.tool_calls}
        for call_id, output in outputs:
            self.answered[call_id] = (output, errors.get(call_id))


def _events(reader: StreamReader, check: Callable[[], None]) -> Iterator[Any]:
    """The stream's events (those already read first), ``check()`` after each.

    An ``error`` event is information only (the failure of the turn or session follows it),
    so unlike :meth:`StreamReader.events` it is not raised.
    """
    while reader.head:
        yield reader.head.pop(0)
        check()
    for event in reader.stream:
        yield event
        check()


def _asks(session: Any, turn_id: str) -> bool:
    """Whether the session waits for an action of the turn."""
    return any(getattr(a, "turn_id", None) == turn_id for a in session.required_actions)


def _result_event(turn_id: str, call_id: str, output: str, error: str | None) -> dict:
    """A ``tool_result`` event: the handler's output, or its failure (the model sees why)."""
    event = {"type": "agent.session.input.tool_result", "turn_id": turn_id, "call_id": call_id}
    if error:
        return {**event, "success": False, "error": error}
    return {**event, "success": True, "output": output}


def _instructions(turn: Turn) -> str | None:
    """The instructions a step runs with: its own or the agent's, plus its additional ones."""
    base = turn.instructions if turn.instructions is not None else turn.assistant.instructions
    if turn.additional_instructions:
        return f"{base}\n\n{turn.additional_instructions}" if base else turn.additional_instructions
    return base


def _message(turn: Turn) -> dict[str, Any]:
    """The step's user message as session input (text and image URLs)."""
    content = []
    for part in turn.content:
        if part["type"] == "text":
            content.append({"type": "input_text", "text": part["text"]})
        else:  # image_url: _check_turn refused everything else
            content.append({"type": "input_image", "image_url": part["image_url"]["url"]})
    return {"type": "message", "role": "user", "content": content}


def _check_turn(turn: Turn) -> None:
    """UsageError for what a session's message has no place for (never dropped)."""
    if turn.attachments:
        raise UsageError(
            "a step on an agents target cannot attach files: a session's messages take text "
            "and image URLs (code_interpreter files belong in the assistant's files)"
        )
    for part in turn.content:
        if part["type"] == "image_file" or (
            part["type"] == "image_url" and part["image_url"].get("detail")
        ):
            raise UsageError(
                "a step on an agents target sends images by URL (http(s) or data:) and "
                "without detail: a session's image input has no file id nor detail"
            )
    if turn.max_tokens is not None:
        raise UsageError("a step on an agents target has no max_tokens: turns have no cap")
