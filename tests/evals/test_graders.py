"""OpenAI's grader objects as assertions: each type on known inputs, validation, and a real run.

The end-to-end run goes through ``orch run`` on the embedded engine: the scripted model answers
the bot and the grader assistant (score_model, label_model), the engine's ``/v1/embeddings``
gives ``cosine`` its vectors, a python grader runs in a child interpreter.
"""

from __future__ import annotations

import json
import os
import textwrap
import typing
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner

from orch.cli import main
from orch.engine.embeddings import local_embedding
from orch.evals import graders, similarity
from orch.evals.assertions import evaluate
from orch.evals.replies import CheckError
from orch.project.model import Assertion
from orch.project.schemas import load_schema

REPLY = {"output": "Paris is the capital of France.", "tool_calls": []}
ITEM = {"item": {"city": "Paris", "answer": "The capital of France is Paris"}}


def grade(spec: dict, result: dict = REPLY, context: dict = ITEM) -> graders.Outcome:
    return graders.grade({"name": "g", **spec}, result, context, None)


def check(op: str, reference: str, output: str = REPLY["output"]) -> bool:
    spec = {"type": "string_check", "input": "{{ sample.output_text }}", "operation": op}
    return grade({**spec, "reference": reference}, {"output": output}).passed


def test_string_check_operations():
    assert check("eq", "Paris is the capital of France.")
    assert not check("eq", "paris is the capital of france.")
    assert check("ne", "Lyon")
    assert check("like", "{{ item.city }}")  # the item's field, OpenAI's {{ item.x }}
    assert not check("like", "paris")
    assert check("ilike", "PARIS")
    outcome = grade({"type": "string_check", "input": "x", "reference": "y", "operation": "eq"})
    assert (outcome.score, outcome.scaled) == (0.0, 0.0)
    assert outcome.reason == "g: 'x' eq 'y' does not hold"


def test_string_check_reads_the_reply_as_json():
    spec = {
        "type": "string_check",
        "input": "{{ sample.output_json.city }}",
        "reference": "Paris",
        "operation": "eq",
    }
    assert grade(spec, {"output": '```json\n{"city": "Paris"}\n```'}).passed
    # a reply that is not JSON fails (the model's fault), it is not a broken check
    prose = grade(spec, {"output": "Paris"})
    assert not prose.passed and "not JSON" in prose.reason


@pytest.mark.parametrize("metric", sorted(similarity.METRICS))
def test_text_similarity_scores_the_metric(metric):
    spec = {
        "type": "text_similarity",
        "input": "{{ sample.output_text }}",
        "reference": "{{ item.answer }}",
        "evaluation_metric": metric,
    }
    expected = similarity.score(metric, REPLY["output"], ITEM["item"]["answer"])
    low = grade({**spec, "pass_threshold": expected})
    assert low.passed and low.score == pytest.approx(expected) and low.scaled == low.score
    high = grade({**spec, "pass_threshold": expected + 0.01})
    assert not high.passed and "below pass_threshold" in high.reason


def test_text_similarity_cosine_needs_embeddings():
    spec = {"type": "text_similarity", "input": "a", "reference": "b", "pass_threshold": 0.5}
    with pytest.raises(CheckError, match="no embeddings"):
        grade({**spec, "evaluation_metric": "cosine"})
    assert graders.cosine([1.0, 0.0], [2.0, 0.0]) == 1.0
    assert graders.cosine([1.0, 0.0], [0.0, 3.0]) == 0.0


def test_python_grader_runs_grade_in_a_child_process(tmp_path):
    source = textwrap.dedent(
        """
        import os
        def grade(sample, item):
            if os.getpid() == item["pid"] or os.getcwd() != item["cwd"]:
                return -1.0
            words = sample["output_text"].split()
            return len([w for w in words if item["city"] in w]) / len(words)
        """
    )
    item = {**ITEM["item"], "pid": os.getpid(), "cwd": str(tmp_path)}
    outcome = graders.grade(
        {"type": "python", "name": "p", "source": source, "pass_threshold": 0.15},
        REPLY,
        {"item": item},
        None,
        tmp_path,
    )
    assert outcome.passed and outcome.score == pytest.approx(1 / 6)


def test_python_grader_failures_are_errors(monkeypatch):
    def run(source: str) -> None:
        grade({"type": "python", "source": textwrap.dedent(source)})

    with pytest.raises(CheckError, match="ZeroDivisionError"):
        run("def grade(sample, item):\n    return 1 / 0\n")
    with pytest.raises(CheckError, match="not a number"):
        run("def grade(sample, item):\n    return 'yes'\n")
    monkeypatch.setattr(graders, "PYTHON_TIMEOUT", 0.5)
    with pytest.raises(CheckError, match="timed out after 0.5s"):
        run("import time\ndef grade(sample, item):\n    time.sleep(5)\n")


def test_multi_combines_named_graders():
    spec = {
        "type": "multi",
        "graders": {
            "city": {
                "type": "string_check",
                "name": "city",
                "input": "{{ sample.output_text }}",
                "reference": "{{ item.city }}",
                "operation": "like",
            },
            "sim": {
                "type": "text_similarity",
                "name": "sim",
                "input": "{{ sample.output_text }}",
                "reference": "{{ item.answer }}",
                "evaluation_metric": "rouge_l",
            },
        },
        "calculate_output": "0.5 * city + 0.5 * sim",
    }
    rouge = similarity.rouge_l(REPLY["output"], ITEM["item"]["answer"])
    outcome = grade({**spec, "pass_threshold": 0.8})
    assert outcome.passed and outcome.score == pytest.approx(0.5 + 0.5 * rouge)
    strict = grade(spec)  # without pass_threshold only the top score passes
    assert not strict.passed and "sim=0.6667" in strict.reason


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("a + b * 2", 7.0),
        ("(a + b) / 2", 2.0),
        ("b ^ 2 - a", 8.0),
        ("min(a, b) + max(a, 2) + abs(-a)", 4.0),
        ("sqrt(b ** 2) + floor(1.5) + ceil(0.2) + round(exp(0)) + log(1)", 6.0),
        ("-a + +b", 2.0),
    ],
)
def test_formula_arithmetic(text, value):
    assert graders.formula(text, {"a": 1.0, "b": 3.0}) == pytest.approx(value)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("__import__('os').system('true')", "may call only"),
        ("a.real", "may use only"),
        ("c + 1", "not one of the graders"),
        ("'text'", "only numbers"),
        ("a +", "not a formula"),
        ("[a][0]", "may use only"),
        ("max(a, key=b)", "may call only"),
    ],
)
def test_formula_refuses_anything_else(text, words):
    assert words in graders.check_formula(text, {"a", "b"})
    with pytest.raises(CheckError, match=words):
        graders.formula(text, {"a": 1.0, "b": 3.0})


def test_formula_arithmetic_errors_are_check_errors():
    with pytest.raises(CheckError, match="division by zero"):
        graders.formula("a / (b - 3)", {"a": 1.0, "b": 3.0})


def test_model_graders_need_the_runs_services():
    spec = {"type": "score_model", "model": "m", "input": [{"role": "user", "content": "x"}]}
    with pytest.raises(CheckError, match="no grading model"):
        grade(spec)


def test_evaluate_turns_a_grader_into_a_verdict():
    value = {
        "type": "string_check",
        "name": "city",
        "input": "{{ sample.output_text }}",
        "reference": "Lyon",
        "operation": "like",
    }
    verdict = evaluate(Assertion(kind="grader", value=value), REPLY, ITEM)
    assert verdict.name == "grader: city (string_check)"
    assert (verdict.passed, verdict.score, verdict.error) == (False, 0.0, False)
    broken = {**value, "input": "{{ sample.nope }}"}
    verdict = evaluate(Assertion(kind="grader", value=broken), REPLY, ITEM)
    assert verdict.error and "template error" in verdict.reason


# -- through the CLI -----------------------------------------------------------------------

FILES = {
    "orch.yml": """
        project: graders-test
        target: embedded
        targets:
          embedded: {kind: engine, model: scripted, script: script.yml}
        grader: grader
    """,
    "assistants/bot.yml": "name: bot\nmodel: gpt-test\n",
    "assistants/grader.yml": "name: grader\nmodel: gpt-grader\n",
    "script.yml": """
        rules:
          - when: {assistant: grader, contains: "Rate the politeness of: Paris"}
            reply: {result: 8, reason: "courteous"}
          - when: {assistant: grader, contains: "Rate the politeness"}
            reply: 'Verdict: {"result": 2, "reason": "curt"}'
          - when: {assistant: grader, contains: "Classify the sentiment: Paris"}
            reply: {result: positive}
          - when: {assistant: grader, contains: "Classify the sentiment"}
            reply: "negative"
          - when: {contains: "capital please"}
            reply: "Paris is the capital of France."
          - when: {contains: "JSON please"}
            reply: {city: Paris}
        default: {reply: "Go away."}
    """,
    "pipelines/graded.yml": """
        name: graded
        assistant: bot
        items:
          - {q: "capital please", city: Paris, answer: "The capital of France is Paris"}
          - {q: "be rude", city: Paris, answer: "The capital of France is Paris"}
        steps:
          - id: capital
            prompt: "{{ item.q }}"
            expect:
              - grader: {type: string_check, name: city, operation: like,
                         input: "{{ sample.output_text }}", reference: "{{ item.city }}"}
              - grader: {type: text_similarity, name: fuzzy, evaluation_metric: fuzzy_match,
                         input: "{{ sample.output_text }}", reference: "{{ item.answer }}",
                         pass_threshold: 0.8}
              - grader: {type: text_similarity, name: cosine, evaluation_metric: cosine,
                         input: "{{ sample.output_text }}", reference: "{{ item.answer }}",
                         pass_threshold: 0.9}
              - grader:
                  type: python
                  name: mentions
                  source: |
                    def grade(sample, item):
                        return float(item["city"] in sample["output_text"])
              - grader:
                  type: score_model
                  name: politeness
                  model: gpt-4o-2024-08-06
                  range: [0, 10]
                  pass_threshold: 7
                  input:
                    - {role: system, content: "You rate politeness from 0 to 10."}
                    - {role: user, content: "Rate the politeness of: {{ sample.output_text }}"}
              - grader:
                  type: label_model
                  name: sentiment
                  model: gpt-4o-2024-08-06
                  labels: [positive, neutral, negative]
                  passing_labels: [positive, neutral]
                  input:
                    - role: user
                      content:
                        - type: input_text
                          text: "Classify the sentiment: {{ sample.output_text }}"
              - grader:
                  type: multi
                  name: combined
                  graders:
                    city: {type: string_check, name: city, operation: like,
                           input: "{{ sample.output_text }}", reference: "{{ item.city }}"}
                    overlap: {type: text_similarity, name: overlap, evaluation_metric: rouge_l,
                              input: "{{ sample.output_text }}", reference: "{{ item.answer }}"}
                  calculate_output: "0.5 * city + 0.5 * overlap"
                  pass_threshold: 0.8
          - id: json
            prompt: "JSON please"
            expect:
              - grader: {type: string_check, name: city field, operation: eq,
                         input: "{{ sample.output_json.city }}", reference: "{{ item.city }}"}
    """,
}


def invoke(*args: str):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        result = CliRunner().invoke(main, list(args), catch_exceptions=True)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("graders") / "project"
    for rel, text in FILES.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    with pytest.MonkeyPatch.context() as mp:
        for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ORCH_TARGET", "ORCH_RAISE_ERRORS"):
            mp.delenv(name, raising=False)
        mp.chdir(root)
        yield root


def _records(root: Path, run_id: str) -> dict[str, dict]:
    lines = (root / ".orch" / "runs" / run_id / "results.jsonl").read_text().splitlines()
    return {r["item"]["q"]: r for r in map(json.loads, lines)}


def test_graders_judge_a_real_run(project):
    ran = invoke("run", "pipelines/graded.yml", "--json")
    assert ran.exit_code == 1, ran.stderr  # the rude item fails
    records = _records(project, json.loads(ran.stdout)["run_id"])
    good, rude = records["capital please"], records["be rude"]
    assert good["status"] == "passed", good
    verdicts = {v["name"]: v for s in good["steps"] for v in s["assertions"]}
    assert all(v["passed"] and not v["error"] for v in verdicts.values()), verdicts
    assert verdicts["grader: politeness (score_model)"]["score"] == 0.8  # 8 on [0, 10]
    assert verdicts["grader: fuzzy (text_similarity)"]["score"] == pytest.approx(0.95)
    # the engine's local embeddings, the same words reordered
    vectors = [local_embedding(t, 3072) for t in (REPLY["output"], ITEM["item"]["answer"])]
    cosine = verdicts["grader: cosine (text_similarity)"]["score"]
    assert cosine == pytest.approx(graders.cosine(*vectors), abs=1e-4) and cosine > 0.99
    assert len(verdicts) == 8
    assert rude["status"] == "failed"
    failed = {v["name"]: v["reason"] for s in rude["steps"] for v in s["assertions"]}
    assert failed["grader: politeness (score_model)"] == (
        "politeness: score 2 below pass_threshold 7: curt"
    )
    assert failed["grader: sentiment (label_model)"] == "sentiment: label 'negative' is not passing"
    assert failed["grader: mentions (python)"].startswith("mentions: score 0 below")
    assert "city=0" in failed["grader: combined (multi)"]
    assert failed["grader: city field (string_check)"] == ""  # sample.output_json.city


def _validate(root: Path, pipeline: str) -> list[str]:
    text = textwrap.dedent(pipeline).lstrip("\n")
    bad = root / "pipelines" / "bad.yml"
    bad.write_text(text, encoding="utf-8")
    try:
        ran = invoke("validate", "pipelines/bad.yml")
    finally:
        bad.unlink()  # the module's other tests run the project
    assert ran.exit_code == 2, ran.output
    return [line for line in ran.stderr.splitlines() if line.startswith("pipelines/")]


def test_validate_refuses_what_openai_would(project):
    lines = _validate(
        project,
        """
        name: bad
        assistant: bot
        steps:
          - prompt: hi
            expect:
              - grader: {type: string_check, name: a, input: x, reference: y, operation: has}
              - grader: {type: text_similarity, name: b, input: x, reference: y,
                         evaluation_metric: bleu}
              - grader: {type: text_similarity, name: c, input: x, reference: y,
                         evaluation_metric: bleu, pass_threshold: 1, colour: red}
              - grader: {type: score_model, name: d, model: m,
                         input: [{role: boss, content: hi}]}
              - grader: {type: multi, name: e, calculate_output: x, graders: {
                         x: {type: string_check, name: x, input: a, reference: b,
                             operation: eq, pass_threshold: 1}}}
        """,
    )
    assert lines == [
        'pipelines/bad.yml:6: steps[0].expect[0].grader.operation: "has" is not one of: '
        '"eq", "ne", "like", "ilike"',
        "pipelines/bad.yml:7: steps[0].expect[1].grader: missing required field 'pass_threshold'",
        "pipelines/bad.yml:10: steps[0].expect[2].grader.colour: unknown field (allowed: "
        "evaluation_metric, input, name, pass_threshold, reference, type)",
        'pipelines/bad.yml:12: steps[0].expect[3].grader.input[0].role: "boss" is not one of: '
        '"user", "assistant", "system", "developer"',
        "pipelines/bad.yml:15: steps[0].expect[4].grader.graders.x.pass_threshold: unknown field "
        "(allowed: input, name, operation, reference, type)",
    ]


def test_validate_checks_templates_labels_and_formulas(project):
    lines = _validate(
        project,
        """
        name: bad
        assistant: bot
        items: [{city: Paris}]
        steps:
          - prompt: hi
            expect:
              - grader: {type: string_check, name: a, operation: eq,
                         input: "{{ sample.output_txt }}", reference: "{{ item.town }}"}
              - grader: {type: label_model, name: b, model: m, labels: [good, bad],
                         passing_labels: [fine], input: [{role: user, content: hi}]}
              - grader: {type: multi, name: c, calculate_output: "x + y", graders: {
                         x: {type: string_check, name: x, input: a, reference: b, operation: eq}}}
              - grader: {type: score_model, name: d, model: m, range: [1, 0],
                         input: [{role: user, content: "{{ steps.later.output }}"}]}
              - grader: {type: python, name: e, source: "def grade(sample, item):\\n  return ("}
              - grader: {type: python, name: f, source: "def score(sample, item): return 1"}
          - {id: later, prompt: hi}
        """,
    )
    assert lines == [
        "pipelines/bad.yml:8: steps[0].expect[0].grader.input: template error: sample has no "
        "'output_txt' (sample: output_text, output_json, output_tools)",
        "pipelines/bad.yml:8: steps[0].expect[0].grader.reference: template error: item has no "
        "field 'town' (the items have: city)",
        "pipelines/bad.yml:10: steps[0].expect[1].grader.passing_labels: not among the labels: "
        "fine",
        "pipelines/bad.yml:11: steps[0].expect[2].grader.calculate_output: calculate_output names "
        "'y', not one of the graders (x)",
        "pipelines/bad.yml:13: steps[0].expect[3].grader.range: must be two numbers [low, high] "
        "with low < high",
        "pipelines/bad.yml:14: steps[0].expect[3].grader.input[0].content: template error: "
        "steps.later has not run yet when this renders (steps run in order)",
        "pipelines/bad.yml:15: steps[0].expect[4].grader.source: Python syntax error at line 2 "
        "of source: '(' was never closed",
        "pipelines/bad.yml:16: steps[0].expect[5].grader.source: source defines no "
        "grade(sample, item) function",
    ]


# -- the schema agrees with the SDK's types ------------------------------------------------


def _sdk_fields(model) -> tuple[set[str], set[str]]:
    fields = model.model_fields
    return set(fields), {name for name, f in fields.items() if f.is_required()}


def test_the_schema_accepts_exactly_the_sdks_grader_fields():
    from openai.types import eval_create_params as evals
    from openai.types.graders import (
        label_model_grader,
        multi_grader,
        python_grader,
        score_model_grader,
        string_check_grader,
        text_similarity_grader,
    )

    defs = load_schema("pipeline")["$defs"]
    sdk = {
        "string_check": string_check_grader.StringCheckGrader,
        "text_similarity": text_similarity_grader.TextSimilarityGrader,
        "python": python_grader.PythonGrader,
        "score_model": score_model_grader.ScoreModelGrader,
        "label_model": label_model_grader.LabelModelGrader,
        "multi": multi_grader.MultiGrader,
    }
    # pass_threshold as OpenAI's evals take it (required on text_similarity; multi: orch's)
    criteria = {
        "text_similarity": evals.TestingCriterionTextSimilarity,
        "python": evals.TestingCriterionPython,
        "score_model": evals.TestingCriterionScoreModel,
    }
    for kind, model in sdk.items():
        fields, required = _sdk_fields(model)
        schema = defs[f"grader_{kind}"]
        threshold = {"pass_threshold"} if kind in (*criteria, "multi") else set()
        assert set(schema["properties"]) == fields | threshold, kind
        needed = {"pass_threshold"} if kind == "text_similarity" else set()
        assert set(schema["required"]) == required | needed, kind
        assert schema["additionalProperties"] is False
        if kind in criteria:
            assert "pass_threshold" in criteria[kind].__annotations__
        if kind != "multi":
            inner = defs[f"sub_grader_{kind}"]
            assert (set(inner["properties"]), set(inner["required"])) == (fields, required)
    string_check = defs["grader_string_check"]["properties"]["operation"]["enum"]
    assert set(string_check) == _literal_of(sdk["string_check"], "operation")
    metrics = defs["grader_text_similarity"]["properties"]["evaluation_metric"]["enum"]
    assert set(metrics) == _literal_of(sdk["text_similarity"], "evaluation_metric")
    message = score_model_grader.Input
    assert set(defs["grader_message"]["properties"]) == set(message.model_fields)
    assert set(defs["grader_message"]["properties"]["role"]["enum"]) == _literal_of(message, "role")
    sampling = defs["grader_score_model"]["properties"]["sampling_params"]["properties"]
    assert set(sampling) == set(score_model_grader.SamplingParams.model_fields)
    # OpenAI's multi grader names its graders (the SDK's type holds one): a formula needs names
    assert defs["grader_multi"]["properties"]["graders"]["type"] == "object"


def _literal_of(model, field: str) -> set[str]:
    return set(typing.get_args(model.model_fields[field].annotation))


def test_graders_as_the_sdk_dumps_them_validate(project):
    """``model_dump()`` of the SDK's grader types (unset optional fields as null) is accepted."""
    from openai.types.graders import (
        label_model_grader,
        python_grader,
        score_model_grader,
        string_check_grader,
    )

    message = {"role": "user", "content": "Rate: {{ sample.output_text }}"}
    dumped = [
        score_model_grader.ScoreModelGrader(
            type="score_model", name="s", model="m", input=[message]
        ).model_dump(),
        label_model_grader.LabelModelGrader(
            type="label_model",
            name="l",
            model="m",
            input=[{"role": "user", "content": [{"type": "input_text", "text": "hi"}]}],
            labels=["a", "b"],
            passing_labels=["a"],
        ).model_dump(),
        python_grader.PythonGrader(
            type="python", name="p", source="def grade(sample, item):\n    return 1.0\n"
        ).model_dump(),
        string_check_grader.StringCheckGrader(
            type="string_check", name="c", input="x", reference="x", operation="eq"
        ).model_dump(),
    ]
    assert dumped[0]["range"] is None and dumped[0]["input"][0]["type"] is None
    pipeline = {
        "name": "dumped",
        "assistant": "bot",
        "steps": [{"prompt": "hi", "expect": [{"grader": g} for g in dumped]}],
    }
    (project / "pipelines" / "dumped.yml").write_text(json.dumps(pipeline), encoding="utf-8")
    try:
        ran = invoke("validate", "pipelines/dumped.yml")
    finally:
        (project / "pipelines" / "dumped.yml").unlink()
    assert ran.exit_code == 0, ran.output
