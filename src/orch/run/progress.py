"""Progress for ``orch run``: a live bar on a terminal, plain lines in CI, nothing with --quiet.

A reporter hears about each finished item after it has been persisted, so what it shows is
never ahead of what a resume would find.

When the reader of the progress lines goes away (``orch run ... 2>&1 | head``), the line
reporter stops writing, points the stream at /dev/null and raises :class:`OutputClosed` from
the next :meth:`Reporter.item`: the runner stops the run as it does on Ctrl-C (interrupted,
resumable), and ``reporter.closed`` tells the command why.
"""

from __future__ import annotations

import os
import sys
import time
from typing import Any, Protocol, TextIO

LABEL_WIDTH = 48  # characters of an item's label in progress lines and summaries
LABEL_FIELDS = ("label", "id", "name", "title")  # fields that name an item, in order


def item_label(item: Any, key: str, width: int = LABEL_WIDTH) -> str:
    """A short human label for an item: ``#KEY`` and a name taken from its data.

    The name is the item's ``label``, ``id``, ``name`` or ``title`` field (the first present),
    else its first string field, on one line and cut to ``width`` characters; an item with
    none of these (or not a mapping) is labelled by its key alone. The key stays in front, so
    two items with the same text remain distinguishable (and ``orch retry`` needs no label).
    """
    name = None
    if isinstance(item, dict):
        named = [item[f] for f in LABEL_FIELDS if isinstance(item.get(f), str | int)]
        texts = [v for v in item.values() if isinstance(v, str) and v.strip()]
        name = str(named[0]) if named else texts[0] if texts else None
    if not name:
        return f"#{key}"
    name = " ".join(name.split())
    if len(name) > width:
        name = name[: width - 1] + "…"
    return f"#{key} {name}"


class OutputClosed(KeyboardInterrupt):
    """The reader of the progress went away; stop the run the way Ctrl-C does.

    A KeyboardInterrupt, so the runner's Ctrl-C path handles it: finished items are kept, the
    run is recorded as interrupted, and ``orch run --resume RUN_ID`` finishes it.
    """


def silence(stream: Any) -> None:
    """Point ``stream``'s file descriptor at /dev/null, after its reader went away.

    Python's documented idiom for a broken pipe: later writes, and the interpreter's last
    flush, then succeed instead of failing again. A stream without a descriptor (a test
    runner's buffer) is left alone.
    """
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, fd)
    os.close(devnull)


def outcome_line(record: dict[str, Any]) -> str:
    """``FAIL  #1 Who was…: <first failed assertion's reason>`` for a finished item record."""
    mark = {"passed": "ok", "failed": "FAIL", "error": "ERROR"}[record["status"]]
    detail = ""
    if record["status"] == "error" and record.get("error"):
        detail = f": {record['error'].get('message', '')}"
    elif record["status"] == "failed":
        reasons = [
            v["reason"]
            for s in record.get("steps", [])
            for v in s.get("assertions", [])
            if not v["passed"]
        ]
        detail = f": {reasons[0]}" if reasons else ""
    return f"{mark:<5} {item_label(record.get('item'), record['key'])}{detail}"


class Reporter(Protocol):
    """Receives run events; implementations decide how (and whether) to show them."""

    def start(self, run_id: str, pipeline: str, total: int, skipped: int) -> None:
        """The run begins: ``total`` item runs to do, ``skipped`` already done (resume)."""

    def item(self, record: dict[str, Any]) -> None:
        """An item finished (and is already persisted)."""

    def finish(self) -> None:
        """The run ended (normally or not)."""


class Counter:
    """Shared tallies for the live display."""

    def __init__(self) -> None:
        self.done = self.passed = self.failed = self.errors = self.tokens = 0
        self.started = time.monotonic()

    def add(self, record: dict[str, Any]) -> None:
        """Count one finished item."""
        self.done += 1
        status = record["status"]
        self.passed += status == "passed"
        self.failed += status == "failed"
        self.errors += status == "error"
        self.tokens += (record.get("usage") or {}).get("total_tokens", 0)


class QuietReporter:
    """Shows nothing."""

    def start(self, run_id, pipeline, total, skipped) -> None:  # noqa: D102
        pass

    def item(self, record) -> None:  # noqa: D102
        pass

    def finish(self) -> None:  # noqa: D102
        pass


class LineReporter:
    """One line per finished item: for CI logs and pipes (no TTY).

    ``closed`` becomes True when the stream's reader went away; the next :meth:`item` then
    raises :class:`OutputClosed`, once (never :meth:`start`, which runs before the runner can
    record an interruption).
    """

    def __init__(self, stream: TextIO = sys.stderr):
        self.stream = stream
        self.counter = Counter()
        self.total = 0
        self.closed = False
        self._stopped = False  # OutputClosed raised already

    def start(self, run_id, pipeline, total, skipped) -> None:  # noqa: D102
        self.total = total
        extra = f" ({skipped} already done)" if skipped else ""
        self._write(f"run {run_id}: pipeline {pipeline}, {total} item run(s){extra}")

    def item(self, record) -> None:  # noqa: D102
        self.counter.add(record)
        c = self.counter
        self._write(f"[{c.done}/{self.total}] {outcome_line(record)}")
        if self.closed and not self._stopped:
            self._stopped = True
            raise OutputClosed()

    def finish(self) -> None:  # noqa: D102
        pass

    def _write(self, line: str) -> None:
        """Print ``line``; on a broken pipe, stop writing for good (``closed``)."""
        if self.closed:
            return
        try:
            print(line, file=self.stream, flush=True)
        except BrokenPipeError:
            self.closed = True
            silence(self.stream)


class BarReporter:
    """A rich live progress bar: items done/failed, tokens, elapsed, ETA."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )

        self.counter = Counter()
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "[green]{task.fields[passed]} ok[/] [red]{task.fields[failed]} failed[/]"
                " [magenta]{task.fields[errors]} errors[/]  {task.fields[tokens]} tok"
            ),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        self.task = None

    def start(self, run_id, pipeline, total, skipped) -> None:  # noqa: D102
        self.progress.start()
        self.task = self.progress.add_task(
            pipeline, total=total, passed=0, failed=0, errors=0, tokens=0
        )

    def item(self, record) -> None:  # noqa: D102
        self.counter.add(record)
        c = self.counter
        if record["status"] != "passed":  # named above the bar as they happen
            self.progress.console.print(outcome_line(record), markup=False, highlight=False)
        self.progress.update(
            self.task, advance=1, passed=c.passed, failed=c.failed, errors=c.errors, tokens=c.tokens
        )

    def finish(self) -> None:  # noqa: D102
        self.progress.stop()


def choose(quiet: bool, stream: TextIO = sys.stderr) -> Reporter:
    """The reporter for this environment: bar on a terminal, lines otherwise."""
    if quiet:
        return QuietReporter()
    if stream.isatty():
        return BarReporter()
    return LineReporter(stream)
