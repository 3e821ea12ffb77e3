"""A pipeline's `variants:` through `orch validate`: what a mistake looks like, and the model.

Every bad case is one located problem, ``file:line: field: message``, exit 2; the good case
builds the derived assistants the run and sync use.
"""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from orch.cli import main
from orch.project.loading import load_project

FILES = {
    "orch.yml": "project: demo\nvars: {tone: briefly}\n",
    "assistants/helper.yml": "name: helper\nmodel: gpt-4o\ninstructions: You help.\n",
    "assistants/other.yml": "name: other\nmodel: gpt-4o\n",
}

HEAD = "name: ab\nassistant: helper\nsteps: [{prompt: hi}]\nvariants:\n"  # the first at line 5


def validate():
    return CliRunner().invoke(main, ["validate"], catch_exceptions=False)


def test_variants_build_derived_assistants(make_project):
    root = make_project(
        {
            **FILES,
            "pipelines/ab.yml": HEAD
            + "  - {name: fast, model: gpt-4o-mini, instructions: 'Be {{ tone }}.'}\n"
            + "  - {name: swap, assistant: other}\n"
            + "  - {name: both, assistant: other, temperature: 0.3, max_tokens: 50}\n",
        }
    )
    project = load_project(root)
    pipeline = project.pipeline("ab")

    assert [(v.name, v.assistant) for v in pipeline.variants] == [
        ("fast", "helper--fast"),
        ("swap", "other"),
        ("both", "other--both"),
    ]
    fast = project.assistant("helper--fast")
    assert (fast.model, fast.instructions) == ("gpt-4o-mini", "Be briefly.")  # orch.yml's vars
    assert dict(fast.metadata) == {"orch_variant": "fast"}
    both = project.assistant("other--both")
    assert (both.model, both.temperature, both.max_tokens) == ("gpt-4o", 0.3, 50)
    assert [n for n, _ in project.variant_assistants()] == ["helper--fast", "other--both"]
    assert [n for n, _ in project.assistants] == ["helper", "other"]  # declared ones only
    assert "2 assistants, 1 pipeline" in validate().output  # declared ones are counted


def test_a_pipeline_without_variants_keeps_its_fingerprint(make_project):
    import dataclasses

    from orch.project.model import SCHEMA_VERSION, canonical_json, sha256_text

    root = make_project(
        {**FILES, "pipelines/one.yml": "name: one\nassistant: helper\nsteps: [{prompt: hi}]\n"}
    )
    pipeline = load_project(root).pipeline("one")
    old = {"v": SCHEMA_VERSION, **dataclasses.asdict(pipeline), "source": None}
    for key in ("max_cost", "max_tokens_total", "variants", "derived"):
        del old[key]
    assert pipeline.fingerprint() == sha256_text(canonical_json(old))


@pytest.mark.parametrize(
    ("variants", "more", "expected"),
    [
        (
            "  - {name: a, temperature: 0.1}\n  - {name: a, model: gpt-4o-mini}\n",
            {},
            "pipelines/ab.yml:6: variants[1].name: variant 'a' is already declared by variants[0]",
        ),
        (
            "  - {name: a, assistant: othr}\n",
            {},
            "pipelines/ab.yml:5: variants[0].assistant: unknown assistant 'othr' "
            "(did you mean 'other'?)",
        ),
        (
            "  - {name: a, tools: [file_search]}\n",
            {},
            "pipelines/ab.yml:5: variants[0].tools: unknown field (allowed: assistant, ",
        ),
        (
            "  - {name: Fast One, model: x}\n",
            {},
            'pipelines/ab.yml:5: variants[0].name: "Fast One" is not valid: must be a slug',
        ),
        (
            "  - {name: a}\n",
            {},
            "pipelines/ab.yml:5: variants[0]: a variant needs a name and at least one of",
        ),
        (
            "  - {name: a, instructions: '{{ oops'}\n",
            {},
            "pipelines/ab.yml:5: variants[0].instructions: template error",
        ),
        (
            "  - {name: x, model: gpt-4o-mini}\n",
            {"assistants/helper-x.yml": "name: helper--x\nmodel: gpt-4o\n"},
            "pipelines/ab.yml:5: variants[0].name: the variant's assistant 'helper--x' is "
            "already a declared assistant",
        ),
        (
            "  - {name: a, model: gpt-4o-mini}\n",
            {
                "pipelines/zz.yml": "name: zz\nassistant: helper\nsteps: [{prompt: hi}]\n"
                "variants: [{name: a, model: gpt-4.1}]\n"
            },
            "pipelines/zz.yml:4: variants[0].name: the variant's assistant 'helper--a' is "
            "derived differently by pipelines/ab.yml",
        ),
        (
            "  - {name: a, temperature: 0.5}\n",
            {
                "orch.yml": "project: demo\ntarget: saved\ntargets:\n"
                "  saved: {kind: agents, base_url: 'http://127.0.0.1:9/v1'}\n"
            },
            "pipelines/ab.yml:5: variants[0].temperature: a target of kind agents has no "
            "place for it",
        ),
    ],
    ids=[
        "duplicate-name",
        "unknown-assistant",
        "unknown-override",
        "not-a-slug",
        "no-override",
        "template",
        "taken-name",
        "derived-twice",
        "refused-by-kind",
    ],
)
def test_bad_variants_are_one_located_problem(make_project, variants, more, expected):
    make_project({**FILES, "pipelines/ab.yml": HEAD + variants, **more})

    ran = validate()

    assert ran.exit_code == 2, ran.output
    problems = [line for line in ran.output.splitlines() if line.startswith("pipelines/")]
    assert len(problems) == 1, ran.output
    assert problems[0].startswith(expected), ran.output
