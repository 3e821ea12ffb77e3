"""The Agents API (beta) on the engine, through the official SDK's ``client.beta.agents``.

Every response and event the SDK receives here is also checked, as the engine sent it,
against the SDK's types (see :mod:`tests.engine.test_agents_wire`): the autouse ``wire``
fixture fails a test whose traffic does not validate.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from orch.engine.server import EngineHandle, start_engine

from .test_agents_wire import Recorder, check_recorded, sdk_client

SCRIPT = {
    "name": "agents-tests",
    "rules": [
        {"when": {"contains": "slow"}, "delay_ms": 400, "reply": "finally"},
        {
            "when": {"regex": "weather in (\\w+)", "after_tool_outputs": False},
            "tool_calls": [{"function": "get_weather", "arguments": {"city": "{{ match[1] }}"}}],
            "reply": "Weather: {% for o in tool_outputs %}{{ o.name }}={{ o }}{% endfor %}",
        },
        {"when": {"contains": "who are you", "assistant": "helper"}, "reply": "I am helper."},
        {
            "when": {"contains": "compute"},
            "code_interpreter": {"input": "print(6 * 7)"},
            "reply": "The code said {{ code.logs | trim }}.",
        },
        {"when": {"contains": "explode"}, "fail": {"code": "rate_limit_exceeded", "message": "no"}},
    ],
}
WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "The weather in a city.",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
}
NONE = {"type": "none"}


def message(text: str) -> dict[str, Any]:
    """An ``agent.session.input.message`` event with one user message."""
    content = [{"type": "input_text", "text": text}]
    return {"type": "agent.session.input.message", "input": [{"role": "user", "content": content}]}


def settle(client: openai.OpenAI, session_id: str, timeout: float = 10.0) -> Any:
    """The session once no turn is working (idle, waiting for the client, or failed)."""
    deadline = time.monotonic() + timeout
    while True:
        session = client.beta.agents.sessions.retrieve(session_id)
        if session.status != "in_progress" or time.monotonic() > deadline:
            return session
        time.sleep(0.02)


def texts(client: openai.OpenAI, session_id: str) -> list[tuple[str, str]]:
    """(role, text) of the session's messages, oldest first."""
    items = client.beta.agents.sessions.items.list(session_id, order="asc")
    out = []
    for item in items:
        if item.type == "message":
            out.append((item.role, "".join(c.text for c in item.content)))
    return out


@pytest.fixture(scope="module")
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> EngineHandle:
    db = tmp_path_factory.mktemp("agents") / "engine.db"
    with start_engine(db, script=SCRIPT, poll_after_ms=20) as handle:
        yield handle


@pytest.fixture(scope="module")
def client(engine: EngineHandle, recorder: Recorder) -> openai.OpenAI:
    return sdk_client(engine.base_url, recorder)


@pytest.fixture(autouse=True)
def wire(recorder: Recorder):
    recorder.take()
    yield
    check_recorded(recorder)


@pytest.fixture(scope="module")
def agent(client: openai.OpenAI) -> Any:
    return client.beta.agents.create(
        model="gpt-5", name="helper", instructions="Be brief.", tools=[WEATHER]
    )


# -- saved agents ------------------------------------------------------------------------------


def test_saved_agents_are_created_read_updated_listed_and_deleted(client: openai.OpenAI):
    schema = {"type": "object", "properties": {"answer": {"type": "string"}}}
    made = client.beta.agents.create(
        model="gpt-5",
        name="crud",
        instructions="Answer in JSON.",
        metadata={"owner": "qa"},
        tools=[WEATHER],
        text={"format": {"type": "json_schema", "schema": schema}},
    )
    assert (made.object, made.name, made.metadata) == ("agent", "crud", {"owner": "qa"})
    assert made.tools[0].name == "get_weather" and made.tools[0].defer_loading is False
    assert made.text.format.type == "json_schema" and made.text.verbosity == "medium"
    assert made.service_tier == "auto" and not made.multi_agent.enabled
    assert client.beta.agents.retrieve(made.id) == made

    changed = client.beta.agents.update(
        made.id, metadata={"owner": "ops"}, instructions=None, experimental={"time_awareness": True}
    )
    assert changed.metadata == {"owner": "ops"} and changed.instructions is None
    assert changed.name == "crud" and changed.tools == made.tools  # what was not sent stays
    assert changed.experimental.time_awareness and changed.updated_at >= made.updated_at

    other = client.beta.agents.create(model="gpt-5-mini")
    assert other.metadata == {} and other.tools == [] and other.name is None
    newest = client.beta.agents.list(limit=1)
    assert [a.id for a in newest.data] == [other.id] and newest.has_more
    every = [a.id for a in client.beta.agents.list(limit=1, order="asc")]  # page by page
    assert every.index(made.id) < every.index(other.id)

    gone = client.beta.agents.delete(other.id)
    assert (gone.id, gone.deleted, gone.object) == (other.id, True, "agent.deleted")
    with pytest.raises(openai.NotFoundError):
        client.beta.agents.retrieve(other.id)


def test_what_the_engine_cannot_run_is_refused(client: openai.OpenAI):
    with pytest.raises(openai.BadRequestError) as hosted:
        client.beta.agents.create(model="gpt-5", tools=[{"type": "web_search"}])
    assert hosted.value.body["param"] == "tools[0].type"
    assert hosted.value.body["code"] == "unsupported_value"
    with pytest.raises(openai.BadRequestError) as subagents:
        client.beta.agents.create(model="gpt-5", multi_agent={"enabled": True})
    assert subagents.value.body["param"] == "multi_agent.enabled"
    with pytest.raises(openai.BadRequestError) as missing:
        client.beta.agents.create(model="gpt-5", tools=[{**WEATHER, "description": None}])
    assert missing.value.body["param"] == "tools[0].description"
    with pytest.raises(openai.BadRequestError) as unknown:
        client.beta.agents.create(model="gpt-5", extra_body={"temperature": 0.2})
    assert unknown.value.body["code"] == "unknown_parameter"


# -- sessions ----------------------------------------------------------------------------------


def test_a_streamed_session_create_streams_the_scripted_reply(client: openai.OpenAI, agent):
    stream = client.beta.agents.sessions.create(
        environment=NONE, agent_id=agent.id, input="hello there", stream=True
    )
    events = list(stream)  # the stream ends once the session settles
    kinds = [e.type for e in events]
    assert kinds[:6] == [
        "agent.session.created",
        "agent.session.turn.created",
        "agent.session.turn.item.added",  # the user's message
        "agent.session.in_progress",
        "agent.session.turn.in_progress",
        "agent.session.turn.item.added",  # the reply, opened
    ]
    assert kinds[-5:] == [
        "agent.session.turn.output_text.done",
        "agent.session.turn.content_part.done",
        "agent.session.turn.item.done",
        "agent.session.turn.completed",
        "agent.session.idle",
    ]
    deltas = [e.delta for e in events if e.type == "agent.session.turn.output_text.delta"]
    assert "".join(deltas) == '[scripted] You said: "hello there"'
    assert len({e.event_id for e in events}) == len(events)
    done = events[-3].item
    assert (done.role, done.phase, done.status) == ("assistant", "final_answer", "completed")
    finished = events[-2].turn
    assert finished.status == "completed" and finished.usage.total_tokens > 0
    session = events[-1].session
    assert session.agent.id == agent.id and session.agent.name == "helper"
    assert session.usage == finished.usage and session.environment.type == "none"


def test_the_sdk_collects_a_final_result(client: openai.OpenAI, agent):
    stream = client.beta.agents.sessions.create(
        environment=NONE, agent_id=agent.id, input="who are you?", stream=True
    )
    result = stream.get_final_result()
    assert result.output_text == "I am helper." and result.turn.status == "completed"


def test_a_session_without_input_on_no_environment_is_refused(client: openai.OpenAI, agent):
    with pytest.raises(openai.BadRequestError) as err:
        client.beta.agents.sessions.create(environment=NONE, agent_id=agent.id)
    assert err.value.body["param"] == "input"
    with pytest.raises(openai.BadRequestError) as neither:
        client.beta.agents.sessions.create(environment=NONE, input="hi")
    assert neither.value.body["param"] == "agent_id"
    with pytest.raises(openai.NotFoundError):
        client.beta.agents.sessions.create(environment=NONE, agent_id="agent_nope", input="hi")


def test_sessions_are_read_listed_updated_and_deleted(client: openai.OpenAI, agent):
    first = client.beta.agents.sessions.create(
        environment=NONE, agent_id=agent.id, input="one", metadata={"case": "list-a"}
    )
    assert first.status == "in_progress" and first.metadata == {"case": "list-a"}
    inline = client.beta.agents.sessions.create(
        environment=NONE,
        agent={"model": "gpt-5-nano", "instructions": "Inline."},
        input="two",
        metadata={"case": "list-b"},
    )
    assert inline.agent.model == "gpt-5-nano" and inline.agent.id != agent.id
    assert settle(client, first.id).status == "idle"
    assert settle(client, inline.id).status == "idle"

    mine = [s.id for s in client.beta.agents.sessions.list(agent_id=agent.id)]
    assert first.id in mine and inline.id not in mine
    tagged = client.beta.agents.sessions.list(metadata={"case": "list-b"})
    assert [s.id for s in tagged] == [inline.id]

    changed = client.beta.agents.sessions.update(
        first.id, metadata={"case": "changed"}, agent={"instructions": "Now terse."}
    )
    assert changed.metadata == {"case": "changed"} and changed.agent.instructions == "Now terse."
    assert changed.agent.model == "gpt-5"

    gone = client.beta.agents.sessions.delete(first.id)
    assert (gone.id, gone.deleted, gone.object) == (first.id, True, "agent.session.deleted")
    with pytest.raises(openai.NotFoundError):
        client.beta.agents.sessions.retrieve(first.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.agents.sessions.items.list(first.id)


def test_a_session_still_working_is_not_deleted(client: openai.OpenAI, agent):
    session = client.beta.agents.sessions.create(
        environment=NONE, agent_id=agent.id, input="slow please"
    )
    with pytest.raises(openai.BadRequestError):
        client.beta.agents.sessions.delete(session.id)
    client.beta.agents.sessions.events.create(
        session.id, events=[{"type": "agent.session.input.cancel"}]
    )
    assert client.beta.agents.sessions.retrieve(session.id).status == "idle"
    assert client.beta.agents.sessions.delete(session.id).deleted


# -- events, turns, items --------------------------------------------------------------------


def test_live_events_follow_a_turn_the_client_starts(client: openai.OpenAI, agent):
    session = client.beta.agents.sessions.create(environment=NONE, agent_id=agent.id, input="hi")
    settle(client, session.id)
    with client.beta.agents.sessions.events.stream(session.id) as events:
        stream = iter(events)
        first = next(stream)
        assert first.type == "agent.session.idle" and first.session.id == session.id
        client.beta.agents.sessions.events.create(session.id, events=[message("echo me")])
        seen = []
        for event in stream:
            seen.append(event)
            if event.type == "agent.session.idle":
                break
    deltas = "".join(e.delta for e in seen if e.type == "agent.session.turn.output_text.delta")
    assert deltas == '[scripted] You said: "echo me"'
    with client.beta.agents.sessions.stream(session.id, input="who are you") as helper:
        assert helper.get_final_result().output_text == "I am helper."


def test_the_same_idempotency_key_takes_an_event_once(client: openai.OpenAI, agent):
    session = client.beta.agents.sessions.create(environment=NONE, agent_id=agent.id, input="hi")
    settle(client, session.id)
    events = client.beta.agents.sessions.events
    events.create(session.id, events=[message("only once")], idempotency_key="key-1")
    again = events.with_raw_response.create(
        session.id, events=[message("only once")], idempotency_key="key-1"
    )
    assert again.status_code == 202
    assert settle(client, session.id).status == "idle"
    assert texts(client, session.id).count(("user", "only once")) == 1
    assert len(list(client.beta.agents.sessions.turns.list(session.id))) == 2
    with pytest.raises(openai.BadRequestError) as reused:
        events.create(session.id, events=[message("something else")], idempotency_key="key-1")
    assert reused.value.body["code"] == "idempotency_key_reused"
    # Keys belong to their session: another session's key-1 is its own.
    other = client.beta.agents.sessions.create(environment=NONE, agent_id=agent.id, input="x")
    settle(client, other.id)
    events.create(other.id, events=[message("only once")], idempotency_key="key-1")
    assert settle(client, other.id).status == "idle"
    assert texts(client, other.id).count(("user", "only once")) == 1


def test_items_and_turns_are_listed(client: openai.OpenAI, agent):
    session = client.beta.agents.sessions.create(environment=NONE, agent_id=agent.id, input="one")
    settle(client, session.id)
    client.beta.agents.sessions.events.create(session.id, events=[message("two")])
    settle(client, session.id)
    sessions = client.beta.agents.sessions
    oldest_first = list(sessions.items.list(session.id, order="asc", limit=1))  # page by page
    assert [(i.type, i.role) for i in oldest_first] == [
        ("message", "user"),
        ("message", "assistant"),
    ] * 2
    newest_first = list(sessions.items.list(session.id))
    assert [i.id for i in newest_first] == [i.id for i in reversed(oldest_first)]

    turns = list(sessions.turns.list(session.id, order="asc"))
    assert [t.status for t in turns] == ["completed", "completed"]
    assert all(t.session_id == session.id and t.agent_id == agent.id for t in turns)
    assert sessions.turns.retrieve(turns[1].id, session_id=session.id) == turns[1]
    second = list(
        sessions.turns.items.list(turns[1].id, session_id=session.id, order="asc", limit=1)
    )
    assert [i.id for i in second] == [i.id for i in oldest_first[2:]]
    assert {i.turn_id for i in second} == {turns[1].id}

    other = sessions.create(environment=NONE, agent_id=agent.id, input="three")
    with pytest.raises(openai.NotFoundError):
        sessions.turns.retrieve(turns[0].id, session_id=other.id)
    settle(client, other.id)


def test_the_agents_beta_header_is_required(engine: EngineHandle):
    url = engine.base_url + "/agents"
    with httpx2.Client() as http:
        missing = http.get(url)
        wrong = http.get(url, headers={"OpenAI-Beta": "agents=v2"})
        right = http.get(url, headers={"OpenAI-Beta": "assistants=v2, agents=v1"})
        unrelated = http.post(url + "/sessions", json={}, headers={"OpenAI-Beta": "assistants=v2"})
        nowhere = http.get(url + "/sessions/sess_x/nothing")  # checked before routing
    for refused in (missing, wrong, unrelated, nowhere):
        assert refused.status_code == 400
        error = refused.json()["error"]
        assert error["code"] == "invalid_beta" and "OpenAI-Beta: agents=v1" in error["message"]
    assert right.status_code == 200 and right.json()["object"] == "list"


def test_idempotency_keys_and_waiting_turns_survive_a_restart(tmp_path: Path, recorder: Recorder):
    db = tmp_path / "engine.db"
    with start_engine(db, script=SCRIPT) as first:
        client = sdk_client(first.base_url, recorder)
        created = client.beta.agents.sessions.create(
            environment=NONE, agent={"model": "gpt-5", "tools": [WEATHER]}, input="hi"
        )
        settle(client, created.id)
        asked = [message("weather in Rome")]
        client.beta.agents.sessions.events.create(created.id, events=asked, idempotency_key="m1")
        call = settle(client, created.id).required_actions[0]
    result = {
        "type": "agent.session.input.tool_result",
        "turn_id": call.turn_id,
        "call_id": call.call_id,
        "success": True,
        "output": "sunny",
    }
    with start_engine(db, script=SCRIPT) as second:
        client = sdk_client(second.base_url, recorder)
        assert client.beta.agents.sessions.retrieve(created.id).status == "requires_action"
        client.beta.agents.sessions.events.create(created.id, events=[result], idempotency_key="t1")
        assert settle(client, created.id).status == "idle"
    with start_engine(db, script=SCRIPT) as third:
        client = sdk_client(third.base_url, recorder)
        events = client.beta.agents.sessions.events
        assert (
            events.with_raw_response.create(
                created.id, events=[result], idempotency_key="t1"
            ).status_code
            == 202
        )
        events.create(created.id, events=asked, idempotency_key="m1")
        assert settle(client, created.id).status == "idle"
        assert texts(client, created.id)[-1] == ("assistant", "Weather: get_weather=sunny")
        assert len(list(client.beta.agents.sessions.turns.list(created.id))) == 2
        outputs = [
            i
            for i in client.beta.agents.sessions.items.list(created.id)
            if i.type == "function_call_output"
        ]
        assert len(outputs) == 1
