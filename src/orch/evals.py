"""Assertions: judging a step's result against its ``expect`` list.

Every assertion yields ``passed`` and a ``score`` in [0, 1] (1/0 for yes/no checks; ``python``
and ``llm_rubric`` may return fractions, passing at their ``threshold``, default 0.5). A step's
score is the weighted mean where a passed assertion counts 1; the step passes when that score
reaches the step's ``threshold`` (default 1.0: everything must pass).

String arguments are Jinja templates over the step context (``item``, ``vars``, ``steps``), so
``contains: "{{ item.expected }}"`` works.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import jinja2
import jsonschema

from orch.model import Assertion, parse_duration
from orch.tools import resolve_handler

_ENV = jinja2.Environment(undefined=jinja2.StrictUndefined)
_MISSING = object()


@dataclass(frozen=True)
class Verdict:
    """The outcome of one assertion on one step."""

    kind: str
    name: str
    passed: bool
    score: float
    weight: float
    reason: str

    def to_json(self) -> dict[str, Any]:
        """Plain data for results.jsonl."""
        return asdict(self)


Grader = Callable[[str, str, str | None], dict]


def render_value(value: Any, context: dict[str, Any]) -> Any:
    """Render Jinja in every string inside ``value``."""
    if isinstance(value, str):
        return _ENV.from_string(value).render(**context) if "{" in value else value
    if isinstance(value, list):
        return [render_value(v, context) for v in value]
    if isinstance(value, dict):
        return {k: render_value(v, context) for k, v in value.items()}
    return value


def parse_json(text: str) -> Any:
    """The JSON value in ``text`` (also inside a ```json fence), or ``_MISSING``."""
    candidate = text.strip()
    fence = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", candidate, flags=re.S)
    if fence:
        candidate = fence.group(1)
    try:
        return json.loads(candidate)
    except ValueError:
        return _MISSING


def jsonpath(data: Any, path: str) -> Any:
    """Follow a simple JSONPath (``$.a.b[0]``, ``$['k']``); ``_MISSING`` when absent."""
    tokens = re.findall(r"\.([A-Za-z_][\w-]*)|\[(\d+)\]|\['([^']*)'\]|\[\"([^\"]*)\"\]", path[1:])
    current = data
    for name, index, quoted, dquoted in tokens:
        key = name or quoted or dquoted
        if index:
            if not isinstance(current, list) or int(index) >= len(current):
                return _MISSING
            current = current[int(index)]
        elif isinstance(current, dict) and key in current:
            current = current[key]
        else:
            return _MISSING
    return current


def _label(assertion: Assertion, value: Any) -> str:
    if assertion.name:
        return assertion.name
    shown = value if isinstance(value, str) else json.dumps(value, default=str)
    if len(shown) > 60:
        shown = shown[:57] + "..."
    return f"{assertion.kind}: {shown}"


def evaluate(
    assertion: Assertion,
    result: dict[str, Any],
    context: dict[str, Any],
    grader: Grader | None = None,
    root: Any = None,
) -> Verdict:
    """Judge ``result`` (a step record: output, tool_calls, latency_s, usage) by ``assertion``."""
    kind = assertion.kind
    try:
        value = render_value(assertion.value, context) if kind not in ("json_schema",) else \
            assertion.value
    except jinja2.TemplateError as exc:
        return Verdict(kind, _label(assertion, assertion.value), False, 0.0, assertion.weight,
                       f"template error in assertion: {exc}")
    label = _label(assertion, value)
    try:
        passed, score, reason = _CHECKS[kind](value, result, assertion, grader, root)
    except Exception as exc:  # noqa: BLE001 - a broken check fails, it never crashes the run
        passed, score, reason = False, 0.0, f"{type(exc).__name__}: {exc}"
    return Verdict(kind, label, passed, score, assertion.weight, reason)


def step_score(verdicts: list[Verdict]) -> float:
    """Weighted mean where a passed assertion counts 1 (1.0 when there are none)."""
    total = sum(v.weight for v in verdicts)
    if not total:
        return 1.0 if all(v.passed for v in verdicts) else 0.0
    return sum(v.weight * (1.0 if v.passed else v.score) for v in verdicts) / total


def _text(result: dict) -> str:
    return result.get("output") or ""


def _yes(ok: bool, why_not: str) -> tuple[bool, float, str]:
    return ok, 1.0 if ok else 0.0, "" if ok else why_not


def _short(text: str, limit: int = 80) -> str:
    text = text.replace("\n", " ")
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")


def _equals(value, result, *_):
    text = _text(result).strip()
    if isinstance(value, str):
        return _yes(text == value.strip(), f"reply {_short(text)} != {_short(value)}")
    parsed = parse_json(text)
    return _yes(parsed == value, f"reply {_short(text)} != {json.dumps(value)}")


def _contains(value, result, *_):
    return _yes(value in _text(result), f"{value!r} not found in reply {_short(_text(result))}")


def _icontains(value, result, *_):
    ok = value.lower() in _text(result).lower()
    return _yes(ok, f"{value!r} (any case) not found in reply {_short(_text(result))}")


def _not_contains(value, result, *_):
    return _yes(value not in _text(result), f"reply contains {value!r}")


def _contains_any(value, result, *_):
    return _yes(any(v in _text(result) for v in value), f"none of {value} found in reply")


def _contains_all(value, result, *_):
    missing = [v for v in value if v not in _text(result)]
    return _yes(not missing, f"missing from reply: {missing}")


def _regex(value, result, *_):
    return _yes(re.search(value, _text(result)) is not None,
                f"/{value}/ does not match reply {_short(_text(result))}")


def _json(value, result, *_):
    return _yes(parse_json(_text(result)) is not _MISSING, "reply is not JSON")


def _json_schema(value, result, *_):
    data = parse_json(_text(result))
    if data is _MISSING:
        return False, 0.0, "reply is not JSON"
    errors = sorted(jsonschema.Draft202012Validator(value).iter_errors(data), key=str)
    if errors:
        where = "/".join(str(p) for p in errors[0].absolute_path) or "(root)"
        return False, 0.0, f"{where}: {errors[0].message}"
    return True, 1.0, ""


def _jsonpath(value, result, *_):
    data = parse_json(_text(result))
    if data is _MISSING:
        return False, 0.0, "reply is not JSON"
    found = jsonpath(data, value["path"])
    if found is _MISSING:
        return False, 0.0, f"{value['path']} not found"
    if "equals" in value and found != value["equals"]:
        return False, 0.0, f"{value['path']} is {json.dumps(found)}, expected " \
                           f"{json.dumps(value['equals'])}"
    if "contains" in value and value["contains"] not in str(found):
        return False, 0.0, f"{value['path']} does not contain {value['contains']!r}"
    if "regex" in value and not re.search(value["regex"], str(found)):
        return False, 0.0, f"{value['path']} does not match /{value['regex']}/"
    return True, 1.0, ""


def _tool_called(value, result, *_):
    name = value if isinstance(value, str) else value["name"]
    wanted = {} if isinstance(value, str) else value.get("arguments") or {}
    calls = [c for c in result.get("tool_calls") or [] if c.get("name") == name]
    if not calls:
        names = sorted({c.get("name") for c in result.get("tool_calls") or []})
        return False, 0.0, f"{name} was not called (called: {names or 'nothing'})"
    for call in calls:
        args = call.get("arguments") or {}
        if all(args.get(k) == v for k, v in wanted.items()):
            return True, 1.0, ""
    return False, 0.0, f"{name} was called, but never with {json.dumps(wanted)}"


def _range(value, result, *_):
    text = _text(result)
    if "path" in value:
        data = parse_json(text)
        found = jsonpath(data, value["path"]) if data is not _MISSING else _MISSING
        if found is _MISSING:
            return False, 0.0, f"{value['path']} not found"
        text = str(found)
    try:
        number = float(text.strip())
    except ValueError:
        return False, 0.0, f"{_short(text)} is not a number"
    low, high = value.get("min", float("-inf")), value.get("max", float("inf"))
    return _yes(low <= number <= high, f"{number} is outside [{value.get('min')}, "
                                       f"{value.get('max')}]")


def _max_latency(value, result, *_):
    limit = parse_duration(value)
    took = result.get("latency_s") or 0.0
    return _yes(took <= limit, f"took {took:.2f}s, limit {limit:g}s")


def _max_tokens(value, result, *_):
    used = (result.get("usage") or {}).get("total_tokens", 0)
    return _yes(used <= value, f"used {used} tokens, limit {value}")


def _scored(outcome: Any, threshold: float) -> tuple[bool, float, str]:
    reason = ""
    if isinstance(outcome, dict):
        reason = str(outcome.get("reason") or "")
        if "score" in outcome:
            score = float(outcome["score"])
            passed = bool(outcome["pass"]) if "pass" in outcome else score >= threshold
        else:
            passed = bool(outcome.get("pass"))
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


def _python(value, result, assertion, grader, root):
    func = resolve_handler(value, root)
    outcome = func(_text(result), result)
    return _scored(outcome, assertion.threshold if assertion.threshold is not None else 0.5)


def _llm_rubric(value, result, assertion, grader, root):
    if grader is None:
        raise RuntimeError("no grader available for llm_rubric")
    rubric = value if isinstance(value, str) else value["rubric"]
    name = None if isinstance(value, str) else value.get("grader")
    verdict = grader(rubric, _text(result), name)
    return _scored(verdict, assertion.threshold if assertion.threshold is not None else 0.5)


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
}
