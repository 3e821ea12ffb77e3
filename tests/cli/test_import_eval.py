"""`orch import-eval`: OpenAI eval JSON (shaped by the SDK's own types) → a pipeline that runs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from openai.types.eval_retrieve_response import EvalRetrieveResponse
from openai.types.evals.run_retrieve_response import RunRetrieveResponse

from orch.cli import main

GRADERS = [
    {
        "type": "string_check",
        "name": "exact year",
        "input": "{{ sample.output_text }}",
        "reference": "{{ item.expected }}",
        "operation": "ilike",
    },
    {
        "type": "text_similarity",
        "name": "close to the reference",
        "input": "{{ sample.output_text }}",
        "reference": "The answer is {{ item.expected }}.",
        "evaluation_metric": "fuzzy_match",
        "pass_threshold": 0.5,
    },
]
ITEM_SCHEMA = {
    "type": "object",
    "properties": {"question": {"type": "string"}, "expected": {"type": "string"}},
    "required": ["question", "expected"],
}
ROWS = [
    {"item": {"question": "What year was the USA founded?", "expected": "1776"}},
    {"item": {"question": "When did the Berlin Wall fall?", "expected": "1989"}},
]


def an_eval(**changes) -> dict:
    """``client.evals.retrieve(...)`` as JSON: built through the SDK's type, so shaped like it."""
    data = {
        "id": "eval_68b1",
        "object": "eval",
        "created_at": 1760000000,
        "name": "History facts",
        "metadata": {},
        "data_source_config": {
            "type": "custom",
            "schema": {"type": "object", "properties": {"item": ITEM_SCHEMA}},
        },
        "testing_criteria": GRADERS,
        **changes,
    }
    return EvalRetrieveResponse.model_validate(data).model_dump(mode="json", by_alias=True)


def a_run(data_source: dict | None = None) -> dict:
    """``client.evals.runs.retrieve(...)`` as JSON, through the SDK's type."""
    data_source = data_source or {
        "type": "completions",
        "model": "gpt-4o-mini",
        "sampling_params": {"temperature": 0.2, "max_completion_tokens": 200, "seed": 7},
        "input_messages": {
            "type": "template",
            "template": [
                {"role": "developer", "content": "Answer with the year only."},
                {"role": "user", "content": "{{item.question}}"},
            ],
        },
        "source": {"type": "file_content", "content": ROWS},
    }
    run = {
        "id": "evalrun_1",
        "object": "eval.run",
        "created_at": 1760000001,
        "eval_id": "eval_68b1",
        "name": "baseline",
        "model": "gpt-4o-mini",
        "status": "completed",
        "metadata": {},
        "error": {"code": "", "message": ""},
        "report_url": "https://platform.openai.com/evals/eval_68b1",
        "data_source": data_source,
        "per_model_usage": [],
        "per_testing_criteria_results": [],
        "result_counts": {"errored": 0, "failed": 0, "passed": 2, "total": 2},
    }
    return RunRetrieveResponse.model_validate(run).model_dump(mode="json", by_alias=True)


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh `orch init` project (cwd), the eval and run JSON beside it."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ORCH_TARGET", raising=False)
    assert CliRunner().invoke(main, ["init", "proj"]).exit_code == 0
    monkeypatch.chdir(tmp_path / "proj")
    (tmp_path / "eval.json").write_text(json.dumps(an_eval()))
    (tmp_path / "run.json").write_text(json.dumps(a_run()))
    return tmp_path / "proj"


def orch(*args: str):
    return CliRunner().invoke(main, list(args))


def test_an_eval_and_its_run_become_files_orch_validates(project: Path):
    result = orch("import-eval", "../eval.json", "--runs", "../run.json")
    assert result.exit_code == 0, result.output
    assistant = yaml.safe_load((project / "assistants/history-facts.yml").read_text())
    assert assistant == {
        "name": "history-facts",
        "model": "gpt-4o-mini",
        "temperature": 0.2,
        "max_tokens": 200,
        "instructions": "Answer with the year only.",
    }
    pipeline = yaml.safe_load((project / "pipelines/history-facts.yml").read_text())
    assert pipeline["items"] == {"jsonl": "pipelines/data/history-facts.jsonl"}
    [step] = pipeline["steps"]
    assert step["prompt"] == "{{ item.question }}"
    # graders go over verbatim: a team's definitions keep meaning what they meant
    assert [entry["grader"] for entry in step["expect"]] == [
        {k: v for k, v in g.items()} for g in an_eval()["testing_criteria"]
    ]
    lines = (project / "pipelines/data/history-facts.jsonl").read_text().splitlines()
    assert [json.loads(line) for line in lines] == [row["item"] for row in ROWS]
    assert "not mapped: sampling_params.seed" in result.output
    assert "orch run pipelines/history-facts.yml" in result.output
    validated = orch("validate")
    assert validated.exit_code == 0, validated.output


def test_the_imported_pipeline_runs_its_graders_on_the_engine(project: Path):
    assert orch("import-eval", "../eval.json", "--runs", "../run.json").exit_code == 0
    (project / "scripts/rehearsal.yml").write_text(
        "rules:\n"
        '  - when: {contains: "USA"}\n    reply: "1776"\n'
        '  - when: {contains: "Berlin"}\n    reply: "1961"\n'
    )
    result = orch("run", "pipelines/history-facts.yml")
    assert result.exit_code == 1, result.output  # 1776 passes both graders; 1961 fails
    [run_dir] = (project / ".orch/runs").iterdir()
    results = [json.loads(line) for line in (run_dir / "results.jsonl").read_text().splitlines()]
    passed = {r["item"]["expected"]: r["status"] for r in results}
    assert passed == {"1776": "passed", "1989": "failed"}


def test_data_rows_are_checked_against_the_evals_item_schema(project: Path, tmp_path: Path):
    (tmp_path / "items.jsonl").write_text(
        json.dumps({"item": {"question": "q", "expected": "a"}})
        + "\n\n"
        + '{"item": {"question": 3}}\n'
    )
    result = orch(
        "import-eval", "../eval.json", "--runs", "../run.json", "--data", "../items.jsonl"
    )
    assert result.exit_code == 2
    assert "items.jsonl:3: item.question: 3 is not of type 'string'" in result.output
    assert not (project / "pipelines/history-facts.yml").exists()  # nothing half-written


def test_existing_files_need_force_and_nothing_is_written_without_it(project: Path):
    assert orch("import-eval", "../eval.json", "--runs", "../run.json").exit_code == 0
    (project / "pipelines/data/history-facts.jsonl").write_text('{"question": "mine"}\n')
    again = orch("import-eval", "../eval.json", "--runs", "../run.json")
    assert again.exit_code == 2
    assert "exists; pass --force" in again.output
    assert "mine" in (project / "pipelines/data/history-facts.jsonl").read_text()
    forced = orch("import-eval", "../eval.json", "--runs", "../run.json", "--force")
    assert forced.exit_code == 0
    assert "mine" not in (project / "pipelines/data/history-facts.jsonl").read_text()


def test_json_that_is_not_an_eval_is_one_line_naming_the_field(project: Path, tmp_path: Path):
    broken = an_eval()
    broken["testing_criteria"][0]["operation"] = "startswith"
    (tmp_path / "bad.json").write_text(json.dumps(broken))
    result = orch("import-eval", "../bad.json")
    assert result.exit_code == 2
    assert "testing_criteria.0" in result.output and "operation" in result.output
    assert len(result.output.strip().splitlines()) == 1
    (tmp_path / "garbled.json").write_text('{"name": "x",\n  oops}')
    garbled = orch("import-eval", "../garbled.json")
    assert garbled.exit_code == 2 and "garbled.json:2: not JSON" in garbled.output


def test_what_cannot_be_mapped_is_listed_with_its_reason(project: Path, tmp_path: Path):
    run = a_run(
        {
            "type": "completions",
            "model": "gpt-4o",
            "input_messages": {
                "type": "template",
                "template": [
                    {"role": "system", "content": "Tutor for {{item.level}} students."},
                    {"role": "user", "content": "Example question"},
                    {"role": "assistant", "content": "Example answer"},
                    {
                        "role": "user",
                        "content": [
                            {"type": "input_text", "text": "{{item.question}}"},
                            {"type": "input_image", "image_url": "{{item.picture}}"},
                        ],
                    },
                ],
            },
            "source": {"type": "file_id", "id": "file-abc"},
        }
    )
    (tmp_path / "run2.json").write_text(json.dumps(run))
    no_data = orch("import-eval", "../eval.json", "--runs", "../run2.json")
    assert no_data.exit_code == 2
    assert "file-abc" in no_data.output and "--data" in no_data.output
    (tmp_path / "items.jsonl").write_text(
        json.dumps({"item": {"question": "q", "expected": "a"}, "sample": {"output_text": "a"}})
    )
    result = orch(
        "import-eval", "../eval.json", "--runs", "../run2.json", "--data", "../items.jsonl"
    )
    assert result.exit_code == 0, result.output
    [step] = yaml.safe_load((project / "pipelines/history-facts.yml").read_text())["steps"]
    assert step["prompt"] == "{{ item.question }}"
    assert step["instructions"].startswith("Tutor for {{ item.level }} students.")
    assert (
        "Example conversation:\nUser: Example question\nAssistant: Example answer"
        in step["instructions"]
    )
    for reason in ("input_image part", "example text", "1 rows carry a sample"):
        assert reason in result.output


def test_create_params_and_item_references_are_understood(project: Path, tmp_path: Path):
    create = {
        "name": "Trajectories",
        "data_source_config": {"type": "custom", "item_schema": {"type": "object"}},
        "testing_criteria": [GRADERS[0]],
    }
    (tmp_path / "create.json").write_text(json.dumps(create))
    run = a_run(
        {
            "type": "completions",
            "model": "gpt-4o",
            "input_messages": {"type": "item_reference", "item_reference": "item.chat-log"},
            "source": {"type": "file_content", "content": [{"item": {"chat-log": []}}]},
        }
    )
    (tmp_path / "run3.json").write_text(json.dumps(run))
    result = orch("import-eval", "../create.json", "--runs", "../run3.json")
    assert result.exit_code == 0, result.output
    [step] = yaml.safe_load((project / "pipelines/trajectories.yml").read_text())["steps"]
    assert step["prompt"].startswith('{{ (item["chat-log"] | selectattr(')
    assert "only the last user message" in result.output
