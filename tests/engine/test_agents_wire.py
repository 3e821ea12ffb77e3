"""What the engine sends on ``/v1/agents``, checked against the SDK's types, byte for byte.

:class:`Recorder` is an HTTP transport for the SDK's client that keeps a copy of every
response body as it is read (streams included, cut where the client stopped reading).
:func:`check_exchange` validates each one against the SDK's pydantic type for its endpoint
(``model_validate``: a missing required field, a wrong type or an unknown literal fails) and
then refuses any field the type does not declare, at any depth (the SDK's models accept
extras, so an engine-private key would otherwise slip through). Every event of a stream is
checked against ``AgentSessionEvent``, and its ``event:`` line against its ``type``. An
exchange on an endpoint this table does not know fails too.

The tests in this module show the checks can fail.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx2
import pytest
from openai.types.beta.agent import Agent
from openai.types.beta.agent_deleted import AgentDeleted
from openai.types.beta.agent_session import AgentSession
from openai.types.beta.agent_session_deleted import AgentSessionDeleted
from openai.types.beta.agent_session_event import AgentSessionEvent
from openai.types.beta.agent_session_item import AgentSessionItem
from openai.types.beta.agents.sessions.turn import Turn
from pydantic import BaseModel, TypeAdapter

_ID = r"[^/]+"
#: (method, path under /v1, type of the body; a list type is a page of that type)
ENDPOINTS: list[tuple[str, str, Any]] = [
    ("POST", r"/agents", Agent),
    ("GET", r"/agents", [Agent]),
    ("GET", rf"/agents/(?!sessions$){_ID}", Agent),
    ("POST", rf"/agents/(?!sessions$){_ID}", Agent),
    ("DELETE", rf"/agents/{_ID}", AgentDeleted),
    ("POST", r"/agents/sessions", AgentSession),
    ("GET", r"/agents/sessions", [AgentSession]),
    ("GET", rf"/agents/sessions/{_ID}", AgentSession),
    ("POST", rf"/agents/sessions/{_ID}", AgentSession),
    ("DELETE", rf"/agents/sessions/{_ID}", AgentSessionDeleted),
    ("POST", rf"/agents/sessions/{_ID}/events", None),
    ("GET", rf"/agents/sessions/{_ID}/events", AgentSessionEvent),
    ("GET", rf"/agents/sessions/{_ID}/items", [AgentSessionItem]),
    ("GET", rf"/agents/sessions/{_ID}/turns", [Turn]),
    ("GET", rf"/agents/sessions/{_ID}/turns/{_ID}", Turn),
    ("GET", rf"/agents/sessions/{_ID}/turns/{_ID}/items", [AgentSessionItem]),
]


@dataclass
class Exchange:
    """One request and the response bytes its client read."""

    method: str
    path: str
    status: int
    content_type: str
    chunks: list[bytes] = field(default_factory=list)

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)


class _Tee(httpx2.SyncByteStream):
    def __init__(self, inner: Any, chunks: list[bytes]):
        self.inner = inner
        self.chunks = chunks

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.inner:
            self.chunks.append(chunk)
            yield chunk

    def close(self) -> None:
        self.inner.close()


class Recorder(httpx2.BaseTransport):
    """An HTTP transport that records every exchange (see the module docstring)."""

    def __init__(self) -> None:
        self.inner = httpx2.HTTPTransport()
        self.exchanges: list[Exchange] = []

    def handle_request(self, request: httpx2.Request) -> httpx2.Response:
        response = self.inner.handle_request(request)
        record = Exchange(
            request.method,
            request.url.path,
            response.status_code,
            response.headers.get("content-type", ""),
        )
        self.exchanges.append(record)
        return httpx2.Response(
            response.status_code,
            headers=response.headers,
            stream=_Tee(response.stream, record.chunks),
            extensions=response.extensions,
        )

    def close(self) -> None:
        self.inner.close()

    def take(self) -> list[Exchange]:
        """The exchanges recorded since the last call."""
        taken, self.exchanges = self.exchanges, []
        return taken


# -- checks ----------------------------------------------------------------------------------


def no_extras(value: Any, where: str = "body") -> None:
    """Fail on any field a model of the SDK does not declare, at any depth."""
    if isinstance(value, BaseModel):
        extra = value.model_extra or {}
        assert not extra, f"{where}: fields the SDK's {type(value).__name__} lacks: {sorted(extra)}"
        for name in type(value).model_fields:
            no_extras(getattr(value, name), f"{where}.{name}")
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            no_extras(v, f"{where}[{i}]")
    elif isinstance(value, dict):
        for k, v in value.items():
            no_extras(v, f"{where}.{k}")


@functools.cache
def adapter(kind: Any) -> TypeAdapter:
    """The pydantic validator of an SDK type (built once: unions are slow to build)."""
    return TypeAdapter(kind)


def strict(kind: Any, data: Any, where: str = "body") -> Any:
    """``data`` validated as ``kind`` (a model or a union), with no undeclared field."""
    parsed = adapter(kind).validate_python(data)
    no_extras(parsed, where)
    return parsed


def check_page(kind: Any, body: dict[str, Any]) -> None:
    """A cursor page: ``object``, ``data`` of ``kind``, ``first_id``/``last_id``/``has_more``."""
    assert set(body) == {"object", "data", "first_id", "last_id", "has_more"}, sorted(body)
    assert body["object"] == "list" and isinstance(body["has_more"], bool)
    for i, entry in enumerate(body["data"]):
        strict(kind, entry, f"data[{i}]")
    ids = [entry["id"] for entry in body["data"]]
    assert (body["first_id"], body["last_id"]) == ((ids[0], ids[-1]) if ids else (None, None))


def sse_events(raw: bytes) -> list[dict[str, Any]]:
    """Every complete frame of a stream, each a valid ``AgentSessionEvent`` (data as sent)."""
    events = []
    text = raw.decode()
    complete = text[: text.rfind("\n\n") + 2] if "\n\n" in text else ""
    for block in filter(None, complete.split("\n\n")):
        line, data = block.split("\n", 1)
        assert line.startswith("event: ") and data.startswith("data: "), block
        event = json.loads(data[len("data: ") :])
        assert event["type"] == line[len("event: ") :], block
        strict(AgentSessionEvent, event, event["type"])
        events.append(event)
    return events


def endpoint_type(method: str, path: str) -> Any:
    """The SDK type of the endpoint's answer (the ENDPOINTS table); unknown ones fail."""
    for verb, pattern, kind in ENDPOINTS:
        if verb == method and re.fullmatch("/v1" + pattern, path):
            return kind
    raise AssertionError(f"no SDK type known for {method} {path}")


def check_exchange(exchange: Exchange) -> None:
    """Validate one recorded ``/v1/agents`` exchange (see the module docstring)."""
    kind = endpoint_type(exchange.method, exchange.path)
    if exchange.status >= 400:
        body = json.loads(exchange.body)
        assert set(body) == {"error"}
        assert set(body["error"]) == {"message", "type", "param", "code"}
        return
    if exchange.content_type.startswith("text/event-stream"):
        assert exchange.method in ("GET", "POST") and exchange.path.endswith(
            ("/events", "sessions")
        )
        sse_events(exchange.body)
        return
    if kind is None:  # events accepted: 202, no body
        assert exchange.status == 202 and exchange.body == b""
        return
    assert exchange.status == 200 and exchange.content_type == "application/json"
    body = json.loads(exchange.body)
    if isinstance(kind, list):
        check_page(kind[0], body)
    else:
        strict(kind, body)


# -- the checks can fail -----------------------------------------------------------------------

SESSION_EVENT = {
    "event_id": "event_1",
    "session_id": "sess_1",
    "turn_id": "turn_1",
    "type": "agent.session.turn.output_text.delta",
    "content_index": 0,
    "delta": "Hi",
    "item_id": "msg_1",
    "output_index": 0,
}


def test_a_complete_event_passes():
    strict(AgentSessionEvent, SESSION_EVENT)


@pytest.mark.parametrize(
    "change",
    [
        {"delta": None},  # a required field missing (dropped below)
        {"_index": 0},  # an engine-private key leaking
        {"type": "agent.session.turn.output_text.deltas"},  # an unknown event type
        {"output_index": "first"},  # a wrong type
    ],
)
def test_a_broken_event_fails(change: dict[str, Any]):
    event = {**SESSION_EVENT, **change}
    event = {k: v for k, v in event.items() if v is not None}
    with pytest.raises(Exception):  # noqa: B017 - pydantic's ValidationError or AssertionError
        strict(AgentSessionEvent, event)


def test_a_frame_whose_event_line_disagrees_fails():
    frame = f"event: agent.session.idle\ndata: {json.dumps(SESSION_EVENT)}\n\n".encode()
    with pytest.raises(AssertionError):
        sse_events(frame)


def test_an_endpoint_without_a_known_type_fails():
    with pytest.raises(AssertionError, match="no SDK type"):
        check_exchange(Exchange("PUT", "/v1/agents/sessions/s/events", 200, "application/json"))


def test_a_page_with_wrong_cursors_fails():
    item = {"id": "agent_deleted", "deleted": True, "object": "agent.deleted"}
    page = {"object": "list", "data": [item], "first_id": None, "last_id": None, "has_more": False}
    with pytest.raises(AssertionError):
        check_page(AgentDeleted, page)


# -- for the modules that drive the engine ---------------------------------------------------


def sdk_client(base_url: str, recorder: Recorder) -> Any:
    """The official SDK's client, its traffic recorded by ``recorder``."""
    from openai import OpenAI

    http = httpx2.Client(transport=recorder, timeout=30)
    return OpenAI(base_url=base_url, api_key="test", max_retries=0, http_client=http)


def check_recorded(recorder: Recorder) -> int:
    """Check every ``/v1/agents`` exchange recorded since the last call; how many there were."""
    exchanges = [e for e in recorder.take() if e.path.startswith("/v1/agents")]
    for exchange in exchanges:
        check_exchange(exchange)
    return len(exchanges)
