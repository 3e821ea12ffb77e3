"""Assertions: judging a step's result against its ``expect`` list.

Every assertion yields a :class:`Verdict`: ``passed`` and a ``score`` in [0, 1] (1/0 for yes/no
checks; ``python`` and ``llm_rubric`` may return fractions, passing at their ``threshold``,
default 0.5). A step's score is the weighted mean of its verdicts, where a passed assertion
counts 1 and a failed one its (partial) score; ``weight: 0`` makes an assertion informational.
The step passes when that score reaches the step's ``threshold`` (default 1.0: everything with a
weight must pass).

A verdict with ``error`` set is not a judgement on the reply: the check could not run (the
grader's server failed, a template in the assertion has a typo). :func:`judge` turns those into
the step's ``error``, so the item counts as an error (exit 2), not as a failure (exit 1).

String arguments are Jinja templates over the step context (``item``, ``vars``, ``steps``), so
``contains: "{{ item.expected }}"`` works. A ``grader`` (one of OpenAI's grader objects, see
:mod:`orch.evals.graders`) renders its own templates, over ``sample`` too, and passes at its
``pass_threshold``.
"""

from __future__ import annotations

import inspect
import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import jinja2

from orch import templating
from orch.errors import OrchError
from orch.evals import graders
from orch.evals.replies import MISSING, CheckError, jsonpath, parse_json
from orch.project.handlers import resolve_handler
from orch.project.model import Assertion, Step, parse_duration
from orch.targets.session import ItemTimeout, Stopped

__all__ = [
    "MISSING",
    "CheckError",
    "Grader",
    "Verdict",
    "evaluate",
    "grading_prompt",
    "jsonpath",
    "judge",
    "matches",
    "parse_grade",
    "parse_json",
    "render_value",
    "score_outcome",
    "step_score",
]

# Unlike a prompt, a templated assertion value loses its final newline (Jinja's default): a
# ``contains: |`` block then does not also demand the newline YAML ends the block with.
_VALUES = templating.environment(keep_trailing_newline=False)

#: ``grader(prompt, grader_name) -> the grader's answer text``; raises OrchError when it fails.
Grader = Callable[[str, "str | None"], str]


@dataclass(frozen=True)
class Verdict:
    """The outcome of one assertion on one step (``error``: the check itself could not run)."""

    kind: str
    name: str
    passed: bool
    score: float
    weight: float
    reason: str
    error: bool = False

    def to_json(self) -> dict[str, Any]:
        """Plain data for results.jsonl."""
        return asdict(self)


def render_value(value: Any, context: dict[str, Any]) -> Any:
    """Render Jinja in every string inside ``value``."""
    if isinstance(value, str):
        if "{{" in value or "{%" in value or "{#" in value:
            return templating.render(value, context, _VALUES)
        return value
    if isinstance(value, list):
        return [render_value(v, context) for v in value]
    if isinstance(value, dict):
        return {k: render_value(v, context) for k, v in value.items()}
    return value


def grading_prompt(rubric: str, output: str, question: str | None = None) -> str:
    """The message a grader assistant gets for an ``llm_rubric`` assertion."""
    asked = f"Question:\n{question}\n\n" if question else ""
    return (
        "Grade the reply below against the rubric. Answer only with JSON: "
        '{"pass": true|false, "score": 0..1, "reason": "..."}.\n\n'
        f"Rubric:\n{rubric}\n\n{asked}Reply:\n{output}"
    )


def parse_grade(answer: str) -> dict[str, Any]:
    """The grader's ``{pass, score, reason}`` from its answer (prose around the JSON is fine)."""
    verdict = parse_json(answer)
    if not isinstance(verdict, dict):
        match = re.search(r"\{.*\}", answer, flags=re.S)
        verdict = parse_json(match.group(0)) if match else MISSING
    if not isinstance(verdict, dict) or not ({"pass", "score"} & set(verdict)):
        raise CheckError(
            f"the grader did not answer {{pass, score, reason}} JSON: {_short(answer, 120)}"
        )
    return verdict


def _label(assertion: Assertion, value: Any) -> str:
    if assertion.name:
        return assertion.name
    if assertion.kind == "json_schema" and isinstance(value, dict):
        return f"json_schema: {value.get('title') or 'inline schema'}"
    if assertion.kind == "json":
        return "json"
    if assertion.kind == "grader" and isinstance(value, dict):
        return f"grader: {value.get('name')} ({value.get('type')})"
    shown = value if isinstance(value, str) else json.dumps(value, default=str)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{assertion.kind}: {shown}"


def evaluate(
    assertion: Assertion,
    result: dict[str, Any],
    context: dict[str, Any],
    grader: Grader | None = None,
    root: Path | None = None,
) -> Verdict:
    """Judge ``result`` (a step record: output, tool_calls, latency_s, usage) by ``assertion``.

    Never raises for a check that fails or breaks; only a timeout or a stop of the whole run
    (``ItemTimeout``, ``Stopped``) propagates.
    """
    kind = assertion.kind
    try:
        # a grader renders its own templates, over ``sample`` too
        raw = kind in ("json_schema", "grader")
        value = assertion.value if raw else render_value(assertion.value, context)
    except jinja2.TemplateError as exc:
        where = f" (line {assertion.line})" if assertion.line else ""
        return Verdict(
            kind,
            _label(assertion, assertion.value),
            False,
            0.0,
            assertion.weight,
            f"template error in assertion{where}: {exc}",
            error=True,
        )
    label = _label(assertion, value)
    try:
        passed, score, reason = _CHECKS[kind](value, result, assertion, grader, root, context)
    except (ItemTimeout, Stopped):
        raise
    except OrchError as exc:  # the check could not run: an error, not a judgement
        return Verdict(kind, label, False, 0.0, assertion.weight, str(exc), error=True)
    except Exception as exc:  # noqa: BLE001 - a broken check fails, it never crashes the run
        passed, score, reason = False, 0.0, f"{type(exc).__name__}: {exc}"
    return Verdict(kind, label, passed, score, assertion.weight, reason)


def step_score(verdicts: list[Verdict]) -> float:
    """Weighted mean where a passed assertion counts 1, a failed one its score (1.0 if none)."""
    total = sum(v.weight for v in verdicts)
    if not total:
        return 1.0
    return sum(v.weight * (1.0 if v.passed else v.score) for v in verdicts) / total


def judge(
    step: Step,
    record: dict[str, Any],
    context: dict[str, Any],
    grader: Grader | None = None,
    root: Path | None = None,
) -> dict[str, Any]:
    """Evaluate ``step.expect`` on a step record; returns the fields to add to the record.

    ``assertions`` (verdicts as dicts), ``score``, ``passed`` and, when a check could not run,
    ``error`` (so the item is an error, not a failure).
    """
    verdicts = [evaluate(a, record, context, grader, root) for a in step.expect]
    score = step_score(verdicts)
    fields: dict[str, Any] = {
        "assertions": [v.to_json() for v in verdicts],
        "score": round(score, 4),
        "passed": score + 1e-9 >= step.threshold,
    }
    broken = [v for v in verdicts if v.error]
    if broken:
        fields["passed"] = False
        fields["error"] = {
            "type": "assertion_error",
            "message": "; ".join(f"{v.name}: {v.reason}" for v in broken),
            "thread_id": record.get("thread_id"),
            "run_id": record.get("run_id"),
        }
    return fields


def _text(result: dict) -> str:
    return result.get("output") or ""


def _yes(ok: bool, why_not: str) -> tuple[bool, float, str]:
    return ok, 1.0 if ok else 0.0, "" if ok else why_not


def _short(text: str, limit: int = 80) -> str:
    text = text.replace("\n", " ")
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def matches(found: Any, expected: Any) -> bool:
    """Equality, where a templated string (``"{{ item.total }}"``) also matches a JSON number."""
    if isinstance(found, bool) or isinstance(expected, bool):  # True is not 1 here
        if isinstance(found, bool) and isinstance(expected, bool):
            return found is expected
    elif found == expected:
        return True
    if isinstance(expected, str) and not isinstance(found, str):
        return json.dumps(found) == expected.strip() or str(found) == expected.strip()
    return False


def _subset(actual: Any, wanted: Any) -> bool:
    if isinstance(wanted, dict):
        return isinstance(actual, dict) and all(
            k in actual and _subset(actual[k], v) for k, v in wanted.items()
        )
    return matches(actual, wanted)


def _equals(value, result, *_):
    text = _text(result).strip()
    if isinstance(value, str):
        return _yes(text == value.strip(), f"reply {_short(text)} != {_short(value)}")
    parsed = parse_json(text)
    return _yes(
        parsed is not MISSING and matches(parsed, value),
        f"reply {_short(text)} != {json.dumps(value)}",
    )


def _contains(value, result, *_):
    return _yes(value in _text(result), f"{value!r} not found in reply {_short(_text(result))}")


def _icontains(value, result, *_):
    ok = value.lower() in _text(result).lower()
    return _yes(ok, f"{value!r} (any case) not found in reply {_short(_text(result))}")


def _not_contains(value, result, *_):
    return _yes(value not in _text(result), f"reply contains {value!r}")


def _contains_any(value, result, *_):
    return _yes(
        any(v in _text(result) for v in value),
        f"none of {value} found in reply {_short(_text(result))}",
    )


def _contains_all(value, result, *_):
    missing = [v for v in value if v not in _text(result)]
    return _yes(not missing, f"missing from reply: {missing}")


def _regex(value, result, *_):
    return _yes(
        re.search(value, _text(result)) is not None,
        f"/{value}/ does not match reply {_short(_text(result))}",
    )


def _json(value, result, *_):
    return _yes(
        parse_json(_text(result)) is not MISSING, f"reply is not JSON: {_short(_text(result))}"
    )


def _json_schema(value, result, *_):
    import jsonschema  # 30 ms of start-up, for runs that have a json_schema assertion only

    data = parse_json(_text(result))
    if data is MISSING:
        return False, 0.0, f"reply is not JSON: {_short(_text(result))}"
    errors = sorted(
        jsonschema.Draft202012Validator(value).iter_errors(data),
        key=lambda e: (list(map(str, e.absolute_path)), e.message),
    )
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path) or "(root)"
        more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
        return False, 0.0, f"{where}: {errors[0].message}{more}"
    return True, 1.0, ""


def _jsonpath(value, result, *_):
    data = parse_json(_text(result))
    if data is MISSING:
        return False, 0.0, f"reply is not JSON: {_short(_text(result))}"
    path = value["path"]
    found = jsonpath(data, path)
    if found is MISSING:
        return False, 0.0, f"{path} not found"
    shown = json.dumps(found, default=str)
    if "equals" in value and not matches(found, value["equals"]):
        return False, 0.0, f"{path} is {shown}, expected {json.dumps(value['equals'])}"
    text = found if isinstance(found, str) else shown
    if "contains" in value and value["contains"] not in text:
        return False, 0.0, f"{path} is {shown}, which does not contain {value['contains']!r}"
    if "regex" in value and not re.search(value["regex"], text):
        return False, 0.0, f"{path} is {shown}, which does not match /{value['regex']}/"
    return True, 1.0, ""


def _tool_called(value, result, *_):
    name = value if isinstance(value, str) else value["name"]
    wanted = {} if isinstance(value, str) else value.get("arguments") or {}
    calls = [c for c in result.get("tool_calls") or [] if c.get("name") == name]
    if not calls:
        names = sorted({c.get("name") for c in result.get("tool_calls") or []})
        return False, 0.0, f"{name} was not called (called: {', '.join(names) or 'nothing'})"
    if any(_subset(call.get("arguments") or {}, wanted) for call in calls):
        return True, 1.0, ""
    seen = "; ".join(json.dumps(c.get("arguments"), default=str) for c in calls[:3])
    return False, 0.0, f"{name} was called, but never with {json.dumps(wanted)} (got {seen})"


def _range(value, result, *_):
    text = _text(result)
    if "path" in value:
        data = parse_json(text)
        found = jsonpath(data, value["path"]) if data is not MISSING else MISSING
        if found is MISSING:
            return False, 0.0, f"{value['path']} not found"
        text = json.dumps(found) if isinstance(found, bool) else str(found)
    try:
        number = float(text.strip())
    except ValueError:
        return False, 0.0, f"{_short(text)} is not a number"
    low, high = value.get("min", float("-inf")), value.get("max", float("inf"))
    return _yes(low <= number <= high, f"{number:g} is outside [{low:g}, {high:g}]")


def _max_latency(value, result, *_):
    limit = parse_duration(value)
    took = result.get("latency_s") or 0.0
    return _yes(took <= limit, f"took {took:.2f}s, limit {limit:g}s")


def _max_tokens(value, result, *_):
    used = (result.get("usage") or {}).get("total_tokens", 0)
    return _yes(used <= value, f"used {used} tokens, limit {value}")


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "pass", "passed", "1")
    return bool(value)


def score_outcome(outcome: Any, threshold: float) -> tuple[bool, float, str]:
    """(passed, score in [0, 1], reason) from what a ``python`` check or a grader returned.

    ``outcome`` is a bool, a number (passing at ``threshold``) or ``{pass, score, reason}``
    (either key may be missing); anything else raises TypeError.
    """
    reason = ""
    if isinstance(outcome, dict):
        reason = str(outcome.get("reason") or "")
        if outcome.get("score") is not None:
            score = float(outcome["score"])
            passed = _truthy(outcome["pass"]) if "pass" in outcome else score >= threshold
        else:
            passed = _truthy(outcome.get("pass"))
            score = 1.0 if passed else 0.0
    elif isinstance(outcome, bool):
        passed, score = outcome, 1.0 if outcome else 0.0
    elif isinstance(outcome, int | float):
        score = float(outcome)
        passed = score >= threshold
    else:
        raise TypeError(f"expected bool, number or {{pass, score, reason}}, got {outcome!r}")
    score = min(max(score, 0.0), 1.0)
    if not passed and not reason:
        reason = f"score {score:.2f} below threshold {threshold:g}"
    return passed, score, reason


def _python(value, result, assertion, grader, root, context):
    func = resolve_handler(value, root)
    output = _text(result)
    try:
        params = inspect.signature(func).parameters.values()
    except (TypeError, ValueError):  # a builtin without a signature: assume (output, context)
        params = None
    takes_context = (
        params is None
        or any(p.kind is p.VAR_POSITIONAL for p in params)
        or len([p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]) >= 2
    )
    if takes_context:
        extra = {k: context[k] for k in ("item", "orch", "vars", "steps") if k in context}
        outcome = func(output, {**result, **extra})
    else:
        outcome = func(output)
    return score_outcome(outcome, assertion.threshold if assertion.threshold is not None else 0.5)


def _llm_rubric(value, result, assertion, grader, root, context):
    if grader is None:
        raise CheckError("no grader available for llm_rubric")
    rubric = value if isinstance(value, str) else value["rubric"]
    name = None if isinstance(value, str) else value.get("grader")
    answer = grader(grading_prompt(rubric, _text(result), result.get("prompt")), name)
    verdict = parse_grade(answer)
    return score_outcome(verdict, assertion.threshold if assertion.threshold is not None else 0.5)


def _grader(value, result, assertion, grader, root, context):
    # The run's grader object also asks grading models and embeds (graders.Services).
    services = grader if hasattr(grader, "ask") and hasattr(grader, "embed") else None
    outcome = graders.grade(value, result, context, services, root)
    return outcome.passed, outcome.scaled, outcome.reason


_CHECKS: dict[str, Callable[..., tuple[bool, float, str]]] = {
    "equals": _equals,
    "contains": _contains,
    "icontains": _icontains,
    "not_contains": _not_contains,
    "contains_any": _contains_any,
    "contains_all": _contains_all,
    "regex": _regex,
    "json": _json,
    "json_schema": _json_schema,
    "jsonpath": _jsonpath,
    "tool_called": _tool_called,
    "range": _range,
    "max_latency": _max_latency,
    "max_tokens": _max_tokens,
    "python": _python,
    "llm_rubric": _llm_rubric,
    "grader": _grader,
}
