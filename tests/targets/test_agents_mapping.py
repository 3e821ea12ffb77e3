"""The assistant ↔ saved-agent mapping, and what a saved agent has no place for.

Refusals are checked where a user meets them: ``orch validate`` (the default target) and the
commands that meet another target (``--target``), each field at its file and line. The
parameters orch sends are checked against the SDK's own declarations of the Agents API
(``AgentCreateParams`` and its tool, text and reasoning types), key by key.
"""

from __future__ import annotations

import subprocess
import sys
import typing
from pathlib import Path

from click.testing import CliRunner
from openai.types.beta.agent import Agent
from openai.types.beta.agent_create_params import AgentCreateParams
from openai.types.beta.agent_reasoning_param import AgentReasoningParam
from openai.types.beta.agent_text_param import AgentTextParam
from openai.types.beta.persisted_agent_tool_param import PersistedAgentToolConfigParamFunction

from orch.cli import main
from orch.project.loading import load_project
from orch.sync import desired_fields, wire_spec
from orch.sync.planning import remote_fields
from orch.targets import registry
from orch.targets.agents import rules
from orch.targets.agents.store import AgentState
from orch.targets.agents.wire import agent_params, environment, remote_agent

FITTING = """\
    name: fits
    description: Answers in JSON.
    model: gpt-5
    instructions: Be exact.
    reasoning: {effort: high, summary: auto}
    response_format:
      type: json_schema
      json_schema: {name: result, strict: true, schema: {type: object}}
    tools:
      - code_interpreter
      - function: {name: add, parameters: {type: object, properties: {a: {type: number}}}}
    metadata: {team: a}
"""

UNFIT = """\
    name: unfit
    model: gpt-4o
    temperature: 0.2
    top_p: 0.9
    max_tokens: 100
    response_format: json_object
    tools:
      - file_search
      - function: {name: add, strict: true}
    files: {file_search: [doc.md]}
"""

AGENTS_YML = """\
    project: mapping
    target: agents
    targets:
      agents: {kind: agents, base_url: "http://127.0.0.1:9/v1"}
"""

WHY = "a target of kind agents has no place for it: "


def validate(*args: str):
    return CliRunner().invoke(main, ["validate", *args])


def test_validate_refuses_each_field_at_its_line(make_project):
    make_project({"orch.yml": AGENTS_YML, "doc.md": "# doc\n", "assistants/unfit.yml": UNFIT})
    result = validate()
    assert result.exit_code == 2
    assert result.stderr.splitlines() == [
        f"assistants/unfit.yml:3: temperature: {WHY}saved agents have no temperature (the "
        "Agents API sets none)",
        f"assistants/unfit.yml:4: top_p: {WHY}saved agents have no top_p (the Agents API sets "
        "none)",
        f"assistants/unfit.yml:5: max_tokens: {WHY}saved agents and their turns have no cap on "
        "output tokens",
        f"assistants/unfit.yml:6: response_format: {WHY}an agent's text format is text or "
        "json_schema; declare a json_schema",
        f"assistants/unfit.yml:8: tools[0]: {WHY}saved agents have no file_search tool (no "
        "vector stores)",
        f"assistants/unfit.yml:9: tools[1].function.strict: {WHY}an agent's function tools "
        "have no strict flag",
        f"assistants/unfit.yml:10: files.file_search: {WHY}saved agents have no vector stores "
        "to search",
        "✗ 7 problems found",
    ]


def test_an_assistant_that_fits_validates(make_project):
    make_project({"orch.yml": AGENTS_YML, "assistants/fits.yml": FITTING})
    result = validate()
    assert result.exit_code == 0, result.output


def test_a_description_needs_a_free_metadata_pair(make_project):
    metadata = ", ".join(f"k{i}: v" for i in range(13))
    make_project(
        {
            "orch.yml": AGENTS_YML,
            "assistants/full.yml": (
                f"name: full\nmodel: m\ndescription: d\nmetadata: {{{metadata}}}\n"
            ),
        }
    )
    result = validate()
    assert result.exit_code == 2
    assert "assistants/full.yml:3: description: " + WHY in result.stderr
    assert "declare at most 12 metadata keys with a description" in result.stderr


def test_other_kinds_refuse_reasoning(make_project):
    make_project({"assistants/fits.yml": FITTING})  # the default target: the embedded engine
    result = validate()
    assert result.exit_code == 2
    assert result.stderr.splitlines()[0] == (
        "assistants/fits.yml:5: reasoning: a target of kind engine has no place for it: only "
        "targets of kind agents send reasoning settings"
    )


def test_a_target_named_with_target_is_checked_before_anything_is_sent(make_project):
    yml = AGENTS_YML.replace("    target: agents\n", "")
    make_project({"orch.yml": yml, "doc.md": "# doc\n", "assistants/unfit.yml": UNFIT})
    assert validate().exit_code == 0  # fine for the default target (the embedded engine)
    # port 9 (discard) is never listened on: a request would fail with a connection error
    for command in (["plan"], ["sync"]):
        result = CliRunner().invoke(main, [*command, "--target", "agents"])
        assert result.exit_code == 2, result.output
        assert f"assistants/unfit.yml:3: temperature: {WHY}" in result.stderr
        assert "connect" not in result.stderr


# -- the wire --------------------------------------------------------------------------------


def check_typed(value: object, declared: object, where: str = "") -> None:
    """``value`` has only keys ``declared`` (a TypedDict) has, and all its required ones."""
    assert isinstance(value, dict), where
    hints = typing.get_type_hints(declared)
    extra = set(value) - set(hints) - {"async"}  # "async" is declared by a base TypedDict
    assert not extra, f"{where}: not in {declared.__name__}: {extra}"
    missing = set(declared.__required_keys__) - set(value)
    assert not missing, f"{where}: {declared.__name__} requires {missing}"


def fitting(make_project) -> tuple[Path, object]:
    root = make_project({"orch.yml": AGENTS_YML, "assistants/fits.yml": FITTING})
    return root, load_project(root).assistant("fits")


def test_create_parameters_are_the_sdks(make_project):
    _root, fits = fitting(make_project)
    params = agent_params(wire_spec(fits, "mapping", {}, {}))
    check_typed(params, AgentCreateParams, "agent")
    check_typed(params["text"], AgentTextParam, "text")
    check_typed(params["reasoning"], AgentReasoningParam, "reasoning")
    [tool] = params["tools"]  # code_interpreter becomes the sessions' environment
    check_typed(tool, PersistedAgentToolConfigParamFunction, "tools[0]")
    assert tool == {
        "type": "function",
        "name": "add",
        "description": "",
        "parameters": {"type": "object", "properties": {"a": {"type": "number"}}},
    }
    assert params["text"] == {"format": {"type": "json_schema", "schema": {"type": "object"}}}
    assert params["reasoning"] == {"effort": "high", "summary": "auto"}
    assert params["metadata"]["orch_description"] == "Answers in JSON."
    assert params["metadata"]["team"] == "a" and params["metadata"]["orch_name"] == "fits"


def test_an_agent_as_the_server_echoes_it_plans_clean(make_project):
    """Created from orch's parameters with the server's defaults filled in, the agent compares
    equal to the YAML: no field the agent does not store (the schema's name, the
    environment) is a diff."""
    _root, fits = fitting(make_project)
    params = agent_params(wire_spec(fits, "mapping", {}, {}))
    agent = Agent.model_validate(
        {
            **params,
            "id": "agent_1",
            "object": "agent",
            "created_at": 1,
            "updated_at": 1,
            "multi_agent": {"enabled": False, "max_concurrent_subagents": None},
            "service_tier": "auto",
            "text": {**params["text"], "verbosity": "medium"},
            "tools": [{**t, "defer_loading": False} for t in params["tools"]],
        }
    )
    remote = remote_agent(agent)
    state = AgentState(assistants=[remote])
    assert remote.description == "Answers in JSON." and "orch_description" not in remote.metadata
    want = state.comparable(fits, desired_fields(fits, "mapping"))
    have = state.comparable(remote, remote_fields(remote, state, "mapping", fits))
    assert have == want


def test_code_interpreter_files_are_placed_in_the_workspace():
    files = [("file_1", "data/sales.csv"), ("file_2", "notes.md")]
    assert environment(["function"], files) == {"type": "none"}
    assert environment(["code_interpreter"], files) == {
        "type": "openai_hosted",
        "files": [
            {"type": "file_id", "file_id": "file_1", "path": "/workspace/sales.csv"},
            {"type": "file_id", "file_id": "file_2", "path": "/workspace/notes.md"},
        ],
    }


def test_every_built_in_kind_has_its_rules_named():
    assert set(registry.RULES) == set(registry.KINDS)
    assert registry.get("agents").refuse is rules.refuse
    assert registry.RULES["agents"] == "orch.targets.agents.rules:refuse"


def test_rules_are_asked_without_loading_the_sdk():
    """``orch validate`` asks every kind's rules: that must not import the SDK (a second)."""
    code = (
        "import sys\n"
        "from orch.targets import registry\n"
        "from orch.project.model import Assistant\n"
        "for kind in registry.KINDS:\n"
        "    registry.refusals(kind, Assistant(name='a', model='m', source='a.yml'))\n"
        "assert 'openai' not in sys.modules, sorted(m for m in sys.modules if 'openai' in m)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
