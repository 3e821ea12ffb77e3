"""Server-sent events as the Assistants API sends them: event/data lines, then ``done``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable
from typing import Any

DONE = b"event: done\ndata: [DONE]\n\n"


def encode_event(event: str, data: Any) -> bytes:
    """One SSE frame; ``data`` is JSON-encoded unless it is already a string."""
    payload = (
        data
        if isinstance(data, str)
        else json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    )
    return f"event: {event}\ndata: {payload}\n\n".encode()


def error_event(message: str, code: str = "server_error") -> bytes:
    """An ``error`` frame in OpenAI's error shape."""
    return encode_event(
        "error",
        {"error": {"message": message, "type": "server_error", "param": None, "code": code}},
    )


async def relay(
    queue: asyncio.Queue[bytes | None],
    *,
    prelude: list[bytes] | None = None,
    on_close: Callable[[], None] | None = None,
) -> AsyncIterator[bytes]:
    """Yield frames from ``queue`` until the ``None`` end marker, then ``done``.

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
            if finished:
                batch.append(DONE)
            yield b"".join(batch)
            if finished:
                return
    finally:
        if on_close is not None:
            on_close()
