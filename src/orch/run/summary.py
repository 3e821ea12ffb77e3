"""A run's outcome: counts, pass rate, the exit code they imply, and lines for humans."""

from __future__ import annotations

import datetime as dt
import json
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orch.errors import ExitCode


def now() -> str:
    """UTC timestamp, ISO 8601 with milliseconds."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def new_run_id() -> str:
    """Sortable, unique: ``20261121-220512-3fa2c1``."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


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
            "counts": self.counts,
            "usage": self.usage,
            "duration_s": self.duration_s,
            "pass_rate": self.pass_rate,
            "required_pass_rate": self.required_pass_rate,
            "run_dir": str(self.run_dir),
            "reports": self.reports,
            "exit_code": self.exit_code,
        }


def summary_lines(summary: RunSummary) -> list[str]:
    """The final summary table for humans."""
    c, u = summary.counts, summary.usage
    lines = [
        "",
        f"Run {summary.run_id} — pipeline {summary.pipeline}: {summary.status}",
        f"  items     {c['total']:>6}   passed {c['passed']}  failed {c['failed']}  "
        f"errors {c['errors']}",
        f"  pass rate {summary.pass_rate:>6.1%}   required {summary.required_pass_rate:.0%}",
        f"  tokens    {u.get('total_tokens', 0):>6}   prompt {u.get('prompt_tokens', 0)}  "
        f"completion {u.get('completion_tokens', 0)}",
        f"  time      {summary.duration_s:>6.1f}s",
        f"  results   {summary.run_dir / 'results.jsonl'}",
    ]
    for report in summary.reports:
        lines.append(f"  report    {report}")
    if summary.status == "interrupted":
        lines.append(f"Interrupted: finish it with `orch run --resume {summary.run_id}`.")
    elif c["errors"]:
        lines.append(
            f"Errors are infrastructure failures; retry them with `orch retry {summary.run_id}`."
        )
    return lines


def dumps(data: Any) -> str:
    """JSON for machine output."""
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)
