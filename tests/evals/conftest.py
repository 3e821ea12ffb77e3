"""A throwaway evaluation project, run end to end through the CLI on the embedded engine.

The project is built once per module (runs are the slow part); each pipeline runs at most once
per module through :func:`runs` and later tests reuse the recorded run.
"""

from __future__ import annotations

import json
import sys
import textwrap
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from orch.cli import main

HERE = Path(__file__).parent

FILES: dict[str, str] = {
    "orch.yml": """
        project: evals-test
        target: embedded
        targets:
          embedded: {kind: engine, model: scripted, script: script.yml}
        grader: grader
        prices:
          gpt-test: {input: 1000, output: 2000}
    """,
    "assistants/bot.yml": """
        name: bot
        model: gpt-test
        instructions: Answer briefly.
        tools:
          - function: {name: get_weather, handler: "handlers:get_weather"}
          - function: {name: get_forecast, handler: "handlers:get_forecast"}
    """,
    "assistants/grader.yml": """
        name: grader
        model: gpt-grader
        instructions: You grade replies against a rubric and answer JSON.
    """,
    "handlers.py": '''
        def get_weather(city: str, unit: str = "celsius") -> dict:
            """Current weather for a city."""
            return {"city": city, "temp": 21, "unit": unit, "sky": "sunny"}

        def get_forecast(city: str) -> dict:
            """Tomorrow's weather for a city (declared so `tool_called: get_forecast` validates)."""
            return {"city": city, "sky": "rain"}
    ''',
    "checks.py": '''
        def friendly(output, context):
            """A scored check: 0.9 when the reply greets, with the item visible in context."""
            ok = "Bonjour" in output and context["orch"]["index"] == 0
            return {"pass": ok, "score": 0.9 if ok else 0.1, "reason": "greets" if ok else "no"}

        def short(output):
            return len(output) < 200

        def grumpy(output, context):
            return 0.2
    ''',
    "schemas/answer.schema.json": """
        {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "answer",
         "type": "object", "required": ["city", "temp"],
         "properties": {"city": {"type": "string"}, "temp": {"type": "integer"}}}
    """,
    "schemas/strict.schema.json": """
        {"title": "strict answer", "type": "object", "required": ["humidity"]}
    """,
    "pipelines/all-pass.yml": """
        name: all-pass
        assistant: bot
        items: [{city: Paris, temp: 21}]
        default_expect:
          - max_latency: 60s
        steps:
          - id: weather
            prompt: "What is the weather in {{ item.city }}?"
            expect:
              - tool_called: get_weather
              - tool_called: {name: get_weather, arguments: {city: "{{ item.city }}"}}
              - contains: "Weather report"
              - icontains: "WEATHER"
              - not_contains: "error"
              - contains_any: ["hail", "sunny"]
              - contains_all: ["Weather", "21"]
              - regex: '"temp":\\s*21'
          - id: data
            prompt: "JSON please"
            expect:
              - json: true
              - json_schema: schemas/answer.schema.json
              - json_schema: {type: object, required: [tags]}
              - jsonpath: {path: $.city, equals: Paris}
              - jsonpath: {path: "$.tags[0]", equals: sunny}
              - jsonpath: {path: $.temp, equals: "{{ item.temp }}"}
              - jsonpath: {path: "$.tags[*]", contains: warm}
              - range: {path: $.temp, min: 0, max: 40}
              - equals: {city: Paris, temp: 21, tags: [sunny, warm]}
              - max_tokens: 15
          - id: number
            prompt: "number please"
            threshold: 0.5
            expect:
              - equals: "42"
              - range: {min: 40, max: 50}
              - {contains: "43", name: "a miss the threshold forgives", weight: 2}
          - id: greet
            prompt: "greet me"
            expect:
              - {python: "checks:friendly", threshold: 0.8}
              - python: "checks:short"
              - llm_rubric: "The reply is a friendly greeting."
              - llm_rubric: {rubric: "Mentions a city.", grader: grader}
              - {contains: "never there", weight: 0, name: informational}
        report:
          - {template: builtin:json, output: "out/{{ run.pipeline }}.json"}
    """,
    "pipelines/all-fail.yml": """
        name: all-fail
        assistant: bot
        items: [{city: Paris}]
        steps:
          - id: weather
            prompt: "What is the weather in {{ item.city }}?"
            expect:
              - tool_called: get_forecast
              - tool_called: {name: get_weather, arguments: {city: Tokyo}}
              - contains: "Snow"
              - icontains: "SNOWSTORM"
              - not_contains: "Weather"
              - contains_any: ["hail", "sleet"]
              - contains_all: ["Weather", "Snow"]
              - regex: '^\\d+$'
          - id: data
            prompt: "JSON please"
            expect:
              - json_schema: schemas/strict.schema.json
              - json_schema: {type: object, required: [humidity]}
              - jsonpath: {path: $.city, equals: Rome}
              - jsonpath: {path: $.missing}
              - range: {path: $.temp, max: 10}
              - equals: {city: Rome}
              - max_tokens: 5
          - id: rude
            prompt: "be rude"
            expect:
              - json: true
              - equals: "Hello"
              - python: "checks:grumpy"
              - llm_rubric: "The reply is a friendly greeting."
          - id: slow
            prompt: "dawdle"
            expect:
              - max_latency: 1ms
    """,
    "pipelines/rate-half.yml": """
        name: rate-half
        assistant: bot
        pass_rate: 0.5
        items: [{q: "greet me"}, {q: "be rude"}]
        steps:
          - {prompt: "{{ item.q }}", expect: [{contains: Bonjour}]}
    """,
    "pipelines/rate-full.yml": """
        name: rate-full
        assistant: bot
        items: [{q: "greet me"}, {q: "be rude"}]
        steps:
          - {prompt: "{{ item.q }}", expect: [{contains: Bonjour}]}
    """,
    "pipelines/repeat.yml": """
        name: repeat
        assistant: bot
        repeat: 3
        steps:
          - {prompt: "greet me", expect: [{contains: Bonjour}]}
        report:
          - {template: builtin:markdown, output: out/repeat.md}
    """,
    "pipelines/explode.yml": """
        name: explode
        assistant: bot
        retries: 0
        items: [{q: "greet me"}, {q: "be rude"}, {q: "explode"}]
        steps:
          - {prompt: "{{ item.q }}", expect: [{contains: Bonjour}]}
    """,
    "pipelines/timeout.yml": """
        name: timeout
        assistant: bot
        timeout: 200ms
        retries: 0
        steps:
          - {prompt: "hang", expect: [{contains: late}]}
    """,
    "pipelines/mixed.yml": """
        name: mixed
        assistant: bot
        retries: 0
        items: [{q: "greet me"}, {q: "be rude"}, {q: "explode"}]
        steps:
          - {id: first, prompt: "{{ item.q }}", expect: [{contains: Bonjour}]}
          - {id: second, prompt: "greet again", expect: [{icontains: bonjour}]}
        report:
          - {template: builtin:markdown, output: "out/{{ run.pipeline }}.md"}
          - {template: builtin:junit, output: out/mixed.junit.xml}
          - {template: builtin:json, output: out/mixed.json}
          - {template: builtin:html, output: out/mixed.html}
          - {template: reports/summary.md.j2, output: out/summary.md}
    """,
    "pipelines/mood.yml": """
        name: mood
        assistant: bot
        vars: {mood: "greet me"}
        items: [{n: 1}, {n: 2}]
        steps:
          - {id: talk, prompt: "{{ vars.mood }} ({{ item.n }})", expect: [{contains: Bonjour}]}
    """,
    "assistants/analyst.yml": """
        name: analyst
        model: gpt-test
        tools: [code_interpreter]
    """,
    "pipelines/chart.yml": """
        name: chart
        assistant: analyst
        steps:
          - {prompt: "plot the numbers", expect: [{tool_called: code_interpreter}]}
        report:
          - {template: builtin:html, output: out/chart.html}
    """,
    "reports/typo.md.j2": """
        # {{ run.pipeline }}

        pass rate: {{ run.pass_rat }}
    """,
    "pipelines/typo.yml": """
        name: typo
        assistant: bot
        steps:
          - {prompt: "greet me", expect: [{contains: Bonjour}]}
        report:
          - {template: builtin:markdown, output: out/typo-ok.md}
          - {template: reports/typo.md.j2, output: out/typo.md}
    """,
}


# files kept beside the tests (the user template is the README's example)
COPIED = {
    rel: (HERE / name).read_text(encoding="utf-8")
    for rel, name in {"script.yml": "script.yml", "reports/summary.md.j2": "summary.md.j2"}.items()
}


@dataclass
class Ran:
    """One CLI invocation."""

    exit_code: int
    stdout: str
    stderr: str

    @property
    def summary(self) -> dict:
        return json.loads(self.stdout)


Orch = Callable[..., Ran]


def invoke(*args: str) -> Ran:
    """``orch ARGS`` in-process; an exception a user would see as a traceback fails the test."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        result = CliRunner().invoke(main, list(args), catch_exceptions=True)
    exc = result.exception
    if exc is not None and not isinstance(exc, SystemExit):
        raise exc
    return Ran(result.exit_code, result.stdout, result.stderr)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """The evaluation project, current directory for the module's tests."""
    root = tmp_path_factory.mktemp("evals") / "project"
    files = {**FILES, **COPIED}
    for rel, text in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    saved_path, saved_modules = list(sys.path), set(sys.modules)
    with pytest.MonkeyPatch.context() as mp:
        for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ORCH_TARGET", "ORCH_RAISE_ERRORS"):
            mp.delenv(name, raising=False)
        mp.chdir(root)
        yield root
    sys.path[:] = saved_path
    for name in set(sys.modules) - saved_modules:
        if (getattr(sys.modules[name], "__file__", None) or "").startswith(str(root)):
            del sys.modules[name]


@pytest.fixture(scope="module")
def runs(project: Path) -> Callable[..., Ran]:
    """``runs("mixed")`` runs pipelines/mixed.yml once (``--json``) and caches the outcome."""
    cache: dict[tuple, Ran] = {}

    def run(pipeline: str, *args: str) -> Ran:
        key = (pipeline, *args)
        if key not in cache:
            cache[key] = invoke("run", f"pipelines/{pipeline}.yml", "--json", *args)
        return cache[key]

    return run


def results(project: Path, run_id: str) -> list[dict]:
    """The item records of a run, in key order."""
    lines = (project / ".orch" / "runs" / run_id / "results.jsonl").read_text().splitlines()
    records = {r["key"]: r for r in map(json.loads, lines)}
    return [records[k] for k in sorted(records)]


@pytest.fixture
def make_project_copy(project: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """A separate copy of the evaluation project with some files replaced (its own history).

    The original's handler modules are set aside meanwhile: orch refuses a module name already
    bound to another project's file, as the copy's ``handlers`` would otherwise be.
    """
    for name, module in list(sys.modules.items()):
        if (getattr(module, "__file__", None) or "").startswith(str(project)):
            monkeypatch.delitem(sys.modules, name)
    root = tmp_path / "copy"

    def make(files: dict[str, str]) -> Path:
        for rel, text in {**FILES, **COPIED, **files}.items():
            target = root / rel
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
        return root

    yield make
    for name, module in list(sys.modules.items()):
        if (getattr(module, "__file__", None) or "").startswith(str(root)):
            del sys.modules[name]
