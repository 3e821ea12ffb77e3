"""``orch run`` on a target of kind ``agents``: one session per item, one turn per step, function
tools answered by the declared handlers, through the CLI against the engine's Agents API.

What the runs left on the server is read back with the SDK (``client.beta.agents.sessions``):
how many sessions, turns and user messages there are is what proves that a lost answer never
doubled a turn.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from click.testing import CliRunner
from openai import OpenAI

from orch.cli import main
from orch.engine.server import EngineHandle, start_engine
from orch.project.model import Assistant
from orch.targets.agents.session import AgentSession
from orch.targets.client import sdk_client
from orch.targets.session import SessionSettings, ThreadLedger, Turn

from ..run.chaos import ChaosProxy

SCRIPT = {
    "rules": [
        {
            "when": {"assistant": "forecaster", "after_tool_outputs": True},
            "reply": "Forecast: {{ tool_outputs | join(' | ') }}",
        },
        {
            "when": {"assistant": "forecaster", "regex": "weather in (\\w+)"},
            "tool_calls": [
                {"function": "get_weather", "arguments": {"city": "{{ match[1] }}"}},
                {"function": "get_weather", "arguments": {"city": "Oslo"}},
            ],
        },
    ],
    "default": {"reply": "echo: {{ message }}"},
}

FORECASTER = """\
    name: forecaster
    model: gpt-5
    instructions: You forecast the weather.
    tools:
      - function: {name: get_weather, handler: "tools:get_weather"}
"""

TOOLS = '''\
    """Handlers for the agents run tests."""
    import json

    CALLS = []


    def get_weather(city: str) -> str:
        """Weather for a city."""
        CALLS.append(city)
        return json.dumps({"city": city, "temp": len(city)})
'''

PIPELINE = """\
    name: forecast
    assistant: forecaster
    items: [{city: Paris}, {city: Lima}, {city: Rome}]
    concurrency: 3
    retries: 3
    steps:
      - id: ask
        prompt: "What is the weather in {{ item.city }}?"
        expect:
          - tool_called: {name: get_weather, arguments: {city: "{{ item.city }}"}}
          - contains: '"temp": 4'
      - id: again
        prompt: "Say it again for {{ item.city }}"
        additional_instructions: Be brief.
        expect:
          - contains: "echo: Say it again for {{ item.city }}"
"""


@pytest.fixture
def engine(tmp_path: Path):
    with start_engine(tmp_path / "engine.db", script=SCRIPT, poll_after_ms=10) as handle:
        yield handle


@pytest.fixture
def sdk(engine: EngineHandle):
    client = OpenAI(base_url=engine.base_url, api_key="test", max_retries=0)
    yield client
    client.close()


def project(make_project, url: str, keep: bool = False, stream: bool = True) -> Path:
    keep_sessions = ", keep_sessions: true" if keep else ""
    return make_project(
        {
            "orch.yml": f"""\
                project: agentsrun
                target: agents
                targets:
                  agents: {{kind: agents, base_url: "{url}"{keep_sessions}}}
            """,
            "assistants/forecaster.yml": FORECASTER,
            "tools.py": TOOLS,
            "pipelines/forecast.yml": PIPELINE + ("" if stream else "    stream: false\n"),
        }
    )


def run(*args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(main, ["run", *args, "--json"], catch_exceptions=False)
    assert result.stdout, result.stderr
    return result.exit_code, json.loads(result.stdout)


def records(root: Path) -> list[dict]:
    folder = sorted((root / ".orch/runs").iterdir())[-1]
    return [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]


def transcript(sdk: OpenAI, session_id: str) -> tuple[list[str], list[str]]:
    """(the session's turn statuses, its user messages' texts), oldest first."""
    sessions = sdk.beta.agents.sessions
    turns = sessions.turns.list(session_id, order="asc", limit=100).data
    items = sessions.items.list(session_id, order="asc", limit=100).data
    users = [
        part.text
        for item in items
        if item.type == "message" and item.role == "user"
        for part in item.content
    ]
    return [t.status for t in turns], users


@pytest.mark.parametrize("stream", [True, False])
def test_a_multi_step_pipeline_with_function_tools(make_project, engine, sdk, stream):
    root = project(make_project, engine.base_url, stream=stream)
    code, summary = run("forecast")
    assert code == 0, summary
    assert summary["counts"] == {"total": 3, "passed": 3, "failed": 0, "errors": 0}
    by_city = {r["item"]["city"]: r for r in records(root)}
    ask, again = by_city["Lima"]["steps"]
    calls = [(c["type"], c["name"], c["arguments"], c["output"]) for c in ask["tool_calls"]]
    assert calls == [
        ("function", "get_weather", {"city": "Lima"}, '{"city": "Lima", "temp": 4}'),
        ("function", "get_weather", {"city": "Oslo"}, '{"city": "Oslo", "temp": 4}'),
    ]
    assert ask["output"].startswith("Forecast: ")
    assert ask["usage"]["total_tokens"] > 0 and again["usage"]["total_tokens"] > 0
    assert ask["thread_id"] == again["thread_id"]  # one session per item, a turn per step
    assert ask["run_id"] != again["run_id"]
    # sessions are deleted once their item is over (no keep_sessions)
    assert sdk.beta.agents.sessions.list(limit=100).data == []


def test_sessions_kept_on_request(make_project, engine, sdk):
    root = project(make_project, engine.base_url, keep=True)
    code, summary = run("forecast")
    assert code == 0, summary
    for record in records(root):
        session = sdk.beta.agents.sessions.retrieve(record["thread_id"])
        assert session.metadata["orch"].startswith("orchrun-agentsrun-")
        # the second step's additional instructions are the session's from then on
        assert session.agent.instructions == "You forecast the weather.\n\nBe brief."
        statuses, users = transcript(sdk, record["thread_id"])
        city = record["item"]["city"]
        assert statuses == ["completed", "completed"]
        assert users == [f"What is the weather in {city}?", f"Say it again for {city}"]


def events_and_sessions(method: str, path: str) -> bool:
    """Event posts (messages, tool results) and session creates."""
    return method == "POST" and (path.endswith("/events") or path == "/v1/agents/sessions")


@pytest.mark.parametrize("mode", ["lost", "truncated", "untyped"])
def test_a_lost_answer_never_doubles_a_turn(make_project, engine, sdk, mode):
    with ChaosProxy(engine.base_url, faults={mode: 1}, match=events_and_sessions, every=2) as p:
        root = project(make_project, p.base_url, keep=True)
        code, summary = run("forecast")
    assert code == 0, summary
    assert summary["counts"]["passed"] == 3
    spoiled = Counter(
        "events" if key.endswith("/events") else key
        for (fault, key) in p.injected.elements()
        if fault == mode
    )
    assert spoiled["events"] >= 3 and spoiled["POST /v1/agents/sessions"] >= 1
    kept = sdk.beta.agents.sessions.list(limit=100).data
    assert len(kept) == 3  # a lost create was found by its nonce, not made again
    for record in records(root):
        statuses, users = transcript(sdk, record["thread_id"])
        assert statuses == ["completed", "completed"]
        assert len(users) == len(set(users)) == 2
        # deleting the session ends the event streams the proxy still relays
        sdk.beta.agents.sessions.delete(record["thread_id"])


def test_steps_an_agent_has_no_place_for_are_refused(make_project, engine):
    project(make_project, engine.base_url)
    make_project(
        {
            "pipelines/forecast.yml": PIPELINE.replace(
                "        additional_instructions: Be brief.\n", "        max_tokens: 50\n"
            )
        }
    )
    code, summary = run("forecast")
    assert code == 2
    [error] = {r["error"]["message"] for r in records(Path.cwd())}
    assert error == "a step on an agents target has no max_tokens: turns have no cap"


class LeftBehind(ThreadLedger):
    """The ledger of a killed process: it had noted ``session_id`` for the item."""

    def __init__(self, session_id: str):
        self.session_id = session_id

    def adopted(self) -> str | None:
        return self.session_id


def test_a_resumed_item_adopts_its_session_and_turns(engine, sdk, tmp_path):
    """The killed process had created the session (its first step's turn done): the resumed
    item takes that turn as its first step's and asks only for the second."""
    agent = sdk.beta.agents.create(model="gpt-5", name="echoer", metadata={"orch_name": "e"})
    left = sdk.beta.agents.sessions.create(
        environment={"type": "none"}, agent_id=agent.id, input="first question"
    )
    deadline = time.monotonic() + 10
    while sdk.beta.agents.sessions.retrieve(left.id).status != "idle":
        assert time.monotonic() < deadline
        time.sleep(0.01)
    with ThreadPoolExecutor(2) as pool, sdk_client(base_url=engine.base_url, api_key="x") as c:
        settings = SessionSettings(
            stream=True,
            deadline=time.monotonic() + 30,
            handler_pool=pool,
            files_dir=tmp_path,
            root=tmp_path,
            stop=threading.Event(),
            ledger=LeftBehind(left.id),
        )
        conv = AgentSession(c, settings, keep=True)
        echoer = Assistant(name="echoer", model="gpt-5", source="assistants/echoer.yml")
        outputs = [
            conv.step(Turn(echoer, agent.id, [{"type": "text", "text": text}], [])).output
            for text in ("first question", "second question")
        ]
    assert outputs == ["echo: first question", "echo: second question"]
    assert conv.thread_id == left.id
    assert [s.id for s in sdk.beta.agents.sessions.list(limit=10).data] == [left.id]
    statuses, users = transcript(sdk, left.id)
    assert statuses == ["completed", "completed"]
    assert users == ["first question", "second question"]
