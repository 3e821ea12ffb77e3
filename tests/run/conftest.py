"""Fixtures for `orch run` tests: a small project on the embedded engine with a scripted model."""

from __future__ import annotations

import json
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from orch.cli import main

from .harness import Engines

SCRIPT = """
rules:
  - when: {contains: "ping"}
    reply: "pong {{ message }}"
  - when: {regex: "what did I say"}
    reply: "You asked me to remember."
  - when: {contains: "remember"}
    reply: "I will remember that."
  - when: {assistant: tools-bot, after_tool_outputs: true}
    reply: "outputs: {{ tool_outputs | join(' | ') }}"
  - when: {assistant: tools-bot, contains: "weather"}
    tool_calls:
      - {function: get_weather, arguments: {city: Paris}}
      - {function: get_weather, arguments: {city: Tokyo}}
  - when: {assistant: tools-bot, contains: "explode"}
    tool_calls:
      - {function: explode, arguments: {reason: boom}}
  - when: {contains: "chart"}
    code_interpreter: {input: "plot()", logs: "done", image: true}
    reply: "Here is the chart."
  - when: {contains: "search"}
    file_search: true
    reply: "Found it."
  - when: {contains: "slow"}
    delay_ms: 3000
    reply: "finally"
default:
  reply: "[scripted] default"
"""

HANDLERS = '''
"""Handlers for the run tests."""
import json

CALLS = []


def get_weather(city: str) -> str:
    """Weather for a city."""
    CALLS.append(city)
    return json.dumps({"city": city, "temp": len(city)})


def explode(reason: str) -> str:
    """Always fails."""
    raise RuntimeError(f"handler exploded: {reason}")
'''


def base_files() -> dict[str, str]:
    """orch.yml, two assistants, handlers and the script."""
    return {
        "orch.yml": """
            project: runtest
            targets:
              embedded: {kind: engine, model: scripted, script: script.yml}
        """,
        "script.yml": SCRIPT,
        "handlers.py": HANDLERS,
        "assistants/helper.yml": """
            name: helper
            model: gpt-4o
            instructions: You help.
            tools: [code_interpreter, file_search]
        """,
        "assistants/tools-bot.yml": """
            name: tools-bot
            model: gpt-4o
            tools:
              - function: {name: get_weather, handler: "handlers:get_weather"}
              - function: {name: explode, handler: "handlers:explode", timeout: 5s}
        """,
    }


@pytest.fixture
def project(make_project):
    """A project directory (cwd) with the base files; call it with more files to add them."""
    root = make_project(base_files())

    def add(files: dict[str, str | bytes] | None = None) -> Path:
        return make_project(files or {})

    add.root = root
    return add


@pytest.fixture
def invoke():
    """Run the CLI in-process; returns the click Result."""

    def run(*args: str):
        return CliRunner().invoke(main, list(args), catch_exceptions=False)

    return run


@pytest.fixture
def results():
    """Records of the newest run's results.jsonl under a project root."""

    def read(root: Path) -> list[dict]:
        runs = sorted((root / ".orch" / "runs").iterdir())
        lines = (runs[-1] / "results.jsonl").read_text().splitlines()
        return [json.loads(line) for line in lines]

    return read


@pytest.fixture
def root(make_project) -> Path:
    """A project with one assistant (its replies come from the engine's script)."""
    return make_project(
        {
            "orch.yml": "project: resilience\n",
            "assistants/echo.yml": "name: echo\nmodel: gpt-4o\ninstructions: Repeat the user.\n",
        }
    )


@pytest.fixture
def engines(tmp_path: Path) -> Iterator[Engines]:
    """Start engines on ``tmp_path/engine.db``; stopped at the end of the test."""
    pool = Engines(tmp_path / "engine.db")
    yield pool
    pool.stop()


@pytest.fixture
def quiet_deprecations():
    """The SDK's Assistants deprecation notice is no news here."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield
