"""A template that fails only as it renders is the pipeline's mistake, not the infrastructure's.

Validate checks the first level of every name (``item.q``); what lies below it (``item.q.x``)
is only known when it renders. Such an item is an error (exit 2) whose summary says to fix the
template, not to retry it.
"""

from __future__ import annotations

import json

from click.testing import CliRunner

from orch.cli import main

PROJECT = {
    "assistants/bot.yml": "name: bot\nmodel: gpt-4o\n",
    "pipelines/p.yml": """\
        name: p
        assistant: bot
        items: [{q: a}]
        steps:
          - prompt: "{{ item.q.nope }}"
        """,
}


def test_a_render_time_template_error_is_a_mistake_to_fix(make_project):
    root = make_project(PROJECT)

    ran = CliRunner().invoke(main, ["run", "p"])

    assert ran.exit_code == 2, ran.output
    assert "infrastructure" not in ran.stdout
    assert "Errors are template mistakes in the pipeline: fix the templates" in ran.stdout
    (run_dir,) = (root / ".orch" / "runs").iterdir()
    (record,) = [json.loads(line) for line in (run_dir / "results.jsonl").open()]
    assert record["error"]["type"] == "template"
    assert "nope" in record["error"]["message"]
