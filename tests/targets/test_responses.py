"""The same pipelines on a Responses API target (the engine's /v1/responses), through the CLI."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from orch.cli import main
from orch.engine.server import start_engine

SCRIPT = {
    "rules": [
        {"when": {"regex": "what did I say"}, "reply": "You asked me to remember."},
        {"when": {"contains": "remember"}, "reply": "I will remember that."},
        {
            "when": {"assistant": "tools-bot", "after_tool_outputs": True},
            "reply": "outputs: {{ tool_outputs | join(' | ') }}",
        },
        {
            "when": {"assistant": "tools-bot", "contains": "weather"},
            "tool_calls": [
                {"function": "get_weather", "arguments": {"city": "Paris"}},
                {"function": "get_weather", "arguments": {"city": "Tokyo"}},
            ],
        },
        {
            "when": {"contains": "chart"},
            "code_interpreter": {"input": "plot()", "logs": "done", "image": True},
            "reply": "Here is the chart.",
        },
        {"when": {"contains": "otters"}, "file_search": True, "reply": "Found it."},
        {"when": {"contains": "rate"}, "reply": {"score": 7, "label": "good"}},
    ],
    "default": {"reply": "[scripted] default"},
}

HANDLERS = '''
import json


def get_weather(city: str) -> str:
    """Weather for a city."""
    return json.dumps({"city": city, "temp": len(city)})
'''


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    with start_engine(tmp_path_factory.mktemp("engine") / "engine.db", script=SCRIPT) as handle:
        yield handle


@pytest.fixture
def project(make_project, engine, monkeypatch):
    monkeypatch.setenv("RESPONSES_TEST_KEY", "unused")
    return make_project(
        {
            "orch.yml": f"""
            project: resp
            target: local
            targets:
              local: {{kind: responses, base_url: "{engine.base_url}",
                       api_key_env: RESPONSES_TEST_KEY}}
        """,
            "handlers.py": HANDLERS,
            "kb/otters.txt": "Sea otters hold hands while they sleep so they do not drift apart.",
            "assistants/helper.yml": """
            name: helper
            model: gpt-4o
            instructions: You help.
            tools: [code_interpreter, file_search]
            files:
              file_search: [kb/otters.txt]
        """,
            "assistants/tools-bot.yml": """
            name: tools-bot
            model: gpt-4o
            tools:
              - function: {name: get_weather, handler: "handlers:get_weather"}
        """,
            "assistants/rater.yml": """
            name: rater
            model: gpt-4o
            response_format:
              type: json_schema
              json_schema:
                name: rating
                schema:
                  type: object
                  required: [score, label]
                  properties: {score: {type: integer}, label: {type: string}}
        """,
        }
    )


def invoke(*args):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


def results(root):
    run = sorted((root / ".orch/runs").iterdir())[-1]
    return [json.loads(line) for line in (run / "results.jsonl").read_text().splitlines()]


def write_pipeline(root, name, body):
    (root / "pipelines").mkdir(exist_ok=True)
    (root / "pipelines" / f"{name}.yml").write_text(f"name: {name}\n{body}")


def test_plan_and_sync_manage_only_files_and_vector_stores(project, engine):
    plan = invoke("plan")
    assert plan.exit_code == 0, plan.output
    assert "local definition, sent with each request" in plan.output
    assert "+ create    vector store orch-resp-helper" in plan.output
    engine.reset_stats()
    synced = invoke("sync")
    assert synced.exit_code == 0, synced.output
    assert not any("/assistants" in key for key in engine.stats()), engine.stats()
    again = invoke("sync", "--check")
    assert again.exit_code == 0, again.output


@pytest.mark.parametrize("mode", [[], ["--poll"]])
def test_multi_turn_on_a_conversation(project, mode):
    write_pipeline(
        project,
        "chat",
        """
assistant: helper
steps:
  - id: first
    prompt: "please remember the number 7"
    expect: [{contains: remember}]
  - prompt: "what did I say?"
    expect: [{contains: "You asked"}]
""",
    )
    result = invoke("run", "chat", *mode)
    assert result.exit_code == 0, result.output
    [record] = results(project)
    first, second = record["steps"]
    assert first["thread_id"] == second["thread_id"]
    assert first["thread_id"].startswith("conv_")


def test_parallel_function_calls_run_client_side(project):
    write_pipeline(
        project,
        "tools",
        """
assistant: tools-bot
steps:
  - prompt: "what's the weather?"
    expect:
      - tool_called: {name: get_weather, arguments: {city: Tokyo}}
      - contains: '"city": "Paris"'
""",
    )
    result = invoke("run", "tools")
    assert result.exit_code == 0, result.output
    [record] = results(project)
    calls = [c for c in record["steps"][0]["tool_calls"] if c["type"] == "function"]
    assert sorted(c["arguments"]["city"] for c in calls) == ["Paris", "Tokyo"]


def test_file_search_cites_the_synced_file(project):
    write_pipeline(
        project,
        "search",
        """
assistant: helper
steps:
  - prompt: "tell me about otters"
    expect: [{contains: Found}]
""",
    )
    result = invoke("run", "search")
    assert result.exit_code == 0, result.output
    [record] = results(project)
    citations = record["steps"][0]["citations"]
    assert any(c["type"] == "file_citation" for c in citations), citations


def test_code_interpreter_file_is_downloaded(project):
    write_pipeline(
        project,
        "chart",
        """
assistant: helper
steps:
  - prompt: "draw a chart"
    expect: [{contains: chart}]
""",
    )
    result = invoke("run", "chart")
    assert result.exit_code == 0, result.output
    [record] = results(project)
    run_dir = sorted((project / ".orch/runs").iterdir())[-1]
    files = record["steps"][0]["files"]
    assert files and (run_dir / files[0]).read_bytes().startswith(b"\x89PNG")


def test_json_schema_output(project):
    write_pipeline(
        project,
        "rate",
        """
assistant: rater
steps:
  - prompt: "rate this"
    expect:
      - json_schema: {type: object, required: [score]}
      - jsonpath: {path: $.label, equals: good}
""",
    )
    result = invoke("run", "rate")
    assert result.exit_code == 0, result.output


def with_capabilities(root, engine, capabilities: str) -> None:
    """Rewrite orch.yml so the target declares ``capabilities``."""
    (root / "orch.yml").write_text(f"""
project: resp
target: local
targets:
  local:
    kind: responses
    base_url: "{engine.base_url}"
    api_key_env: RESPONSES_TEST_KEY
    capabilities: {{{capabilities}}}
""")


def test_without_conversations_the_history_is_sent(project, engine):
    with_capabilities(project, engine, "conversations: false")
    write_pipeline(
        project,
        "chat",
        """
assistant: tools-bot
steps:
  - prompt: "please remember 7"
    expect: [{contains: remember}]
  - prompt: "what's the weather? what did I say?"
    expect: [{contains: "You asked"}]
""",
    )
    engine.reset_stats()
    result = invoke("run", "chat")
    assert result.exit_code == 0, result.output
    assert not any("conversations" in key for key in engine.stats()), engine.stats()
    [record] = results(project)
    assert record["thread_id"] is None


def test_hosted_tools_refused_when_the_server_lacks_them(project, engine):
    with_capabilities(project, engine, "hosted_tools: false")
    write_pipeline(
        project,
        "search",
        """
assistant: helper
steps: [{prompt: "tell me about otters"}]
""",
    )
    result = invoke("run", "search")
    assert result.exit_code == 2, result.output
    assert (
        "assistant 'helper' uses code_interpreter, file_search, which target 'local' does "
        "not support (capabilities.hosted_tools: false)" in result.output
    )
    assert not (project / ".orch/runs").exists() or not any((project / ".orch/runs").iterdir())
