"""Unit tests of the config layer: documents, interpolation, the model and its fingerprints."""

from __future__ import annotations

import textwrap
from pathlib import Path
from typing import Literal

import pytest

from orch.errors import ConfigError, Problem
from orch.project.documents import format_path, load_document
from orch.project.handlers import (
    HandlerError,
    check_handler,
    describe,
    resolve_handler,
    schema_from_signature,
)
from orch.project.loading import load_project, load_script
from orch.project.model import EMBEDDED, Assistant, ItemSource, LocalFile, Tool, parse_duration

TUTOR = """\
    name: tutor
    model: gpt-4o
    instructions: !file prompts/tutor.md
    temperature: 0.4
    tools:
      - code_interpreter
      - {file_search: {max_num_results: 5}}
      - function: {name: get_weather, handler: "helpers:get_weather"}
    files:
      file_search: [docs/guide.txt]
    metadata: {owner: team-a, tier: gold}
    """
HELPERS = '''\
    def get_weather(city: str, unit: str = "C", days: int | None = None) -> str:
        """Current weather for a city.

        More detail that is not part of the description.
        """
        return f"sunny in {city}"
    '''


def load(environ: dict[str, str] | None = None):
    return load_project(Path.cwd(), environ=environ or {})


def problems_of(environ: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(environ)
    return [str(p) for p in info.value.problems]


@pytest.fixture
def tutor_project(make_project):
    return make_project(
        {
            "assistants/tutor.yml": TUTOR,
            "assistants/prompts/tutor.md": "You are a tutor.\n",
            "helpers.py": HELPERS,
            "docs/guide.txt": "guide v1\n",
        }
    )


# --- documents ------------------------------------------------------------------------------


def test_document_records_the_line_of_every_value(tmp_path):
    path = tmp_path / "a.yml"
    path.write_text("name: a\ntools:\n  - x\n  - function:\n      name: f\n")
    doc = load_document(path, "a.yml")
    assert doc.problems == []
    assert doc.data == {"name": "a", "tools": ["x", {"function": {"name": "f"}}]}
    assert doc.line(("name",)) == 1
    assert doc.line(("tools", 0)) == 3
    assert doc.line(("tools", 1, "function", "name")) == 5
    assert doc.line(("tools", 1, "function", "nope")) == 4  # nearest ancestor
    assert doc.problem(("tools", 1, "function", "name"), "bad") == Problem(
        "a.yml", 5, "tools[1].function.name", "bad"
    )


def test_block_scalar_text_starts_on_the_next_line(tmp_path):
    path = tmp_path / "a.yml"
    path.write_text("a: |\n  one\n  two\nb: plain\nc: >\n  folded\n")
    doc = load_document(path)
    assert doc.text_line(("a",)) == 2
    assert doc.text_line(("b",)) == 4
    assert doc.text_line(("c",)) == 6


def test_empty_document_is_an_empty_mapping(tmp_path):
    path = tmp_path / "a.yml"
    path.write_text("# nothing here\n")
    doc = load_document(path)
    assert doc.data == {} and doc.problems == []


def test_missing_document(tmp_path):
    doc = load_document(tmp_path / "nope.yml", "nope.yml")
    assert [str(p) for p in doc.problems] == ["nope.yml: file not found"]


@pytest.mark.parametrize(
    "text, line, field, message",
    [
        ("a: 1\na: 2\n", 2, "a", "duplicate key 'a' (first defined on line 1)"),
        ("x:\n  y: 1\n  z: 2\n  y: 3\n", 4, "x.y", "duplicate key 'y' (first defined on line 2)"),
        ("l:\n  - {k: 1, k: 2}\n", 2, "l[0].k", "duplicate key 'k' (first defined on line 2)"),
    ],
)
def test_duplicate_keys_are_problems(tmp_path, text, line, field, message):
    path = tmp_path / "a.yml"
    path.write_text(text)
    doc = load_document(path, "a.yml")
    assert doc.problems == [Problem("a.yml", line, field, message)]


def test_first_of_duplicate_keys_is_kept(tmp_path):
    path = tmp_path / "a.yml"
    path.write_text("a: 1\na: 2\n")
    assert load_document(path).data == {"a": 1}


def test_yaml_syntax_error_has_a_line(tmp_path):
    path = tmp_path / "a.yml"
    path.write_text("a: 1\nb: [1, 2\nc: 3\n")
    doc = load_document(path, "a.yml")
    assert doc.data is None
    (problem,) = doc.problems
    assert problem.line == 3 and problem.message.startswith("YAML syntax error")


@pytest.mark.parametrize(
    "text",
    [
        "a: !!python/object/apply:os.system ['true']\n",
        "a: !!python/name:os.system\n",
        "a: !custom 1\n",
    ],
)
def test_other_tags_are_refused(tmp_path, text):
    path = tmp_path / "a.yml"
    path.write_text(text)
    doc = load_document(path, "a.yml")
    (problem,) = doc.problems
    assert problem.field == "a" and "unsupported YAML tag" in problem.message


def test_file_include_is_relative_to_the_including_file(tmp_path):
    (tmp_path / "sub" / "prompts").mkdir(parents=True)
    (tmp_path / "sub" / "prompts" / "p.md").write_text("included {{ x }}\n")
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "p.md").write_text("wrong file\n")
    path = tmp_path / "sub" / "a.yml"
    path.write_text("instructions: !file prompts/p.md\nlist:\n  - !file ../prompts/p.md\n")
    doc = load_document(path)
    assert doc.problems == []
    assert doc.data == {"instructions": "included {{ x }}\n", "list": ["wrong file\n"]}
    assert doc.includes[("instructions",)] == (tmp_path / "sub" / "prompts" / "p.md").resolve()


def test_file_include_missing(tmp_path):
    path = tmp_path / "a.yml"
    path.write_text("name: a\ninstructions: !file nope.md\n")
    doc = load_document(path, "a.yml")
    (problem,) = doc.problems
    assert (problem.line, problem.field) == (2, "instructions")
    assert problem.message.startswith("!file nope.md: file not found")


# --- ${VAR} interpolation -------------------------------------------------------------------


def interpolated(tmp_path, text: str, environ: dict[str, str]):
    path = tmp_path / "a.yml"
    path.write_text(text)
    return load_document(path, "a.yml", lambda p: p[:1] == ("vars",), environ)


def test_env_variables_are_expanded_where_allowed(tmp_path):
    doc = interpolated(
        tmp_path,
        (
            "vars:\n"
            "  url: ${HOST}/v1\n"
            "  region: ${REGION:-eu}\n"
            "  empty: ${EMPTY:-}\n"
            "  literal: $${HOST}\n"
            "  number: 3\n"
            "prompt: ${HOST}\n"
        ),
        {"HOST": "http://h"},
    )
    assert doc.problems == []
    assert doc.data["vars"] == {
        "url": "http://h/v1",
        "region": "eu",
        "empty": "",
        "literal": "${HOST}",
        "number": 3,
    }
    assert doc.data["prompt"] == "${HOST}"  # not an interpolated field: left for the user


def test_set_variable_wins_over_default(tmp_path):
    doc = interpolated(tmp_path, "vars: {a: '${A:-default}'}\n", {"A": "set"})
    assert doc.data["vars"]["a"] == "set"


def test_missing_env_variable_is_a_located_problem(tmp_path):
    doc = interpolated(tmp_path, "vars:\n  a: x\n  b: ${NOPE}\n", {})
    assert [str(p) for p in doc.problems] == [
        "a.yml:3: vars.b: environment variable NOPE is not set "
        "(write ${NOPE:-default} for a default)"
    ]


def test_dotenv_in_project_root_supplies_unset_variables(make_project):
    make_project(
        {
            ".env": "OWNER=from-dotenv\nTIER=from-dotenv\n",
            "orch.yml": "project: ${PROJECT:-fallback}\n",
            "assistants/a.yml": (
                "name: a\nmodel: m\nmetadata: {owner: '${OWNER}', tier: '${TIER}'}\n"
            ),
        }
    )
    project = load({"TIER": "from-environment"})
    assert project.name == "fallback"
    assert dict(project.assistant("a").metadata) == {
        "owner": "from-dotenv",
        "tier": "from-environment",
    }


def test_env_is_not_expanded_in_instructions(make_project):
    make_project({"assistants/a.yml": "name: a\nmodel: m\ninstructions: cost is ${PRICE}\n"})
    assert load().assistant("a").instructions == "cost is ${PRICE}"


def test_missing_env_in_orch_yml(make_project):
    make_project({"orch.yml": "project: demo\ntarget: ${ORCH_TEST_TARGET}\n"})
    assert problems_of() == [
        "orch.yml:2: target: environment variable ORCH_TEST_TARGET is not set "
        "(write ${ORCH_TEST_TARGET:-default} for a default)"
    ]


# --- the loaded model -----------------------------------------------------------------------


def test_assistant_is_built_from_yaml(tutor_project):
    project = load()
    tutor = project.assistant("tutor")
    assert isinstance(tutor, Assistant)
    assert tutor.source == "assistants/tutor.yml"
    assert tutor.instructions == "You are a tutor.\n"
    assert tutor.temperature == 0.4
    assert tutor.tools[0] == Tool(type="code_interpreter")
    assert tutor.tools[1] == Tool(type="file_search", options=(("max_num_results", 5),))
    function = tutor.function("get_weather")
    assert function.handler == "helpers:get_weather"
    assert function.description == "Current weather for a city."
    assert function.parameters == {
        "type": "object",
        "properties": {
            "city": {"type": "string"},
            "unit": {"type": "string", "default": "C"},
            "days": {"type": "integer"},
        },
        "required": ["city"],
    }
    (guide,) = tutor.files_for("file_search")
    assert guide == LocalFile.from_path(project.root, "docs/guide.txt")
    assert guide.size == len("guide v1\n")
    assert tutor.files_for("code_interpreter") == ()
    assert dict(tutor.metadata) == {"owner": "team-a", "tier": "gold"}


def test_given_parameters_win_over_the_signature(make_project):
    make_project(
        {
            "helpers.py": HELPERS,
            "assistants/a.yml": """\
            name: a
            model: m
            tools:
              - function:
                  name: get_weather
                  description: Given.
                  handler: helpers:get_weather
                  parameters: {type: object, properties: {q: {type: string}}}
            """,
        }
    )
    function = load().assistant("a").function("get_weather")
    assert function.description == "Given."
    assert function.parameters == {"type": "object", "properties": {"q": {"type": "string"}}}


def test_instructions_render_vars(make_project):
    make_project(
        {
            "orch.yml": "vars: {subject: maths, level: easy}\n",
            "assistants/a.yml": "name: a\nmodel: m\nvars: {level: hard}\n"
            "instructions: '{{ subject }} at {{ level }} level'\n",
        }
    )
    assert load().assistant("a").instructions == "maths at hard level"


def test_pipeline_defaults_and_items(make_project):
    make_project(
        {
            "assistants/a.yml": "name: a\nmodel: m\n",
            "pipelines/p.yml": "name: p\nassistant: a\nsteps:\n  - prompt: hi\n  - prompt: again\n",
            "pipelines/q.yml": """\
            name: q
            assistant: a
            items: {csv: rows.csv}
            timeout: 2m
            concurrency: 8
            steps:
              - {id: first, prompt: hi, timeout: 500ms}
            """,
            "rows.csv": "name\nada\n",
        }
    )
    project = load()
    p = project.pipeline("p")
    assert [s.id for s in p.steps] == ["step1", "step2"]
    assert p.items == ItemSource("default")
    assert (p.concurrency, p.timeout, p.retries, p.repeat, p.stream) == (4, 300.0, 2, 1, True)
    q = project.pipeline("q")
    assert q.items == ItemSource("csv", "rows.csv")
    assert (q.timeout, q.concurrency, q.steps[0].timeout) == (120.0, 8, 0.5)


def test_default_project_name_and_target(make_project):
    root = make_project({})
    project = load()
    assert project.name == root.name
    assert project.target == "embedded"
    assert project.config_file is None
    assert project.summary() == (
        f"project {root.name!r}: 0 assistants, 0 pipelines, target 'embedded' — valid"
    )


def test_project_is_found_from_a_subdirectory(make_project):
    root = make_project({"orch.yml": "project: up\n", "assistants/a.yml": "name: a\nmodel: m\n"})
    project = load_project(root / "assistants", environ={})
    assert project.name == "up" and project.root == root.resolve()


# --- targets --------------------------------------------------------------------------------

TARGETS = """\
    project: demo
    target: azure
    targets:
      azure:
        kind: assistants
        base_url: https://example.invalid/openai
        api_key_env: AZURE_KEY
        timeout: 30s
      openai: {kind: responses}
    """


def test_get_target(make_project):
    make_project({"orch.yml": TARGETS})
    project = load()
    azure = project.get_target()
    assert azure.name == "azure" and azure.kind == "assistants"
    assert azure.base_url == "https://example.invalid/openai"
    assert azure.api_key_env == "AZURE_KEY"
    assert azure.option("timeout") == "30s"
    assert project.get_target("openai").api_key_env == "OPENAI_API_KEY"
    assert project.get_target("embedded") == EMBEDDED
    assert project.get_target("nope") is None


def test_orch_target_env_overrides_the_config(make_project):
    make_project({"orch.yml": TARGETS})
    assert load({"ORCH_TARGET": "openai"}).get_target().name == "openai"


def test_unknown_orch_target_env_is_a_problem(make_project):
    make_project({"orch.yml": TARGETS})
    assert problems_of({"ORCH_TARGET": "prod"}) == [
        "orch.yml:2: target: unknown target 'prod' (defined: embedded, azure, openai)"
    ]


def test_script_is_validated(make_project):
    root = make_project({"s.yml": "rules:\n  - when: {regex: '('}\n    reply: x\n"})
    with pytest.raises(ConfigError) as info:
        load_script(root / "s.yml")
    (problem,) = info.value.problems
    assert (problem.line, problem.field) == (2, "rules[0].when.regex")
    assert "invalid regular expression" in problem.message


# --- fingerprints ---------------------------------------------------------------------------


def fingerprint(name: str = "tutor") -> str:
    return load().assistant(name).fingerprint()


def test_fingerprint_is_stable(tutor_project):
    first = fingerprint()
    assert fingerprint() == first
    assert len(first) == 64


def test_fingerprint_ignores_key_order_and_formatting(tutor_project, make_project):
    before = fingerprint()
    make_project(
        {
            "assistants/tutor.yml": """\
        # same assistant, written differently
        metadata:
          tier: gold
          owner: team-a
        files: {file_search: [docs/guide.txt]}
        tools:
          - code_interpreter
          - file_search: {max_num_results: 5}
          - function:
              handler: "helpers:get_weather"
              name: get_weather
        temperature: 0.40
        instructions: !file prompts/tutor.md
        model: gpt-4o
        name: tutor
        """
        }
    )
    assert fingerprint() == before


def test_fingerprint_changes_with_attached_file_bytes(tutor_project, make_project):
    before = fingerprint()
    make_project({"docs/guide.txt": "guide v2\n"})
    after = fingerprint()
    assert after != before
    make_project({"docs/guide.txt": "guide v1\n"})
    assert fingerprint() == before


def test_fingerprint_changes_with_included_instructions(tutor_project, make_project):
    before = fingerprint()
    make_project({"assistants/prompts/tutor.md": "You are a strict tutor.\n"})
    assert fingerprint() != before


@pytest.mark.parametrize(
    "change",
    [
        ("temperature: 0.4", "temperature: 0.5"),
        ("model: gpt-4o", "model: gpt-4o-mini"),
        ("tier: gold", "tier: silver"),
        ("  - code_interpreter\n", ""),
        ('"helpers:get_weather"', '"helpers:get_weather", description: other'),
    ],
)
def test_fingerprint_changes_with_any_remote_field(tutor_project, make_project, change):
    before = fingerprint()
    make_project({"assistants/tutor.yml": textwrap.dedent(TUTOR).replace(*change)})
    assert fingerprint() != before


def test_fingerprint_does_not_depend_on_the_source_file(make_project):
    make_project({"assistants/a.yml": "name: a\nmodel: m\n"})
    before = fingerprint("a")
    Path("assistants/a.yml").rename("assistants/renamed.yml")
    assert fingerprint("a") == before


def test_pipeline_fingerprint(make_project):
    make_project(
        {
            "assistants/a.yml": "name: a\nmodel: m\n",
            "pipelines/p.yml": "name: p\nassistant: a\nsteps:\n  - prompt: hi\n",
        }
    )
    before = load().pipeline("p").fingerprint()
    assert load().pipeline("p").fingerprint() == before
    make_project({"pipelines/p.yml": "name: p\nassistant: a\nsteps:\n  - prompt: hello\n"})
    assert load().pipeline("p").fingerprint() != before


# --- function tools -------------------------------------------------------------------------


def test_schema_from_signature_types():
    def handler(
        text: str,
        count: int,
        ratio: float = 0.5,
        flag: bool = False,
        tags: list[str] | None = None,
        pairs: tuple[int, ...] = (),
        options: dict[str, int] | None = None,
        mode: Literal["a", "b"] = "a",
        either: int | str = 1,
        anything=None,
        *args,
        **kwargs,
    ) -> str:
        return text

    assert schema_from_signature(handler) == {
        "type": "object",
        "properties": {
            "text": {"type": "string"},
            "count": {"type": "integer"},
            "ratio": {"type": "number", "default": 0.5},
            "flag": {"type": "boolean", "default": False},
            "tags": {"type": "array", "items": {"type": "string"}},
            "pairs": {"type": "array", "items": {"type": "integer"}},
            "options": {"type": "object"},
            "mode": {"enum": ["a", "b"], "default": "a"},
            "either": {"anyOf": [{"type": "integer"}, {"type": "string"}], "default": 1},
            "anything": {},
        },
        "required": ["text", "count"],
    }


def test_schema_from_signature_without_parameters():
    def ping() -> str:
        return "pong"

    assert schema_from_signature(ping) == {"type": "object", "properties": {}}


def test_describe_uses_the_first_docstring_paragraph():
    def f():
        """Look up
        the weather.

        Details.
        """

    def g():
        pass

    assert describe(f) == "Look up the weather."
    assert describe(g) is None


def test_resolve_handler(make_project):
    root = make_project({"helpers.py": HELPERS, "broken.py": "raise ValueError('no')\n"})
    assert resolve_handler("helpers:get_weather", root)(city="Oslo") == "sunny in Oslo"
    with pytest.raises(HandlerError, match="must look like 'module:function'"):
        resolve_handler("helpers.get_weather", root)
    with pytest.raises(HandlerError, match="cannot import module 'nope'"):
        resolve_handler("nope:f", root)
    with pytest.raises(HandlerError, match="has no attribute 'missing'"):
        resolve_handler("helpers:missing", root)
    with pytest.raises(HandlerError, match="importing 'broken' failed: ValueError: no"):
        resolve_handler("broken:f", root)
    with pytest.raises(HandlerError, match="is not callable"):
        resolve_handler("helpers:__name__", root)


def test_a_handler_must_be_a_module_of_the_project(make_project, tmp_path):
    root = make_project(
        {
            "os.py": "def system(command):\n    return 'shadow'\n",
            "pkg/__init__.py": "",
            "pkg/tools.py": "def ok():\n    return 'ok'\n",
        }
    )
    (tmp_path / "elsewhere.py").write_text("def f():\n    return 'outside'\n")
    (root / "linked.py").symlink_to(tmp_path / "elsewhere.py")
    assert resolve_handler("pkg.tools:ok", root)() == "ok"
    assert resolve_handler("orch.examples.weather:get_forecast", root)  # what orch ships
    for spec in ("subprocess:getoutput", "json:loads", "orch.results.files:write_atomic"):
        with pytest.raises(HandlerError, match="is not part of the project"):
            resolve_handler(spec, root)
    # os.py is the project's, but the name `os` is bound to the standard library's module
    with pytest.raises(HandlerError, match=r"module 'os' resolves to .*, outside the project"):
        resolve_handler("os:system", root)
    with pytest.raises(HandlerError, match="no linked.py in the project"):
        resolve_handler("linked:f", root)  # a link that leads out of the project


ASSISTANT_WITH_MARKER = "name: a\nmodel: m\ntools: [function: {name: f, handler: marker:f}]\n"


def test_checking_a_handler_imports_nothing(make_project):
    root = make_project(
        {
            "marker.py": "open('imported', 'w').close()\n\ndef f(city: str):\n    pass\n",
            "assistants/a.yml": ASSISTANT_WITH_MARKER,
        }
    )
    assert check_handler("marker:f", root) is None
    assert check_handler("os:system", root).startswith("module 'os' is not part of the project")
    unimported = load_project(root, import_handlers=False)
    assert not (root / "imported").exists()
    assert unimported.assistant("a").tools[0].function.parameters is None  # not derived
    imported = load_project(root)
    assert (root / "imported").exists()
    assert imported.assistant("a").tools[0].function.parameters["required"] == ["city"]


# --- small pieces ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value, seconds",
    [
        (None, None),
        (3, 3.0),
        (2.5, 2.5),
        ("500ms", 0.5),
        ("30s", 30.0),
        ("5m", 300.0),
        ("1h", 3600.0),
        (" 1.5 m ", 90.0),
    ],
)
def test_parse_duration(value, seconds):
    assert parse_duration(value) == seconds


def test_parse_duration_default():
    assert parse_duration(None, 60.0) == 60.0


@pytest.mark.parametrize("value", ["5 minutes", "5", "m", "-1s", "1d", ""])
def test_parse_duration_rejects(value):
    with pytest.raises(ValueError, match="not a duration"):
        parse_duration(value)


def test_format_path():
    assert format_path(()) == ""
    assert format_path(("tools", 1, "function", "name")) == "tools[1].function.name"
    assert format_path(("steps", 0, "expect", 2)) == "steps[0].expect[2]"


def test_problem_text():
    assert str(Problem("a.yml", 4, "tools[1]", "bad")) == "a.yml:4: tools[1]: bad"
    assert str(Problem("a.yml", 4, "", "bad")) == "a.yml:4: bad"
    assert str(Problem("a.yml", 0, "", "file not found")) == "a.yml: file not found"


def test_config_error_sorts_and_dedupes_problems():
    b = Problem("b.yml", 1, "", "x")
    a2 = Problem("a.yml", 2, "f", "y")
    a1 = Problem("a.yml", 1, "f", "z")
    error = ConfigError([b, a2, a1, b])
    assert error.problems == [a1, a2, b]
    assert str(error) == "a.yml:1: f: z\na.yml:2: f: y\nb.yml:1: x"
