"""``orch run``: a pipeline's items × steps against a target, concurrently, durably, resumably.

Each item runs in its own session (one thread, steps share it; :mod:`orch.run.execution`). At
most ``concurrency`` items are in flight, and at most that many are even *submitted*, so memory
stays flat however many items there are. Every finished item is appended to the run's
``results.jsonl`` and the SQLite history before it is reported, on a thread of its own so
that no item waits for a disk to start (:mod:`orch.run.recorder`); a killed run is resumed with
``--resume RUN_ID`` (missing items only) or ``orch retry RUN_ID`` (failed ones).

A resumed run continues on the target it started on: another ``--target`` is refused unless
``switch_target`` is set, and then the switch is recorded in the run (``target_history``, and
the ``target`` label names both). Items that were in flight when the run was killed get their
thread back from the run's journal (:mod:`orch.run.journal`), so the runs their steps had
started are adopted, not sent again.

A run may be one shard of the items (``--shard i/N``, :mod:`orch.run.shards`; a resume keeps
the run's shard) and may be capped in spend (``max_cost`` / ``max_tokens_total``,
:mod:`orch.run.budget`): at the cap no new item starts and the run ends ``interrupted`` with
``stop_reason: cost cap`` in run.json, resumable with a higher cap.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import nullcontext
from dataclasses import dataclass, field
from typing import Any

from orch import __version__
from orch.errors import UsageError
from orch.project.model import Pipeline, Project
from orch.project.variants import choose_variants
from orch.results.history import SCHEMA_VERSION, History
from orch.run.batching import execute_batched, is_batch_run
from orch.run.budget import STOP_REASON, Budget
from orch.run.execution import ItemRunner, RunContext
from orch.run.journal import RunJournal
from orch.run.preparation import needed_assistants, pipeline_hash, prepare
from orch.run.progress import Reporter
from orch.run.recorder import Recorder
from orch.run.shards import Shard, selected_items
from orch.run.summary import RunSummary, new_run_id, now
from orch.run.uploads import Uploads
from orch.targets.connection import connect, same_target
from orch.targets.registry import Connection


@dataclass
class RunOptions:
    """Command-line choices for one ``orch run`` / ``--resume`` / ``orch retry``."""

    target: str | None = None
    vars: dict[str, Any] = field(default_factory=dict)
    items_limit: int | None = None
    concurrency: int | None = None
    resume: str | None = None
    retry_failed: bool = False
    stream: bool | None = None
    sync: bool = True
    quiet: bool = False
    #: resuming on another target than the run's is allowed (and recorded) only with this
    switch_target: bool = False
    #: send the requests through the Batch API, in rounds (:mod:`orch.run.batching`)
    batch: bool = False
    #: run only this shard of the items (a resume takes the run's own)
    shard: Shard | None = None
    #: caps overriding the pipeline's ``max_cost`` / ``max_tokens_total``
    max_cost: float | None = None
    max_tokens_total: int | None = None
    #: run only these of the pipeline's variants (``--variant``; empty: all of them)
    variants: tuple[str, ...] = ()


class PipelineRunner:
    """Runs one pipeline; create it, then call :meth:`run`."""

    def __init__(
        self,
        project: Project,
        pipeline: Pipeline,
        options: RunOptions,
        reporter: Reporter,
        echo=print,
    ):
        self.project = project
        self.pipeline = pipeline
        self.options = options
        self.reporter = reporter
        self.echo = echo
        self.stop = threading.Event()
        self.history = History(project.root)
        self.vars = {**dict(project.vars), **dict(pipeline.vars), **options.vars}
        self.needed = needed_assistants(project, pipeline)
        self.target = options.target  # a resumed run's own target unless switched
        #: the variants each item runs once for (a resume takes the run's own)
        self.variants = choose_variants(pipeline, options.variants)
        #: the targets a resumed run ran on so far (``target_history`` in run.json)
        self.target_history: list[dict[str, Any]] = []
        #: why the run stopped early (``cost cap``), None when it ran out of items or was killed
        self.stop_reason: str | None = None

    def run(self, conn: Connection | None = None) -> RunSummary:
        """Execute (or resume) the pipeline; returns the summary (never raises on item errors).

        ``conn``: a connection already open on the run's target (``orch run A B`` shares one
        among its runs; its opener closes it). Without it the run opens its target itself.
        """
        run_id, started_at, skip = self._resume_point()
        self.run_id = run_id
        run_dir = self.history.run_dir(run_id)
        t0 = time.monotonic()
        opened = connect(self.project, self.target, self.options.quiet) if conn is None else None
        with opened or nullcontext(conn) as conn:
            self.budget = self._budget(conn, bool(skip))
            prepared = prepare(self.project, conn, self.needed, self.options.sync, self.echo)
            meta = self._meta(conn, prepared.ids, started_at, len(skip))
            self.history.start_run(meta)
            handler_pool = ThreadPoolExecutor(
                max_workers=max(4, self._concurrency() * 2), thread_name_prefix="orch-handler"
            )
            journal = RunJournal(run_dir, self._finished_threads())
            try:
                context = self._context(conn, prepared, handler_pool, journal)
                if self.options.batch or is_batch_run(run_dir):  # a batch run resumes as one
                    work = list(self._work(skip))
                    status = execute_batched(
                        context, work, len(skip), self.history, meta, self.reporter
                    )
                else:
                    status = self._execute(ItemRunner(context), skip)
            finally:
                # a handler stuck past its timeout must not hold up the end of the run
                handler_pool.shutdown(wait=False, cancel_futures=True)
                journal.close()
        summary = self._finish(meta, status, time.monotonic() - t0, run_dir)
        self.history.close()
        return summary

    def _budget(self, conn: Connection, resumed: bool) -> Budget:
        """The run's caps (flags over the pipeline's) with what a resumed run already spent."""
        options, pipeline = self.options, self.pipeline
        budget = Budget(
            options.max_cost if options.max_cost is not None else pipeline.max_cost,
            options.max_tokens_total
            if options.max_tokens_total is not None
            else pipeline.max_tokens_total,
            {n: conn.assistant(self.project.assistant(n)).model for n in self.needed},
            dict(self.project.prices),
        )
        if budget.capped and (options.batch or is_batch_run(self.history.run_dir(self.run_id))):
            # a round's batch holds every item at once: nothing could stop it at the cap
            raise UsageError(
                "max_cost / max_tokens_total cap runs item by item, and a batch run submits "
                "every item of a round at once; drop --batch, or the cap"
            )
        if budget.capped and resumed:
            budget.preload(self.history.attempts(self.run_id))
        return budget

    def _context(
        self, conn: Connection, prepared, handler_pool: ThreadPoolExecutor, journal: RunJournal
    ) -> RunContext:
        stream = self.options.stream
        return RunContext(
            project=self.project,
            pipeline=self.pipeline,
            conn=conn,
            run_id=self.run_id,
            run_dir=self.history.run_dir(self.run_id),
            vars=self.vars,
            ids=prepared.ids,
            resources=prepared.resources,
            uploads=Uploads(conn.backend().files, self.project.name, self.project.root),
            handler_pool=handler_pool,
            stop=self.stop,
            stream=self.pipeline.stream if stream is None else stream,
            journal=journal,
        )

    def _resume_point(self) -> tuple[str, str, set[str]]:
        """(run id, start time, item keys to skip): a new run, or where the resumed one stands."""
        if not self.options.resume:
            return new_run_id(), now(), set()
        record = self.history.get(self.options.resume)
        if record.pipeline != self.pipeline.name:
            raise UsageError(
                f"run {record.run_id} is of pipeline {record.pipeline!r}, "
                f"not {self.pipeline.name!r}"
            )
        if record.pipeline_hash != self._pipeline_hash():
            raise UsageError(
                f"pipeline {self.pipeline.name!r} changed since run {record.run_id}; results "
                "would mix two versions. Start a new run instead."
            )
        self.vars = record.meta.get("vars", self.vars)
        self.options.items_limit = record.meta.get("items_limit")
        self.options.shard = Shard.from_json(record.meta.get("shard"))
        if self.options.variants:
            raise UsageError("--variant: a resumed run keeps the variants it started with")
        self.variants = tuple(record.meta.get("variants") or self.variants)
        self.history.recover_items(record.run_id)  # killed between results.jsonl and the db
        statuses = self.history.item_status(record.run_id)
        self._pin_target(record.run_id, record.meta, len(statuses))
        retry_failed = self.options.retry_failed
        skip = {k for k, s in statuses.items() if not (retry_failed and s in ("failed", "error"))}
        return record.run_id, record.started_at, skip

    def _pin_target(self, run_id: str, meta: dict[str, Any], done: int) -> None:
        """Continue on the run's own target; another one only with ``switch_target``."""
        recorded = meta.get("target_name")
        self.target_history = list(meta.get("target_history") or [])
        asked = self.options.target
        if recorded is None or asked is None or same_target(self.project, asked, recorded):
            self.target = asked or recorded
            return
        if not self.options.switch_target:
            raise UsageError(
                f"run {run_id} ran on target {recorded!r}; continuing it on {asked!r} would mix "
                f"two targets' answers in one run. Resume without --target (or ORCH_TARGET) to "
                f"continue on {recorded!r}, or add --switch-target to continue on {asked!r} "
                "(recorded in the run)."
            )
        if not self.target_history:
            self.target_history.append({"target_name": recorded, "target": meta.get("target")})
        self.target_history.append({"target_name": asked, "from": now(), "items_before": done})

    def _target_label(self, conn: Connection) -> str:
        """The run's target for people: every target it ran on once it switched."""
        earlier = [t["target_name"] for t in self.target_history[:-1]]
        return f"{conn.label} (switched from {', '.join(earlier)})" if earlier else conn.label

    def _finished_threads(self) -> Iterator[tuple[str, str | None]]:
        """(key, thread id) of recorded items, which the journal must not hand out again.

        Only a retry runs recorded items again, so only a retry reads them.
        """
        if self.options.retry_failed:
            yield from ((r["key"], r.get("thread_id")) for r in self.history.items(self.run_id))

    def _meta(
        self, conn: Connection, ids: dict[str, str], started_at: str, done: int
    ) -> dict[str, Any]:
        if self.target_history:
            self.target_history[-1].setdefault("target", conn.label)
        return {
            "schema_version": SCHEMA_VERSION,
            "run_id": self.run_id,
            "pipeline": self.pipeline.name,
            "pipeline_file": self.pipeline.source,
            "pipeline_hash": self._pipeline_hash(),
            "project": self.project.name,
            "target": self._target_label(conn),
            "target_name": conn.target.name,
            "target_history": self.target_history,
            "assistants": {n: ids.get(n) for n in self.needed},
            "models": {n: conn.assistant(self.project.assistant(n)).model for n in self.needed},
            "scripted": conn.rehearsal,
            "vars": self.vars,
            "items_limit": self.options.items_limit,
            "shard": self.options.shard.to_json() if self.options.shard else None,
            "max_cost": self.budget.max_cost,
            "max_tokens_total": self.budget.max_tokens,
            "started_at": started_at,
            "status": "running",
            "orch_version": __version__,
            "generated_at": now(),
            **({"variants": list(self.variants)} if self.variants else {}),
        }

    def _finish(self, meta: dict, status: str, duration: float, run_dir) -> RunSummary:
        counts, usage = self._totals()
        meta.update(
            stop_reason=self.stop_reason,
            message=self._stop_message(),
            status=status,
            finished_at=now(),
            counts=counts,
            usage=usage,
            duration_s=round(duration, 3),
            generated_at=now(),
        )
        self.history.finish_run(meta)
        total = counts["total"]
        return RunSummary(
            self.run_id,
            self.pipeline.name,
            status,
            counts,
            usage,
            meta["duration_s"],
            run_dir,
            counts["passed"] / total if total else 1.0,
            self.pipeline.pass_rate,
            stop_reason=self.stop_reason,
            message=meta["message"],
        )

    def _stop_message(self) -> str | None:
        """Why the run stopped early and how to go on, for run.json and the summary."""
        if self.stop_reason != STOP_REASON:
            return None
        return (
            f"stopped at the cost cap ({self.budget.describe()}); no new item started. Resume "
            f"with a higher cap: `orch run --resume {self.run_id} --max-cost USD` "
            "(or --max-tokens-total N)"
        )

    def _pipeline_hash(self) -> str:
        return pipeline_hash(self.project, self.pipeline)

    def _concurrency(self) -> int:
        return self.options.concurrency or self.pipeline.concurrency

    def _work(self, skip: set[str]) -> Iterator[tuple[str, dict, int, int]]:
        """(key, item, orch's index of the item, repeat) of every item run still to do.

        With variants, one per variant (the key names it: :func:`orch.project.items.item_key`).
        """
        units = selected_items(
            self.pipeline,
            self.project.root,
            self.options.items_limit,
            self.options.shard,
            tuple(self.variants or ()),
        )
        for key, item, index, rep, _variant in units:
            if key not in skip:
                yield key, item, index, rep

    def _execute(self, items: ItemRunner, skip: set[str]) -> str:
        """Run the items, at most ``concurrency`` submitted at once; returns the run status."""
        total = sum(1 for _ in self._work(skip))
        self.reporter.start(self.run_id, self.pipeline.name, total, len(skip))
        concurrency = self._concurrency()
        pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="orch-item")
        pending: set[Future] = set()
        previous = _install_sigterm()
        status = "completed"
        # finished items are persisted on the recorder's thread: dispatching the next item never
        # waits for a disk (a run's 200 fsyncs cost it a second when it did)
        recorder = Recorder(self.history, self.run_id, self.reporter)
        # threads for the items after the first wave are made while that wave waits on the model
        ctx = items.ctx
        ctx.reserve = ctx.conn.reserve(ctx.label, concurrency, total)
        try:
            for key, item, index, rep in self._work(skip):
                while len(pending) >= concurrency:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    self._record(done, recorder)
                    recorder.check()
                if self.budget.capped and not self.budget.allows(len(pending)):
                    self.stop_reason = STOP_REASON  # those in flight finish: they are paid for
                    status = "interrupted"
                    break
                pending.add(pool.submit(items.run, key, item, index, rep))
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                self._record(done, recorder)
                recorder.check()
            recorder.drain()
        except KeyboardInterrupt:
            status = "interrupted"
            self.stop.set()
            for future in pending:
                future.cancel()
            done, _ = wait(pending, timeout=10)
            self._record({f for f in done if not f.cancelled()}, recorder)
        finally:
            if ctx.reserve is not None:
                ctx.reserve.close()  # threads nobody took (a stopped or capped run) go away
            recorder.close()  # what finished is written before the run ends, however it ends
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            pool.shutdown(wait=False, cancel_futures=True)
            self.reporter.finish()
        recorder.check(stopping=True)  # an interrupted run whose history could not be written
        return status

    def _record(self, done: set[Future], recorder: Recorder) -> None:
        """Hand finished items to the recorder (which reports them once they are durable)."""
        for future in done:
            record = future.result()
            if record is None:  # stopped before it finished: a resume will run it
                continue
            recorder.put(record)
            if self.budget.capped:
                self.budget.charge(record)

    def _totals(self) -> tuple[dict[str, int], dict[str, int]]:
        statuses = self.history.item_status(self.run_id)
        counts = {"total": len(statuses), "passed": 0, "failed": 0, "errors": 0}
        for s in statuses.values():
            counts[{"passed": "passed", "failed": "failed", "error": "errors"}[s]] += 1
        return counts, self.history.usage(self.run_id)  # summed in SQL: no record is loaded


def _install_sigterm():
    """Treat SIGTERM like Ctrl-C so a terminated run stays resumable (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise KeyboardInterrupt()

    return signal.signal(signal.SIGTERM, handler)
