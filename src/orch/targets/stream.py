"""Reading an SDK server-sent-event stream the way every session needs it.

Each event is handed to the caller, then the item's deadline and Ctrl-C are checked; an ``error``
event becomes a :class:`~orch.errors.BackendError`; the connection is released however the
reading ends. Transport failures (``openai.APIError``, and a truncated event's JSON error)
propagate: only the caller knows whether what was lost can be looked up or retried. A stream
that ends before the event that proves its create took effect is
:class:`~orch.targets.retry.MalformedResponse`: an ambiguous create, never an item failure.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from itertools import chain
from typing import Any

from orch.errors import BackendError
from orch.targets.retry import MalformedResponse


def event_kind(event: Any) -> str:
    """An event's name: ``event`` on Assistants events, ``type`` on Responses events."""
    return getattr(event, "event", None) or getattr(event, "type", "")


class StreamReader:
    """An SDK event stream, possibly with its first events already read (:meth:`prime`)."""

    def __init__(self, stream: Any, head: list[Any] | None = None):
        self.stream = stream
        self.head = head or []

    @classmethod
    def prime(cls, stream: Any, until: Callable[[str], bool]) -> StreamReader:
        """Read ``stream`` up to the first event for which ``until(kind)`` holds (or an error).

        Used to learn that a create took effect before its stream is handed on: a stream that
        breaks, or ends, earlier is a create with an unknown outcome (transport errors and
        :class:`MalformedResponse` propagate, the stream closed).
        """
        head = []
        try:
            for event in stream:
                head.append(event)
                kind = event_kind(event)
                if kind == "error" or until(kind):
                    return cls(stream, head)
            raise MalformedResponse("the stream ended before the server said what it created")
        except BaseException:
            stream.close()
            raise

    def events(self, check: Callable[[], None]) -> Iterator[Any]:
        """Yield every event, calling ``check()`` after each; close the stream at the end."""
        try:
            for event in chain(self.head, self.stream):
                if event_kind(event) == "error":
                    data = getattr(event, "data", event)
                    message = getattr(data, "message", None) or getattr(event, "message", event)
                    raise BackendError(f"stream error: {message}")
                yield event
                check()
        finally:
            self.stream.close()

    def close(self) -> None:
        """Release the connection."""
        self.stream.close()
