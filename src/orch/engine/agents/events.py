"""A session's live events: the frames of ``GET .../events`` and of a streamed session create.

Every event has an ``event_id`` (``event_…``) and a ``type``; session events carry the session,
turn events the turn, item and text events their item, as the SDK's ``AgentSessionEvent``
union has them. Events go to whoever listens to the session's channel when they happen: the
stream is live, nothing is replayed. A listener that joined with :meth:`SessionEvents.follow`
(a streamed create) is let go when the session next settles (``idle`` or ``failed``).
"""

from __future__ import annotations

import asyncio
from typing import Any

from orch.engine.sse import Channels, encode_event
from orch.engine.store import new_id, public

#: Session statuses that end a followed stream.
SETTLED = ("idle", "failed")


def frame(kind: str, **data: Any) -> bytes:
    """One event as an SSE frame, with a fresh ``event_id``."""
    return encode_event(kind, {"event_id": new_id("event"), "type": kind, **data})


def session_frame(session: dict[str, Any], kind: str | None = None) -> bytes:
    """The frame announcing the session (``agent.session.<status>`` unless ``kind`` is given)."""
    return frame(kind or f"agent.session.{session['status']}", session=public(session))


class SessionEvents:
    """Sends session events to the listeners of each session (see the module docstring)."""

    def __init__(self) -> None:
        self.channels = Channels()
        self._followers: dict[str, list[asyncio.Queue[bytes | None]]] = {}

    # -- listeners -----------------------------------------------------------------------------
    def subscribe(self, session_id: str) -> asyncio.Queue[bytes | None]:
        """A queue receiving the session's frames until it is deleted or the engine stops."""
        return self.channels.subscribe(session_id)

    def follow(self, session_id: str) -> asyncio.Queue[bytes | None]:
        """A queue receiving the session's frames until the session next settles."""
        queue = self.channels.subscribe(session_id)
        self._followers.setdefault(session_id, []).append(queue)
        return queue

    def unsubscribe(self, session_id: str, queue: asyncio.Queue[bytes | None]) -> None:
        """Stop sending frames to ``queue``."""
        self.channels.unsubscribe(session_id, queue)
        followers = self._followers.get(session_id)
        if followers and queue in followers:
            followers.remove(queue)
            if not followers:
                del self._followers[session_id]

    def close(self, session_id: str) -> None:
        """End every stream of the session (it is gone)."""
        self._followers.pop(session_id, None)
        self.channels.close(session_id)

    def close_all(self) -> None:
        """End every stream (the engine stops)."""
        for session_id in list(self.channels.listeners):
            self.close(session_id)

    # -- sending -------------------------------------------------------------------------------
    def send(self, session_id: str, kind: str, /, **data: Any) -> None:
        """Send one event to the session's listeners (built only when someone listens)."""
        if session_id in self.channels.listeners:
            self.channels.send(session_id, frame(kind, **data))

    def session(self, session: dict[str, Any]) -> None:
        """Announce the session's status; followers are let go once it settles."""
        self.send(session["id"], f"agent.session.{session['status']}", session=public(session))
        if session["status"] in SETTLED:
            for queue in self._followers.pop(session["id"], []):
                self.channels.unsubscribe(session["id"], queue)
                queue.put_nowait(None)

    def turn(self, turn: dict[str, Any], kind: str) -> None:
        """``agent.session.turn.<kind>`` with the turn (and its usage when it has ended)."""
        data: dict[str, Any] = {
            "session_id": turn["session_id"],
            "turn": public(turn),
            "turn_id": turn["id"],
        }
        if kind in ("completed", "failed", "cancelled"):
            data["usage"] = turn["usage"]
        self.send(turn["session_id"], f"agent.session.turn.{kind}", **data)

    def item(self, session_id: str, item: dict[str, Any], stage: str, index: int | None) -> None:
        """``agent.session.turn.item.<stage>`` (``added`` or ``done``) for one item."""
        self.send(
            session_id,
            f"agent.session.turn.item.{stage}",
            item=public(item),
            output_index=index,
            session_id=session_id,
            turn_id=item["turn_id"],
        )

    def text(
        self, session_id: str, item: dict[str, Any], index: int, kind: str, /, **data: Any
    ) -> None:
        """A text event of a reply message (``content_part.added``, ``output_text.delta``, ...)."""
        self.send(
            session_id,
            f"agent.session.turn.{kind}",
            content_index=0,
            item_id=item["id"],
            output_index=index,
            session_id=session_id,
            turn_id=item["turn_id"],
            **data,
        )
