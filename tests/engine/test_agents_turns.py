"""Session turns: client-side function tools, queues and cancels, failures, the sandbox
environment, and the openai-chat model, through the SDK's ``client.beta.agents``.

As in :mod:`tests.engine.test_agents`, every response and event is checked against the SDK's
types as the engine sent it.
"""

from __future__ import annotations

from typing import Any

import openai
import pytest

from orch.engine.server import EngineHandle, start_engine
from tests.engine.upstream import StrictUpstream, serving

from .test_agents import NONE, SCRIPT, WEATHER, message, settle, texts
from .test_agents_wire import Recorder, check_recorded, sdk_client


@pytest.fixture(scope="module")
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> EngineHandle:
    db = tmp_path_factory.mktemp("turns") / "engine.db"
    with start_engine(db, script=SCRIPT, poll_after_ms=20) as handle:
        yield handle


@pytest.fixture(scope="module")
def client(engine: EngineHandle, recorder: Recorder) -> openai.OpenAI:
    return sdk_client(engine.base_url, recorder)


@pytest.fixture(autouse=True)
def wire(recorder: Recorder):
    recorder.take()
    yield
    assert check_recorded(recorder) > 0


@pytest.fixture
def idle(client: openai.OpenAI) -> Any:
    """A new idle session of an inline agent with the get_weather tool."""
    agent = {"model": "gpt-5", "tools": [WEATHER]}
    session = client.beta.agents.sessions.create(environment=NONE, agent=agent, input="hi")
    return settle(client, session.id)


def until(events: Any, kind: str) -> list[Any]:
    """Events read from a stream up to and including the first of ``kind``."""
    seen = []
    for event in events:
        seen.append(event)
        if event.type == kind:
            return seen
    raise AssertionError(f"the stream ended before {kind}: {[e.type for e in seen]}")


def result_event(call: Any, **fields: Any) -> dict[str, Any]:
    return {
        "type": "agent.session.input.tool_result",
        "turn_id": call.turn_id,
        "call_id": call.call_id,
        **fields,
    }


# -- function tools ------------------------------------------------------------------------------


def test_a_function_call_waits_for_the_clients_result(client: openai.OpenAI, idle):
    sessions = client.beta.agents.sessions
    with sessions.events.stream(idle.id) as stream:
        events = iter(stream)
        sessions.events.create(idle.id, events=[message("weather in Oslo")])
        asked = until(events, "agent.session.requires_action")
        [call] = [
            e.item
            for e in asked
            if e.type == "agent.session.turn.item.added" and e.item.type == "function_call"
        ]
        assert (call.name, call.arguments, call.status) == (
            "get_weather",
            {"city": "Oslo"},
            "in_progress",
        )
        [action] = asked[-1].session.required_actions
        assert (action.type, action.call_id, action.turn_id) == (
            "function_call",
            call.call_id,
            call.turn_id,
        )
        assert sessions.retrieve(idle.id).status == "requires_action"
        assert sessions.turns.retrieve(call.turn_id, session_id=idle.id).status == "waiting"

        stray = result_event(call, call_id="call_nope", success=True, output="x")
        with pytest.raises(openai.BadRequestError) as unknown:
            sessions.events.create(idle.id, events=[stray])
        # The SDK's tool dispatcher recognises exactly this error (a registration race).
        assert unknown.value.body["message"] == "Unknown pending tool call: call_nope"
        assert unknown.value.body["code"] == "invalid_request_error"

        answer = result_event(call, success=True, output="12 degrees")
        sessions.events.create(idle.id, events=[answer])
        rest = until(events, "agent.session.idle")
    kinds = [e.type for e in rest]
    assert kinds[:4] == [
        "agent.session.turn.item.added",  # the function_call_output
        "agent.session.turn.item.done",  # the function_call, completed
        "agent.session.in_progress",
        "agent.session.turn.in_progress",
    ]
    assert rest[0].item.output == "12 degrees" and rest[1].item.status == "completed"
    assert texts(client, idle.id)[-1] == ("assistant", "Weather: get_weather=12 degrees")
    with pytest.raises(openai.BadRequestError):  # answered already: nothing waits for it
        sessions.events.create(idle.id, events=[answer])


def test_the_sdks_tool_handlers_answer_calls(client: openai.OpenAI, idle):
    handlers = {"get_weather": lambda args: {"city": args["city"], "sky": "clear"}}
    with client.beta.agents.sessions.stream(
        idle.id, input="weather in Lima", tool_handlers=handlers
    ) as stream:
        result = stream.get_final_result()
    assert result.output_text == 'Weather: get_weather={"city":"Lima","sky":"clear"}'

    def broken(args: dict[str, Any]) -> str:
        raise RuntimeError("secret detail")

    with client.beta.agents.sessions.stream(
        idle.id, input="weather in Kyiv", tool_handlers={"get_weather": broken}
    ) as stream:
        failed = stream.get_final_result()
    # The SDK reports a failure without the exception's text; the model hears of it.
    assert failed.output_text == "Weather: get_weather=Error: Tool handler failed."
    outputs = [
        i
        for i in client.beta.agents.sessions.items.list(idle.id)
        if i.type == "function_call_output"
    ]
    assert (outputs[0].status, outputs[0].error) == ("failed", "Tool handler failed.")


# -- queues, cancels, failures -------------------------------------------------------------------


def test_input_during_a_turn_waits_its_turn(client: openai.OpenAI, idle):
    sessions = client.beta.agents.sessions
    sessions.events.create(idle.id, events=[message("slow first"), message("then this")])
    turns = list(sessions.turns.list(idle.id, order="asc"))[1:]
    assert [t.status for t in turns] in (["in_progress", "queued"], ["queued", "queued"])
    assert settle(client, idle.id).status == "idle"
    # Items are listed as they came; each turn has its own input and reply.
    assert texts(client, idle.id)[-4:] == [
        ("user", "slow first"),
        ("user", "then this"),
        ("assistant", "finally"),
        ("assistant", '[scripted] You said: "then this"'),
    ]
    second = sessions.turns.items.list(turns[1].id, session_id=idle.id, order="asc")
    assert [(i.role, i.content[0].text) for i in second] == [
        ("user", "then this"),
        ("assistant", '[scripted] You said: "then this"'),
    ]


def test_a_cancel_ends_the_open_turns(client: openai.OpenAI, idle):
    sessions = client.beta.agents.sessions
    sessions.events.create(idle.id, events=[message("slow one"), message("slow two")])
    sessions.events.create(idle.id, events=[{"type": "agent.session.input.cancel"}])
    session = sessions.retrieve(idle.id)
    assert session.status == "idle" and session.required_actions == []
    turns = list(sessions.turns.list(idle.id, order="asc"))[1:]
    assert [t.status for t in turns] == ["cancelled", "cancelled"]
    sessions.events.create(idle.id, events=[message("weather in Rome")])
    assert settle(client, idle.id).status == "requires_action"
    sessions.events.create(idle.id, events=[{"type": "agent.session.input.cancel"}])
    assert sessions.retrieve(idle.id).status == "idle"
    calls = [i for i in sessions.items.list(idle.id) if i.type == "function_call"]
    assert calls[0].status == "incomplete"


def test_a_failed_turn_leaves_the_session_usable(client: openai.OpenAI, idle):
    sessions = client.beta.agents.sessions
    with sessions.stream(idle.id, input="explode now") as stream:
        events = list(stream)
    failed = next(e for e in events if e.type == "agent.session.turn.failed")
    assert failed.turn.error.code == "rate_limit_exceeded" and failed.turn.error.message == "no"
    assert events[-1].type == "agent.session.idle"
    with sessions.stream(idle.id, input="still there?") as stream:
        assert stream.get_final_result().output_text == '[scripted] You said: "still there?"'


# -- the sandbox environment -----------------------------------------------------------------


def test_a_hosted_environment_runs_code_in_the_sandbox(client: openai.OpenAI):
    stream = client.beta.agents.sessions.create(
        environment={"type": "openai_hosted", "network": {"access": "disabled"}},
        agent={"model": "gpt-5"},
        input="compute please",
        stream=True,
    )
    events = list(stream)
    ready = events[1]
    assert ready.type == "agent.session.environment.ready"
    assert ready.environment.status == "ready" and ready.environment.type == "openai_hosted"
    [delta] = [e for e in events if e.type == "agent.output.command_execution_output.delta"]
    assert delta.delta.strip() == "42"
    [ran] = [
        e.item
        for e in events
        if e.type == "agent.session.turn.item.done" and e.item.type == "command_execution"
    ]
    assert (ran.command, ran.exit_code, ran.status) == ("print(6 * 7)", 0, "completed")
    assert ran.output.strip() == "42" and ran.duration_ms is not None
    session = events[-1].session
    assert session.environment.network.access == "disabled"
    assert texts(client, session.id)[-1] == ("assistant", "The code said 42.")
    client.beta.agents.sessions.delete(session.id)


@pytest.mark.parametrize(
    ("environment", "param"),
    [
        ({"type": "openai_hosted", "network": {"access": "enabled"}}, "environment.network.access"),
        (
            {"type": "openai_hosted", "packages": {"python": ["numpy"]}},
            "environment.packages.python",
        ),
        ({"type": "openai_hosted", "environment_id": "env_x"}, "environment.environment_id"),
        ({"type": "self_hosted", "workspace_directory": "/w"}, "environment.type"),
        ({"type": "docker"}, "environment.type"),
    ],
)
def test_environments_the_engine_cannot_provide_are_refused(
    client: openai.OpenAI, environment: dict[str, Any], param: str
):
    with pytest.raises(openai.BadRequestError) as err:
        client.beta.agents.sessions.create(
            environment=environment, agent={"model": "gpt-5"}, input="hi"
        )
    assert err.value.body["param"] == param


# -- the openai-chat model -----------------------------------------------------------------


def test_the_openai_chat_model_takes_session_turns(tmp_path, recorder: Recorder):
    upstream = StrictUpstream()
    with serving(upstream) as url:
        db = tmp_path / "chat.db"
        with start_engine(db, model="openai-chat", upstream_base_url=url) as engine:
            client = sdk_client(engine.base_url, recorder)
            handlers = {"get_weather": lambda args: f"sun in {args['city']}"}
            stream = client.beta.agents.sessions.create(
                environment=NONE,
                agent={"model": "llama3", "instructions": "Be brief.", "tools": [WEATHER]},
                input="weather today?",
                stream=True,
                tool_handlers=handlers,
            )
            result = stream.get_final_result()
            assert result.output_text == "tools said: sun in Rome, sun in Oslo"
            sid = result.session_id
            with client.beta.agents.sessions.stream(sid, input="hello") as again:
                assert again.get_final_result().output_text == "echo: hello"
            # Two messages at once: two turns, the second asked after the first's reply.
            client.beta.agents.sessions.events.create(sid, events=[message("one"), message("two")])
            assert settle(client, sid).status == "idle"
    assert upstream.rejected == []
    first, *_, last = upstream.exchanges
    assert first.body["messages"][0] == {"role": "system", "content": "Be brief."}
    assert [t["function"]["name"] for t in first.body["tools"]] == ["get_weather"]
    said = [(m["role"], m.get("content")) for m in last.body["messages"]]
    assert [role for role, _ in said] == [
        *("system", "user", "assistant", "tool", "tool", "assistant"),
        *("user", "assistant", "user", "assistant", "user"),
    ]
    assert said[-3:] == [("user", "one"), ("assistant", "echo: one"), ("user", "two")]
