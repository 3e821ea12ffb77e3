"""``orch plan/sync/prune/import`` on a target of kind ``agents``, through the CLI, against the
engine's Agents API on 127.0.0.1.

The engine counts the requests it serves, so "a re-sync makes no writes" is asserted on what
the server saw. What orch wrote is read back with the SDK (``client.beta.agents``).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner
from openai import OpenAI

from orch.cli import main
from orch.engine.server import EngineHandle, start_engine

from ..sync.conftest import Orch, Ran, writes

TUTOR = """\
    name: tutor
    description: Explains algebra.
    model: gpt-5
    instructions: |
      You are a patient tutor.
      Explain step by step.
    reasoning: {effort: low}
    response_format:
      type: json_schema
      json_schema:
        name: answer
        strict: true
        schema:
          type: object
          properties: {steps: {type: array, items: {type: string}}}
          required: [steps]
    tools:
      - code_interpreter
      - function:
          name: lookup
          description: Look a term up.
          parameters: {type: object, properties: {term: {type: string}}}
    metadata: {owner: team-a}
"""

HELPER = """\
    name: helper
    model: gpt-5-mini
    instructions: Help.
"""

#: the list calls a no-op sync needs: agents, files, vector stores (one page each)
READS = {"GET /v1/agents": 1, "GET /v1/files": 1, "GET /v1/vector_stores": 1}


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No developer credentials or targets leak in."""
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ORCH_TARGET", "ORCH_RAISE_ERRORS"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture(name="orch")
def cli() -> Orch:
    """Run ``orch ARGS`` in-process, as the sync tests do."""

    def run(*args: str) -> Ran:
        result = CliRunner().invoke(main, list(args), catch_exceptions=True)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            raise result.exception  # a traceback would have reached the user
        return Ran(result.exit_code, result.stdout, result.stderr, result.exception)

    return run


@pytest.fixture
def engine(tmp_path: Path):
    with start_engine(tmp_path / "engine" / "engine.db", poll_after_ms=10) as handle:
        yield handle


@pytest.fixture
def sdk(engine: EngineHandle):
    client = OpenAI(base_url=engine.base_url, api_key="test", max_retries=0)
    yield client
    client.close()


def project(make_project, engine: EngineHandle, **files: str) -> Path:
    orch_yml = f"""\
        project: demo
        target: agents
        targets:
          agents: {{kind: agents, base_url: "{engine.base_url}"}}
    """
    return make_project({"orch.yml": orch_yml, **files})


def agents(sdk: OpenAI) -> dict[str, object]:
    """The managed saved agents by orch_name."""
    found = sdk.beta.agents.list(limit=100).data
    return {a.metadata["orch_name"]: a for a in found if a.metadata.get("orch_project") == "demo"}


def plan(orch: Orch, *args: str) -> dict:
    ran = orch("plan", "--json", *args)
    assert ran.exit_code == 0, ran.stderr
    return json.loads(ran.stdout)


def test_create_noop_update_drift_prune(make_project, engine, sdk: OpenAI, orch: Orch, tmp_path):
    root = project(
        make_project, engine, **{"assistants/tutor.yml": TUTOR, "assistants/helper.yml": HELPER}
    )
    ran = orch("sync")
    assert ran.exit_code == 0, ran.stderr
    assert "  + created assistant tutor" in ran.lines
    tutor = agents(sdk)["tutor"]
    assert (tutor.name, tutor.model, tutor.reasoning.effort) == ("tutor", "gpt-5", "low")
    assert tutor.instructions == "You are a patient tutor.\nExplain step by step.\n"
    assert tutor.metadata["owner"] == "team-a"
    assert tutor.metadata["orch_description"] == "Explains algebra."
    assert len(tutor.metadata["orch_hash"]) == 64
    assert tutor.text.format.type == "json_schema"
    assert tutor.text.format.schema_["required"] == ["steps"]
    [lookup] = tutor.tools  # code_interpreter is each session's environment, not a tool
    assert (lookup.type, lookup.name, lookup.description) == (
        "function",
        "lookup",
        "Look a term up.",
    )
    assert lookup.parameters["properties"] == {"term": {"type": "string"}}

    # a re-sync with nothing changed: three list requests, zero writes, from a fresh checkout
    fresh = tmp_path / "fresh-checkout"
    shutil.copytree(root, fresh)
    engine.reset_stats()
    ran = orch("sync", "-C", str(fresh))
    assert ran.exit_code == 0, ran.stderr
    assert ran.lines[-1] == "No changes: the target matches the YAML."
    assert engine.stats() == READS
    assert orch("sync", "--check").exit_code == 0

    # an edit: a field-level diff, then one write
    make_project({"assistants/tutor.yml": TUTOR.replace("effort: low", "effort: high")})
    data = plan(orch)
    [change] = [c for c in data["assistants"] if c["action"] != "unchanged"]
    fields = [d["field"] for d in change["diff"]]
    assert (change["name"], change["drift"], fields) == ("tutor", False, ["metadata", "reasoning"])
    assert change["diff"][1] == {
        "field": "reasoning",
        "remote": {"effort": "low"},
        "local": {"effort": "high"},
    }
    engine.reset_stats()
    assert orch("sync").exit_code == 0
    assert writes(engine.stats()) == {"POST /v1/agents/{agent_id}": 1}
    assert sdk.beta.agents.retrieve(tutor.id).reasoning.effort == "high"

    # drift: the instructions and tools changed with the SDK, behind orch's back
    sdk.beta.agents.update(tutor.id, instructions="Give answers only.", tools=[])
    ran = orch("sync", "--check")
    assert ran.exit_code == 1
    assert "  ~ update    assistant tutor  (changed outside orch)" in ran.lines
    data = plan(orch)
    [change] = [c for c in data["assistants"] if c["action"] != "unchanged"]
    assert change["drift"] is True
    assert [d["field"] for d in change["diff"]] == ["instructions", "tools"]
    assert orch("sync").exit_code == 0
    repaired = sdk.beta.agents.retrieve(tutor.id)
    assert repaired.instructions.startswith("You are a patient tutor.")
    assert [t.name for t in repaired.tools] == ["lookup"]
    engine.reset_stats()
    assert orch("sync", "--check").exit_code == 0
    assert writes(engine.stats()) == {}

    # prune deletes only managed agents no longer declared
    hand = sdk.beta.agents.create(model="gpt-5", name="helper", instructions="mine")
    (root / "assistants/helper.yml").unlink()
    engine.reset_stats()
    ran = orch("prune", "--yes")
    assert ran.exit_code == 0, ran.stderr
    assert "  - deleted assistant helper" in ran.lines
    assert writes(engine.stats()) == {"DELETE /v1/agents/{agent_id}": 1}
    assert sorted(agents(sdk)) == ["tutor"]
    assert sdk.beta.agents.retrieve(hand.id).instructions == "mine"


def test_import_round_trip(make_project, engine, sdk: OpenAI, orch: Orch):
    root = project(make_project, engine)
    schema = {"type": "object", "properties": {"total": {"type": "integer"}}}
    made = sdk.beta.agents.create(
        model="gpt-5",
        name="Score Keeper",
        instructions="\n".join(f"Rule {i}: count carefully." for i in range(12)),
        reasoning={"effort": "medium", "summary": "concise"},
        text={"format": {"type": "json_schema", "schema": schema}},
        tools=[
            {
                "type": "function",
                "name": "add",
                "description": "Add two numbers.",
                "parameters": {"type": "object", "properties": {"a": {"type": "number"}}},
            }
        ],
        metadata={"owner": "scores"},
    )
    ran = orch("import")
    assert ran.exit_code == 0, ran.stderr
    written = (root / "assistants/score-keeper.yml").read_text()
    assert "reasoning:\n  effort: medium\n  summary: concise\n" in written
    assert "instructions: !file 'prompts/score-keeper.md'" in written
    engine.reset_stats()
    data = plan(orch)
    assert data["changes"] == 0, data
    assert writes(engine.stats()) == {}
    adopted = sdk.beta.agents.retrieve(made.id)
    assert adopted.metadata["orch_name"] == adopted.name == "Score Keeper"  # never renamed
    assert adopted.metadata["owner"] == "scores"
    assert adopted.text.format.schema_ == schema
