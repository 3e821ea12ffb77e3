"""Retrying transient failures of SDK calls, and turning the rest into one clear error.

SDK clients are created with ``max_retries=0`` so retries are not stacked: this module is the
only place orch retries. Transient means 408/429/5xx, connection problems, and a 2xx answer that
is not the object asked for (an empty or truncated body, JSON or SSE: :data:`MALFORMED`); the
delay honours ``retry-after-ms`` / ``retry-after`` and otherwise backs off exponentially with
jitter.

A transient failure of a *create* is ambiguous: the request may have been processed and only the
answer lost. :func:`create_once` therefore looks for what the create would have made before it
tries again, and after the last failure too, so a lost answer is found, never repeated.
"""

from __future__ import annotations

import json
import random
import time
import warnings
from collections.abc import Callable
from typing import TypeVar

import openai

from orch.errors import (
    AuthError,
    BackendError,
    NotFoundError,
    RateLimitError,
    TransportError,
)

T = TypeVar("T")

# orch speaks the Assistants API on purpose (the embedded engine, Azure); the SDK's deprecation
# notice is no news to its users. One process-wide filter, because catch_warnings() around each
# call is not thread-safe.
warnings.filterwarnings(
    "ignore", message=r"The Assistants API is deprecated|deprecated$", category=DeprecationWarning
)

TRANSIENT_STATUS = {408, 429, 500, 502, 503, 504}


class MalformedResponse(Exception):
    """A 2xx answer that is not what was asked for: empty, cut short, or not JSON.

    The request may have been processed (only its answer was spoiled on the way), so it is
    transient and, for a create, ambiguous.
    """


#: what the SDK raises (or what orch raises for it) when a 2xx body cannot be read: json's
#: ValueError for an empty or truncated body or SSE event, the SDK's validation error
MALFORMED = (json.JSONDecodeError, MalformedResponse, openai.APIResponseValidationError)
#: every failure of an SDK call that :func:`call` and :func:`create_once` handle
FAILURES = (openai.OpenAIError, json.JSONDecodeError, MalformedResponse)


def checked(result: T) -> T:
    """``result``, unless it is the text the SDK returns for a 2xx body it could not read.

    The SDK hands back the raw text of a non-JSON answer (an empty 200 without a content type)
    instead of the object asked for; no call orch wraps expects text.
    """
    if isinstance(result, str):
        shown = repr(result[:60]) if result else "an empty body"
        raise MalformedResponse(f"the server answered {shown} instead of a JSON object")
    return result


def is_transient(exc: BaseException) -> bool:
    """Whether trying the same call again may succeed (for a create: whether it may exist)."""
    if isinstance(exc, MALFORMED):
        return True
    if isinstance(exc, openai.APIConnectionError):  # includes APITimeoutError
        return True
    if isinstance(exc, openai.APIStatusError):
        return exc.status_code in TRANSIENT_STATUS
    return False


def retry_delay(exc: BaseException, attempt: int, base: float = 0.25, cap: float = 20.0) -> float:
    """Seconds to wait before attempt ``attempt + 1``: the server's hint, else backoff + jitter."""
    response = getattr(exc, "response", None)
    headers = getattr(response, "headers", None) or {}
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        value = headers.get(name)
        if value:
            try:
                return min(max(float(value) * scale, 0.0), 60.0)
            except ValueError:
                pass  # an HTTP date; fall back to backoff
    return min(cap, base * (2**attempt)) * (0.5 + random.random() / 2)


def call(
    what: str,
    func: Callable[[], T],
    *,
    attempts: int = 4,
    idempotent: bool = True,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run ``func``, retrying transient failures when ``idempotent``; raise BackendError.

    ``what`` names the operation for the error message (e.g. ``"list assistants"``). ``func``
    must return an SDK object (parsed inside ``func``, so a spoiled body is retried too).
    """
    for attempt in range(attempts):
        try:
            return checked(func())
        except FAILURES as exc:
            if idempotent and is_transient(exc) and attempt + 1 < attempts:
                sleep(retry_delay(exc, attempt))
                continue
            raise to_backend_error(what, exc) from exc
    raise AssertionError("unreachable")  # pragma: no cover


def create_once(
    what: str,
    create: Callable[[], T],
    find: Callable[[], T | None],
    *,
    attempts: int = 4,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """Run a non-idempotent ``create`` at most once in effect; returns what it made.

    A transient failure may hide a create that happened (the answer was lost), so after it
    ``find()`` looks for the object (by a name, tags or a nonce the create carried), before any
    new attempt and after the last one; what it returns is adopted instead of creating a second
    one. Once an attempt was ambiguous, a later refusal (say, a 400 because the first create
    did land) is looked up too before it is reported.
    """
    ambiguous = False
    for attempt in range(attempts):
        try:
            return checked(create())
        except FAILURES as exc:
            transient = is_transient(exc)
            if transient:
                sleep(retry_delay(exc, attempt))  # give a create in flight time to land
            if transient or ambiguous:
                found = find()
                if found is not None:
                    return found
            if not transient or attempt + 1 == attempts:
                raise to_backend_error(what, exc) from exc
            ambiguous = True
    raise AssertionError("unreachable")  # pragma: no cover


def to_backend_error(what: str, exc: BaseException) -> BackendError:
    """One line a user can act on, classified for the caller."""
    if isinstance(exc, MALFORMED):
        detail = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return TransportError(f"{what}: the server's answer was empty or cut short ({detail})")
    if isinstance(exc, openai.APITimeoutError):
        return TransportError(f"{what}: the server did not answer in time")
    if isinstance(exc, openai.APIConnectionError):
        cause = exc.__cause__ or exc.__context__
        detail = f" ({cause})" if cause else ""
        return TransportError(f"{what}: cannot connect to the server{detail}")
    if isinstance(exc, openai.APIStatusError):
        message = _server_message(exc)
        status = exc.status_code
        if status in (401, 403):
            return AuthError(f"{what}: the server refused the credentials ({status}): {message}")
        if status == 404:
            return NotFoundError(f"{what}: not found (404): {message}")
        if status == 429:
            return RateLimitError(f"{what}: rate limited (429) after retries: {message}")
        return BackendError(f"{what}: server answered {status}: {message}")
    return BackendError(f"{what}: {exc}")


def _server_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        if isinstance(error, dict) and error.get("message"):
            return str(error["message"])
    return str(exc.message)
