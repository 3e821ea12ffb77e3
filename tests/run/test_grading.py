"""Model graders on a ``responses`` target: the grader object's model and messages are sent.

The target is the embedded engine's ``/v1/responses``; its scripted model tells, in its answer,
which model and instructions the grading request carried.
"""

from __future__ import annotations

import json
import textwrap

from click.testing import CliRunner

from orch.cli import main
from orch.engine.server import start_engine

SCRIPT = """
rules:
  - when: {contains: "Rate the politeness"}
    reply: >-
      {"result": 2, "reason": "asked {{ assistant.model }} told {{ assistant.instructions }}"}
  - when: {contains: "Label it"}
    reply: '{"result": "rude"}'
  - when: {contains: "hi"}
    reply: "Go away."
"""


def test_a_score_model_grader_sends_its_model_and_system_message(make_project, tmp_path):
    script = tmp_path / "script.yml"
    script.write_text(textwrap.dedent(SCRIPT), encoding="utf-8")
    with start_engine(tmp_path / "engine.db", script=script) as engine:
        root = make_project(
            {
                "orch.yml": f"""
                    project: grading
                    target: local
                    grader: grader
                    targets:
                      local: {{kind: responses, base_url: "{engine.base_url}",
                               api_key_env: RESPONSES_TEST_KEY,
                               models: {{judge-model: gpt-4o-judge}}}}
                """,
                "assistants/helper.yml": "name: helper\nmodel: gpt-4o\n",
                "assistants/grader.yml": "name: grader\nmodel: gpt-4o-mini\ninstructions: Grade.\n",
                "pipelines/polite.yml": """
                    name: polite
                    assistant: helper
                    steps:
                      - prompt: hi
                        expect:
                          - grader:
                              type: score_model
                              name: politeness
                              model: judge-model
                              range: [0, 10]
                              pass_threshold: 7
                              sampling_params: {temperature: 0, max_completions_tokens: 50}
                              input:
                                - {role: developer, content: You rate politeness.}
                                - role: user
                                  content: "Rate the politeness: {{ sample.output_text }}"
                          - grader:
                              type: label_model
                              name: tone
                              model: gpt-4o-2024-08-06
                              labels: [kind, rude]
                              passing_labels: [kind]
                              input: [{role: user, content: "Label it: {{ sample.output_text }}"}]
                """,
            }
        )
        ran = CliRunner().invoke(
            main, ["run", "polite", "--json"], env={"RESPONSES_TEST_KEY": "unused"}
        )
    assert ran.exit_code == 1, ran.output
    run_id = json.loads(ran.stdout)["run_id"]
    lines = (root / ".orch" / "runs" / run_id / "results.jsonl").read_text().splitlines()
    (record,) = map(json.loads, lines)
    reasons = [v["reason"] for v in record["steps"][0]["assertions"]]
    # the grader's model, renamed by the target's models:, and its developer message
    assert reasons == [
        "politeness: score 2 below pass_threshold 7: asked gpt-4o-judge told You rate politeness.",
        "tone: label 'rude' is not passing",
    ]
