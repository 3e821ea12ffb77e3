"""`orch validate` catches what would otherwise fail only after a run has spent model calls.

Each case is the valid base project of test_validate plus one pipeline whose mistake a JSON
Schema cannot see: a template naming an item field the items lack, a step that has not run, an
undeclared var, an invalid JSONPath, a `tool_called` tool the assistant lacks, an unknown
built-in report, a scalar inline item. Each is one ``file:line: field: message`` line; `orch run`
refuses the same pipeline before it calls anything; `--format github` and `--json` carry them.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from orch.cli import main
from tests.project.test_validate import BASE, PIPELINE, Case, problem_lines, validate


def bad(*lines: str) -> dict[str, str]:
    """A pipeline file ``pipelines/bad.yml``: name and assistant (lines 1-2), then ``lines``."""
    return {"pipelines/bad.yml": PIPELINE + "".join(f"{line}\n" for line in lines)}


JSONL = {"items/rows.jsonl": '{"question": "2+2?", "expected": "4"}\n{"question": "1+1?"}\n'}

CASES = [
    Case(
        "inline-item-field-missing",
        bad("items: [{q: a}]", "steps:", '  - prompt: "{{ item.question }}"'),
        "pipelines/bad.yml:5",
        "steps[0].prompt",
        "template error: item has no field 'question' (the items have: q)",
    ),
    Case(
        "csv-item-field-typo",
        bad("items: {csv: items/rows.csv}", "steps:", '  - prompt: "{{ item.nmae }}"'),
        "pipelines/bad.yml:5",
        "steps[0].prompt",
        "item has no field 'nmae' (did you mean 'name'?) (items/rows.csv's header has: name, "
        "score)",
    ),
    Case(
        "jsonl-field-not-on-every-line",
        {
            **JSONL,
            **bad(
                "items: {jsonl: items/rows.jsonl}",
                "steps:",
                '  - prompt: "{{ item.question }}"',
                '    expect: [{contains: "{{ item.expected }}"}]',
            ),
        },
        "pipelines/bad.yml:6",
        "steps[0].expect[0].contains",
        "item has no field 'expected'",
    ),
    Case(
        "item-index-is-orch-index",
        bad("items: [{q: a}]", "steps:", '  - prompt: "{{ item.index }} {{ item.q }}"'),
        "pipelines/bad.yml:5",
        "steps[0].prompt",
        "item has no field 'index': orch's own index is orch.index",
    ),
    Case(
        "no-items-no-fields",
        bad("steps:", '  - prompt: "{{ item.question }}"'),
        "pipelines/bad.yml:4",
        "steps[0].prompt",
        "item has no field 'question' (there are no items: no fields)",
    ),
    Case(
        "unknown-step",
        bad("steps:", "  - {id: ask, prompt: hi}", '  - prompt: "{{ steps.aks.output }}"'),
        "pipelines/bad.yml:5",
        "steps[1].prompt",
        "unknown step 'aks' (did you mean 'ask'?)",
    ),
    Case(
        "step-not-run-yet",
        bad(
            "steps:",
            '  - {id: ask, prompt: "{{ steps.check.text }}"}',
            "  - {id: check, prompt: hi}",
        ),
        "pipelines/bad.yml:4",
        "steps[0].prompt",
        "steps.check has not run yet when this renders",
    ),
    Case(
        "step-field-typo",
        bad("steps:", "  - {id: ask, prompt: hi}", '  - prompt: "{{ steps.ask.outptu }}"'),
        "pipelines/bad.yml:5",
        "steps[1].prompt",
        "steps.ask has no 'outptu' (did you mean 'output'?)",
    ),
    Case(
        "undeclared-var",
        bad("vars: {tone: dry}", "steps:", '  - prompt: "{{ vars.tnoe }}"'),
        "pipelines/bad.yml:5",
        "steps[0].prompt",
        "unknown variable vars.tnoe (did you mean 'tone'?)",
    ),
    Case(
        "bare-name-is-an-item-field",
        bad("items: [{question: a}]", "steps:", '  - prompt: "{{ question }}"'),
        "pipelines/bad.yml:5",
        "steps[0].prompt",
        "unknown variable 'question' (did you mean 'item.question'?)",
    ),
    Case(
        "assertion-template-syntax",
        bad("steps:", "  - prompt: hi", '    expect: [{contains: "{{ item.name }"}]'),
        "pipelines/bad.yml:5",
        "steps[0].expect[0].contains",
        "template error: unexpected '}'",
    ),
    Case(
        "assertion-template-typo-in-a-list",
        bad(
            "items: [{a: 1}]",
            "steps:",
            "  - prompt: hi",
            '    expect: [{contains_any: [x, "{{ item.b }}"]}]',
        ),
        "pipelines/bad.yml:6",
        "steps[0].expect[0].contains_any[1]",
        "item has no field 'b'",
    ),
    Case(
        "invalid-jsonpath",
        bad("steps:", "  - prompt: hi", "    expect: [{jsonpath: {path: '$..city', equals: x}}]"),
        "pipelines/bad.yml:5",
        "steps[0].expect[0].jsonpath.path",
        "unsupported JSONPath '$..city'",
    ),
    Case(
        "jsonpath-filter-in-range",
        bad("steps:", "  - prompt: hi", "    expect: [{range: {path: '$.rows[?(@.n)]', min: 1}}]"),
        "pipelines/bad.yml:5",
        "steps[0].expect[0].range.path",
        "unsupported JSONPath '$.rows[?(@.n)]' at '[?(@.n)]'",
    ),
    Case(
        "unknown-builtin-report",
        bad("steps: [{prompt: hi}]", "report:", "  - {template: 'builtin:pdf', output: out/r.pdf}"),
        "pipelines/bad.yml:5",
        "report[0].template",
        "unknown built-in report 'builtin:pdf' (builtin:html, builtin:json",
    ),
    Case(
        "tool-called-typo",
        bad("steps:", "  - prompt: hi", "    expect: [{tool_called: get_wether}]"),
        "pipelines/bad.yml:5",
        "steps[0].expect[0].tool_called",
        "assistant 'tutor' has no tool 'get_wether' (did you mean 'get_weather'?",
    ),
    Case(
        "tool-called-name-in-a-mapping-on-the-step-assistant",
        bad(
            "steps:",
            "  - prompt: hi",
            "    assistant: grader",
            "    expect: [{tool_called: {name: get_weather}}]",
        ),
        "pipelines/bad.yml:6",
        "steps[0].expect[0].tool_called.name",
        "assistant 'grader' has no tool 'get_weather' (its tools: none)",
    ),
    Case(
        "scalar-inline-item",
        bad("items:", "  - {q: a}", "  - just text", "steps: [{prompt: '{{ item.q }}'}]"),
        "pipelines/bad.yml:5",
        "items[1]",
        "an inline item must be a mapping of fields, such as {question: ..., expected: ...}; "
        'got "just text"',
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_run_time_mistake_is_a_validate_error(case: Case, make_project):
    make_project(BASE)
    make_project(case.files)

    result = validate()

    assert result.exit_code == 2, result.output
    lines = problem_lines(result.stderr)
    prefix = f"{case.where}: {case.field}: "
    assert len(lines) == 1, "expected one line for one problem:\n" + result.stderr
    assert lines[0].startswith(prefix), result.stderr
    assert case.phrase in lines[0][len(prefix) :], result.stderr


OPTIONAL = [
    "{{ item.question | default('') }}",
    "{% if item.question is defined %}{{ item.question }}{% endif %}",
    "{{ item.get('question', '') }}",
    "{{ orch.index }} {{ orch.repeat }} {{ orch.key }} {{ orch.run_id }} {{ run.id }}",
    "{% for k, v in item.items() %}{{ k }}={{ v }}{% endfor %}",
    "{% set q = item.q %}{{ q }} {{ steps.ask.output.answer.deep }} {{ steps['ask'].text }}",
]


@pytest.mark.parametrize("prompt", OPTIONAL)
def test_what_will_be_there_or_is_guarded_is_valid(prompt: str, make_project):
    make_project(BASE)
    make_project(
        bad(
            "items: [{q: a}]",
            "steps:",
            "  - {id: ask, prompt: hi}",
            f"  - prompt: {json.dumps(prompt)}",
            f"    expect: [{{contains: {json.dumps(prompt)}}}, {{tool_called: file_search}}]",
        )
    )

    result = validate()

    assert result.exit_code == 0, result.output


def test_run_refuses_before_calling_anything(make_project):
    make_project(BASE)
    make_project(bad("items: [{q: a}]", "steps:", '  - prompt: "{{ item.question }}"'))

    result = CliRunner().invoke(main, ["run", "bad"])

    assert result.exit_code == 2, result.output
    assert "pipelines/bad.yml:5: steps[0].prompt: template error: item has no field" in (
        result.stderr
    )
    assert not (make_project() / ".orch" / "runs").exists()  # no run was started


def test_github_format_annotates_each_problem(make_project):
    make_project(BASE)
    make_project(bad("items: [{q: a}]", "steps:", '  - prompt: "{{ item.question }}"'))

    result = CliRunner().invoke(main, ["validate", "--format", "github"])

    assert result.exit_code == 2
    assert result.stdout.splitlines() == [
        "::error file=pipelines/bad.yml,line=5,title=orch validate::steps[0].prompt: template "
        "error: item has no field 'question' (the items have: q)"
    ]


def test_github_format_escapes_what_would_end_a_command(make_project):
    make_project(BASE)
    make_project(
        {"pipelines/bad,one.yml": "name: bad\nassistant: tutor\nsteps: [{prompt: '{{ x }}'}]\n"}
    )

    result = CliRunner().invoke(main, ["validate", "--format", "github"])

    assert result.stdout.startswith("::error file=pipelines/bad%2Cone.yml,line=3,title=")


def test_json_format_lists_problems_and_says_valid(make_project):
    make_project(BASE)
    runner = CliRunner()
    ok = runner.invoke(main, ["validate", "--json"])
    assert ok.exit_code == 0
    assert json.loads(ok.stdout) == {
        "valid": True,
        "summary": "project 'demo': 2 assistants, 1 pipeline, target 'embedded' — valid",
        "problems": [],
    }
    make_project(bad("steps:", "  - prompt: hi", "    expect: [{tool_called: lookupp}]"))

    result = runner.invoke(main, ["validate", "--format", "json"])

    assert result.exit_code == 2
    assert json.loads(result.stdout) == {
        "valid": False,
        "summary": None,
        "problems": [
            {
                "file": "pipelines/bad.yml",
                "line": 5,
                "field": "steps[0].expect[0].tool_called",
                "message": "assistant 'tutor' has no tool 'lookupp' (its tools: code_interpreter, "
                "file_search, get_weather)",
            }
        ],
    }
