"""Server-sent events as OpenAI sends them: event/data lines, text deltas, then ``done``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

DONE = b"event: done\ndata: [DONE]\n\n"
DELTA_CHARS = 24


def pieces(text: str, size: int = DELTA_CHARS) -> list[str]:
    """Split text into stream deltas of about ``size`` characters, at spaces where possible."""
    out = []
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            cut = text.find(" ", end)
            end = cut + 1 if 0 <= cut < end + size else end
        out.append(text[start:end])
        start = end
    return out


def encode_event(event: str, data: Any) -> bytes:
    """One SSE frame; ``data`` is JSON-encoded unless it is already a string."""
    payload = (
        data
        if isinstance(data, str)
        else json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    )
    return f"event: {event}\ndata: {payload}\n\n".encode()


class Channels:
    """Queues of SSE frames per object id (a run, a response), one queue per listener."""

    def __init__(self) -> None:
        self.listeners: dict[str, list[asyncio.Queue[bytes | None]]] = {}

    def subscribe(self, key: str) -> asyncio.Queue[bytes | None]:
        """A queue receiving ``key``'s frames until :meth:`close`."""
        queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.listeners.setdefault(key, []).append(queue)
        return queue

    def unsubscribe(self, key: str, queue: asyncio.Queue[bytes | None]) -> None:
        """Stop sending frames to ``queue``."""
        queues = self.listeners.get(key)
        if queues and queue in queues:
            queues.remove(queue)
            if not queues:
                del self.listeners[key]

    def send(self, key: str, frame: bytes) -> None:
        """Queue one frame for every listener of ``key``."""
        for queue in self.listeners.get(key, ()):
            queue.put_nowait(frame)

    def close(self, key: str) -> None:
        """End every listener's stream of ``key``."""
        for queue in self.listeners.pop(key, []):
            queue.put_nowait(None)


async def relay(
    queue: asyncio.Queue[bytes | None],
    *,
    prelude: list[bytes] | None = None,
    on_close: Callable[[], None] | None = None,
    done: bytes = DONE,
) -> AsyncIterator[bytes]:
    """Yield frames from ``queue`` until the ``None`` end marker, then ``done`` (if any).

    Frames already queued are sent in one write, so a burst of deltas costs one syscall.
    """
    try:
        if prelude:
            yield b"".join(prelude)
        while True:
            item = await queue.get()
            batch = []
            finished = False
            while True:
                if item is None:
                    finished = True
                    break
                batch.append(item)
                if queue.empty():
                    break
                item = queue.get_nowait()
            if finished and done:
                batch.append(done)
            yield b"".join(batch)
            if finished:
                return
    finally:
        if on_close is not None:
            on_close()
