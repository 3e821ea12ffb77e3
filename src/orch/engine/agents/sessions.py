"""Agent sessions: opening them, the events clients send them, deleting them.

:class:`AgentSessions` is the Agents API's component of the engine (``Engine.agents``). Turns
are executed by :class:`~orch.engine.agents.executor.SessionTurnExecutor`; this class decides
what a client's request does to a session.

An events request may carry an ``Idempotency-Key``. The key is stored with the session (and
a digest of the request body) in the same write as what the request did, so a request sent
again with the same key, say because its 202 was lost, answers 202 and does nothing: a
message is never taken twice, a tool result never resumes a turn twice. The same key with a
different body is refused (400), never silently ignored. Keys live as long as their session.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from orch.engine.agents.environments import sandbox_key
from orch.engine.agents.events import SessionEvents
from orch.engine.agents.executor import SessionTurnExecutor
from orch.engine.agents.files import discard_files
from orch.engine.agents.objects import ITEM, KEY, SESSION, TURN, now
from orch.engine.errors import ApiError, bad_request
from orch.engine.store import child_key
from orch.engine.turns import TurnServices


def digest(body: Any) -> str:
    """A fingerprint of a request body (its canonical JSON), to compare a key's two uses."""
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def unknown_call(result: dict[str, Any]) -> ApiError:
    """OpenAI's 400 for a tool result no pending call awaits (the SDK's helpers look for it)."""
    return ApiError(
        400,
        f"Unknown pending tool call: {result['call_id']}",
        param=result["param"],
        code="invalid_request_error",
    )


class AgentSessions:
    """Creates sessions, applies the events clients send, deletes sessions."""

    def __init__(self, services: TurnServices):
        self.store = services.store
        self.sandbox = services.sandbox
        self.events = SessionEvents()
        self.turns = SessionTurnExecutor(services, self.events)

    # -- sessions ------------------------------------------------------------------------------
    def get(self, session_id: str) -> dict[str, Any] | None:
        """The session, or None."""
        return self.store.get(SESSION, session_id)

    def open(self, session: dict[str, Any]) -> dict[str, Any]:
        """Store a new session (idle until :meth:`send_input` gives it a turn)."""
        return self.store.insert(SESSION, session)

    def send_input(self, session_id: str, messages: list[list[dict[str, Any]]]) -> dict[str, Any]:
        """Start (or queue) a turn for the user's messages; returns the session as it is now."""
        session = self._current(session_id)
        self.turns.enqueue(session, messages)
        return self._current(session_id)

    def delete(self, session_id: str) -> None:
        """Forget the session, its turns, items and keys, and end its streams and sandbox.

        A turn whose model is still working must be cancelled first (a 400, as OpenAI says
        running execution must be); waiting and queued turns go with the session.
        """
        session = self._current(session_id)
        active = session["_active"]
        if active is not None and active in self.turns.tasks:
            raise bad_request(
                f"Session {session_id} has a turn in progress ({active}); cancel it before "
                "deleting the session.",
                "session_id",
            )
        for turn_id in [*session["_queue"], session["_active"]]:
            self.turns.live.pop(turn_id or "", None)
        self.events.close(session_id)
        for kind in (TURN, ITEM, KEY):
            self.store.delete_children(kind, session_id)
        self.store.delete(session_id)
        if session["environment"]["type"] == "openai_hosted":
            discard_files(self.store, session["environment"])
        key = sandbox_key(session["environment"])
        if key is not None and self.sandbox is not None:
            self.sandbox.discard(key)

    def _current(self, session_id: str) -> dict[str, Any]:
        session = self.get(session_id)
        assert session is not None, session_id  # the route found it; nothing awaited since
        return session

    # -- events --------------------------------------------------------------------------------
    def submit(
        self, session_id: str, events: list[dict[str, Any]], key: str | None, body: Any
    ) -> None:
        """Apply the events of one request, all or none, at most once per idempotency key."""
        fingerprint = digest(body)
        if key is not None:
            seen = self.store.get(KEY, child_key(session_id, key))
            if seen is not None:
                if seen["digest"] != fingerprint:
                    raise bad_request(
                        "This Idempotency-Key was already used with a different request body; "
                        "use a new key for a new request.",
                        code="idempotency_key_reused",
                    )
                return
        self._check(self._current(session_id), events)
        for event in events:
            self._apply(session_id, event)
        if key is not None:
            record = {"id": key, "digest": fingerprint, "created_at": now()}
            self.store.insert(KEY, record, parent=session_id, key=child_key(session_id, key))

    def _check(self, session: dict[str, Any], events: list[dict[str, Any]]) -> None:
        """400 unless every event can be applied (checked before any is)."""
        pending = self.turns.pending(session)
        for event in events:
            if event["type"] == "approval":
                raise bad_request(
                    f"Unknown approval request: {event['request_id']}", event["param"]
                )
            if event["type"] == "tool_result":
                call = (event["turn_id"], event["call_id"])
                if call not in pending:
                    raise unknown_call(event)
                pending.discard(call)  # a second result for one call in one request

    def _apply(self, session_id: str, event: dict[str, Any]) -> None:
        session = self._current(session_id)  # afresh: the event before may have changed it
        if event["type"] == "message":
            self.turns.enqueue(session, event["messages"])
        elif event["type"] == "tool_result":
            self.turns.answer(session, event)
        elif event["type"] == "cancel":
            self.turns.cancel(session)

    # -- startup / shutdown --------------------------------------------------------------------
    def recover(self) -> None:
        """Pick up the turns a previous process left open (call on the event loop)."""
        self.turns.recover()

    async def close(self) -> None:
        """Stop executing turns and end every event stream."""
        await self.turns.close()
