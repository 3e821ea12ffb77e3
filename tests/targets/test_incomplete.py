"""A reply cut at its token cap is the model's answer, judged as it is; other cuts say why."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from orch.cli import main
from orch.engine.server import start_engine

SCRIPT = {"rules": [], "default": {"reply": "word " * 200}}


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    with start_engine(tmp_path_factory.mktemp("engine") / "engine.db", script=SCRIPT) as handle:
        yield handle


@pytest.fixture(params=["assistants", "responses"])
def project(request, make_project, engine, monkeypatch):
    """A bot capped at 16 tokens a reply, on the threads wire and on the responses wire."""
    monkeypatch.setenv("CUT_KEY", "unused")
    target = f'{{kind: {request.param}, base_url: "{engine.base_url}", api_key_env: CUT_KEY}}'
    return make_project(
        {
            "orch.yml": f"project: cut-{request.param}\ntarget: t\ntargets:\n  t: {target}\n",
            "assistants/bot.yml": "name: bot\nmodel: gpt-4o\nmax_tokens: 16\n",
            "pipelines/p.yml": """
                name: p
                assistant: bot
                items: [{wants: word}, {wants: "the end"}]
                steps:
                  - prompt: talk
                    expect: [{contains: "{{ item.wants }}"}]
            """,
        }
    )


def test_a_reply_cut_at_max_tokens_is_judged_not_an_error(project):
    result = CliRunner().invoke(main, ["run", "p"])
    assert result.exit_code == 1, result.output  # a failure (the model's), not exit 2
    assert "(the reply was cut at its max_tokens)" in result.output
    [run_dir] = (project / ".orch/runs").iterdir()
    records = [json.loads(x) for x in (run_dir / "results.jsonl").read_text().splitlines()]
    by_want = {r["item"]["wants"]: r for r in records}
    assert by_want["word"]["status"] == "passed"
    assert by_want["the end"]["status"] == "failed"  # "the end" was cut off
    for record in records:
        [step] = record["steps"]
        assert step["truncated"] is True and record.get("error") is None
        assert step["status"] == "incomplete"
        assert step["last_error"]["reason"] in ("max_completion_tokens", "max_output_tokens")
        assert len(step["output"].split()) < 200
