"""Model graders send the grader object's model, sampling and messages with the grading call.

On a ``responses`` target (the embedded engine's ``/v1/responses``) the scripted model tells,
in its answer, which model and instructions the request carried; on an ``assistants`` target
the run carries them, and the engine's openai-chat model passes them to the strict upstream
double, which records them.
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


def test_on_an_assistants_target_the_grading_run_carries_the_graders_model(make_project, tmp_path):
    """Threads + runs: the run is created with the grader's model and sampling (openai-chat).

    The engine's openai-chat model sends the run's model and sampling upstream, where the strict
    double records them. The double echoes instead of scoring, so the verdict is an error.
    """
    from tests.engine.upstream import StrictUpstream, serving

    upstream = StrictUpstream()
    with (
        serving(upstream) as url,
        start_engine(
            tmp_path / "engine.db",
            model="openai-chat",
            upstream_base_url=url,
            upstream_api_key_env="ORCH_TEST_NO_KEY",
        ) as engine,
    ):
        root = make_project(
            {
                "orch.yml": f"""
                    project: grading
                    target: local
                    grader: grader
                    targets:
                      local: {{kind: assistants, base_url: "{engine.base_url}",
                               api_key_env: RESPONSES_TEST_KEY,
                               models: {{judge-model: gpt-4o-judge}}}}
                """,
                "assistants/helper.yml": "name: helper\nmodel: small\n",
                "assistants/grader.yml": "name: grader\nmodel: tiny\ninstructions: Grade.\n",
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
                              sampling_params:
                                {temperature: 0.25, top_p: 0.5, max_completions_tokens: 40}
                              input:
                                - {role: system, content: You rate politeness.}
                                - {role: user, content: "Rate: {{ sample.output_text }}"}
                """,
            }
        )
        ran = CliRunner().invoke(
            main, ["run", "polite", "--json"], env={"RESPONSES_TEST_KEY": "unused"}
        )
    assert ran.exit_code == 2, ran.output
    assert upstream.rejected == []
    graded = [r for r in upstream.requests if "Rate: echo: hi" in json.dumps(r["messages"])]
    assert len(graded) == 1
    (request,) = graded
    assert (request["model"], request["temperature"], request["top_p"]) == (
        "gpt-4o-judge",
        0.25,
        0.5,
    )
    assert request["messages"][0] == {"role": "system", "content": "You rate politeness."}
    assert 40 in (request.get("max_completion_tokens"), request.get("max_tokens"))
    run_id = json.loads(ran.stdout)["run_id"]
    lines = (root / ".orch" / "runs" / run_id / "results.jsonl").read_text().splitlines()
    (record,) = map(json.loads, lines)
    (verdict,) = record["steps"][0]["assertions"]
    assert verdict["error"] and "gave no score" in verdict["reason"]
