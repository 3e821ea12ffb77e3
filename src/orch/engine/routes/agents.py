"""``/v1/agents`` (beta): saved agents, sessions, session events, turns and items.

Every request under ``/v1/agents`` needs ``OpenAI-Beta: agents=v1``, the header the SDK's
``beta.agents`` resources send; without it (or with another version) OpenAI's 400
``invalid_beta`` answers (:func:`beta_problem`, checked by the app before routing).
Events are posted (202, no body; ``Idempotency-Key`` honoured, see
:mod:`orch.engine.agents.sessions`) and streamed live as server-sent events: a subscriber
first gets the session's current state, then whatever happens while it listens.
"""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from orch.engine import params as p
from orch.engine.agents.config import (
    AGENT_KEYS,
    SESSION_KEYS,
    merge,
    new_agent,
    read_settings,
    session_agent,
    unsupported,
    update_agent,
)
from orch.engine.agents.environments import read_environment, state
from orch.engine.agents.events import frame, session_frame
from orch.engine.agents.files import read_files
from orch.engine.agents.inputs import read_events, read_messages
from orch.engine.agents.objects import AGENT, ITEM, SESSION, TURN, new_session
from orch.engine.core import Engine
from orch.engine.errors import ApiError, bad_request, not_found
from orch.engine.routes.bodies import read_json
from orch.engine.routes.common import Endpoint, engine_of, json_response, object_response, routes
from orch.engine.routes.resources import deleter, finder, page_response, retriever
from orch.engine.sandbox import Sandbox
from orch.engine.sse import relay
from orch.engine.store import public

#: Where the Agents API is served, and the ``OpenAI-Beta`` value it requires there.
PATH = "/v1/agents"
BETA = "agents=v1"
SESSION_FIELDS = frozenset(
    {
        "environment",
        "agent",
        "agent_id",
        "input",
        "metadata",
        "prompt_cache_options",
        "review",
        "stream",
        "stream_options",
        "vault_ids",
    }
)


def beta_problem(values: list[str]) -> ApiError | None:
    """OpenAI's 400 ``invalid_beta`` unless the ``OpenAI-Beta`` values name ``agents=v1``.

    The app checks it for every request under :data:`PATH`, before routing (see
    :func:`orch.engine.app.beta_problem`), as it checks ``assistants=v2`` for the Assistants
    API.
    """
    given = [v.strip().lower() for value in values for v in value.split(",")]
    version = next((v for v in given if v.startswith("agents=")), None)
    if version == BETA:
        return None
    if version is None:
        message = (
            "You must provide the 'OpenAI-Beta' header to access the Agents API. Please try "
            f"again by setting the header 'OpenAI-Beta: {BETA}'."
        )
    else:
        message = (
            f"The Agents API does not support '{version}'. Please try again by setting the "
            f"header 'OpenAI-Beta: {BETA}'."
        )
    return ApiError(400, message, code="invalid_beta")


def sse(frames: Any) -> Response:
    """A server-sent event stream."""
    return StreamingResponse(
        frames, media_type="text/event-stream", headers={"cache-control": "no-cache"}
    )


# -- saved agents ----------------------------------------------------------------------------


async def create_agent(request: Request) -> Response:
    """POST /v1/agents."""
    body = await read_json(request)
    agent = new_agent(read_settings(body, AGENT_KEYS, creating=True))
    return object_response(engine_of(request).store.insert(AGENT, agent))


find_agent = finder(AGENT, "agent_id")


async def update(request: Request) -> Response:
    """POST /v1/agents/{agent_id}: the settings given replace (``experimental`` merges)."""
    body = await read_json(request)
    agent = find_agent(request)
    agent = update_agent(agent, read_settings(body, AGENT_KEYS))
    return object_response(engine_of(request).store.put(agent))


async def list_agents(request: Request) -> Response:
    """GET /v1/agents."""
    return page_response(request, AGENT)


# -- sessions --------------------------------------------------------------------------------


def _session_agent(engine: Engine, body: dict[str, Any]) -> dict[str, Any]:
    """The agent a new session runs: ``agent_id``'s saved agent and/or ``agent``'s settings."""
    agent_id = p.field(body, "agent_id", str)
    saved = None
    if agent_id is not None:
        saved = engine.store.get(AGENT, agent_id)
        if saved is None:
            raise not_found("agent", agent_id, "agent_id")
    overrides = p.field(body, "agent", dict)
    if saved is None and overrides is None:
        raise bad_request(
            "Provide 'agent_id' (a saved agent) or 'agent' (with a model).",
            "agent_id",
            "missing_required_parameter",
        )
    settings = read_settings(overrides or {}, SESSION_KEYS, "agent.", creating=saved is None)
    return session_agent(saved, settings)


def _options(body: dict[str, Any]) -> dict[str, Any]:
    """The session's metadata, prompt cache options and review mode, validated."""
    if p.field(body, "vault_ids", list):
        raise unsupported("The orch engine has no vaults: leave vault_ids empty.", "vault_ids")
    cache = p.field(body, "prompt_cache_options", dict)
    if cache is not None:
        p.check_keys(cache, frozenset({"ttl"}), "prompt_cache_options")
        p.field(cache, "ttl", str, choices=("30m", "12h"), param="prompt_cache_options.ttl")
        cache = {"ttl": cache["ttl"]} if cache.get("ttl") else None
    options = p.field(body, "stream_options", dict)
    if options is not None:
        p.check_keys(options, frozenset({"include_obfuscation"}), "stream_options")
        p.field(options, "include_obfuscation", bool, param="stream_options.include_obfuscation")
    return {
        "metadata": p.metadata(body),
        "prompt_cache_options": cache,
        "review": p.field(body, "review", str, choices=("none", "auto_review")),
    }


def build_session(engine: Engine, body: dict[str, Any]) -> tuple[dict[str, Any], list[Any]]:
    """A new session from a create request, and the input messages it starts with."""
    p.check_keys(body, SESSION_FIELDS)
    environment = read_environment(body, engine.sandbox is not None)
    agent = _session_agent(engine, body)
    stream = p.field(body, "stream", bool, default=False)
    messages = read_messages(body["input"], "input") if body.get("input") is not None else []
    if not messages and (environment["type"] == "none" or stream):
        raise bad_request(
            "Missing required parameter: 'input' (required when environment.type is 'none' "
            "or stream is true).",
            "input",
            "missing_required_parameter",
        )
    options = _options(body)
    if environment["type"] == "openai_hosted":  # last: a refused request stores no file
        read_files(environment, body["environment"].get("files"), engine.store, engine.sandbox)
    return new_session(agent, environment, options), messages


def _has_files(body: Any) -> bool:
    environment = body.get("environment") if isinstance(body, dict) else None
    return isinstance(environment, dict) and bool(environment.get("files"))


def _probe(sandbox: Sandbox) -> None:
    """Find the sandbox's isolation (a 500 that says why when a forced one does not work)."""
    try:
        sandbox.isolation  # noqa: B018
    except RuntimeError as exc:
        raise ApiError(500, f"The code sandbox is unavailable: {exc}", type="server_error") from exc


async def create_session(request: Request) -> Response:
    """POST /v1/agents/sessions (``stream: true``: events until the session settles)."""
    engine = engine_of(request)
    body = await read_json(request)
    if engine.sandbox is not None and _has_files(body):  # their paths need the isolation,
        await asyncio.to_thread(_probe, engine.sandbox)  # probed once: off the event loop
    session, messages = build_session(engine, body)
    agents = engine.agents
    agents.open(session)
    if not body.get("stream"):
        if messages:
            session = agents.send_input(session["id"], messages)
        return object_response(session)
    sid = session["id"]
    prelude = [session_frame(session, "agent.session.created")]
    if session["environment"]["type"] == "openai_hosted":
        ready = state(session["environment"], "ready")
        prelude.append(frame("agent.session.environment.ready", environment=ready, session_id=sid))
    queue = agents.events.follow(sid)
    agents.send_input(sid, messages)
    on_close = functools.partial(agents.events.unsubscribe, sid, queue)
    return sse(relay(queue, prelude=prelude, done=b"", on_close=on_close))


find_session = finder(SESSION, "session_id", noun="session")


async def update_session(request: Request) -> Response:
    """POST /v1/agents/sessions/{session_id}: agent settings for later turns, metadata, ..."""
    body = await read_json(request)
    session = find_session(request)
    p.check_keys(body, frozenset({"agent", "metadata", "prompt_cache_options", "review"}))
    if "agent" in body:
        overrides = p.field(body, "agent", dict) or {}
        settings = read_settings(overrides, SESSION_KEYS, "agent.")
        session["agent"] = merge(session["agent"], settings)
    options = _options({k: body[k] for k in ("metadata", "prompt_cache_options") if k in body})
    for key in ("metadata", "prompt_cache_options"):
        if key in body:
            session[key] = options[key] or ({} if key == "metadata" else None)
    review = p.field(body, "review", str, choices=("none", "auto_review"))
    if review == "none":
        session.pop("review", None)
    elif review is not None:
        session["review"] = review
    return object_response(engine_of(request).store.put(session))


def _metadata_filter(request: Request) -> dict[str, str]:
    """The ``metadata[key]=value`` pairs of a list request (all must match)."""
    pairs = {}
    for name, value in request.query_params.multi_items():
        if name.startswith("metadata[") and name.endswith("]"):
            pairs[name[len("metadata[") : -1]] = value
    if len(pairs) > 16:
        raise bad_request("At most 16 metadata filters may be given.", "metadata")
    return pairs


async def list_sessions(request: Request) -> Response:
    """GET /v1/agents/sessions (``agent_id`` and ``metadata[key]=value`` filter)."""
    page = p.page_params(request)
    agent_id = request.query_params.get("agent_id")
    wanted = _metadata_filter(request)
    sessions = [
        public(s)
        for s in engine_of(request).store.all(SESSION)
        if (agent_id is None or s["agent"]["id"] == agent_id)
        and all(s["metadata"].get(k) == v for k, v in wanted.items())
    ]
    return json_response(p.page_list(sessions, **page))


async def delete_session(request: Request) -> Response:
    """DELETE /v1/agents/sessions/{session_id}."""
    session = find_session(request)
    engine_of(request).agents.delete(session["id"])
    return json_response({"id": session["id"], "deleted": True, "object": "agent.session.deleted"})


# -- events, turns, items --------------------------------------------------------------------


async def create_events(request: Request) -> Response:
    """POST /v1/agents/sessions/{session_id}/events: 202 once the events are taken."""
    body = await read_json(request)
    session = find_session(request)
    events = read_events(body)
    key = request.headers.get("idempotency-key")
    engine_of(request).agents.submit(session["id"], events, key, body)
    return Response(status_code=202)


async def stream_events(request: Request) -> Response:
    """GET /v1/agents/sessions/{session_id}/events: the session's state, then live events."""
    session = find_session(request)
    obfuscation = request.query_params.get("include_obfuscation", "true")
    if obfuscation not in ("true", "false"):
        raise bad_request(
            f"Invalid 'include_obfuscation': expected a boolean, but got '{obfuscation}' instead.",
            "include_obfuscation",
        )
    events = engine_of(request).agents.events
    queue = events.subscribe(session["id"])
    on_close = functools.partial(events.unsubscribe, session["id"], queue)
    return sse(relay(queue, prelude=[session_frame(session)], done=b"", on_close=on_close))


find_turn = finder(TURN, "turn_id", noun="turn", within=find_session)


async def list_turns(request: Request) -> Response:
    """GET /v1/agents/sessions/{session_id}/turns."""
    session = find_session(request)
    return page_response(request, TURN, session["id"], view=public)


async def list_items(request: Request) -> Response:
    """GET /v1/agents/sessions/{session_id}/items: every item of the session."""
    session = find_session(request)
    return page_response(request, ITEM, session["id"], view=public)


async def list_turn_items(request: Request) -> Response:
    """GET /v1/agents/sessions/{session_id}/turns/{turn_id}/items."""
    turn = find_turn(request)
    where = {"turn_id": turn["id"]}
    return page_response(request, ITEM, turn["session_id"], where=lambda: where, view=public)


_TABLE: dict[str, dict[str, Endpoint]] = {
    # Sessions first: "/agents/sessions" must not be taken for an agent's id.
    "/agents/sessions": {"POST": create_session, "GET": list_sessions},
    "/agents/sessions/{session_id}": {
        "GET": retriever(find_session),
        "POST": update_session,
        "DELETE": delete_session,
    },
    "/agents/sessions/{session_id}/events": {"POST": create_events, "GET": stream_events},
    "/agents/sessions/{session_id}/items": {"GET": list_items},
    "/agents/sessions/{session_id}/turns": {"GET": list_turns},
    "/agents/sessions/{session_id}/turns/{turn_id}": {"GET": retriever(find_turn)},
    "/agents/sessions/{session_id}/turns/{turn_id}/items": {"GET": list_turn_items},
    "/agents": {"POST": create_agent, "GET": list_agents},
    "/agents/{agent_id}": {
        "GET": retriever(find_agent),
        "POST": update,
        "DELETE": deleter(find_agent, "agent"),
    },
}
ROUTES = routes(_TABLE)
