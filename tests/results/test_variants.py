"""Two variants of one run compared item by item: `orch compare RUN --variants A B`.

The run is recorded once (a two-variant pipeline on the embedded engine's scripted model, the
``keen`` variant answering what ``base`` does not); compare reads only the history.
"""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from orch.cli import main

FILES = {
    "orch.yml": """
        project: vcompare
        targets:
          embedded: {kind: engine, model: scripted, script: script.yml}
    """,
    "script.yml": """
        rules:
          - when: {assistant: helper--keen}
            reply: "yes, gladly"
        default: {reply: "no"}
    """,
    "assistants/helper.yml": "name: helper\nmodel: gpt-4o\n",
    "pipelines/ab.yml": """
        name: ab
        assistant: helper
        pass_rate: 0.5
        items: [{q: one}, {q: two}, {q: three}]
        variants:
          - {name: base, temperature: 0.1}
          - {name: keen, temperature: 0.9}
        steps:
          - id: ask
            prompt: "{{ item.q }}"
            expect: [{contains: "yes"}]
    """,
}


def orch(*args: str):
    return CliRunner().invoke(main, list(args), catch_exceptions=False)


@pytest.fixture
def run_id(make_project) -> str:
    make_project(FILES)
    ran = orch("run", "ab", "--json")
    assert ran.exit_code == 0, ran.output  # 3 of 6 pass: the run meets pass_rate 0.5
    return json.loads(ran.stdout)["run_id"]


def test_compare_two_variants_of_one_run(run_id):
    ran = orch("compare", run_id, "--variants", "base", "keen")

    assert ran.exit_code == 0, ran.output
    assert f"A {run_id}@base (ab, failed)" in ran.stdout  # base alone misses the 0.5
    assert f"B {run_id}@keen (ab, passed)" in ran.stdout
    assert "Fixes (fail/error → pass): 3" in ran.stdout
    assert "item 1 step ask: failed → passed" in ran.stdout  # matched by item, not by key

    data = json.loads(orch("compare", run_id, "--variants", "base", "keen", "--json").stdout)
    assert (data["a"]["pass_rate"], data["b"]["pass_rate"]) == (0.0, 1.0)
    assert data["a"]["counts"] == {"total": 3, "passed": 0, "failed": 3, "errors": 0}
    assert {c["key"] for c in data["changes"]} == {"0", "1", "2"}

    gate = orch("compare", run_id, "--variants", "keen", "base", "--fail-on-regression")
    assert gate.exit_code == 1  # keen → base regresses every item


def test_compare_variants_names_mistakes(run_id):
    typo = orch("compare", run_id, "--variants", "base", "kene")
    assert typo.exit_code == 2
    assert "has no variant 'kene' (did you mean 'keen'? its variants: base, keen)" in typo.output

    both = orch("compare", run_id, run_id, "--variants", "base", "keen")
    assert both.exit_code == 2 and "--variants A B" in both.output
    assert orch("compare", run_id).exit_code == 2


def test_reports_name_items_by_label_and_repeats_by_variant(make_project):
    files = dict(FILES)
    files["pipelines/ab.yml"] = (
        files["pipelines/ab.yml"]
        .replace(
            "items: [{q: one}, {q: two}, {q: three}]",
            "items: [{label: First, q: one}]\n        repeat: 2",
        )
        .replace("pass_rate: 0.5", "pass_rate: 0.0")
    )
    make_project(files)
    assert orch("run", "ab").exit_code == 0
    [run] = json.loads(orch("history", "--json").stdout)
    markdown = orch("report", run["run_id"], "-T", "builtin:markdown").stdout
    # the item's own label names it, as in the terminal; each variant's repeats get their row
    assert "| 0@base First | 2 |" in markdown
    assert "| 0@keen First | 2 |" in markdown
