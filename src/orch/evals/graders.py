"""OpenAI's grader objects as assertions: ``expect: [{grader: {type: string_check, ...}}]``.

The objects are OpenAI's (``openai.types.graders``: ``string_check``, ``text_similarity``,
``python``, ``score_model``, ``label_model``, ``multi``), checked by the pipeline schema, plus
the ``pass_threshold`` OpenAI's evals put beside them. Their strings are templates over
``sample`` (``output_text``: the reply; ``output_json``: the reply parsed as JSON, else None;
``output_tools``: the step's tool calls) and ``item`` (the item's fields), with orch's ``vars``,
``steps`` and ``orch`` too.

Each grader gives a raw score: string_check 1 or 0; text_similarity its metric in [0, 1];
python what ``grade(sample, item)`` returns; score_model the grader model's number within
``range`` (default [0, 1]); label_model 1 for a passing label, else 0; multi its
``calculate_output`` formula over the named graders' scores. It passes when that score reaches
``pass_threshold``; without one, only the top score passes (a match, the top of the range, 1).
The verdict's score is the raw score scaled to [0, 1] by the grader's range.

What the graders need from the run (a grading model, embeddings) comes from :class:`Services`,
which the run's grader object provides besides answering ``llm_rubric``.
"""

from __future__ import annotations

import ast
import json
import math
import operator
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import jinja2

from orch import templating
from orch.evals.replies import MISSING, CheckError, parse_json
from orch.evals.similarity import score as similarity

__all__ = [
    "PYTHON_TIMEOUT",
    "SAMPLE_FIELDS",
    "Outcome",
    "Services",
    "check_formula",
    "cosine",
    "formula",
    "grade",
    "sample_of",
    "spec_problems",
    "uses_model",
]

#: what ``sample`` holds in a grader's templates
SAMPLE_FIELDS = ("output_text", "output_json", "output_tools")
#: seconds a python grader's ``grade`` may take
PYTHON_TIMEOUT = 60.0
#: the embeddings model ``cosine`` asks for (OpenAI's), renamed by the target's ``models:``
EMBEDDINGS_MODEL = "text-embedding-3-large"

_ENV = templating.environment(keep_trailing_newline=False)


class Services(Protocol):
    """What model-backed graders need from the run (the run's grader object provides it)."""

    def ask(
        self, system: str | None, content: list[dict], model: str | None, sampling: dict | None
    ) -> str:
        """The grading model's answer to one message.

        ``model`` is None for the grader assistant's own; ``sampling`` is the grader's
        ``sampling_params``.
        """
        ...

    def embed(self, texts: list[str], model: str) -> list[list[float]]:
        """One embedding per text, from the target's ``/v1/embeddings``."""
        ...


@dataclass(frozen=True)
class Outcome:
    """A grader's raw ``score``, whether it passed, the score scaled to [0, 1], and why."""

    score: float
    passed: bool
    scaled: float
    reason: str


def sample_of(result: dict[str, Any]) -> dict[str, Any]:
    """The ``sample`` namespace of a step record: output_text, output_json, output_tools."""
    text = result.get("output") or ""
    parsed = parse_json(text)
    return {
        "output_text": text,
        "output_json": None if parsed is MISSING else parsed,
        "output_tools": [
            {
                "type": "function",
                "function": {"name": c.get("name"), "arguments": c.get("arguments")},
            }
            for c in result.get("tool_calls") or []
        ],
    }


def _render(text: str, context: dict[str, Any]) -> str:
    if "{{" not in text and "{%" not in text:
        return text
    try:
        return templating.render(text, context, _ENV)
    except jinja2.UndefinedError as exc:
        if context["sample"]["output_json"] is None and "output_json" in text:
            raise _Unjudgeable(
                "the reply is not JSON, so sample.output_json has no fields"
            ) from exc
        raise CheckError(f"template error in grader: {exc}") from exc
    except jinja2.TemplateError as exc:
        raise CheckError(f"template error in grader: {exc}") from exc


class _Unjudgeable(Exception):
    """The reply cannot be graded (a failure of the reply, not of the check)."""


def _threshold(spec: dict[str, Any], top: float) -> float:
    value = spec.get("pass_threshold")
    return top if value is None else float(value)


def _done(spec: dict, score: float, low: float, high: float, why: str = "") -> Outcome:
    threshold = _threshold(spec, high)
    passed = score + 1e-9 >= threshold
    scaled = min(max((score - low) / (high - low), 0.0), 1.0) if high > low else float(passed)
    if not passed and not why:
        why = f"{spec['name']}: score {score:.4g} below pass_threshold {threshold:g}"
    return Outcome(score, passed, scaled, "" if passed else why)


def grade(
    spec: dict[str, Any],
    result: dict[str, Any],
    context: dict[str, Any],
    services: Services | None,
    root: Path | None = None,
) -> Outcome:
    """Run the grader ``spec`` on a step ``result``; CheckError when it cannot run."""
    scope = {**context, "sample": sample_of(result)}
    try:
        return _GRADERS[spec["type"]](spec, scope, services, root)
    except _Unjudgeable as exc:
        return Outcome(0.0, False, 0.0, f"{spec['name']}: {exc}")


def _string_check(spec, scope, services, root) -> Outcome:
    found, wanted = _render(spec["input"], scope), _render(spec["reference"], scope)
    ok = {
        "eq": lambda: found == wanted,
        "ne": lambda: found != wanted,
        "like": lambda: wanted in found,
        "ilike": lambda: wanted.lower() in found.lower(),
    }[spec["operation"]]()
    why = f"{spec['name']}: {_short(found)} {spec['operation']} {_short(wanted)} does not hold"
    return _done(spec, 1.0 if ok else 0.0, 0.0, 1.0, why)


def _text_similarity(spec, scope, services, root) -> Outcome:
    found, wanted = _render(spec["input"], scope), _render(spec["reference"], scope)
    metric = spec["evaluation_metric"]
    if metric == "cosine":
        if services is None:
            raise CheckError("no embeddings available for text_similarity cosine")
        vectors = services.embed([found, wanted], EMBEDDINGS_MODEL)
        value = cosine(vectors[0], vectors[1])
    else:
        value = similarity(metric, found, wanted)
    return _done(spec, value, 0.0, 1.0)


def cosine(a: list[float], b: list[float]) -> float:
    """Cosine similarity of two vectors (0 when either is all zeros)."""
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b, strict=False)) / norm if norm else 0.0


# A python grader runs in a child interpreter: its source is the pipeline's (project code, like
# a handler), and a child can be stopped when it hangs, which a thread cannot.
_RUNNER = """
import json, sys
job = json.load(sys.stdin)
scope = {"__name__": "orch_grader"}
exec(compile(job["source"], "<grader " + job["name"] + ">", "exec"), scope)
value = scope["grade"](job["sample"], job["item"])
sys.stdout.write("\\n" + json.dumps(value, default=str))
"""


def _python(spec, scope, services, root) -> Outcome:
    job = {"source": spec["source"], "name": spec["name"], "sample": scope["sample"]}
    job["item"] = scope.get("item") or {}
    try:
        done = subprocess.run(
            [sys.executable, "-c", _RUNNER],
            input=json.dumps(job, default=str),
            capture_output=True,
            text=True,
            timeout=PYTHON_TIMEOUT,
            cwd=root,
        )
    except subprocess.TimeoutExpired as exc:
        why = f"python grader {spec['name']}: timed out after {PYTHON_TIMEOUT:g}s"
        raise CheckError(why) from exc
    if done.returncode:
        last = (done.stderr.strip().splitlines() or ["exited " + str(done.returncode)])[-1]
        raise CheckError(f"python grader {spec['name']}: {last}")
    value = json.loads(done.stdout.rsplit("\n", 1)[-1])
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CheckError(f"python grader {spec['name']}: grade() returned {value!r}, not a number")
    return _done(spec, float(value), 0.0, 1.0)


def _messages(spec, scope) -> tuple[str | None, list[dict]]:
    """The grader's ``input`` rendered: system/developer text, and one user message's parts."""
    system, turns, images = [], [], []
    for message in spec["input"]:
        parts = message["content"] if isinstance(message["content"], list) else [message["content"]]
        texts = []
        for part in parts:
            if isinstance(part, str):
                texts.append(_render(part, scope))
            elif part.get("type") in ("input_text", "output_text"):
                texts.append(_render(part["text"], scope))
            elif part.get("type") == "input_image":
                image = {"url": _render(part["image_url"], scope)}
                image.update({"detail": part["detail"]} if part.get("detail") else {})
                images.append({"type": "image_url", "image_url": image})
            else:
                raise CheckError(f"{spec['name']}: {part.get('type')} input is not supported")
        text = "\n".join(texts)
        if message["role"] in ("system", "developer"):
            system.append(text)
        else:
            turns.append((message["role"], text))
    if len(turns) == 1 and turns[0][0] == "user":
        body = turns[0][1]
    else:
        body = "\n\n".join(f"{role}: {text}" for role, text in turns)
    return "\n\n".join(system) or None, [{"type": "text", "text": body}, *images]


def _ask(spec, scope, services, answer_format: str) -> str:
    if services is None:
        raise CheckError(f"no grading model available for {spec['type']}")
    system, content = _messages(spec, scope)
    content[0]["text"] += "\n\n" + answer_format
    return services.ask(system, content, spec.get("model"), spec.get("sampling_params"))


def _score_model(spec, scope, services, root) -> Outcome:
    low, high = (spec.get("range") or [0.0, 1.0])[:2]
    answer = _ask(
        spec,
        scope,
        services,
        f'Answer only with JSON: {{"result": <a number from {low:g} to '
        f'{high:g}>, "reason": "..."}}.',
    )
    data = parse_json(answer)
    if not isinstance(data, dict | int | float) or isinstance(data, bool):
        match = re.search(r"\{.*\}", answer, flags=re.S)
        data = parse_json(match.group(0)) if match else MISSING
    value = data.get("result", data.get("score")) if isinstance(data, dict) else data
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise CheckError(f"{spec['name']}: the grading model gave no score: {_short(answer)}")
    why = data.get("reason", "") if isinstance(data, dict) else ""
    outcome = _done(spec, float(value), float(low), float(high))
    if outcome.passed or not why:
        return outcome
    return Outcome(outcome.score, False, outcome.scaled, f"{outcome.reason}: {why}")


def _label_model(spec, scope, services, root) -> Outcome:
    labels = spec["labels"]
    answer = _ask(
        spec,
        scope,
        services,
        f'Answer only with JSON: {{"result": <one of {json.dumps(labels)}>, "reason": "..."}}.',
    )
    data = parse_json(answer)
    if not isinstance(data, dict):
        match = re.search(r"\{.*\}", answer, flags=re.S)
        data = parse_json(match.group(0)) if match else {"result": answer.strip()}
    label = data.get("result", data.get("label")) if isinstance(data, dict) else None
    if label not in labels:
        why = f"{spec['name']}: the grading model gave no label of {labels}: {_short(answer)}"
        raise CheckError(why)
    passed = label in spec["passing_labels"]
    why = "" if passed else f"{spec['name']}: label {label!r} is not passing"
    return Outcome(1.0 if passed else 0.0, passed, 1.0 if passed else 0.0, why)


def _multi(spec, scope, services, root) -> Outcome:
    scores = {
        name: _GRADERS[sub["type"]](sub, scope, services, root).score
        for name, sub in spec["graders"].items()
    }
    value = formula(spec["calculate_output"], scores)
    shown = ", ".join(f"{k}={v:.4g}" for k, v in scores.items())
    outcome = _done(spec, value, 0.0, 1.0)
    reason = f"{outcome.reason} ({shown})" if outcome.reason else ""
    return Outcome(outcome.score, outcome.passed, outcome.scaled, reason)


_GRADERS = {
    "string_check": _string_check,
    "text_similarity": _text_similarity,
    "python": _python,
    "score_model": _score_model,
    "label_model": _label_model,
    "multi": _multi,
}


# -- calculate_output: arithmetic over grader names, never eval() ---------------------------

_BINARY = {
    ast.Add: operator.add,
    ast.Sub: operator.sub,
    ast.Mult: operator.mul,
    ast.Div: operator.truediv,
    ast.Pow: operator.pow,
    ast.Mod: operator.mod,
}
_UNARY = {ast.USub: operator.neg, ast.UAdd: operator.pos}
_FUNCTIONS = {
    "min": min,
    "max": max,
    "abs": abs,
    "floor": math.floor,
    "ceil": math.ceil,
    "exp": math.exp,
    "sqrt": math.sqrt,
    "log": math.log,
    "round": round,
}
_NODES = (ast.Expression, ast.BinOp, ast.UnaryOp, ast.Call, ast.Name, ast.Load, *_BINARY, *_UNARY)


def _parse(text: str) -> ast.Expression:
    # OpenAI's formulas write powers as ^; Python's ^ (xor) would bind looser than + and -
    return ast.parse(text.strip().replace("^", "**"), mode="eval")


def check_formula(text: str, names: set[str] | frozenset[str]) -> str | None:
    """What is wrong with the formula ``text`` over grader ``names``, or None."""
    try:
        tree = _parse(text)
    except SyntaxError as exc:
        return f"calculate_output {text!r} is not a formula: {exc.msg}"
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id not in names and node.id not in _FUNCTIONS:
            known = ", ".join(sorted(names))
            return f"calculate_output names {node.id!r}, not one of the graders ({known})"
        if isinstance(node, ast.Call) and not (
            isinstance(node.func, ast.Name) and node.func.id in _FUNCTIONS and not node.keywords
        ):
            return f"calculate_output may call only {', '.join(_FUNCTIONS)}"
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, int | float):
                return f"calculate_output may hold only numbers, not {node.value!r}"
        elif not isinstance(node, _NODES):
            return (
                "calculate_output may use only numbers, grader names, + - * / ^ % and "
                + ", ".join(_FUNCTIONS)
            )
    return None


def formula(text: str, scores: dict[str, float]) -> float:
    """The value of ``calculate_output`` with each grader name bound to its score."""
    problem = check_formula(text, frozenset(scores))
    if problem:
        raise CheckError(problem)

    def value(node: ast.AST) -> float:
        if isinstance(node, ast.Expression):
            return value(node.body)
        if isinstance(node, ast.Constant):
            return float(node.value)
        if isinstance(node, ast.Name):
            return scores[node.id]
        if isinstance(node, ast.UnaryOp):
            return _UNARY[type(node.op)](value(node.operand))
        if isinstance(node, ast.BinOp):
            return _BINARY[type(node.op)](value(node.left), value(node.right))
        assert isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
        return float(_FUNCTIONS[node.func.id](*(value(a) for a in node.args)))

    try:
        return float(value(_parse(text)))
    except (ArithmeticError, ValueError, TypeError) as exc:
        raise CheckError(f"calculate_output {text!r}: {exc}") from exc


def uses_model(spec: Any) -> bool:
    """Whether the grader (or one inside a multi) asks a grading model."""
    if not isinstance(spec, dict):
        return False
    if spec.get("type") == "multi" and isinstance(spec.get("graders"), dict):
        return any(uses_model(sub) for sub in spec["graders"].values())
    return spec.get("type") in ("score_model", "label_model")


def spec_problems(spec: dict[str, Any]) -> list[tuple[tuple, str]]:
    """What the schema cannot say about a grader: (path inside it, problem) pairs."""
    problems: list[tuple[tuple, str]] = []
    kind = spec.get("type")
    if kind == "label_model":
        extra = [x for x in spec.get("passing_labels") or [] if x not in (spec.get("labels") or [])]
        if extra:
            shown = ", ".join(map(str, extra))
            problems.append((("passing_labels",), f"not among the labels: {shown}"))
    elif kind == "score_model" and spec.get("range") is not None:
        bounds = spec["range"]
        if len(bounds) != 2 or bounds[0] >= bounds[1]:
            problems.append((("range",), "must be two numbers [low, high] with low < high"))
    elif kind == "python" and isinstance(spec.get("source"), str):
        problems += [(("source",), m) for m in _source_problems(spec["source"])]
    elif kind == "multi" and isinstance(spec.get("graders"), dict):
        problem = check_formula(str(spec.get("calculate_output", "")), frozenset(spec["graders"]))
        if problem:
            problems.append((("calculate_output",), problem))
        for name, sub in spec["graders"].items():
            if isinstance(sub, dict):
                problems += [(("graders", name, *p), m) for p, m in spec_problems(sub)]
    return problems


def _source_problems(source: str) -> list[str]:
    """A python grader's source must parse and define ``grade`` (checked, never run)."""
    try:
        tree = ast.parse(source)
    except SyntaxError as exc:
        return [f"Python syntax error at line {exc.lineno} of source: {exc.msg}"]
    defined = {
        node.name for node in tree.body if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
    }
    return [] if "grade" in defined else ["source defines no grade(sample, item) function"]


def _short(text: str, limit: int = 60) -> str:
    text = text.replace("\n", " ")
    return repr(text if len(text) <= limit else text[: limit - 3] + "...")
