"""pass_rate, repeat, and failures (exit 1) kept apart from infrastructure errors (exit 2)."""

from __future__ import annotations

from .conftest import invoke, results


def test_pass_rate_half_tolerates_one_failure_of_two(runs):
    ran = runs("rate-half")
    assert ran.exit_code == 0, ran.stderr
    summary = ran.summary
    assert summary["counts"] == {"total": 2, "passed": 1, "failed": 1, "errors": 0}
    assert summary["pass_rate"] == 0.5 and summary["required_pass_rate"] == 0.5


def test_default_pass_rate_fails_the_run_with_exit_1(runs):
    ran = runs("rate-full")
    assert ran.exit_code == 1
    assert ran.summary["counts"]["failed"] == 1 and ran.summary["counts"]["errors"] == 0


def test_repeat_runs_each_item_n_times_and_reports_statistics(project, runs):
    ran = runs("repeat")
    assert ran.exit_code == 0, ran.stderr
    records = results(project, ran.summary["run_id"])
    assert [r["key"] for r in records] == ["0.r0", "0.r1", "0.r2"]
    assert len({r["thread_id"] for r in records}) == 3  # a fresh thread per repetition
    report = (project / "out" / "repeat.md").read_text()
    assert "## Repeats" in report
    assert "| 0 item 0 | 3 | 3 | 0 | 0 | 100% | 1.00 |" in report


def test_a_failed_model_run_is_an_error_not_a_failure(project, runs):
    ran = runs("explode")
    assert ran.exit_code == 2
    assert ran.summary["counts"] == {"total": 3, "passed": 1, "failed": 1, "errors": 1}
    errored = [r for r in results(project, ran.summary["run_id"]) if r["status"] == "error"]
    (record,) = errored
    assert record["error"]["type"] == "run_failed"
    assert "scripted failure" in record["error"]["message"]
    assert record["error"]["thread_id"] and record["error"]["run_id"]


def test_errors_and_failures_are_apart_in_the_human_summary(project):
    ran = invoke("run", "pipelines/explode.yml")
    assert ran.exit_code == 2
    assert "passed 1  failed 1  errors 1" in ran.stdout
    assert "Errors are infrastructure failures" in ran.stdout


def test_an_item_timeout_is_an_error(project, runs):
    ran = runs("timeout")
    assert ran.exit_code == 2
    (record,) = results(project, ran.summary["run_id"])
    assert record["status"] == "error"
    assert record["error"]["type"] == "timeout"


def test_a_grader_that_cannot_grade_makes_an_error(make_project_copy):
    root = make_project_copy(
        {
            "script.yml": """
            rules:
              - when: {assistant: grader}
                reply: "I would rather not say."
            default: {reply: "Bonjour"}
        """,
            "pipelines/grading.yml": """
            name: grading
            assistant: bot
            steps:
              - {prompt: "greet me", expect: [{llm_rubric: "Is friendly."}, {contains: Bonjour}]}
        """,
        }
    )
    ran = invoke("run", "grading", "--json", "-C", str(root))
    assert ran.exit_code == 2, ran.stdout + ran.stderr
    (record,) = results(root, ran.summary["run_id"])
    assert record["status"] == "error"
    assert record["error"]["type"] == "assertion_error"
    assert "did not answer {pass, score, reason} JSON" in record["error"]["message"]
    rubric = record["steps"][0]["assertions"][0]
    assert rubric["error"] is True and rubric["passed"] is False
