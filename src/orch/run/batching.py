"""``orch run --batch``: the pipeline's requests go through the provider's Batch API, in rounds.

Execution is the same as a normal run's (:class:`orch.run.execution.ItemRunner`: each item's
steps in order, function calls answered by the handlers, assertions and graders judged,
records written to ``results.jsonl`` and the history), but each item's session
(:class:`BatchSession`) hands its ``/v1/responses`` request to the run's :class:`BatchRounds`
instead of sending it. Once every item in flight is waiting for an answer, the rounds write
those requests as one JSONL file, upload it, create a batch, record the batch and its files
(``batches.jsonl`` in the run's folder, and ``batch`` in run.json and the history) *before*
waiting for it, poll it with backoff, download its output and error files and hand each item
its answer. Step k of every item is therefore one batch, a function-call round another, the
grader's questions another: as few batches as the pipeline's shape allows.

A batch has no conversations (lines of one batch run in any order), so each line carries the
item's history, as on a target without conversations. A request's ``custom_id`` is its item's
key and its position in the item (``0/2``: item 0's third request), so a resumed run
(``orch run --resume RUN_ID``) asks for the same ids again: a request recorded in a batch of
the run, with the same body, is answered from that batch (waited on if still in flight), never
submitted twice. A line that failed (the error file, or a batch that failed, expired or was
cancelled) is that item's error, like a failed request in a normal run.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from openai.types import Batch
from openai.types.responses import Response

from orch.errors import BackendError, UsageError
from orch.project.model import canonical_json
from orch.run.execution import ItemRunner, RunContext
from orch.run.progress import Reporter
from orch.targets import retry
from orch.targets.responses import ResponsesSession, as_input
from orch.targets.session import SessionSettings, Stopped, Turn

#: target kinds whose server speaks /v1/responses and /v1/batches
KINDS = ("responses", "engine")
ENDPOINT = "/v1/responses"
#: a batch may take its whole completion window: no item times out before it ends
WINDOW_SECONDS = 24 * 3600
BATCH_DONE = frozenset({"completed", "failed", "expired", "cancelled"})
#: items in flight at once, each a thread waiting for its next answer
WAVE = 2000
JOURNAL = "batches.jsonl"


def is_batch_run(run_dir: Path) -> bool:
    """Whether the run in ``run_dir`` ran in batch mode (so its resume does too)."""
    return (run_dir / JOURNAL).exists()


def body_hash(params: dict[str, Any]) -> str:
    """What identifies a request's body across processes (its nonce aside)."""
    return hashlib.sha256(canonical_json(params).encode()).hexdigest()[:32]


@dataclasses.dataclass
class Pending:
    """One request waiting for its answer in the next round."""

    custom_id: str
    params: dict[str, Any]
    done: threading.Event = dataclasses.field(default_factory=threading.Event)
    body: dict[str, Any] | None = None
    error: str | None = None


class Backoff:
    """Delays between polls of a batch: quick at first, then doubling up to ``most`` seconds."""

    def __init__(self, first: float = 0.05, most: float = 30.0):
        self.first, self.most = first, most

    def delays(self) -> Iterable[float]:
        """An endless sequence of delays."""
        delay = self.first
        while True:
            yield delay
            delay = min(delay * 2, self.most)


class BatchJournal:
    """The run's batches, one JSON line each, fsynced: what a resumed run re-attaches to."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / JOURNAL
        self.entries: list[dict[str, Any]] = []
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                if line.strip():
                    self._merge(json.loads(line))

    def _merge(self, entry: dict[str, Any]) -> None:
        for known in self.entries:
            if known["batch_id"] == entry["batch_id"]:
                known.update(entry)
                return
        self.entries.append(entry)

    def note(self, entry: dict[str, Any]) -> None:
        """Add (or update) a batch; durable once this returns."""
        self._merge(entry)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as out:
            out.write(json.dumps(entry, separators=(",", ":")) + "\n")
            out.flush()
            os.fsync(out.fileno())

    def lookup(self) -> dict[str, tuple[str, str]]:
        """custom_id → (batch id, body hash) of every request in a recorded batch."""
        found = {}
        for entry in self.entries:
            for custom_id, digest in (entry.get("lines") or {}).items():
                found[custom_id] = (entry["batch_id"], digest)
        return found

    def summary(self) -> list[dict[str, Any]]:
        """The batches as run.json records them (ids, files, status), without their lines."""
        return [{k: v for k, v in e.items() if k != "lines"} for e in self.entries]


class BatchRounds:
    """Collects the requests of the items in flight and answers them a batch at a time.

    Item threads call :meth:`request` (it blocks); the run's main thread calls :meth:`serve`,
    which sends a round whenever every item in flight is waiting, and records finished items.
    """

    def __init__(
        self,
        client: Any,
        run_dir: Path,
        stop: threading.Event,
        on_batch: Callable[[list[dict[str, Any]]], None],
        backoff: Backoff | None = None,
        answered: frozenset[str] = frozenset(),
    ):
        self.client = client
        #: keys of items recorded already (``orch retry`` runs them again): their requests
        #: were answered and judged, so they go into new batches, never back to old ones
        self.answered = answered
        self.run_dir = run_dir
        self.stop = stop
        self.on_batch = on_batch
        self.backoff = backoff or Backoff()
        self.journal = BatchJournal(run_dir)
        self.cond = threading.Condition()
        self.active = 0
        self.waiting: dict[str, Pending] = {}
        self.finished: list[dict[str, Any] | None] = []
        self.local = threading.local()

    # -- item threads ----------------------------------------------------------------------------

    def item(self, items: ItemRunner, key: str, item: dict, index: int, rep: int) -> None:
        """Run one item on this thread (its requests numbered from 0) and hand its record over."""
        self.local.key, self.local.count = key, 0
        record = None
        try:
            record = items.run(key, item, index, rep)
        finally:
            with self.cond:
                self.active -= 1
                self.finished.append(record)
                self.cond.notify_all()

    def request(self, params: dict[str, Any]) -> dict[str, Any]:
        """The answer (a Response body) to ``params`` from the next round.

        BackendError when its line failed, Stopped when the run stops first.
        """
        custom_id = f"{self.local.key}/{self.local.count}"
        self.local.count += 1
        params = {**params, "metadata": {**params.get("metadata", {}), "orch_nonce": custom_id}}
        pending = Pending(custom_id, params)
        with self.cond:
            self.waiting[custom_id] = pending
            self.cond.notify_all()
        while not pending.done.wait(0.1):
            if self.stop.is_set():
                raise Stopped()
        if pending.error is not None:
            raise BackendError(pending.error)
        assert pending.body is not None
        return pending.body

    # -- the main thread -------------------------------------------------------------------------

    def serve(self, items: ItemRunner, work: list[tuple], record: Callable[[dict], None]) -> None:
        """Run ``work`` (key, item, index, repeat) in waves of :data:`WAVE` items."""
        for start in range(0, len(work), WAVE):
            wave = work[start : start + WAVE]
            pool = ThreadPoolExecutor(max_workers=len(wave), thread_name_prefix="orch-batch-item")
            with self.cond:
                self.active = len(wave)  # counted before they start: no round goes without them
            try:
                for args in wave:
                    pool.submit(self.item, items, *args)
                self._rounds(record)
            finally:
                pool.shutdown(wait=False, cancel_futures=True)

    def _rounds(self, record: Callable[[dict], None]) -> None:
        while True:
            with self.cond:
                self.cond.wait_for(
                    lambda: self.finished or self.active == 0 or len(self.waiting) == self.active
                )
                finished, self.finished = self.finished, []
                ready = list(self.waiting.values()) if len(self.waiting) == self.active else []
                if ready:
                    self.waiting = {}
                over = self.active == 0 and not self.waiting
            for rec in finished:
                if rec is not None:  # stopped before it finished: a resume runs it
                    record(rec)
            if ready:
                self._answer(ready)
            elif over and not finished:
                return

    def _answer(self, ready: list[Pending]) -> None:
        """Answer a round: from recorded batches where they hold the request, else a new one."""
        known = self.journal.lookup()
        groups: dict[str, list[Pending]] = {}
        fresh = []
        for pending in ready:
            batch_id, digest = known.get(pending.custom_id, (None, None))
            retried = pending.custom_id.rpartition("/")[0] in self.answered
            if batch_id is not None and digest == body_hash(pending.params) and not retried:
                groups.setdefault(batch_id, []).append(pending)
            else:
                fresh.append(pending)
        try:
            if fresh:
                groups.setdefault(self._submit(fresh), []).extend(fresh)
            for batch_id, members in groups.items():
                self._deliver(self._wait(batch_id), members)
        except BackendError as exc:
            for pending in ready:
                if not pending.done.is_set():
                    pending.error = str(exc)
                    pending.done.set()

    def _submit(self, fresh: list[Pending]) -> str:
        """Write, upload and create one batch; recorded before anything waits for it."""
        number = len(self.journal.entries) + 1
        data = "".join(
            json.dumps(
                {"custom_id": p.custom_id, "method": "POST", "url": ENDPOINT, "body": p.params},
                separators=(",", ":"),
            )
            + "\n"
            for p in fresh
        ).encode()
        folder = self.run_dir / "batches"
        folder.mkdir(parents=True, exist_ok=True)
        name = f"round-{number}.jsonl"
        (folder / name).write_bytes(data)
        upload = retry.call(
            "upload batch input",
            lambda: self.client.files.create(file=(name, data), purpose="batch"),
        )
        # a second create would be a second, billed batch: a lost answer is looked up first
        batch = retry.create_once(
            "create batch",
            lambda: self.client.batches.create(
                input_file_id=upload.id,
                endpoint=ENDPOINT,
                completion_window="24h",
                metadata={"orch_round": str(number), "orch_file": name},
            ),
            lambda: next(
                (b for b in self.client.batches.list(limit=100) if b.input_file_id == upload.id),
                None,
            ),
        )
        self.journal.note(
            {
                "batch_id": batch.id,
                "input_file_id": upload.id,
                "round": number,
                "status": batch.status,
                "lines": {p.custom_id: body_hash(p.params) for p in fresh},
            }
        )
        self.on_batch(self.journal.summary())
        return batch.id

    def _wait(self, batch_id: str) -> Batch:
        """Poll the batch with backoff until it ends; its output and error files are noted."""
        for delay in self.backoff.delays():
            batch = retry.call("retrieve batch", lambda: self.client.batches.retrieve(batch_id))
            if batch.status in BATCH_DONE:
                break
            if self.stop.is_set():
                raise KeyboardInterrupt()
            time.sleep(delay)
        self.journal.note(
            {
                "batch_id": batch.id,
                "status": batch.status,
                "output_file_id": batch.output_file_id,
                "error_file_id": batch.error_file_id,
                "request_counts": batch.request_counts.model_dump()
                if batch.request_counts
                else None,
            }
        )
        self.on_batch(self.journal.summary())
        return batch

    def _deliver(self, batch: Batch, members: list[Pending]) -> None:
        """Hand each request its line of the output file, or the error that took its place."""
        answers: dict[str, dict[str, Any]] = {}
        for file_id in (batch.output_file_id, batch.error_file_id):
            if file_id:
                for row in self._download(batch.id, file_id):
                    answers[row["custom_id"]] = row
        for pending in members:
            row = answers.get(pending.custom_id)
            response = (row or {}).get("response") or {}
            status = response.get("status_code") or 0
            if 200 <= status < 300:
                pending.body = response.get("body")
            else:
                pending.error = _line_error(batch, row)
            pending.done.set()

    def _download(self, batch_id: str, file_id: str) -> list[dict[str, Any]]:
        data = retry.call(f"download {file_id}", lambda: self.client.files.content(file_id)).read()
        (self.run_dir / "batches" / f"{batch_id}-{file_id}.jsonl").write_bytes(data)
        return [json.loads(line) for line in data.decode().splitlines() if line.strip()]


def _line_error(batch: Batch, row: dict[str, Any] | None) -> str:
    """Why a request of ``batch`` has no answer, in one line."""
    where = f"batch {batch.id}"
    if row is None:
        errors = [e.message for e in (batch.errors.data if batch.errors else []) or []]
        reason = f": {errors[0]}" if errors else ""
        return f"{where} ended {batch.status} without an answer to this request{reason}"
    if row.get("error"):
        return f"{where}: {row['error'].get('code')}: {row['error'].get('message')}"
    response = row.get("response") or {}
    body = response.get("body") or {}
    message = (body.get("error") or {}).get("message") if isinstance(body, dict) else None
    return f"{where}: the request failed with HTTP {response.get('status_code')}: {message}"


class BatchSession(ResponsesSession):
    """An item's session whose requests are lines of the run's batches (no conversation)."""

    def __init__(self, client: Any, settings: SessionSettings, rounds: BatchRounds):
        super().__init__(client, settings, {"conversations": False, "streaming": False})
        self.rounds = rounds

    def create_response(self, turn: Turn, inputs: list[Any]):
        """The step's next response, answered by the next round's batch."""
        self.check()
        body = self.rounds.request(self.request_params(turn, inputs))
        response = Response.model_validate(body)
        self.history += [*inputs, *[as_input(o) for o in response.output]]
        return response


def batch_context(ctx: RunContext, rounds: BatchRounds) -> RunContext:
    """``ctx`` with sessions that batch, and an item time limit no shorter than the window."""
    kind = ctx.conn.kind
    if kind.name not in KINDS:
        raise UsageError(
            f"--batch needs a target serving the Responses and Batch APIs (kind: "
            f"{' or '.join(KINDS)}); {ctx.conn.target.name!r} is of kind {kind.name!r}"
        )
    client = ctx.conn.client
    batching = dataclasses.replace(
        kind, session=lambda conn, settings: BatchSession(client, settings, rounds)
    )
    timeout = max(ctx.pipeline.timeout, WINDOW_SECONDS)
    return dataclasses.replace(
        ctx,
        conn=dataclasses.replace(ctx.conn, kind=batching),
        pipeline=dataclasses.replace(ctx.pipeline, timeout=timeout),
        stream=False,
    )


def execute_batched(
    ctx: RunContext,
    work: list[tuple[str, dict, int, int]],
    skipped: int,
    history: Any,
    meta: dict[str, Any],
    reporter: Reporter,
) -> str:
    """Run ``work`` through batches, recording each item as it finishes; the run's status.

    ``meta`` (the run's record) gets ``batch``: pricing and every batch with its files, written
    to the history each time a batch is created or ends.
    """

    def on_batch(batches: list[dict[str, Any]]) -> None:
        meta["batch"] = {"pricing": "batch", "batches": batches}
        history.start_run(meta)

    answered = frozenset(history.item_status(ctx.run_id))
    rounds = BatchRounds(ctx.conn.client, ctx.run_dir, ctx.stop, on_batch, answered=answered)
    on_batch(rounds.journal.summary())
    items = ItemRunner(batch_context(ctx, rounds))
    reporter.start(ctx.run_id, ctx.pipeline.name, len(work), skipped)

    def record(rec: dict[str, Any]) -> None:
        history.record_item(ctx.run_id, rec)
        reporter.item(rec)

    previous = _sigterm_interrupts()
    try:
        rounds.serve(items, work, record)
    except KeyboardInterrupt:
        ctx.stop.set()  # item threads end Stopped; their batches stay for --resume
        return "interrupted"
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        reporter.finish()
    return "completed"


def _sigterm_interrupts():
    """Make SIGTERM stop a batch run like Ctrl-C (resumable); returns the previous handler.

    None off the main thread, where no handler can be set.
    """
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise KeyboardInterrupt()

    return signal.signal(signal.SIGTERM, handler)
