"""A run's outcome: counts, pass rate, the exit code they imply, and lines for humans."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orch.errors import ExitCode
from orch.results.history import read_results
from orch.results.statistics import (
    format_interval,
    repeat_count,
    repeat_statistics,
    tries_by_item,
    wilson_interval,
)
from orch.results.variants import run_variant_lines
from orch.run.progress import item_label

FAILURES_SHOWN = 5  # failed or errored items the terminal summary names
REASON_WIDTH = 160  # characters of a failure's reason in the summary


def now() -> str:
    """UTC timestamp, ISO 8601 with milliseconds."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def new_run_id() -> str:
    """Unique, and sorting in start order: ``20261121-220512-431fa2``.

    UTC date and time, then the millisecond and 3 random hex digits: runs started in one second
    sort by their millisecond, so the newest run folder is the last one by name.
    """
    now = dt.datetime.now(dt.UTC)
    return f"{now:%Y%m%d-%H%M%S}-{now.microsecond // 1000:03d}{secrets.token_hex(2)[:3]}"


@dataclass
class RunSummary:
    """The outcome of a run, with the exit code it implies."""

    run_id: str
    pipeline: str
    status: str
    counts: dict[str, int]
    usage: dict[str, int]
    duration_s: float
    run_dir: Path
    pass_rate: float
    required_pass_rate: float
    reports: list[str] = field(default_factory=list)
    #: why the run stopped before its last item (``cost cap``), and what to do about it
    stop_reason: str | None = None
    message: str | None = None

    @property
    def exit_code(self) -> int:
        """2 on infrastructure errors or interruption, 1 below the pass rate, else 0."""
        if self.status == "interrupted" or self.counts["errors"]:
            return ExitCode.ERROR
        if self.pass_rate + 1e-9 < self.required_pass_rate:
            return ExitCode.FAILED
        return ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "status": self.status,
            "stop_reason": self.stop_reason,
            "message": self.message,
            "counts": self.counts,
            "usage": self.usage,
            "duration_s": self.duration_s,
            "pass_rate": self.pass_rate,
            "pass_rate_ci95": list(wilson_interval(self.counts["passed"], self.counts["total"])),
            "required_pass_rate": self.required_pass_rate,
            "run_dir": str(self.run_dir),
            "reports": self.reports,
            "exit_code": self.exit_code,
            "outcome": self.outcome.split()[0].lower(),
        }

    @property
    def outcome(self) -> str:
        """The word for the exit code: PASSED, ``FAILED 90 % < 100 %``, ERROR or INTERRUPTED."""
        if self.status == "interrupted":
            return f"INTERRUPTED ({self.stop_reason})" if self.stop_reason else "INTERRUPTED"
        code = self.exit_code
        if code == ExitCode.ERROR:
            return "ERROR"
        if code == ExitCode.FAILED:
            return f"FAILED {percent(self.pass_rate)} < {percent(self.required_pass_rate)}"
        return "PASSED"


def percent(rate: float) -> str:
    """``0.9`` → ``"90 %"``; one decimal when whole percents would hide a difference."""
    value = rate * 100
    whole = round(value)
    return f"{whole} %" if abs(value - whole) < 1e-9 else f"{value:.1f} %"


def summary_lines(summary: RunSummary) -> list[str]:
    """The final summary for humans: outcome, counts, the first failures, what to do next.

    What the summary object does not hold is read back from the run's folder: run.json names
    the target and says whether the model was scripted (the run was a rehearsal), results.jsonl
    which items failed.
    """
    c, u = summary.counts, summary.usage
    meta = _run_meta(summary.run_dir)
    lines = [
        "",
        f"Run {summary.run_id} — pipeline {summary.pipeline}: {summary.outcome}",
        f"  items     {c['total']:>6}   passed {c['passed']}  failed {c['failed']}  "
        f"errors {c['errors']}",
        f"  pass rate {summary.pass_rate:>6.1%} (95% CI "
        f"{format_interval(*wilson_interval(c['passed'], c['total']))})   "
        f"required {summary.required_pass_rate:.0%}",
        *repeat_lines(summary.run_dir / "results.jsonl"),
        *run_variant_lines(summary.run_dir),  # each variant's pass rate, side by side
        f"  tokens    {u.get('total_tokens', 0):>6}   prompt {u.get('prompt_tokens', 0)}  "
        f"completion {u.get('completion_tokens', 0)}",
        f"  time      {summary.duration_s:>6.1f}s",
        f"  results   {summary.run_dir / 'results.jsonl'}",
    ]
    if isinstance(meta.get("target"), str):
        lines.insert(2, f"  target    {meta['target']}")
    for report in summary.reports:
        lines.append(f"  report    {report}")
    if meta.get("scripted"):
        lines.append("  model     scripted: a REHEARSAL (rule-based replies, not an AI's)")
    lines += failure_lines(summary)
    if summary.message:
        lines.append(summary.message[0].upper() + summary.message[1:] + ".")
    elif summary.status == "interrupted":
        lines.append(f"Interrupted: finish it with `orch run --resume {summary.run_id}`.")
    elif c["errors"]:
        lines.append(error_advice(summary))
    if summary.status != "interrupted":
        lines.append(f"Next: `orch show {summary.run_id}` for every item's prompts and replies.")
    return lines


def repeat_lines(path: Path) -> list[str]:
    """With ``repeat: k`` (k > 1), pass@k and pass^k over the items; else nothing.

    Read from results.jsonl (each item run's last record): pass@k is the chance that any of k
    tries passes, pass^k that all do (:mod:`orch.results.statistics`), averaged over items.
    """
    records = list(_last_records(path).values())
    k = repeat_count(records)
    if k < 2:
        return []
    stats = repeat_statistics(tries_by_item(records), k)
    if stats.pass_at_k is None or stats.pass_hat_k is None:
        return []
    return [
        f"  pass@{k:<4} {stats.pass_at_k:>6.1%}   pass^{k} {stats.pass_hat_k:.1%}   "
        f"(any / all of {k} tries, mean over {stats.items} items)"
    ]


def failure_lines(summary: RunSummary) -> list[str]:
    """The first failed or errored items: label, step and the first failed assertion's reason."""
    failures = summary.counts["failed"] + summary.counts["errors"]
    if not failures:
        return []
    shown = first_failures(summary.run_dir / "results.jsonl", FAILURES_SHOWN)
    if not shown:
        return []
    more = f" (first {len(shown)} of {failures})" if failures > len(shown) else ""
    return [f"Failures{more}:", *(f"  {line}" for line in shown)]


def error_advice(summary: RunSummary) -> str:
    """What to do about errored items: fix a template mistake; retry an infrastructure failure.

    A template that fails to render is the pipeline's mistake (retrying gives the same error),
    so it is not called an infrastructure failure. Kinds are read from results.jsonl.
    """
    mistakes = infra = 0
    for record in _last_records(summary.run_dir / "results.jsonl").values():
        if record.get("status") == "error":
            if _is_template_error(record.get("error") or {}):
                mistakes += 1
            else:
                infra += 1
    fix = "fix the templates (`orch validate` finds most such mistakes), then run again"
    retry = f"retry them with `orch retry {summary.run_id}`"
    if mistakes and not infra:
        return f"Errors are template mistakes in the pipeline: {fix}."
    if mistakes:
        return (
            f"{mistakes} error{'s are' if mistakes != 1 else ' is a'} template mistake"
            f"{'s' if mistakes != 1 else ''}: {fix}. The other {infra} "
            f"{'are infrastructure failures' if infra != 1 else 'is an infrastructure failure'}; "
            f"{retry}."
        )
    return f"Errors are infrastructure failures; {retry}."


def _is_template_error(error: dict[str, Any]) -> bool:
    """Whether an item's error is a template that did not render (prompt or assertion)."""
    kind, message = error.get("type"), str(error.get("message") or "")
    return kind == "template" or (kind == "assertion_error" and "template error" in message)


def first_failures(path: Path, limit: int) -> list[str]:
    """One line for each of the first ``limit`` items (in item order) whose last record failed.

    results.jsonl may hold several records per item (a retry appends); the last one counts. A
    missing file or a torn line is skipped: the summary never fails a finished run.
    """
    latest: dict[str, tuple[tuple[int, int], str] | None] = {}
    try:
        with path.open(encoding="utf-8") as fh:
            for raw in fh:
                try:
                    record = json.loads(raw)
                    ok = record.get("status") == "passed"
                    latest[record["key"]] = None if ok else _failure(record)
                except (ValueError, KeyError, TypeError, AttributeError):
                    continue
    except OSError:
        return []
    failed = sorted((f for f in latest.values() if f), key=lambda f: f[0])
    return [line for _order, line in failed[:limit]]


def _failure(record: dict[str, Any]) -> tuple[tuple[int, int], str]:
    """(sort key, line) for a failed or errored item record."""
    label = item_label(record.get("item"), record["key"])
    order = (record.get("index", 0), record.get("repeat", 0))
    for step in record.get("steps", []):
        if step.get("error"):
            return order, f"ERROR {label} · step {step['id']}: {_cut(step['error'].get('message'))}"
        for verdict in step.get("assertions", []):
            if not verdict.get("passed", True):
                why = f"{verdict.get('name')}: {verdict.get('reason')}"
                if step.get("truncated"):
                    why += " (the reply was cut at its max_tokens)"
                return order, f"FAIL  {label} · step {step['id']}: {_cut(why)}"
    error = record.get("error") or {}
    return order, f"ERROR {label}: {_cut(error.get('message') or record.get('status'))}"


def _cut(text: Any) -> str:
    """``text`` on one line, at most REASON_WIDTH characters."""
    flat = " ".join(str(text or "").split())
    return flat if len(flat) <= REASON_WIDTH else flat[: REASON_WIDTH - 1] + "…"


def _run_meta(run_dir: Path) -> dict[str, Any]:
    """The run's run.json ({} when it cannot be read: the summary never fails a finished run)."""
    try:
        meta = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def dumps(data: Any) -> str:
    """JSON for machine output."""
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)


def _last_records(path: Path) -> dict[str, dict[str, Any]]:
    """Each item's last record in results.jsonl (a retry appends); {} when it cannot be read."""
    try:
        return read_results(path)
    except OSError:
        return {}
