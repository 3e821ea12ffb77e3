"""A past run's outcome in words, as its exit code judged it; durations for tables.

Shared by ``orch history``/``orch show`` and the ``orch view`` pages, so a run reads the same
everywhere.
"""

from __future__ import annotations


def required_rate(project, record) -> float:
    """The pass rate a run had to reach: as recorded, else its pipeline's today, else 100 %."""
    recorded = record.meta.get("required_pass_rate")
    if isinstance(recorded, int | float):
        return float(recorded)
    declared = project.pipeline(record.pipeline)
    return declared.pass_rate if declared else 1.0


def outcome(record, required: float) -> dict:
    """A run's outcome (passed/failed/error/interrupted/running) and pass rate, as for its exit.

    The same rule as the run's exit code: errors or an interruption are an error, a pass rate
    below ``required`` a failure; a run still going (or killed) is ``running``.
    """
    rate = record.passed / record.total if record.total else 1.0
    if record.status in ("running", "interrupted"):
        word = record.status
    elif record.errors:
        word = "error"
    elif rate + 1e-9 < required:
        word = "failed"
    else:
        word = "passed"
    return {"outcome": word, "pass_rate": rate, "required_pass_rate": required}


def duration(seconds) -> str:
    """``1.6s``, ``2m05s``, ``1h02m``; ``-`` when unknown."""
    if not isinstance(seconds, int | float):
        return "-"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"
