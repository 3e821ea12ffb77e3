"""``orch compare``: what changed between two runs, per item × step, as text or Markdown.

Cases are matched by item key and step id. A case that passed in A and failed or errored in B is
a *regression*; the reverse a *fix*; same status with a different score a *score change*. The
Markdown form is meant for a pull-request comment.

Each run's pass rate comes with its 95 % Wilson interval, and the change in pass rate with a
significance test over items (:func:`orch.results.statistics.regression_test`: McNemar's exact
test when both runs hold the same items, else a two-proportion z-test), so a CI gate can fail
only on a drop that chance does not explain (``--fail-on-regression=significant``). Two
variants of one run compare the same way, matched by item (``orch compare RUN --variants A B``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orch.errors import ExitCode, UsageError
from orch.project.loading import load_project
from orch.results.context import build_context, load_run
from orch.results.files import cannot_write, write_atomic
from orch.results.markdown import escape
from orch.results.statistics import Significance, format_interval, regression_test
from orch.results.variants import variant_context

_SCORE_EPSILON = 0.005


@dataclass
class CaseChange:
    """One item × step whose outcome differs between the two runs."""

    key: str
    step: str
    label: str
    before: str | None  # status in A (None: not in A)
    after: str | None
    score_before: float | None
    score_after: float | None
    reason: str = ""  # why B failed, when it did

    @property
    def kind(self) -> str:
        """regression, fix, changed, score, added or removed."""
        if self.before is None:
            return "added"
        if self.after is None:
            return "removed"
        if self.before == "passed" and self.after != "passed":
            return "regression"
        if self.before != "passed" and self.after == "passed":
            return "fix"
        if self.before != self.after:
            return "changed"
        return "score"

    @property
    def delta(self) -> float | None:
        """Score in B minus score in A, when both ran."""
        if self.score_before is None or self.score_after is None:
            return None
        return self.score_after - self.score_before


@dataclass
class Comparison:
    """Two runs' summaries and the cases that changed between them."""

    a: dict[str, Any]
    b: dict[str, Any]
    changes: list[CaseChange] = field(default_factory=list)
    unchanged: int = 0
    significance: Significance | None = None  # of the change in pass rate, over items

    def of(self, kind: str) -> list[CaseChange]:
        """The changes of one kind."""
        return [c for c in self.changes if c.kind == kind]

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {
            "a": self.a,
            "b": self.b,
            "unchanged": self.unchanged,
            "significance": self.significance.to_json() if self.significance else None,
            "changes": [{**c.__dict__, "kind": c.kind, "delta": c.delta} for c in self.changes],
        }


def _cases(context: dict) -> dict[tuple[str, str], dict]:
    out = {}
    for item in context["items"]:
        for case in item["cases"]:
            step = case["step"]
            out[(item["key"], case["step_id"])] = {
                "label": item["label"],
                "status": case["status"],
                "message": case["message"],
                "score": step["score"] if step is not None else None,
            }
    return out


def _summary(context: dict) -> dict[str, Any]:
    run, usage = context["run"], context["usage"]
    return {
        "id": run["id"],
        "pipeline": run["pipeline"],
        "status": run["status"],
        "outcome": run["outcome"],
        "counts": run["counts"],
        "pass_rate": run["pass_rate"],
        "pass_rate_ci95": [
            context["statistics"]["pass_rate"]["low"],
            context["statistics"]["pass_rate"]["high"],
        ],
        "scripted": run["scripted"],
        "total_tokens": usage["total_tokens"],
        "cost": usage["cost"],
        "started_at": run["started_at"],
    }


def _outcomes(context: dict) -> dict[str, bool]:
    """Whether each item run (by key) passed: what the pass rate and its test count."""
    return {item["key"]: item["status"] == "passed" for item in context["items"]}


def _key_order(key: tuple[str, str]) -> tuple:
    item, step = key
    parts = item.split(".r")
    return (
        int(parts[0]) if parts[0].isdigit() else 0,
        int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else 0,
        item,
        step,
    )


def compare(context_a: dict, context_b: dict) -> Comparison:
    """Compare two report contexts (see :func:`orch.results.context.build_context`)."""
    cases_a, cases_b = _cases(context_a), _cases(context_b)
    result = Comparison(_summary(context_a), _summary(context_b))
    result.significance = regression_test(*(_outcomes(c) for c in (context_a, context_b)))
    for key in sorted(set(cases_a) | set(cases_b), key=_key_order):
        a, b = cases_a.get(key), cases_b.get(key)
        change = CaseChange(
            key=key[0],
            step=key[1],
            label=(b or a)["label"],
            before=a["status"] if a else None,
            after=b["status"] if b else None,
            score_before=a["score"] if a else None,
            score_after=b["score"] if b else None,
            reason=b["message"] if b and b["status"] != "passed" else "",
        )
        if change.kind == "score" and (change.delta is None or abs(change.delta) < _SCORE_EPSILON):
            result.unchanged += 1
        else:
            result.changes.append(change)
    return result


def _score(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


_TITLES = [
    ("regression", "Regressions (pass → fail/error)"),
    ("fix", "Fixes (fail/error → pass)"),
    ("changed", "Other status changes"),
    ("score", "Score changes"),
    ("added", "Only in B"),
    ("removed", "Only in A"),
]


def _summary_rows(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    """The summary both forms show: (what, in A, in B, the change), as text."""
    rows = [
        (
            "pass rate",
            _pct(a["pass_rate"]),
            _pct(b["pass_rate"]),
            f"{(b['pass_rate'] - a['pass_rate']) * 100:+.1f} pts",
        )
    ]
    rows.append(
        ("95% CI", format_interval(*a["pass_rate_ci95"]), format_interval(*b["pass_rate_ci95"]), "")
    )
    counts = [
        (name, a["counts"][name], b["counts"][name]) for name in ("passed", "failed", "errors")
    ]
    for name, before, after in [*counts, ("tokens", a["total_tokens"], b["total_tokens"])]:
        rows.append((name, str(before), str(after), f"{after - before:+d}"))
    return rows


def _groups(result: Comparison) -> list[tuple[str, str, list[CaseChange]]]:
    """(kind, title, changes) for each kind of change present, in the order shown."""
    return [(kind, title, result.of(kind)) for kind, title in _TITLES if result.of(kind)]


def render_text(result: Comparison) -> list[str]:
    """Lines for a terminal."""
    a, b = result.a, result.b
    lines = [
        f"A {a['id']} ({a['pipeline']}, {a['outcome']})",
        f"B {b['id']} ({b['pipeline']}, {b['outcome']})",
    ]
    if a["pipeline"] != b["pipeline"]:
        lines.append("note: the runs are of different pipelines")
    if a["scripted"] or b["scripted"]:
        lines.append("note: scripted-model runs: replies are rehearsal text, not an AI's")
    for name, before, after, delta in _summary_rows(a, b):
        lines.append(f"  {name:<10} {before:>7} → {after:>7}" + (f"  ({delta})" if delta else ""))
    if result.significance is not None:
        lines.append(f"  pass-rate change: {result.significance.describe()}")
    if not result.changes:
        lines.append(f"No changes ({result.unchanged} cases identical).")
        return lines
    for kind, title, changes in _groups(result):
        lines.append(f"{title}: {len(changes)}")
        for c in changes:
            delta = f", {c.delta:+.2f}" if c.delta is not None else ""
            line = (
                f"  item {c.key} step {c.step}: {c.before or '-'} → {c.after or '-'} "
                f"(score {_score(c.score_before)} → {_score(c.score_after)}{delta})  "
                f"{c.label}"
            )
            lines.append(line)
            if c.reason and kind in ("regression", "changed"):
                lines.append(f"      {c.reason[:200]}")
    lines.append(f"Unchanged: {result.unchanged} cases.")
    return lines


def render_markdown(result: Comparison) -> str:
    """A Markdown summary for a pull-request comment."""
    a, b = result.a, result.b
    regressions = len(result.of("regression"))
    icon = "❌" if regressions else "✅"
    out = [f"### {icon} orch compare: {escape(b['pipeline'], one_line=True)}", ""]
    if a["scripted"] or b["scripted"]:
        out += ["> Rehearsal: replies from the scripted model are rehearsal text, not an AI's.", ""]
    out += [f"| | A `{a['id']}` | B `{b['id']}` | Δ |", "|---|---:|---:|---:|"]
    for name, before, after, delta in _summary_rows(a, b):
        out.append(f"| {name} | {before} | {after} | {delta} |")
    if a["cost"] is not None and b["cost"] is not None:
        out.append(
            f"| est. cost | ${a['cost']:.4f} | ${b['cost']:.4f} | {b['cost'] - a['cost']:+.4f} |"
        )
    out.append("")
    if result.significance is not None:
        sig = result.significance
        out += [f"Pass-rate change: **{sig.verdict}** ({sig.detail()})", ""]
    if not result.changes:
        out.append(f"No changes: all {result.unchanged} cases have the same outcome and score.")
        return "\n".join(out) + "\n"
    for _kind, title, changes in _groups(result):
        out += [
            f"#### {title}: {len(changes)}",
            "",
            "| item | step | A | B | score A → B | why |",
            "|---|---|---|---|---|---|",
        ]
        for c in changes:
            out.append(
                f"| {c.key} {escape(c.label, one_line=True)} | `{c.step}` | {c.before or '-'} | "
                f"{c.after or '-'} | {_score(c.score_before)} → {_score(c.score_after)} "
                f"| {escape(c.reason[:200], one_line=True)} |"
            )
        out.append("")
    out.append(f"<sub>{result.unchanged} cases unchanged.</sub>")
    return "\n".join(out) + "\n"


def compare_task(
    path: Path | None,
    run_a: str,
    run_b: str,
    markdown: bool,
    as_json: bool,
    output: Path | None,
    fail_on_regression: str | None,
    echo,
    variants: tuple[str, str] | None = None,
) -> int:
    """``orch compare``: print (or write) the comparison; exit 1 on regressions if asked.

    With ``variants`` (A, B), ``run_b`` is None and two variants of the one run ``run_a`` are
    compared, A the baseline (:func:`orch.results.variants.variant_context`).

    ``fail_on_regression``: None never fails; ``any`` fails when any case regressed (passed in A,
    failed or errored in B); ``significant`` only when B's pass rate is lower than A's and the
    test over items finds the drop significant (p < 0.05).
    """
    project = load_project(path, import_handlers=False)  # read-only: no project code runs
    if variants:
        whole = build_context(project, load_run(project.root, run_a))
        contexts = [variant_context(whole, name) for name in variants]
    else:
        contexts = [build_context(project, load_run(project.root, r)) for r in (run_a, run_b)]
    result = compare(*contexts)
    if as_json:
        text = json.dumps(result.to_json(), indent=2, ensure_ascii=False, default=str)
    elif markdown:
        text = render_markdown(result)
    else:
        text = "\n".join(render_text(result))
    if output is not None:
        try:
            write_atomic(output, text if text.endswith("\n") else text + "\n")
        except OSError as exc:
            raise UsageError(cannot_write(output, exc)) from exc
        echo(f"wrote {output}")
    else:
        echo(text.rstrip("\n"))
    if fail_on_regression == "any" and result.of("regression"):
        return ExitCode.FAILED
    sig = result.significance
    if fail_on_regression == "significant" and sig is not None and sig.significant_drop:
        return ExitCode.FAILED
    return ExitCode.OK
