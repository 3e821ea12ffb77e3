"""Tiny PNG writer (zlib + struct) for the scripted code interpreter's image outputs."""

from __future__ import annotations

import struct
import zlib

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _chunk(kind: bytes, data: bytes) -> bytes:
    return (
        struct.pack(">I", len(data))
        + kind
        + data
        + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    )


def encode_png(width: int, height: int, pixels: list[list[tuple[int, int, int]]]) -> bytes:
    """Encode RGB rows (``pixels[y][x] = (r, g, b)``) as a PNG file."""
    raw = b"".join(b"\x00" + bytes(c for px in row for c in px) for row in pixels)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        PNG_MAGIC
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 9))
        + _chunk(b"IEND", b"")
    )


def render_chart(values: list[float] | None = None, width: int = 160, height: int = 100) -> bytes:
    """A deterministic bar chart of ``values`` (white background, blue bars) as PNG bytes."""
    values = values or [3, 5, 2, 6, 4]
    top = max(values) or 1
    bar_w = max(1, width // (2 * len(values) + 1))
    pixels = [[(255, 255, 255)] * width for _ in range(height)]
    for i, value in enumerate(values):
        x0 = bar_w * (2 * i + 1)
        bar_h = int((height - 10) * value / top)
        for y in range(height - bar_h, height):
            row = pixels[y]
            for x in range(x0, min(width, x0 + bar_w)):
                row[x] = (40, 90, 200)
    return encode_png(width, height, pixels)
