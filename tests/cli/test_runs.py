"""`orch run A B …`: several pipelines in one command, end to end on the embedded engine.

Each pipeline is its own run; all are found and checked, and their assistants synced, before
the first one starts; the exit code is the worst run's. Also: how runs on the embedded engine
name their target (not by the port of the moment) in the summary, run.json, the history,
`orch show` and every built-in report.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner

from orch.cli import main
from orch.cli.runs import overall, overall_line
from orch.project.model import EMBEDDED, Target
from orch.targets.engine import engine_label

SCRIPT = """
rules:
  - when: {contains: "capital of France"}
    reply: "Paris."
default: {reply: "I do not know."}
"""

REPORTS = """
report:
  - {template: builtin:markdown, output: "out/{{ run.id }}.md"}
  - {template: builtin:html, output: "out/{{ run.id }}.html"}
  - {template: builtin:junit, output: "out/{{ run.id }}.xml"}
  - {template: builtin:json, output: "out/{{ run.id }}.json"}
"""

FILES = {
    "orch.yml": """
        project: several
        targets:
          embedded: {kind: engine, model: scripted, script: script.yml}
    """,
    "script.yml": SCRIPT,
    "assistants/tutor.yml": "name: tutor\nmodel: gpt-test\ninstructions: Be brief.\n",
    "assistants/other.yml": "name: other\nmodel: gpt-test\ninstructions: Be terse.\n",
    "pipelines/good.yml": """
        name: good
        assistant: tutor
        vars: {country: France}
        items: [{q: capital}]
        steps:
          - prompt: "What is the {{ item.q }} of {{ vars.country }}?"
            expect: [{contains: Paris}]
    """,
    "pipelines/bad.yml": """
        name: bad
        assistant: other
        items: [{q: Peru}, {q: Chad}]
        steps:
          - prompt: "What is the capital of {{ item.q }}?"
            expect: [{contains: Lima}]
    """,
    "pipelines/broken.yml": """
        name: broken
        assistant: tutor
        items: [{q: x}]
        steps:
          - prompt: "{{ item.q }}"
            attachments: [{path: "data/missing-{{ item.q }}.txt"}]
    """,
}

STARTED = "Started the embedded engine at "
OVERALL = re.compile(r"^Overall: .*$", re.MULTILINE)


@pytest.fixture
def project(make_project) -> Path:
    return make_project(FILES)


def cli(*args: str):
    """``orch ARGS`` in-process; a traceback that would reach the user fails the test."""
    result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def runs(root: Path) -> list[dict]:
    """Every run in the history, oldest first (`orch history --json`)."""
    result = cli("history", "--json")
    assert result.exit_code == 0, result.output
    return list(reversed(json.loads(result.stdout))) if (root / ".orch").exists() else []


def test_one_passing_and_one_failing_pipeline_exit_1_with_a_summary_each(project):
    result = cli("run", "good", "pipelines/bad.yml")

    assert result.exit_code == 1, result.output
    assert result.stderr.count(STARTED) == 1  # one engine, one connection for both runs
    assert result.stdout.count("Synced ") == 1  # both assistants synced once, up front
    first, second = runs(project)
    assert (first["pipeline"], first["outcome"]) == ("good", "passed")
    assert (second["pipeline"], second["outcome"]) == ("bad", "failed")
    assert first["run_id"] != second["run_id"]
    assert f"Run {first['run_id']} — pipeline good: PASSED" in result.stdout
    assert f"Run {second['run_id']} — pipeline bad: FAILED 0 % < 100 %" in result.stdout
    assert OVERALL.findall(result.stdout) == [
        "Overall: FAILED — 2 pipelines: 1 passed, 1 failed (bad); exit 1"
    ]


def test_an_errored_run_makes_the_exit_2_and_the_others_still_run(project):
    result = cli("run", "broken", "good")

    assert result.exit_code == 2, result.output
    assert [(r["pipeline"], r["outcome"]) for r in runs(project)] == [
        ("broken", "error"),
        ("good", "passed"),
    ]
    assert OVERALL.findall(result.stdout) == [
        "Overall: ERROR — 2 pipelines: 1 passed, 1 error (broken); exit 2"
    ]


def test_all_passing_exit_0_and_json_is_one_document(project):
    (project / "pipelines" / "also.yml").write_text(
        "name: also\nassistant: other\nsteps:\n  - prompt: capital of France\n"
        "    expect: [{contains: Paris}]\n"
    )
    result = cli("run", "good", "also", "--json")

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert (document["outcome"], document["exit_code"]) == ("passed", 0)
    assert [(r["pipeline"], r["outcome"], r["exit_code"]) for r in document["runs"]] == [
        ("good", "passed", 0),
        ("also", "passed", 0),
    ]
    assert [r["run_id"] for r in document["runs"]] == [r["run_id"] for r in runs(project)]


@pytest.mark.parametrize(
    ("second", "says"),
    [
        ("nope", "no pipeline 'nope' (pipelines: "),
        ("pipelines/nope.yml", "no pipeline 'pipelines/nope.yml'"),
    ],
)
def test_an_unknown_second_pipeline_stops_everything_before_the_first_runs(
    project, second: str, says: str
):
    result = cli("run", "good", second)

    assert result.exit_code == 2
    assert says in result.stderr
    assert not (project / ".orch").exists()  # no engine started, no history, no run


def test_an_invalid_second_pipeline_file_stops_everything_with_file_and_line(project):
    (project / "pipelines" / "bad.yml").write_text(
        "name: bad\nassistant: other\nsteps:\n  - prompt: hi\n    expect: [{contans: x}]\n"
    )
    result = cli("run", "good", "bad")

    assert result.exit_code == 2
    assert "pipelines/bad.yml:5:" in result.stderr
    assert not (project / ".orch").exists()


def test_assistants_out_of_sync_stop_every_run_before_the_first(project):
    result = cli("run", "good", "bad", "--no-sync")

    assert result.exit_code == 2
    assert "assistants not in sync" in result.stderr and "other, tutor" in result.stderr
    assert runs(project) == []


def test_a_var_one_of_the_pipelines_uses_is_taken_one_none_uses_is_refused(project):
    assert cli("run", "good", "bad", "--var", "country=Peru").exit_code == 1  # Peru: no Paris
    good = runs(project)[0]
    assert good["pipeline"] == "good" and good["outcome"] == "failed"

    refused = cli("run", "good", "bad", "--var", "contry=Peru")
    assert refused.exit_code == 2
    assert "--var contry: pipelines 'good', 'bad' use no var 'contry'" in refused.stderr
    assert "did you mean 'country'?" in refused.stderr
    assert len(runs(project)) == 2  # nothing more ran


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--max-cost", "1"], "--max-cost / --max-tokens-total cap one run"),
        (["--max-tokens-total", "9"], "--max-cost / --max-tokens-total cap one run"),
        (["--variant", "x"], "--variant names one pipeline's variants"),
        (["--resume", "20261121-220512-3fa2c1"], "drop PIPELINE"),
    ],
)
def test_options_for_one_run_are_refused_with_several_pipelines(project, args, says):
    result = cli("run", "good", "bad", *args)

    assert result.exit_code == 2
    assert says in result.stderr
    assert not (project / ".orch").exists()


def test_a_capped_pipeline_among_several_batch_runs_is_refused_before_any_runs(project):
    with (project / "pipelines" / "bad.yml").open("a") as fh:
        fh.write("max_tokens_total: 1000\n")

    result = cli("run", "good", "bad", "--batch")

    assert result.exit_code == 2
    assert "pipeline 'bad' caps its spend" in result.stderr and "drop --batch" in result.stderr
    assert not (project / ".orch").exists()


def test_the_overall_line_names_what_did_not_pass_and_what_did_not_run():
    outcomes = [
        {"pipeline": "a", "outcome": "passed", "exit_code": 0},
        {"pipeline": "b", "outcome": "failed", "exit_code": 1},
        {"pipeline": "c", "outcome": "interrupted", "exit_code": 130},
        {"pipeline": "d", "outcome": "not run"},
    ]
    assert overall_line(outcomes, 130) == (
        "Overall: INTERRUPTED — 4 pipelines: 1 passed, 1 failed (b), 1 interrupted (c), "
        "1 not run (d); exit 130"
    )
    assert overall(outcomes[:2], 1) == {"outcome": "failed", "exit_code": 1}


def test_a_pipeline_named_twice_is_refused(project):
    result = cli("run", "good", "bad", "pipelines/good.yml", "good")

    assert result.exit_code == 2
    assert "pipeline 'good' is named twice" in result.stderr


def test_runs_name_the_embedded_engine_by_what_answers_not_its_port(project):
    with (project / "pipelines" / "good.yml").open("a") as fh:
        fh.write(REPORTS)
    label = "engine (embedded, scripted model)"

    result = cli("run", "good")

    assert result.exit_code == 0, result.output
    assert f"  target    {label}" in result.stdout.splitlines()
    [record] = runs(project)
    assert record["target"] == label and record["meta"]["target_name"] == "embedded"
    run_dir = project / ".orch" / "runs" / record["run_id"]
    assert json.loads((run_dir / "run.json").read_text())["target"] == label
    assert f"pipeline good on {label}: PASSED" in cli("show").stdout
    for suffix in ("md", "html", "xml", "json"):
        text = (project / "out" / f"{record['run_id']}.{suffix}").read_text()
        assert label in text, suffix
        assert "127.0.0.1" not in text, suffix


def test_an_engine_in_front_of_a_chat_server_is_named_by_that_server_without_its_key():
    upstream = Target(
        name="local",
        kind="engine",
        base_url="http://user:sk-SECRET@llm.example:8080/v1",
        options=(("model", "openai-chat"),),
    )
    assert engine_label(upstream) == "engine (embedded, openai-chat → llm.example:8080)"
    assert engine_label(EMBEDDED) == "engine (embedded, scripted model)"


def test_pipeline_names_complete_at_the_shell(project):
    def complete(words: str) -> list[str]:
        env = {"_ORCH_COMPLETE": "bash_complete", "COMP_WORDS": words, "COMP_CWORD": "2"}
        result = CliRunner().invoke(main, [], prog_name="orch", env=env)
        return result.stdout.split()

    assert complete("orch run b") == ["plain,bad", "plain,broken"]
    assert complete("orch run ") == ["plain,bad", "plain,broken", "plain,good"]
