"""A model that calls a function again after every result is stopped after MAX_TOOL_ROUNDS rounds.

Small local models do this (seen with SmolLM2 in `make e2e-llm`): without a bound the step
waited for its timeout. Now the step ends at once, as an error that says why.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from orch.cli import main
from orch.engine.server import start_engine
from orch.targets.session import MAX_TOOL_ROUNDS

LOOKUP = {"function": "lookup", "arguments": {}}
SCRIPT = {
    "rules": [
        # a model that calls again after every result
        {"when": {"contains": "loop", "after_tool_outputs": True}, "tool_calls": [LOOKUP]},
        {"when": {"contains": "loop"}, "tool_calls": [LOOKUP]},
        {"when": {"after_tool_outputs": True}, "reply": "done: {{ tool_outputs | join(',') }}"},
        {"when": {"contains": "once"}, "tool_calls": [LOOKUP]},
    ],
    "default": {"reply": "ok"},
}
HANDLERS = '''
CALLS = []


def lookup() -> str:
    """Look something up."""
    CALLS.append(1)
    return "found"
'''


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    with start_engine(tmp_path_factory.mktemp("engine") / "engine.db", script=SCRIPT) as handle:
        yield handle


@pytest.fixture(params=["assistants", "responses", "agents"])
def project(request, make_project, engine, monkeypatch):
    """The same project on each wire the engine serves: threads, responses, agent sessions."""
    monkeypatch.setenv("TOOL_ROUNDS_KEY", "unused")
    target = (
        f'{{kind: {request.param}, base_url: "{engine.base_url}", api_key_env: TOOL_ROUNDS_KEY}}'
    )
    return make_project(
        {
            "orch.yml": f"project: rounds-{request.param}\ntarget: t\ntargets:\n  t: {target}\n",
            "handlers.py": HANDLERS,
            "assistants/bot.yml": """
                name: bot
                model: gpt-4o
                instructions: Use lookup.
                tools:
                  - function: {name: lookup, handler: "handlers:lookup"}
            """,
            "pipelines/p.yml": """
                name: p
                assistant: bot
                timeout: 2m
                items: [{q: "loop please"}, {q: "once please"}]
                steps:
                  - prompt: "{{ item.q }}"
                    expect: [{contains: done}]
            """,
        }
    )


def test_a_function_call_loop_ends_the_step_with_a_reason_not_a_timeout(project):
    result = CliRunner().invoke(main, ["run", "p", "--json"])
    assert result.exit_code == 2, result.output  # an errored item: the machinery stopped it
    [run_dir] = (project / ".orch/runs").iterdir()
    records = {
        r["item"]["q"]: r
        for r in map(json.loads, (run_dir / "results.jsonl").read_text().splitlines())
    }
    looped = records["loop please"]
    assert looped["status"] == "error"
    assert "function calls 20 rounds in a row" in looped["error"]["message"]
    [step] = looped["steps"]
    answered = [call for call in step["tool_calls"] if call.get("output") is not None]
    assert len(answered) == MAX_TOOL_ROUNDS  # every round was answered, then no more
    assert step["latency_s"] < 60
    assert records["once please"]["status"] == "passed"  # one round is normal
