"""An engine per test module, started in-process on a loopback port with a test script."""

from __future__ import annotations

import textwrap
import time
import warnings
from pathlib import Path

import pytest
from openai import OpenAI

from orch.engine.server import EngineHandle, start_engine
from tests.engine.upstream import StrictUpstream, serving

SCRIPT = textwrap.dedent(
    """
    name: engine-tests
    rules:
      - when: {contains: "slow"}
        delay_ms: 5000
        reply: "finally"
      - when: {regex: "weather in (\\\\w+)", after_tool_outputs: false}
        tool_calls:
          - {function: get_weather, arguments: {city: "{{ match[1] }}"}}
          - {function: get_time, arguments: {city: "{{ match[1] }}"}}
        reply: >-
          Report: {% for o in tool_outputs %}{{ o.name }}={{ o }}{% if not loop.last %},
          {% endif %}{% endfor %}
      - when: {icontains: "plot"}
        code_interpreter:
          input: "import matplotlib.pyplot as plt\\nplt.bar([1, 2, 3], [3, 1, 2])"
          logs: "<BarContainer object of 3 artists>"
          image: true
        reply: "Here is your chart."
      - when: {icontains: "pedro"}
        file_search: true
        reply: >-
          According to the paper {{ citations[0].marker if citations else '' }}
          the score is 7.
      - when: {icontains: "search"}
        file_search: {max_results: 2}
      - when: {contains: "explode"}
        fail: {code: rate_limit_exceeded, message: "scripted failure"}
      - when: {contains: "essay"}
        reply: "{% for i in range(200) %}word{{ i }} {% endfor %}"
      - when: {contains: "json please"}
        reply: {answer: "{{ message | length }}", ok: true}
    """
)


@pytest.fixture(autouse=True)
def _quiet_deprecations():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


@pytest.fixture(scope="module")
def script_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("script") / "script.yml"
    path.write_text(SCRIPT, encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory, script_path: Path) -> EngineHandle:
    db = tmp_path_factory.mktemp("engine") / "engine.db"
    with start_engine(db, script=script_path, poll_after_ms=20) as handle:
        yield handle


@pytest.fixture(scope="module")
def client(engine: EngineHandle) -> OpenAI:
    return OpenAI(base_url=engine.base_url, api_key="test", max_retries=0)


@pytest.fixture(scope="module")
def assistant(client: OpenAI):
    warnings.simplefilter("ignore", DeprecationWarning)
    return client.beta.assistants.create(
        model="gpt-4o",
        name="tester",
        instructions="You answer tests.",
        tools=[
            {"type": "code_interpreter"},
            {"type": "file_search"},
            {
                "type": "function",
                "function": {"name": "get_weather", "parameters": {"type": "object"}},
            },
            {
                "type": "function",
                "function": {"name": "get_time", "parameters": {"type": "object"}},
            },
        ],
    )


def wait_on_run(client: OpenAI, run, timeout: float = 15.0):
    """The seeds' polling loop (with a deadline)."""
    deadline = time.monotonic() + timeout
    while run.status in ("queued", "in_progress", "cancelling"):
        assert time.monotonic() < deadline, f"run stuck in {run.status}"
        time.sleep(0.02)
        run = client.beta.threads.runs.retrieve(thread_id=run.thread_id, run_id=run.id)
    return run


# -- the openai-chat model against the strict upstream double (tests/engine/upstream.py) ---------


@pytest.fixture(scope="module")
def double():
    """A strict Chat Completions double on loopback, one per module (a module may override it)."""
    upstream = StrictUpstream()
    with serving(upstream) as url:
        upstream.url = url
        yield upstream


@pytest.fixture
def strict_double(double: StrictUpstream):
    """Every request the engine sends must pass the double's checks; its settings come back after.

    Modules of openai-chat tests use it for every test: ``pytestmark = usefixtures(...)``.
    """
    seen, settings = len(double.rejected), double.settings()
    yield double
    double.restore(settings)
    assert double.rejected[seen:] == []


@pytest.fixture(scope="module")
def chat_client(double: StrictUpstream, tmp_path_factory: pytest.TempPathFactory):
    """An SDK client of an engine whose model is openai-chat in front of ``double``."""
    db = tmp_path_factory.mktemp("chat") / "e.db"
    with start_engine(
        db,
        model="openai-chat",
        upstream_base_url=double.url,
        upstream_api_key_env="ORCH_TEST_NO_KEY",
        poll_after_ms=20,
    ) as engine:
        yield OpenAI(base_url=engine.base_url, api_key="x", max_retries=0)
