"""The ASGI application: routes, lifespan (engine state), auth, the wire rules, stats.

Two middlewares stand between the server and the routes. :class:`GuardMiddleware` answers
what never reaches a route: a missing or wrong API key, a missing ``OpenAI-Beta`` header on
the Assistants API, injected faults. :class:`DurableMiddleware` holds every response (and
every chunk of a stream) until the writes made before it are committed, so a 2xx means the
state it reports is on disk, and stamps each response with an ``x-request-id``.
"""

from __future__ import annotations

import contextlib
import hmac
import random
import secrets
import threading
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from orch.engine.core import Engine, EngineConfig, RequestStats
from orch.engine.errors import ApiError, StorageError
from orch.engine.routes import all_routes
from orch.engine.routes.agents import PATH as AGENTS_PATH
from orch.engine.routes.agents import beta_problem as agents_beta_problem
from orch.engine.routes.common import api_error, error_response, json_response
from orch.engine.sse import encode_event

#: Paths of the Assistants API, where OpenAI requires ``OpenAI-Beta: assistants=v2``.
BETA_REQUIRED = ("/v1/assistants", "/v1/threads")
#: Paths where the SDK sends the header without it being required; a v1 there is refused.
BETA_CHECKED = ("/v1/vector_stores",)
_BETA_MISSING = (
    "You must provide the 'OpenAI-Beta' header to access the Assistants API. Please try again "
    "by setting the header 'OpenAI-Beta: assistants=v2'."
)
_BETA_V1 = (
    "The v1 Assistants API has been deprecated. Please try again by setting the header "
    "'OpenAI-Beta: assistants=v2'. See the migration guide for more information: "
    "https://platform.openai.com/docs/assistants/migration."
)


class FaultDropped(Exception):
    """Raised on purpose after a response has started, so the server drops the connection."""


def _under(path: str, prefixes: tuple[str, ...]) -> bool:
    return any(path == p or path.startswith(p + "/") for p in prefixes)


def beta_problem(scope: Scope) -> ApiError | None:
    """OpenAI's 400 ``invalid_beta`` for a request without ``OpenAI-Beta: assistants=v2``.

    Required on the Assistants API paths (the SDK sends it there); elsewhere only an explicit
    ``assistants=v1`` is refused, as Responses, Conversations, Files and Containers clients
    send no such header. The Agents API requires ``agents=v1`` instead
    (:func:`orch.engine.routes.agents.beta_problem`).
    """
    path = scope["path"]
    values = [
        item.strip().lower()
        for name, value in scope["headers"]
        if name == b"openai-beta"
        for item in value.decode("latin-1").split(",")
    ]
    if _under(path, (AGENTS_PATH,)):
        return agents_beta_problem(values)
    required = _under(path, BETA_REQUIRED)
    if not required and not _under(path, BETA_CHECKED):
        return None
    version = next((v.partition("=")[2] for v in values if v.startswith("assistants=")), None)
    if version == "v2" or (version is None and not required):
        return None
    return ApiError(400, _BETA_V1 if version == "v1" else _BETA_MISSING, code="invalid_beta")


class GuardMiddleware:
    """Checks the API key and ``OpenAI-Beta``, and injects faults when asked.

    ``Authorization: Bearer`` is checked when a key is set, ``OpenAI-Beta`` as
    :func:`beta_problem` says.

    Faults (``fault_rate`` of the ``/v1`` requests, chosen by a seeded RNG so test runs repeat):
    a 429 with ``retry-after-ms``, a 500, or a connection dropped before any response.
    """

    def __init__(
        self, app: ASGIApp, api_key: str | None = None, fault_rate: float = 0.0, fault_seed: int = 0
    ):
        self.app = app
        self.api_key = api_key
        self.fault_rate = fault_rate
        self._rng = random.Random(fault_seed)
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Guard one request, then hand it to the app."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = self._auth_problem(scope) if self.api_key is not None else None
        problem = problem or beta_problem(scope)
        if problem is not None:
            await error_response(problem)(scope, receive, send)
            return
        if self.fault_rate > 0 and not scope["path"].startswith("/v1/_orch/"):
            with self._lock:
                roll = self._rng.random()
                kind = self._rng.choice(("429", "500", "drop"))
            if roll < self.fault_rate:
                await self._fault(kind, scope, receive, send)
                return
        await self.app(scope, receive, send)

    def _auth_problem(self, scope: Scope) -> ApiError | None:
        header = ""
        for name, value in scope["headers"]:
            if name == b"authorization":
                header = value.decode("latin-1")
                break
        if not header.startswith("Bearer "):
            return ApiError(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        given = header[len("Bearer ") :].strip()
        assert self.api_key is not None
        if not hmac.compare_digest(given.encode(), self.api_key.encode()):
            shown = given[:3] + "*" * 4 + given[-4:] if len(given) > 8 else "*" * len(given)
            return ApiError(401, f"Incorrect API key provided: {shown}.", code="invalid_api_key")
        return None

    @staticmethod
    async def _fault(kind: str, scope: Scope, receive: Receive, send: Send) -> None:
        if kind == "429":
            err = ApiError(
                429,
                "Rate limit reached (injected fault). Please try again shortly.",
                type="requests",
                code="rate_limit_exceeded",
                headers={"retry-after-ms": "20", "retry-after": "1"},
            )
            await error_response(err)(scope, receive, send)
        elif kind == "500":
            err = ApiError(
                500,
                "The server had an error while processing your request (injected fault).",
                type="server_error",
            )
            await error_response(err)(scope, receive, send)
        else:
            await send(
                {
                    "type": "http.response.start",
                    "status": 200,
                    "headers": [(b"content-type", b"application/json")],
                }
            )
            raise FaultDropped("injected fault: connection dropped")


class _ResponseAborted(Exception):
    """Ends a route whose stream was cut short because its writes could not be committed."""


def request_id() -> str:
    """A request id as OpenAI sends it in ``x-request-id`` (``req_`` and 32 hex digits)."""
    return "req_" + secrets.token_hex(16)


class DurableMiddleware:
    """Holds each response back until the writes made before it are on disk.

    The response's start waits for :meth:`orch.engine.store.Store.durable`, and so does each
    chunk of an event stream: a client never reads state that a crash could take back. When
    the commit fails the client gets OpenAI's 500 ``server_error`` instead, or, in the middle
    of a stream, an ``error`` event (the SDKs raise it as an ``APIError``) and the end of the
    stream. Every response gets an ``x-request-id`` header.
    """

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one request with its responses held back until durable."""
        if scope["type"] != "http" or scope["path"].startswith("/v1/_orch/"):
            await self.app(scope, receive, send)  # the engine's own endpoints write nothing
            return
        store = scope["app"].state.engine.store
        rid = request_id().encode()
        started = streaming = False

        async def durable_send(message: Message) -> None:
            nonlocal started, streaming
            try:
                if message["type"] == "http.response.start":
                    await store.durable()
                    headers = message.get("headers", [])
                    streaming = (b"content-type", b"text/event-stream") in [
                        (k, v.split(b";")[0]) for k, v in headers
                    ]
                    message["headers"] = [*headers, (b"x-request-id", rid)]
                    started = True
                elif streaming and message.get("body"):
                    # Events are written as they happen: each waits for its own writes. Any
                    # other body was made before the start, whose wait covered it.
                    await store.durable()
            except StorageError as exc:
                await self._refuse(exc, started, scope, receive, send, rid)
                raise _ResponseAborted from exc
            await send(message)

        with contextlib.suppress(_ResponseAborted):
            await self.app(scope, receive, durable_send)

    @staticmethod
    async def _refuse(
        exc: StorageError, started: bool, scope: Scope, receive: Receive, send: Send, rid: bytes
    ) -> None:
        """Answer the failed commit: a 500, or an ``error`` event ending a started stream."""
        if not started:
            response = error_response(exc)
            response.headers["x-request-id"] = rid.decode()
            await response(scope, receive, send)
            return
        frame = encode_event("error", exc.body())
        await send({"type": "http.response.body", "body": frame, "more_body": False})


async def _server_error(request: Request, exc: Exception) -> Response:
    """Any unexpected exception: OpenAI's 500 ``server_error``, never a plain-text page."""
    err = ApiError(
        500,
        "The server had an error while processing your request. Sorry about that!",
        type="server_error",
    )
    return json_response(err.body(), status=500, headers={"x-request-id": request_id()})


async def _health(request: Request) -> Response:
    """GET /v1/_orch/health: 200 while the engine can commit, 503 once a commit has failed."""
    engine: Engine = request.app.state.engine
    failure = engine.store.failure
    if failure is None:
        return json_response({"status": "ok"})
    err = ApiError(503, failure.message, type="server_error", code="engine_unhealthy")
    return json_response(err.body(), status=503)


async def _not_found(request: Request, exc: Exception) -> Response:
    status = getattr(exc, "status_code", 404)
    if status == 405:
        message = f"Invalid method for URL ({request.method} {request.url.path})"
    else:
        message = f"Invalid URL ({request.method} {request.url.path})"
    return json_response(ApiError(status, message).body(), status=status)


async def _stats(request: Request) -> Response:
    engine: Engine = request.app.state.engine
    return json_response({"requests": engine.stats.snapshot()})


def create_app(
    config: EngineConfig | None = None, *, stats: RequestStats | None = None, **options: Any
) -> Starlette:
    """The engine's ASGI app. ``options`` override :class:`EngineConfig` fields.

    ``stats`` collects request counts (share it with the caller to read them from another thread).
    The engine (database, model, runs) is opened on startup and closed on shutdown.
    """
    config = config or EngineConfig()
    for key, value in options.items():
        if not hasattr(config, key):
            raise TypeError(f"create_app() got an unexpected option {key!r}")
        setattr(config, key, value)
    stats = stats or RequestStats()

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        engine = Engine(config, stats)
        app.state.engine = engine
        engine.start()
        try:
            yield
        finally:
            await engine.close()

    routes = [
        *all_routes(),
        Route("/v1/_orch/stats", _stats, methods=["GET"]),
        Route("/v1/_orch/health", _health, methods=["GET"]),
    ]
    middleware = [
        Middleware(
            GuardMiddleware,
            api_key=config.api_key,
            fault_rate=config.fault_rate,
            fault_seed=config.fault_seed,
        ),
        Middleware(DurableMiddleware),
    ]
    handlers: dict[Any, Any] = {
        ApiError: api_error,
        404: _not_found,
        405: _not_found,
        HTTPException: _not_found,
        Exception: _server_error,
    }
    return Starlette(
        routes=routes, middleware=middleware, lifespan=lifespan, exception_handlers=handlers
    )
