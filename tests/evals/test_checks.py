"""The assertion helpers on their own: JSONPath, lenient equality, grader answers, scoring."""

from __future__ import annotations

import pytest

from orch.evals.assertions import (
    MISSING,
    CheckError,
    Verdict,
    evaluate,
    jsonpath,
    matches,
    parse_grade,
    score_outcome,
    step_score,
)
from orch.project.model import Assertion

DATA = {"a": {"b": [1, 2, 3]}, "items": [{"met": True}, {"met": False}], "k-1": "x"}


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("$", DATA),
        ("$.a.b[0]", 1),
        ("$.a.b[-1]", 3),
        ("$['k-1']", "x"),
        ('$["a"]["b"][1]', 2),
        ("$.items[*].met", [True, False]),
        ("$.a.*", [[1, 2, 3]]),
        ("$.a.c", MISSING),
        ("$.a.b[7]", MISSING),
        ("$.items[*].nope", MISSING),
    ],
)
def test_jsonpath(path, expected):
    assert (
        jsonpath(DATA, path) == expected
        if expected is not MISSING
        else jsonpath(DATA, path) is MISSING
    )


@pytest.mark.parametrize("path", ["$..met", "$.items[?(@.met)]", "a.b", "$.a b"])
def test_unsupported_jsonpath_is_a_check_error(path):
    with pytest.raises(CheckError):
        jsonpath(DATA, path)


def test_unsupported_jsonpath_in_an_assertion_is_an_error_not_a_failure():
    verdict = evaluate(Assertion("jsonpath", {"path": "$..met"}), {"output": "{}"}, {})
    assert verdict.error and not verdict.passed and "unsupported JSONPath" in verdict.reason


def test_a_template_typo_in_an_assertion_is_an_error():
    verdict = evaluate(
        Assertion("contains", "{{ item.expectd }}", line=7), {"output": "x"}, {"item": {}}
    )
    assert verdict.error and "line 7" in verdict.reason


@pytest.mark.parametrize(
    ("found", "expected", "same"),
    [
        (21, "21", True),
        (2.5, "2.5", True),
        (True, "true", True),
        (21, 21, True),
        (True, 1, False),
        (1, True, False),
        (False, False, True),
        ("21", 21, False),
        ({"a": 1}, {"a": 1}, True),
        (None, "null", True),
    ],
)
def testmatches(found, expected, same):
    assert matches(found, expected) is same


@pytest.mark.parametrize(
    ("answer", "passed"),
    [
        ('{"pass": true, "score": 0.8, "reason": "ok"}', True),
        ('```json\n{"pass": false, "score": 0.1}\n```', False),
        ('Here is my verdict: {"pass": "false", "score": 0.9} — thanks', False),
        ('{"score": 0.7}', True),
    ],
)
def test_parse_grade(answer, passed):
    assert score_outcome(parse_grade(answer), 0.5)[0] is passed


@pytest.mark.parametrize("answer", ["I cannot grade this", '{"verdict": "fine"}', "[1, 2]"])
def test_parse_grade_without_a_verdict(answer):
    with pytest.raises(CheckError):
        parse_grade(answer)


def test_step_score_weights():
    def v(passed, weight, score=None):
        return Verdict("k", "n", passed, 1.0 if passed else (score or 0.0), weight, "")

    assert step_score([]) == 1.0
    assert step_score([v(True, 1), v(False, 1)]) == 0.5
    assert step_score([v(True, 1), v(False, 0)]) == 1.0  # weight 0: informational
    assert step_score([v(False, 0)]) == 1.0
    assert step_score([v(True, 3), v(False, 1, 0.4)]) == pytest.approx(0.85)
