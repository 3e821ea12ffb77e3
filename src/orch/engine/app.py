"""The ASGI application: routes, lifespan (engine state), auth, fault injection, stats."""

from __future__ import annotations

import contextlib
import hmac
import random
import threading
from collections.abc import AsyncIterator
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from orch.engine.core import Engine, EngineConfig, RequestStats
from orch.engine.errors import ApiError
from orch.engine.routes import all_routes
from orch.engine.routes.common import api_error, error_response, json_response


class FaultDropped(Exception):
    """Raised on purpose after a response has started, so the server drops the connection."""


class GuardMiddleware:
    """Checks ``Authorization: Bearer`` when a key is set, and injects faults when asked.

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
        if self.api_key is not None:
            problem = self._auth_problem(scope)
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

    routes = [*all_routes(), Route("/v1/_orch/stats", _stats, methods=["GET"])]
    middleware = [
        Middleware(
            GuardMiddleware,
            api_key=config.api_key,
            fault_rate=config.fault_rate,
            fault_seed=config.fault_seed,
        )
    ]
    handlers: dict[Any, Any] = {
        ApiError: api_error,
        404: _not_found,
        405: _not_found,
        HTTPException: _not_found,
    }
    return Starlette(
        routes=routes, middleware=middleware, lifespan=lifespan, exception_handlers=handlers
    )
