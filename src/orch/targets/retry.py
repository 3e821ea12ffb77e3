"""Retrying transient failures of SDK calls, and turning the rest into one clear error.

SDK clients are created with ``max_retries=0`` so retries are not stacked: this module is the
only place orch retries. Transient means 408/409-lock/429/5xx and connection problems; the delay
honours ``retry-after-ms`` / ``retry-after`` and otherwise backs off exponentially with jitter.
"""

from __future__ import annotations

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


def is_transient(exc: BaseException) -> bool:
    """Whether trying the same call again may succeed."""
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

    ``what`` names the operation for the error message (e.g. ``"list assistants"``).
    """
    for attempt in range(attempts):
        try:
            return func()
        except openai.OpenAIError as exc:
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
    """Run a non-idempotent ``create``; after an ambiguous failure, ``find`` it before retrying.

    A transient failure may hide a create that happened (the answer was lost), so before each
    new attempt ``find()`` looks for the object (by a name, tags or a nonce the create carried);
    what it returns is adopted instead of creating a second one.
    """
    for attempt in range(attempts):
        try:
            return create()
        except openai.OpenAIError as exc:
            if not is_transient(exc) or attempt + 1 == attempts:
                raise to_backend_error(what, exc) from exc
            sleep(retry_delay(exc, attempt))
            found = find()
            if found is not None:
                return found
    raise AssertionError("unreachable")  # pragma: no cover


def to_backend_error(what: str, exc: BaseException) -> BackendError:
    """One line a user can act on, classified for the caller."""
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
