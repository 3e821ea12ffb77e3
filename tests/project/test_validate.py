"""`orch validate` through the CLI: a good project, and a table of bad ones.

Every bad case is a valid base project plus one broken file. Each must exit 2, print exactly one
``file:line: field.path: message`` line for its one problem (plus the count line), and never a
traceback.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from orch.cli import main

BASE: dict[str, str | bytes] = {
    "orch.yml": """\
        project: demo
        target: embedded
        grader: grader
        targets:
          embedded: {kind: engine, model: scripted, script: scripts/quick.yml}
          azure:
            kind: assistants
            base_url: https://example.invalid/openai
            api_key_env: AZURE_OPENAI_API_KEY
        """,
    "scripts/quick.yml": """\
        rules:
          - when: {contains: hi}
            reply: hello
        default: {reply: ok}
        """,
    "assistants/tutor.yml": """\
        name: tutor
        model: gpt-4o
        instructions: !file ../prompts/tutor.md
        vars: {subject: maths}
        temperature: 0.4
        tools:
          - code_interpreter
          - file_search
          - function: {name: get_weather, handler: "helpers.weather:get_weather"}
        files:
          file_search: [docs/guide.txt]
        metadata: {owner: team-a}
        """,
    "assistants/grader.yml": """\
        name: grader
        model: gpt-4o-mini
        response_format:
          type: json_schema
          json_schema:
            name: verdict
            schema: {type: object, properties: {pass: {type: boolean}}}
        """,
    "pipelines/quick.yml": """\
        name: quick
        assistant: tutor
        items: {files: "data/*.txt"}
        concurrency: 2
        timeout: 30s
        retries: 1
        steps:
          - id: rate
            prompt: "Summarise {{ item.name }}."
            attachments: [{path: "{{ item.path }}", tools: [file_search]}]
            expect:
              - regex: '\\w+'
              - json_schema: schemas/answer.schema.json
              - llm_rubric: {rubric: "is polite", grader: grader}
          - prompt: "Explain in one sentence."
        """,
    "prompts/tutor.md": "You are a patient tutor for {{ subject }}.\n",
    "helpers/__init__.py": "",
    "helpers/weather.py": '''\
        def get_weather(city: str, unit: str = "C") -> str:
            """Current weather for a city."""
            return f"sunny in {city}"
        ''',
    "helpers/boom.py": 'raise RuntimeError("kaboom at import")\n',
    "data/a.txt": "first item\n",
    "docs/guide.txt": "a guide\n",
    "schemas/answer.schema.json": '{"type": "object", "required": ["total"]}\n',
    "items/rows.csv": "name,score\nada,3\n",
}

ASSISTANT = "name: bad\nmodel: gpt-4o\n"  # lines 1-2 of every bad assistant below
PIPELINE = "name: bad\nassistant: tutor\n"  # lines 1-2 of every bad pipeline below


def pipeline_with_step(*step_lines: str) -> str:
    """A pipeline whose only step starts on line 4 (`  - prompt: hi`); extra lines follow it."""
    return PIPELINE + "steps:\n  - prompt: hi\n" + "".join(f"    {s}\n" for s in step_lines)


def runner() -> CliRunner:
    return CliRunner()


def validate(*args: str):
    return runner().invoke(main, ["validate", *args], catch_exceptions=False)


def problem_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line and not line.startswith(("✗", "✓"))]


@dataclass
class Case:
    """One broken project: base + ``files``; the single expected problem line."""

    id: str
    files: dict[str, str]
    where: str  # "file:line"
    field: str  # "" when the problem has no field path
    phrase: str


CASES = [
    # --- YAML itself -------------------------------------------------------------------------
    Case(
        "yaml-unclosed-quote",
        {"assistants/bad.yml": ASSISTANT + 'instructions: "never closed\ntemperature: 1\n'},
        "assistants/bad.yml:5",
        "",
        "YAML syntax error",
    ),
    Case(
        "yaml-alias-bomb",
        {
            "assistants/bad.yml": "a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"
            + "".join(
                f"{n}: &{n} [{', '.join([f'*{p}'] * 9)}]\n"
                for p, n in zip("abcdefgh", "bcdefghi", strict=True)
            )
        },
        "assistants/bad.yml:1",
        "",
        "YAML aliases would expand this file to 490,329,064 values",
    ),
    Case(
        "yaml-alias-inside-itself",
        {"assistants/bad.yml": ASSISTANT + "tools: &t [code_interpreter, *t]\n"},
        "assistants/bad.yml:1",
        "",
        "a YAML alias refers to a collection that contains it",
    ),
    Case(
        "yaml-bad-indentation",
        {"assistants/bad.yml": ASSISTANT + "tools:\n  - file_search\n - code_interpreter\n"},
        "assistants/bad.yml:5",
        "",
        "YAML syntax error",
    ),
    Case(
        "yaml-tab-indentation",
        {"pipelines/bad.yml": PIPELINE + "steps:\n\t- prompt: hi\n"},
        "pipelines/bad.yml:4",
        "",
        "YAML syntax error",
    ),
    Case(
        "duplicate-key-top",
        {"assistants/bad.yml": ASSISTANT + "model: gpt-4o-mini\n"},
        "assistants/bad.yml:3",
        "model",
        "duplicate key 'model' (first defined on line 2)",
    ),
    Case(
        "duplicate-key-nested",
        {"pipelines/bad.yml": pipeline_with_step("id: one", "id: two")},
        "pipelines/bad.yml:6",
        "steps[0].id",
        "duplicate key 'id' (first defined on line 5)",
    ),
    Case(
        "unsupported-tag",
        {"assistants/bad.yml": ASSISTANT + "instructions: !!python/object:os.system {}\n"},
        "assistants/bad.yml:3",
        "instructions",
        "unsupported YAML tag",
    ),
    Case(
        "file-include-missing",
        {"assistants/bad.yml": ASSISTANT + "instructions: !file ../prompts/nope.md\n"},
        "assistants/bad.yml:3",
        "instructions",
        "!file ../prompts/nope.md: file not found",
    ),
    Case(
        "file-include-empty",
        {"assistants/bad.yml": ASSISTANT + "instructions: !file\n"},
        "assistants/bad.yml:3",
        "instructions",
        "!file needs a file path",
    ),
    Case(
        "not-a-mapping",
        {"assistants/bad.yml": "- name: bad\n- model: gpt-4o\n"},
        "assistants/bad.yml:1",
        "",
        "must be a YAML mapping",
    ),
    # --- assistant schema --------------------------------------------------------------------
    Case(
        "unknown-key-did-you-mean",
        {"assistants/bad.yml": ASSISTANT + "temprature: 0.2\n"},
        "assistants/bad.yml:3",
        "temprature",
        "unknown field (did you mean 'temperature'?)",
    ),
    Case(
        "temperature-wrong-type",
        {"assistants/bad.yml": ASSISTANT + 'temperature: "hot"\n'},
        "assistants/bad.yml:3",
        "temperature",
        '"hot" is not of type number',
    ),
    Case(
        "temperature-out-of-range",
        {"assistants/bad.yml": ASSISTANT + "temperature: 3\n"},
        "assistants/bad.yml:3",
        "temperature",
        "3 is greater than the maximum of 2",
    ),
    Case(
        "top-p-out-of-range",
        {"assistants/bad.yml": ASSISTANT + "top_p: 2\n"},
        "assistants/bad.yml:3",
        "top_p",
        "2 is greater than the maximum of 1",
    ),
    Case(
        "missing-model",
        {"assistants/bad.yml": "name: bad\ninstructions: hi\n"},
        "assistants/bad.yml:1",
        "",
        "missing required field 'model'",
    ),
    Case(
        "bad-assistant-name",
        {"assistants/bad.yml": "name: -bad name\nmodel: gpt-4o\n"},
        "assistants/bad.yml:1",
        "name",
        '"-bad name" is not valid: must be 1-64 characters on one line, starting with a letter',
    ),
    Case(
        "tools-not-a-list",
        {"assistants/bad.yml": ASSISTANT + "tools: code_interpreter\n"},
        "assistants/bad.yml:3",
        "tools",
        '"code_interpreter" is not of type array',
    ),
    Case(
        "unknown-tool-string",
        {"assistants/bad.yml": ASSISTANT + "tools:\n  - file_search\n  - web_browser\n"},
        "assistants/bad.yml:5",
        "tools[1]",
        '"web_browser" is not one of',
    ),
    Case(
        "tool-object-two-keys",
        {"assistants/bad.yml": ASSISTANT + "tools:\n  - {code_interpreter: {}, file_search: {}}\n"},
        "assistants/bad.yml:4",
        "tools[0]",
        "a tool is code_interpreter, file_search, or one of",
    ),
    Case(
        "function-without-name",
        {"assistants/bad.yml": ASSISTANT + "tools:\n  - function:\n      description: x\n"},
        "assistants/bad.yml:4",
        "tools[0].function",
        "missing required field 'name'",
    ),
    Case(
        "function-name-not-string",
        {"assistants/bad.yml": ASSISTANT + "tools:\n  - function:\n      name: 42\n"},
        "assistants/bad.yml:5",
        "tools[0].function.name",
        "42 is not of type string",
    ),
    Case(
        "handler-bad-format",
        {
            "assistants/bad.yml": ASSISTANT
            + "tools:\n  - function: {name: f, handler: helpers.weather.get_weather}\n"
        },
        "assistants/bad.yml:4",
        "tools[0].function.handler",
        '"helpers.weather.get_weather" is not valid: must be a Python callable as '
        "'module:function'",
    ),
    Case(
        "handler-module-missing",
        {
            "assistants/bad.yml": ASSISTANT
            + "tools:\n  - function: {name: f, handler: 'helpers.nope:f'}\n"
        },
        "assistants/bad.yml:4",
        "tools[0].function.handler",
        "cannot import module 'helpers.nope'",
    ),
    Case(
        "handler-attribute-missing",
        {
            "assistants/bad.yml": ASSISTANT
            + "tools:\n  - function: {name: f, handler: 'helpers.weather:nope'}\n"
        },
        "assistants/bad.yml:4",
        "tools[0].function.handler",
        "module 'helpers.weather' has no attribute 'nope'",
    ),
    Case(
        "handler-module-raises",
        {
            "assistants/bad.yml": ASSISTANT
            + "tools:\n  - function: {name: f, handler: 'helpers.boom:f'}\n"
        },
        "assistants/bad.yml:4",
        "tools[0].function.handler",
        "importing 'helpers.boom' failed: RuntimeError: kaboom at import",
    ),
    Case(
        "handler-outside-the-project",
        {
            "assistants/bad.yml": ASSISTANT
            + "tools:\n  - function: {name: run, handler: 'os:system'}\n"
        },
        "assistants/bad.yml:4",
        "tools[0].function.handler",
        "module 'os' is not part of the project: a handler must be a module under the project",
    ),
    Case(
        "handler-name-shadowed-by-the-standard-library",
        {
            "assistants/bad.yml": ASSISTANT
            + "tools:\n  - function: {name: run, handler: 'os:system'}\n",
            "os.py": "def system(command):\n    return command\n",
        },
        "assistants/bad.yml:4",
        "tools[0].function.handler",
        "module 'os' resolves to",
    ),
    Case(
        "function-declared-twice",
        {
            "assistants/bad.yml": ASSISTANT
            + "tools:\n  - function: {name: f}\n  - function: {name: f}\n"
        },
        "assistants/bad.yml:5",
        "tools[1].function.name",
        "declared twice",
    ),
    Case(
        "function-parameters-invalid-schema",
        {
            "assistants/bad.yml": ASSISTANT
            + "tools:\n  - function: {name: f, parameters: {type: 12}}\n"
        },
        "assistants/bad.yml:4",
        "tools[0].function.parameters.type",
        "invalid JSON Schema",
    ),
    Case(
        "metadata-too-many-keys",
        {
            "assistants/bad.yml": ASSISTANT
            + "metadata:\n"
            + "".join(f"  k{i}: v\n" for i in range(14))
        },
        "assistants/bad.yml:3",
        "metadata",
        "at most 13 metadata keys",
    ),
    Case(
        "metadata-reserved-key",
        {"assistants/bad.yml": ASSISTANT + "metadata:\n  owner: me\n  orch_hash: x\n"},
        "assistants/bad.yml:5",
        "metadata.orch_hash",
        "must not start with 'orch_'",
    ),
    Case(
        "metadata-value-too-long",
        {"assistants/bad.yml": ASSISTANT + f"metadata:\n  note: {'x' * 513}\n"},
        "assistants/bad.yml:4",
        "metadata.note",
        "is too long: 513 characters, at most 512",
    ),
    Case(
        "metadata-env-missing",
        {"assistants/bad.yml": ASSISTANT + "metadata:\n  owner: ${ORCH_TEST_UNSET_OWNER}\n"},
        "assistants/bad.yml:4",
        "metadata.owner",
        "environment variable ORCH_TEST_UNSET_OWNER is not set",
    ),
    Case(
        "response-format-bad-string",
        {"assistants/bad.yml": ASSISTANT + "response_format: yaml\n"},
        "assistants/bad.yml:3",
        "response_format",
        '"yaml" is not one of: "auto", "text"',
    ),
    Case(
        "response-format-invalid-schema",
        {
            "assistants/bad.yml": ASSISTANT
            + """\
response_format:
  type: json_schema
  json_schema:
    name: answer
    schema: {type: 12}
"""
        },
        "assistants/bad.yml:7",
        "response_format.json_schema.schema.type",
        "invalid JSON Schema",
    ),
    Case(
        "response-format-schema-missing-name",
        {
            "assistants/bad.yml": ASSISTANT
            + """\
response_format:
  type: json_schema
  json_schema:
    schema: {type: object}
"""
        },
        "assistants/bad.yml:5",
        "response_format.json_schema",
        "missing required field 'name'",
    ),
    Case(
        "response-format-json-schema-without-type",
        {
            "assistants/bad.yml": ASSISTANT
            + """\
response_format:
  type: text
  json_schema: {name: a, schema: {}}
"""
        },
        "assistants/bad.yml:3",
        "response_format",
        "only allowed with type: json_schema",
    ),
    Case(
        "files-for-tool-not-in-tools",
        {
            "assistants/bad.yml": ASSISTANT
            + "tools: [file_search]\nfiles:\n  code_interpreter: [docs/guide.txt]\n"
        },
        "assistants/bad.yml:5",
        "files.code_interpreter",
        "need the code_interpreter tool",
    ),
    Case(
        "files-missing-file",
        {
            "assistants/bad.yml": ASSISTANT
            + "tools: [file_search]\nfiles:\n  file_search:\n"
            + "    - docs/guide.txt\n    - docs/gone.pdf\n"
        },
        "assistants/bad.yml:7",
        "files.file_search[1]",
        "file not found: docs/gone.pdf",
    ),
    Case(
        "instructions-jinja-error",
        {
            "assistants/bad.yml": ASSISTANT
            + "instructions: |\n  You help.\n  {% if x %}\n  Be brief.\n  {{ x | }}\n"
        },
        "assistants/bad.yml:7",
        "instructions",
        "template error",
    ),
    Case(
        "missing-key-misspelt",
        {"assistants/bad.yml": "name: bad\nmodle: gpt-4o\n"},
        "assistants/bad.yml:2",
        "modle",
        "unknown field (did you mean 'model'?)",
    ),
    Case(
        "instructions-jinja-error-in-included-file",
        {
            "assistants/bad.yml": ASSISTANT + "instructions: !file ../prompts/bad.md\n",
            "prompts/bad.md": "Line one.\n{% if x %}\nno end\n",
        },
        "assistants/bad.yml:3",
        "instructions",
        "template error in prompts/bad.md:",
    ),
    Case(
        "broken-assistant-is-not-also-unknown",
        {"assistants/tutor.yml": "name: tutor\nmodel: gpt-4o\ntemperature: -1\n"},
        "assistants/tutor.yml:3",
        "temperature",
        "-1 is less than the minimum of 0",
    ),
    Case(
        "two-assistants-one-name",
        {"assistants/zz-copy.yml": "name: tutor\nmodel: gpt-4o\n"},
        "assistants/zz-copy.yml:1",
        "name",
        "already declared in assistants/tutor.yml",
    ),
    # --- pipeline schema ---------------------------------------------------------------------
    Case(
        "pipeline-without-steps",
        {"pipelines/bad.yml": PIPELINE + "concurrency: 2\n"},
        "pipelines/bad.yml:1",
        "",
        "missing required field 'steps'",
    ),
    Case(
        "pipeline-empty-steps",
        {"pipelines/bad.yml": PIPELINE + "steps: []\n"},
        "pipelines/bad.yml:3",
        "steps",
        "should be non-empty",
    ),
    Case(
        "concurrency-zero",
        {"pipelines/bad.yml": PIPELINE + "concurrency: 0\nsteps:\n  - prompt: hi\n"},
        "pipelines/bad.yml:3",
        "concurrency",
        "0 is less than the minimum of 1",
    ),
    Case(
        "retries-negative",
        {"pipelines/bad.yml": PIPELINE + "retries: -1\nsteps:\n  - prompt: hi\n"},
        "pipelines/bad.yml:3",
        "retries",
        "-1 is less than the minimum of 0",
    ),
    Case(
        "bad-duration",
        {"pipelines/bad.yml": PIPELINE + "timeout: 5 minutes\nsteps:\n  - prompt: hi\n"},
        "pipelines/bad.yml:3",
        "timeout",
        "must be a duration",
    ),
    Case(
        "pipeline-unknown-key",
        {"pipelines/bad.yml": PIPELINE + "stesp: []\nsteps:\n  - prompt: hi\n"},
        "pipelines/bad.yml:3",
        "stesp",
        "unknown field (did you mean 'steps'?)",
    ),
    Case(
        "step-unknown-key",
        {"pipelines/bad.yml": pipeline_with_step("promt: hello")},
        "pipelines/bad.yml:5",
        "steps[0].promt",
        "unknown field (did you mean 'prompt'?)",
    ),
    Case(
        "unknown-assistant-did-you-mean",
        {"pipelines/bad.yml": "name: bad\nassistant: tutr\nsteps:\n  - prompt: hi\n"},
        "pipelines/bad.yml:2",
        "assistant",
        "unknown assistant 'tutr' (did you mean 'tutor'?)",
    ),
    Case(
        "unknown-assistant-in-step",
        {"pipelines/bad.yml": pipeline_with_step("assistant: nobody")},
        "pipelines/bad.yml:5",
        "steps[0].assistant",
        "unknown assistant 'nobody'",
    ),
    Case(
        "step-id-bad-pattern",
        {"pipelines/bad.yml": pipeline_with_step("id: 2nd-step")},
        "pipelines/bad.yml:5",
        "steps[0].id",
        "\"2nd-step\" is not valid: must be letters, digits or '_', not starting with a digit",
    ),
    Case(
        "step-prompt-empty",
        {"pipelines/bad.yml": PIPELINE + "steps:\n  - prompt: ''\n"},
        "pipelines/bad.yml:4",
        "steps[0].prompt",
        "must not be empty",
    ),
    Case(
        "duplicate-step-ids",
        {
            "pipelines/bad.yml": PIPELINE
            + "steps:\n  - {id: a, prompt: hi}\n  - {id: a, prompt: again}\n"
        },
        "pipelines/bad.yml:5",
        "steps[1].id",
        "step id 'a' is already used by steps[0]",
    ),
    Case(
        "prompt-jinja-error-in-block",
        {
            "pipelines/bad.yml": PIPELINE
            + "steps:\n  - prompt: |\n      Hello {{ item.name }}\n      {% for x in item %}\n"
        },
        "pipelines/bad.yml:6",
        "steps[0].prompt",
        "template error",
    ),
    Case(
        "attachment-missing-file",
        {"pipelines/bad.yml": pipeline_with_step("attachments: [docs/nope.pdf]")},
        "pipelines/bad.yml:5",
        "steps[0].attachments[0]",
        "file not found: docs/nope.pdf",
    ),
    Case(
        "attachment-path-and-image",
        {
            "pipelines/bad.yml": pipeline_with_step(
                "attachments:", "  - {path: docs/guide.txt, image: data/a.txt}"
            )
        },
        "pipelines/bad.yml:6",
        "steps[0].attachments[0]",
        "exactly one of 'path' or 'image'",
    ),
    Case(
        "attachment-bad-tool",
        {
            "pipelines/bad.yml": pipeline_with_step(
                "attachments:", "  - {path: docs/guide.txt, tools: [web]}"
            )
        },
        "pipelines/bad.yml:6",
        "steps[0].attachments[0].tools[0]",
        '"web" is not one of',
    ),
    Case(
        "assertion-two-kinds",
        {"pipelines/bad.yml": pipeline_with_step("expect:", "  - {contains: a, regex: b}")},
        "pipelines/bad.yml:6",
        "steps[0].expect[0]",
        "an assertion needs exactly one of",
    ),
    Case(
        "assertion-unknown-kind",
        {"pipelines/bad.yml": pipeline_with_step("expect:", "  - {containz: a}")},
        "pipelines/bad.yml:6",
        "steps[0].expect[0].containz",
        "unknown field (did you mean 'contains'?)",
    ),
    Case(
        "assertion-bad-regex",
        {"pipelines/bad.yml": pipeline_with_step("expect:", "  - regex: '(unclosed'")},
        "pipelines/bad.yml:6",
        "steps[0].expect[0].regex",
        'invalid regular expression "(unclosed": missing )',
    ),
    Case(
        "assertion-json-schema-file-missing",
        {"pipelines/bad.yml": pipeline_with_step("expect:", "  - json_schema: schemas/no.json")},
        "pipelines/bad.yml:6",
        "steps[0].expect[0].json_schema",
        "file not found: schemas/no.json",
    ),
    Case(
        "assertion-json-schema-file-not-json",
        {"pipelines/bad.yml": pipeline_with_step("expect:", "  - json_schema: data/a.txt")},
        "pipelines/bad.yml:6",
        "steps[0].expect[0].json_schema",
        "cannot load JSON Schema data/a.txt",
    ),
    Case(
        "assertion-json-schema-inline-invalid",
        {
            "pipelines/bad.yml": pipeline_with_step(
                "expect:", "  - json_schema:", "      type: object", "      required: name"
            )
        },
        "pipelines/bad.yml:8",
        "steps[0].expect[0].json_schema.required",
        "invalid JSON Schema: 'name' is not of type 'array'",
    ),
    Case(
        "llm-rubric-without-grader",
        {
            "orch.yml": "project: demo\n",
            "pipelines/bad.yml": pipeline_with_step("expect:", "  - llm_rubric: be nice"),
        },
        "pipelines/bad.yml:6",
        "steps[0].expect[0].llm_rubric",
        "llm_rubric needs a grader assistant",
    ),
    Case(
        "llm-rubric-unknown-grader",
        {
            "pipelines/bad.yml": pipeline_with_step(
                "expect:", "  - llm_rubric: {rubric: be nice, grader: gradr}"
            )
        },
        "pipelines/bad.yml:6",
        "steps[0].expect[0].llm_rubric.grader",
        "unknown assistant 'gradr' (did you mean 'grader'?)",
    ),
    Case(
        "llm-rubric-default-grader-unknown",
        {
            "orch.yml": "project: demo\ngrader: judge\n",
            "pipelines/bad.yml": pipeline_with_step("expect:", "  - llm_rubric: be nice"),
        },
        "orch.yml:2",
        "grader",
        "unknown assistant 'judge'",
    ),
    Case(
        "python-assertion-missing-module",
        {"pipelines/bad.yml": pipeline_with_step("expect:", "  - python: 'helpers.nope:check'")},
        "pipelines/bad.yml:6",
        "steps[0].expect[0].python",
        "cannot import module",
    ),
    Case(
        "python-assertion-outside-the-project",
        {"pipelines/bad.yml": pipeline_with_step("expect:", "  - python: 'subprocess:getoutput'")},
        "pipelines/bad.yml:6",
        "steps[0].expect[0].python",
        "module 'subprocess' is not part of the project",
    ),
    Case(
        "items-glob-matches-nothing",
        {"pipelines/bad.yml": PIPELINE + "items: {files: 'data/*.pdf'}\nsteps:\n  - prompt: hi\n"},
        "pipelines/bad.yml:3",
        "items.files",
        "'data/*.pdf' matches no files",
    ),
    Case(
        "items-csv-missing",
        {"pipelines/bad.yml": PIPELINE + "items: {csv: items/none.csv}\nsteps:\n  - prompt: hi\n"},
        "pipelines/bad.yml:3",
        "items.csv",
        "file not found: items/none.csv",
    ),
    Case(
        "items-jsonl-bad-line",
        {
            "pipelines/bad.yml": PIPELINE
            + "items: {jsonl: items/rows.jsonl}\nsteps:\n  - prompt: hi\n",
            "items/rows.jsonl": '{"a": 1}\n{"a": 2\n',
        },
        "pipelines/bad.yml:3",
        "items.jsonl",
        "items/rows.jsonl:2: not JSON",
    ),
    Case(
        "items-csv-not-utf8",
        {
            "pipelines/bad.yml": PIPELINE + "items: {csv: items/bad.csv}\nsteps:\n  - prompt: hi\n",
            "items/bad.csv": b"name\nada\n\xffbob\n",
        },
        "pipelines/bad.yml:3",
        "items.csv",
        "items/bad.csv:3: not UTF-8",
    ),
    Case(
        "items-csv-without-rows",
        {
            "pipelines/bad.yml": PIPELINE
            + "items: {csv: items/head.csv}\nsteps:\n  - prompt: hi\n",
            "items/head.csv": "name,score\n",
        },
        "pipelines/bad.yml:3",
        "items.csv",
        "items/head.csv: no items",
    ),
    Case(
        "items-jsonl-blank",
        {
            "pipelines/bad.yml": PIPELINE
            + "items: {jsonl: items/none.jsonl}\nsteps:\n  - prompt: hi\n",
            "items/none.jsonl": "\n  \n",
        },
        "pipelines/bad.yml:3",
        "items.jsonl",
        "items/none.jsonl: no items",
    ),
    Case(
        "items-glob-matches-only-folders",
        {
            "pipelines/bad.yml": PIPELINE + "items: {files: 'nested/*'}\nsteps:\n  - prompt: hi\n",
            "nested/deeper/a.txt": "x\n",
        },
        "pipelines/bad.yml:3",
        "items.files",
        "no items: the patterns match only folders",
    ),
    Case(
        "items-two-sources",
        {
            "pipelines/bad.yml": PIPELINE
            + "items: {csv: items/rows.csv, files: 'data/*'}\nsteps:\n  - prompt: hi\n"
        },
        "pipelines/bad.yml:3",
        "items",
        "exactly one of",
    ),
    Case(
        "report-template-missing",
        {
            "pipelines/bad.yml": PIPELINE
            + "steps:\n  - prompt: hi\nreport:\n  - {template: reports/x.j2, output: out/x.md}\n"
        },
        "pipelines/bad.yml:6",
        "report[0].template",
        "template not found: reports/x.j2",
    ),
    Case(
        "two-pipelines-one-name",
        {"pipelines/zz-copy.yml": "name: quick\nassistant: tutor\nsteps:\n  - prompt: hi\n"},
        "pipelines/zz-copy.yml:1",
        "name",
        "already declared in pipelines/quick.yml",
    ),
    # --- orch.yml ----------------------------------------------------------------------------
    Case(
        "orch-env-missing",
        {
            "orch.yml": "project: demo\ntargets:\n  azure:\n    kind: assistants\n"
            "    base_url: ${ORCH_TEST_UNSET_URL}\n"
        },
        "orch.yml:5",
        "targets.azure.base_url",
        "environment variable ORCH_TEST_UNSET_URL is not set",
    ),
    Case(
        "orch-broken-does-not-cascade",
        {
            "orch.yml": "project: demo\ngrader: grader\nvars: {level: easy}\n"
            "target: ${ORCH_TEST_UNSET_URL}\n",
            "assistants/bad.yml": ASSISTANT + "instructions: 'for {{ level }} students'\n",
            "pipelines/bad.yml": pipeline_with_step("expect:", "  - llm_rubric: be nice"),
        },
        "orch.yml:4",
        "target",
        "environment variable ORCH_TEST_UNSET_URL is not set",
    ),
    Case(
        "orch-unknown-target",
        {"orch.yml": "project: demo\ntarget: prod\ntargets:\n  azure: {kind: assistants}\n"},
        "orch.yml:2",
        "target",
        "unknown target 'prod' (defined: embedded, azure)",
    ),
    Case(
        "orch-unknown-key-in-target",
        {
            "orch.yml": "project: demo\ntargets:\n  azure:\n    kind: assistants\n"
            "    api_key: sk-123\n"
        },
        "orch.yml:5",
        "targets.azure.api_key",
        "unknown field (did you mean 'api_key_env'?)",
    ),
    Case(
        "orch-api-key-env-is-a-key",
        {"orch.yml": "project: demo\ntargets:\n  openai: {kind: responses, api_key_env: sk-123}\n"},
        "orch.yml:3",
        "targets.openai.api_key_env",
        '"sk-123" is not valid: must be the name of an environment variable',
    ),
    Case(
        "orch-bad-target-kind",
        {"orch.yml": "project: demo\ntargets:\n  azure: {kind: azure}\n"},
        "orch.yml:3",
        "targets.azure.kind",
        '"azure" is not one of',
    ),
    Case(
        "orch-unknown-top-key",
        {"orch.yml": "projcet: demo\n"},
        "orch.yml:1",
        "projcet",
        "unknown field (did you mean 'project'?)",
    ),
    Case(
        "orch-target-script-missing",
        {
            "orch.yml": "project: demo\ntargets:\n"
            "  embedded: {kind: engine, script: scripts/no.yml}\n"
        },
        "orch.yml:3",
        "targets.embedded.script",
        "file not found: scripts/no.yml",
    ),
    Case(
        "orch-target-script-invalid",
        {"scripts/quick.yml": "rules:\n  - when: {contains: hi}\n    reply: hello\n    delay: 5\n"},
        "scripts/quick.yml:4",
        "rules[0].delay",
        "unknown field (did you mean 'delay_ms'?)",
    ),
    Case(
        "orch-unknown-grader",
        {"orch.yml": "project: demo\ngrader: judge\n"},
        "orch.yml:2",
        "grader",
        "unknown assistant 'judge'",
    ),
]


@pytest.fixture
def base_project(make_project):
    return make_project(BASE)


def test_base_project_is_valid(base_project):
    result = validate()
    assert result.exit_code == 0, result.output
    assert result.output.strip() == (
        "✓ project 'demo': 2 assistants, 1 pipeline, target 'embedded' — valid"
    )


def test_there_are_enough_bad_cases():
    assert len(CASES) >= 35
    assert len({case.id for case in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[case.id for case in CASES])
def test_bad_config(case: Case, make_project, monkeypatch):
    monkeypatch.delenv("ORCH_TEST_UNSET_OWNER", raising=False)
    monkeypatch.delenv("ORCH_TEST_UNSET_URL", raising=False)
    make_project(BASE)
    make_project(case.files)

    result = validate()

    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stdout == ""  # problems go to stderr; nothing claims success
    lines = problem_lines(result.stderr)
    prefix = f"{case.where}: {case.field}: " if case.field else f"{case.where}: "
    assert len(lines) == 1, "expected one line for one problem:\n" + result.stderr
    assert lines[0].startswith(prefix), result.stderr
    assert case.phrase in lines[0][len(prefix) :], result.stderr
    assert result.stderr.rstrip().endswith("✗ 1 problem found")


def test_many_problems_in_many_files_are_reported_in_one_run(make_project):
    make_project(BASE)
    make_project(
        {
            "orch.yml": "project: demo\ntarget: prod\n",
            "assistants/a.yml": "name: a\nmodel: gpt-4o\ntemprature: 0.2\ntop_p: 2\n",
            "assistants/b.yml": "name: b\nmodel: gpt-4o\nmodel: again\ntools: [bogus]\n",
            "pipelines/p.yml": "name: p\nassistant: tutr\nsteps:\n  - prompt: '{{ x'\n",
            "pipelines/q.yml": "name: q\nassistant: tutor\nconcurrency: 0\nsteps: []\n",
        }
    )
    result = validate()
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    lines = problem_lines(result.stderr)
    assert lines == [
        "assistants/a.yml:3: temprature: unknown field (did you mean 'temperature'?)",
        "assistants/a.yml:4: top_p: 2 is greater than the maximum of 1",
        # a duplicate key does not hide the file's other mistakes
        "assistants/b.yml:3: model: duplicate key 'model' (first defined on line 2)",
        'assistants/b.yml:4: tools[0]: "bogus" is not one of: "code_interpreter", "file_search"',
        "orch.yml:2: target: unknown target 'prod' (defined: embedded)",
        "pipelines/p.yml:2: assistant: unknown assistant 'tutr' (did you mean 'tutor'?)",
        lines[6],
        "pipelines/q.yml:3: concurrency: 0 is less than the minimum of 1",
        "pipelines/q.yml:4: steps: [] should be non-empty",
    ]
    assert lines[6].startswith("pipelines/p.yml:4: steps[0].prompt: template error")
    assert result.stderr.rstrip().endswith("✗ 9 problems found")


def test_validate_one_file_reports_only_that_file(make_project):
    make_project(BASE)
    make_project(
        {
            "assistants/bad.yml": ASSISTANT + "temprature: 1\n",
            "pipelines/bad.yml": PIPELINE + "retries: -1\nsteps:\n  - prompt: hi\n",
        }
    )
    result = validate("assistants/bad.yml")
    assert result.exit_code == 2
    assert problem_lines(result.stderr) == [
        "assistants/bad.yml:3: temprature: unknown field (did you mean 'temperature'?)"
    ]

    result = validate("assistants/tutor.yml")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "✓ assistants/tutor.yml: valid assistant"


def test_validate_one_pipeline_still_checks_assistants(make_project):
    make_project(BASE)
    make_project({"pipelines/bad.yml": "name: bad\nassistant: tutr\nsteps:\n  - prompt: hi\n"})
    result = validate("pipelines/bad.yml")
    assert result.exit_code == 2
    assert problem_lines(result.stderr) == [
        "pipelines/bad.yml:2: assistant: unknown assistant 'tutr' (did you mean 'tutor'?)"
    ]
    assert validate("pipelines/quick.yml").exit_code == 0


def test_validate_project_directory_argument(make_project, tmp_path, monkeypatch):
    root = make_project(BASE)
    monkeypatch.chdir(tmp_path)
    result = validate(str(root))
    assert result.exit_code == 0, result.output
    assert "2 assistants, 1 pipeline" in result.output


def test_validate_missing_path(make_project):
    make_project(BASE)
    for missing in ("no/such/dir", "assistants/nope.yml"):
        result = validate(missing)
        assert result.exit_code == 2
        assert problem_lines(result.stderr) == [f"{missing}: no such file or directory"]


def test_validate_one_file_outside_the_project_folders(make_project):
    make_project(BASE)
    make_project(
        {
            "agent.yml": "name: agent\nmodel: m\ntemperature: 9\n",
            "extra/p.yml": "name: extra\nassistant: tutr\nsteps:\n  - prompt: hi\n",
            "extra/ok.yml": "name: extra\nassistant: tutor\nsteps:\n  - prompt: hi\n",
        }
    )
    result = validate("agent.yml")
    assert result.exit_code == 2
    assert problem_lines(result.stderr) == [
        "agent.yml:3: temperature: 9 is greater than the maximum of 2"
    ]
    result = validate("extra/p.yml")
    assert result.exit_code == 2
    assert problem_lines(result.stderr) == [
        "extra/p.yml:2: assistant: unknown assistant 'tutr' (did you mean 'tutor'?)"
    ]
    result = validate("extra/ok.yml")
    assert result.exit_code == 0, result.output
    assert result.output.strip() == "✓ extra/ok.yml: valid pipeline"


def test_validate_one_file_in_a_project_without_orch_yml(make_project):
    make_project({"assistants/a.yml": "name: a\nmodel: m\ntop_p: 3\n"})
    result = validate("assistants/a.yml")
    assert result.exit_code == 2
    assert problem_lines(result.stderr) == [
        "assistants/a.yml:3: top_p: 3 is greater than the maximum of 1"
    ]


def test_validate_one_file_of_unknown_kind(make_project):
    make_project({"odd.yml": "x: [1,\n", "other.yml": "x: 1\n"})
    result = validate("odd.yml")
    assert result.exit_code == 2
    (line,) = problem_lines(result.stderr)
    assert line.startswith("odd.yml:2: YAML syntax error")
    result = validate("other.yml")
    assert result.exit_code == 2
    assert problem_lines(result.stderr) == [
        "other.yml:1: cannot tell what this file is: put it in assistants/ or pipelines/, "
        "or name it orch.yml"
    ]


def test_validate_script_file(make_project):
    make_project(BASE)
    result = validate("scripts/quick.yml")
    assert result.exit_code == 0, result.output
    assert "valid scripted-model script" in result.output


def test_empty_project_is_valid(make_project):
    make_project({})
    result = validate()
    assert result.exit_code == 0, result.output
    assert "0 assistants, 0 pipelines, target 'embedded'" in result.output


def test_dotenv_supplies_variables(make_project):
    make_project(BASE)
    make_project(
        {
            ".env": "ORCH_TEST_UNSET_OWNER=team-b\n",
            "assistants/bad.yml": ASSISTANT + "metadata:\n  owner: ${ORCH_TEST_UNSET_OWNER}\n",
        }
    )
    result = validate()
    assert result.exit_code == 0, result.output


def test_help_texts_have_examples():
    top = runner().invoke(main, ["--help"])
    assert top.exit_code == 0
    assert "orch validate" in top.output
    assert "Exit codes" in top.output
    sub = runner().invoke(main, ["validate", "--help"])
    assert sub.exit_code == 0
    assert "Examples:" in sub.output
    assert "orch validate assistants/tutor.yml" in sub.output


# --- a real process: the installed entry point, no CliRunner in between ---------------------


def run_orch(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    return subprocess.run(
        [sys.executable, "-m", "orch", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_subprocess_valid_project(make_project):
    root = make_project(BASE)
    proc = run_orch("validate", cwd=root)
    assert proc.returncode == 0, proc.stderr
    assert "valid" in proc.stdout
    assert proc.stderr == ""


def test_subprocess_bad_project(make_project):
    root = make_project(BASE)
    make_project(
        {
            "assistants/bad.yml": ASSISTANT + "temperature: hot\ntools: [bogus]\n",
            "pipelines/bad.yml": PIPELINE + "steps:\n  - prompt: hi\n    expect: [{regex: '('}]\n",
            "orch.yml": "project: demo\ntarget: ${ORCH_TEST_UNSET_TARGET}\n",
        }
    )
    proc = run_orch("validate", cwd=root)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.splitlines() == [
        'assistants/bad.yml:3: temperature: "hot" is not of type number',
        'assistants/bad.yml:4: tools[0]: "bogus" is not one of: "code_interpreter", "file_search"',
        "orch.yml:2: target: environment variable ORCH_TEST_UNSET_TARGET is not set "
        "(write ${ORCH_TEST_UNSET_TARGET:-default} for a default)",
        'pipelines/bad.yml:5: steps[0].expect[0].regex: invalid regular expression "(": '
        "missing ), unterminated subpattern at position 0",
        "✗ 4 problems found",
    ]


def test_subprocess_yaml_syntax_error(make_project):
    root = make_project(BASE)
    make_project({"pipelines/quick.yml": "name: quick\nsteps: [unclosed\n"})
    proc = run_orch("validate", "pipelines/quick.yml", cwd=root)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith("pipelines/quick.yml:3: YAML syntax error")
