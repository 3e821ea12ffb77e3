"""Reading request bodies: JSON capped in size and depth, OpenAI's 400 and 413 answers.

Multipart uploads are read by :mod:`orch.engine.routes.uploads`.
"""

from __future__ import annotations

import json
import re
from typing import Any

from starlette.requests import Request

from orch.engine.errors import ApiError, bad_request

#: The largest JSON body read (OpenAI documents 50 MB as a request's total payload).
JSON_LIMIT = 50 * 1024 * 1024
#: How much of a refused body is read (and dropped) before the connection is dropped instead.
DRAIN_LIMIT = 2 * 1024 * 1024 * 1024
#: How deep arrays and objects may nest in a JSON body (tool schemas need a few dozen).
JSON_DEPTH = 64
# A JSON string (skipped whole, escapes included), an opening or a closing bracket.
_JSON_TOKEN = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"|([\[{])|([\]}])')
_NOT_JSON = (
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't "
    "using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was "
    "sent was not valid JSON.)"
)


def body_too_large(limit: int) -> ApiError:
    """The 413 for a JSON body over ``limit`` bytes."""
    return ApiError(
        413,
        f"Request body too large: the maximum size of a JSON body is {limit // 2**20} MB.",
        code="request_too_large",
    )


def nesting_depth(raw: bytes, limit: int = JSON_DEPTH) -> int:
    """How deep ``raw``'s arrays and objects nest, counting stops just past ``limit``.

    Scanned before parsing (a regular expression over the bytes, strings skipped), so a
    body of ten thousand ``[`` never reaches the recursive parser.
    """
    depth = deepest = 0
    for match in _JSON_TOKEN.finditer(raw):
        if match.lastindex == 1:
            depth += 1
            if depth > deepest:
                deepest = depth
                if depth > limit:
                    break
        elif match.lastindex == 2:
            depth -= 1
    return deepest


async def read_body(request: Request, limit: int | None = None) -> bytes:
    """The raw body, or a 413 past ``limit`` bytes (declared or counted as it arrives).

    ``limit`` defaults to :data:`JSON_LIMIT`, read when called.

    A refused body is still read to its end (and dropped) so the client reads the 413.
    """
    limit = JSON_LIMIT if limit is None else limit
    declared = request.headers.get("content-length", "")
    chunks: list[bytes] = []
    size = 0
    refused = declared.isdigit() and int(declared) > limit
    async for chunk in request.stream():
        size += len(chunk)
        refused = refused or size > limit
        if not refused:
            chunks.append(chunk)
        elif size > DRAIN_LIMIT:
            break  # not worth reading on: the connection is dropped after the answer
    if refused:
        raise body_too_large(limit)
    return b"".join(chunks)


async def read_json(request: Request) -> dict[str, Any]:
    """The JSON object body of a request (``{}`` when empty).

    400 for a body that is not JSON (or not UTF-8) or nests deeper than :data:`JSON_DEPTH`,
    413 for one over :data:`JSON_LIMIT`.
    """
    raw = await read_body(request)
    if not raw.strip():
        return {}
    if nesting_depth(raw) > JSON_DEPTH:
        raise bad_request(
            f"The JSON body of your request is nested too deeply: arrays and objects may nest "
            f"at most {JSON_DEPTH} levels.",
            code="invalid_json",
        )
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise bad_request(_NOT_JSON) from None
    if not isinstance(body, dict):
        raise bad_request("The request body must be a JSON object.")
    return body
