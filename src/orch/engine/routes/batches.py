"""``/v1/batches``: create, retrieve, list, cancel; each line runs through the app's own routes.

The :class:`~orch.engine.batches.Batches` component is made on the first batch request of an
engine (which also resumes batches a previous process left unfinished) and kept on the app's
state. Its lines are sent to the app itself as in-process ASGI requests (:func:`sender`): the
same middleware, validation, durability and answers as a request from outside.
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Message

from orch.engine import params as p
from orch.engine.batches import Batches, Sender
from orch.engine.errors import ApiError
from orch.engine.routes.bodies import read_json
from orch.engine.routes.common import engine_of, object_response, routes
from orch.engine.routes.resources import page_response

CREATE_FIELDS = frozenset(
    {"input_file_id", "endpoint", "completion_window", "metadata", "output_expires_after"}
)


def sender(app: ASGIApp, api_key: str | None) -> Sender:
    """Send one JSON request to ``app`` in-process; ``(status, JSON body, x-request-id)``.

    It carries the engine's own key (held in memory, never stored with the batch) so a guarded
    engine lets its own batch lines through.
    """

    async def send(path: str, body: dict[str, Any]) -> tuple[int, Any, str]:
        payload = json.dumps(body).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(payload)).encode()),
        ]
        if api_key:
            headers.append((b"authorization", f"Bearer {api_key}".encode()))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 0),
            "server": ("127.0.0.1", 0),
        }
        sent = False
        status, chunks, request_id = 500, [], ""

        async def receive() -> Message:
            nonlocal sent
            if not sent:
                sent = True
                return {"type": "http.request", "body": payload, "more_body": False}
            return {"type": "http.disconnect"}

        async def collect(message: Message) -> None:
            nonlocal status, request_id
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", []):
                    if name == b"x-request-id":
                        request_id = value.decode()
            elif message["type"] == "http.response.body":
                chunks.append(message.get("body", b""))

        await app(scope, receive, collect)
        raw = b"".join(chunks)
        try:
            return status, json.loads(raw) if raw else None, request_id
        except json.JSONDecodeError:
            return status, {"error": {"message": raw.decode("utf-8", "replace")}}, request_id

    return send


def batches_of(request: Request) -> Batches:
    """The engine's batch component (made, and unfinished batches resumed, on first use)."""
    engine = engine_of(request)
    state = request.app.state
    component = getattr(state, "batches", None)
    if component is None or component.store is not engine.store:
        component = Batches(engine.store, engine.files, sender(request.app, engine.config.api_key))
        state.batches = component
        component.recover()
    return component


def find_batch(request: Request) -> dict[str, Any]:
    """The batch the path names, or OpenAI's 404."""
    batch_id = request.path_params["batch_id"]
    batch = batches_of(request).get(batch_id)
    if batch is None:
        raise ApiError(404, f"No batch found with id '{batch_id}'.", param="batch_id")
    return batch


async def create(request: Request) -> Response:
    """POST /v1/batches."""
    body = await read_json(request)
    p.check_keys(body, CREATE_FIELDS)
    input_file_id = p.field(body, "input_file_id", str, required=True, nullable=False)
    endpoint = p.field(body, "endpoint", str, required=True, nullable=False)
    window = p.field(body, "completion_window", str, required=True, nullable=False)
    expires = p.field(body, "output_expires_after", dict)
    seconds = None
    if expires is not None:
        where = "output_expires_after."
        p.check_keys(expires, frozenset({"anchor", "seconds"}), "output_expires_after")
        p.field(
            expires, "anchor", str, required=True, choices=("created_at",), param=where + "anchor"
        )
        seconds = p.field(
            expires,
            "seconds",
            int,
            required=True,
            minimum=3600,
            maximum=2592000,
            param=where + "seconds",
        )
    batch = batches_of(request).create(
        input_file_id, endpoint, window, p.metadata(body), output_expires_after=seconds
    )
    return object_response(batch)


async def retrieve(request: Request) -> Response:
    """GET /v1/batches/{batch_id}."""
    return object_response(find_batch(request))


async def cancel(request: Request) -> Response:
    """POST /v1/batches/{batch_id}/cancel."""
    return object_response(batches_of(request).cancel(find_batch(request)))


async def list_batches(request: Request) -> Response:
    """GET /v1/batches (newest first, ``after`` cursor)."""
    batches_of(request)  # resumes unfinished batches before listing them
    return page_response(request, "batch")


ROUTES = routes(
    {
        "/batches": {"POST": create, "GET": list_batches},
        "/batches/{batch_id}": {"GET": retrieve},
        "/batches/{batch_id}/cancel": {"POST": cancel},
    }
)
