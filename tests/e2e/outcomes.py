"""Run one pipeline with ``orch run --json`` and judge whether orch's machinery held up.

A small model failing assertions is expected and fine. What counts as broken is infrastructure:
a run that timed out or was interrupted, items recorded as ``error``, an exit code other than
0/1, a malformed request from the engine to the model server, an HTTP error or a broken answer
(a stream cut short) from it, and a function call that never got an answer. A step orch ended
because the model called functions 20 rounds in a row, or a reply that ran into its token cap,
is the model's doing: a note, not a breakage.
:func:`report_lines` says which.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tests.e2e.wiretap import Exchange


@dataclass
class Outcome:
    """What one pipeline run left behind."""

    pipeline: str
    exit_code: int | None
    duration_s: float
    summary: dict[str, Any] | None
    items: list[dict[str, Any]]
    stderr: str
    exchanges: list[Exchange] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        """passed/failed/errors as recorded (counted from results.jsonl after a timeout)."""
        if self.summary:
            return self.summary["counts"]
        seen = Counter(item["status"] for item in self.items)
        return {"total": len(self.items), "passed": seen["passed"], "failed": seen["failed"]} | {
            "errors": seen["error"]
        }

    def infrastructure_problems(self) -> list[str]:
        """Why this run says something about orch rather than the model (empty: it held up)."""
        problems = []
        if self.exit_code is None:
            problems.append(f"timed out after {self.duration_s:.0f}s")
        elif self.exit_code not in (0, 1) and not any(i.get("error") for i in self.items):
            # errored items explain an exit 2 themselves (below); anything else, stderr does
            problems.append(f"orch run exited {self.exit_code}: {_tail(self.stderr)}")
        if self.summary and self.summary["status"] != "completed":
            problems.append(f"run status {self.summary['status']}")
        for item in self.items:
            if item.get("error") and not (stopped_loop(item) or hit_reply_cap(item)):
                problems.append(f"item {item['key']} error: {item['error'].get('message')}")
                break
        # A broken answer counts too, whoever broke it, unless the engine asked again and got
        # an answer: otherwise a run that completed over it swallowed the failure.
        bad = [x for x in self.exchanges if x.problems() and not self.recovered(x)]
        if bad:
            problems.append(
                f"{len(bad)} bad upstream exchange(s); first: {bad[0].problems()[0]}"
                f"\n      {bad[0].describe()}"
            )
        problems += _unanswered_calls(self.items)
        return problems

    def recovered(self, broken: Exchange) -> bool:
        """Whether the engine got a sound answer after ``broken``, asking again as designed.

        A 200 whose body broke: the same messages asked again. A context overflow (400
        ``context_length_exceeded``): the same conversation with its tool results cut.
        """
        if broken.request_problems or not isinstance(broken.request, dict):
            return False
        messages = broken.request.get("messages") or []
        if broken.status == 200:
            return self._answered_later(broken, lambda sent: sent == messages)
        if broken.status == 400 and b"context_length_exceeded" in broken.response:
            roles = [m.get("role") for m in messages]
            return self._answered_later(broken, lambda sent: [m.get("role") for m in sent] == roles)
        return False

    def _answered_later(self, broken: Exchange, same: Any) -> bool:
        return any(
            x.started > broken.started
            and isinstance(x.request, dict)
            and same(x.request.get("messages") or [])
            and not x.problems()
            for x in self.exchanges
        )


def run_pipeline(orch: Path, project: Path, name: str, timeout: float) -> Outcome:
    """``orch run pipelines/NAME.yml --json`` in ``project``, killed after ``timeout`` seconds."""
    started = time.monotonic()
    try:
        done = subprocess.run(
            [str(orch), "run", f"pipelines/{name}.yml", "--json"],
            cwd=project,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        code, stdout, stderr = done.returncode, done.stdout, done.stderr
    except subprocess.TimeoutExpired as exc:
        code, stdout = None, ""
        stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else exc.stderr or ""
    duration = time.monotonic() - started
    try:
        summary = json.loads(stdout) if stdout.strip() else None
    except ValueError:
        summary = None
    run_dir = Path(summary["run_dir"]) if summary else _newest_run(project)
    items = _read_items(run_dir) if run_dir else []
    return Outcome(name, code, duration, summary, items, stderr)


def _newest_run(project: Path) -> Path | None:
    runs = sorted((project / ".orch" / "runs").glob("*"))
    return runs[-1] if runs else None


def _read_items(run_dir: Path) -> list[dict[str, Any]]:
    path = run_dir / "results.jsonl"
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line]


def stopped_loop(item: dict[str, Any]) -> bool:
    """Whether orch ended one of the item's steps for calling functions round after round.

    A model's loop is the model's doing; orch stopping it at once (not at the timeout) is the
    machinery working. The call it stopped at is left unanswered on purpose.
    """
    return _step_ended(item, "max_tool_rounds")


def hit_reply_cap(item: dict[str, Any]) -> bool:
    """Whether one of the item's replies ran into its token cap (the model went on and on)."""
    return _step_ended(item, "incomplete", "max_completion_tokens")


def _step_ended(item: dict[str, Any], code: str, words: str = "") -> bool:
    return any(
        (step.get("last_error") or {}).get("code") == code
        and words in ((step.get("last_error") or {}).get("message") or "")
        for step in item.get("steps") or []
    )


def _unanswered_calls(items: list[dict[str, Any]]) -> list[str]:
    for item in items:
        if stopped_loop(item):
            continue
        for step in item.get("steps") or []:
            for call in step.get("tool_calls") or []:
                if call.get("type") == "function" and call.get("output") is None:
                    return [f"item {item['key']} step {step['id']}: {call['name']} got no output"]
    return []


def first_failure(items: list[dict[str, Any]]) -> str | None:
    """The first failed assertion (item, step, assertion, reason, reply), or None."""
    for item in items:
        for step in item.get("steps") or []:
            for verdict in step.get("assertions") or []:
                if not verdict.get("passed"):
                    reply = " ".join((step.get("output") or "").split())[:120]
                    reason = verdict.get("reason") or "did not hold"
                    return (
                        f"item {item['key']} step {step['id']}: {verdict['name']}: "
                        f"{reason[:160]} | reply: {reply!r}"
                    )
    return None


def tool_tally(items: list[dict[str, Any]]) -> str:
    """How many tool calls of each kind the run made, e.g. ``get_current_weather x3``."""
    seen = Counter(
        call.get("name") or call.get("type")
        for item in items
        for step in item.get("steps") or []
        for call in step.get("tool_calls") or []
    )
    return ", ".join(f"{name} x{n}" for name, n in sorted(seen.items())) or "none"


def report_lines(outcome: Outcome) -> list[str]:
    """One summary line for the pipeline, then indented details."""
    c = outcome.counts
    ups = outcome.exchanges
    streamed = sum(1 for x in ups if x.streamed)
    problems = outcome.infrastructure_problems()
    verdict = "RAN" if not problems else "BROKE"
    lines = [
        f"{outcome.pipeline:<17} {verdict:<5} passed {c['passed']} failed {c['failed']} "
        f"errors {c['errors']} of {c['total']}  {outcome.duration_s:5.1f}s  "
        f"upstream calls {len(ups)} ({streamed} streamed)  tools: {tool_tally(outcome.items)}"
    ]
    if failure := first_failure(outcome.items):
        lines.append(f"    first failure: {failure}")
    lines += [f"    infrastructure: {p}" for p in problems]
    notes = sorted({note for x in ups for note in x.notes})
    notes += sorted(
        {
            f"recovered: {x.problems()[0][:120]} (the engine asked again)"
            for x in ups
            if outcome.recovered(x)
        }
    )
    loops = [item["key"] for item in outcome.items if stopped_loop(item)]
    if loops:
        notes.insert(0, f"model looped on function calls in item(s) {', '.join(loops)}: stopped")
    capped = [item["key"] for item in outcome.items if hit_reply_cap(item)]
    if capped:
        notes.insert(0, f"model wrote until the reply cap in item(s) {', '.join(capped)}")
    lines += [f"    note: {n}" for n in notes[:3]]
    return lines


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(text.strip().splitlines()[-lines:])
