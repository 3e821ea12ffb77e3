"""Targets that are local servers: no Files API, no Responses API, other model names, caps.

A chaos proxy in front of the engine plays a server that lacks an API (it answers 404 for
those paths), the way llama.cpp or Ollama do.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner
from openai import OpenAI

from orch.cli import main
from orch.engine.server import start_engine
from tests.run.chaos import ChaosProxy

ASSISTANT = """
name: bot
model: gpt-4o
instructions: Answer.
max_tokens: 50
"""
PIPELINE = """
name: p
assistant: bot
items: [{q: hello}]
steps:
  - {id: ask, prompt: "{{ item.q }}", max_tokens: 16}
  - {id: again, prompt: "again"}
"""


def cli(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def engine(tmp_path: Path):
    with start_engine(tmp_path / "engine.db", poll_after_ms=10) as handle:
        yield handle


def without(engine, *prefixes: str) -> ChaosProxy:
    """A proxy in front of ``engine`` that has no API under the given path prefixes."""

    def missing(method: str, path: str) -> bool:
        return path.startswith(tuple(f"/v1/{p}" for p in prefixes))

    return ChaosProxy(engine.base_url, faults={"404": 1.0}, match=missing).start()


def project(make_project, url: str, kind: str, extra: str = "", assistant: str = ASSISTANT):
    return make_project(
        {
            "orch.yml": f"project: local\ntarget: local\ntargets:\n"
            f"  local: {{kind: {kind}, base_url: '{url}'{extra}}}\n",
            "assistants/bot.yml": assistant,
            "pipelines/p.yml": PIPELINE,
            "docs/a.md": "alpha\n",
        }
    )


def test_a_responses_target_without_files_runs_a_pipeline_that_needs_none(make_project, engine):
    proxy = without(engine, "files", "vector_stores")
    try:
        project(make_project, proxy.base_url, "responses")
        assert cli("plan").exit_code == 0
        ran = cli("run", "p")
        assert ran.exit_code == 0, ran.output
    finally:
        proxy.stop()
    assert any(key.startswith("POST /v1/responses") for key in proxy.forwarded)


def test_declared_files_on_a_server_without_files_name_the_server_and_the_way_out(
    make_project, engine
):
    proxy = without(engine, "files", "vector_stores")
    searcher = ASSISTANT + "tools: [file_search]\nfiles: {file_search: [docs/a.md]}\n"
    try:
        project(make_project, proxy.base_url, "responses", assistant=searcher)
        ran = CliRunner().invoke(main, ["sync"])
    finally:
        proxy.stop()
    assert ran.exit_code == 2
    (line,) = [x for x in ran.stderr.splitlines() if x.startswith("error:")]
    assert "404 for /files" in line and "kind: engine, model: openai-chat" in line


@pytest.mark.parametrize("missing", ["conversations", "responses"])
def test_a_server_without_the_responses_api_is_named_with_the_alternative(
    make_project, engine, missing
):
    proxy = without(engine, missing)
    extra = ", capabilities: {conversations: false}" if missing == "responses" else ""
    try:
        root = project(make_project, proxy.base_url, "responses", extra)
        ran = cli("run", "p")
    finally:
        proxy.stop()
    assert ran.exit_code == 2
    runs = sorted((root / ".orch" / "runs").iterdir())
    (record,) = [json.loads(x) for x in (runs[-1] / "results.jsonl").read_text().splitlines()]
    message = record["error"]["message"]
    assert f"404 for /{missing}" in message
    assert ("conversations: false" in message) == (missing == "conversations")
    assert f"kind: engine, model: openai-chat, base_url: {proxy.base_url}" in message


def test_models_map_and_token_caps_reach_the_server(make_project, engine):
    extra = ", models: {gpt-4o: local-small}"
    root = project(make_project, engine.base_url, "assistants", extra)
    ran = cli("run", "p")
    assert ran.exit_code == 0, ran.output
    meta = json.loads(next((root / ".orch" / "runs").iterdir()).joinpath("run.json").read_text())
    assert meta["models"] == {"bot": "local-small"}  # prices apply to the model really used
    with (
        OpenAI(base_url=engine.base_url, api_key="x", max_retries=0) as sdk,
        warnings.catch_warnings(),
    ):
        warnings.simplefilter("ignore", DeprecationWarning)
        (bot,) = [a for a in sdk.beta.assistants.list().data if a.name == "bot"]
        assert bot.model == "local-small"
        record = json.loads(
            next((root / ".orch" / "runs").iterdir()).joinpath("results.jsonl").read_text()
        )
        caps = [
            sdk.beta.threads.runs.retrieve(
                s["run_id"], thread_id=s["thread_id"]
            ).max_completion_tokens
            for s in record["steps"]
        ]
    assert caps == [16, 50]  # the step's cap, else the assistant's


def test_the_responses_kind_sends_the_cap_as_max_output_tokens(make_project, engine):
    root = project(make_project, engine.base_url, "responses")
    assert cli("run", "p").exit_code == 0
    record = json.loads(
        next((root / ".orch" / "runs").iterdir()).joinpath("results.jsonl").read_text()
    )
    with OpenAI(base_url=engine.base_url, api_key="x", max_retries=0) as sdk:
        caps = [sdk.responses.retrieve(s["run_id"]).max_output_tokens for s in record["steps"]]
    assert caps == [16, 50]
