"""A run cut short says why: the item's error names the reason the run ended incomplete."""

from __future__ import annotations

import json

from click.testing import CliRunner

from orch.cli import main


def test_a_reply_cut_at_max_tokens_is_an_error_naming_the_cap(make_project):
    root = make_project(
        {
            "orch.yml": "project: cut\ntargets:\n  embedded: {kind: engine, model: scripted, "
            "script: script.yml}\n",
            "script.yml": 'default: {reply: "' + "word " * 200 + '"}\n',
            "assistants/bot.yml": "name: bot\nmodel: gpt-4o\nmax_tokens: 5\n",
            "pipelines/p.yml": "name: p\nassistant: bot\nsteps:\n  - prompt: talk\n",
        }
    )
    result = CliRunner().invoke(main, ["run", "p"])
    assert result.exit_code == 2, result.output
    [run_dir] = (root / ".orch/runs").iterdir()
    [record] = [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines()]
    assert record["error"]["type"] == "run_incomplete"
    assert record["error"]["message"] == "run ended incomplete: max_completion_tokens"
