"""Target kind ``assistants``: servers speaking the Assistants v2 wire (Azure, ``orch serve``, …).

Assistants live on the server (:class:`Assistants`, managed by sync). An item's thread is one
Assistants thread (:class:`AssistantsSession`):

* the first step creates the (empty) thread, each step then creates one run carrying its message
  in ``additional_messages``: a message never exists without its run, and a lost thread create
  leaves at most an empty thread;
* runs stream over SSE by default; a dropped stream, or ``stream: false``, falls back to polling
  that honours ``openai-poll-after-ms``;
* ``requires_action`` calls the function tools' Python handlers and submits the outputs;
* creates are never blindly repeated: a run create that may have happened (an error, a lost,
  empty or truncated answer, a stream that ends before the run) is looked up by the nonce in its
  metadata before it is tried again; a resumed item adopts the runs its killed process started;
* code-interpreter images and files are downloaded into the run's folder.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import openai

# The SDK imports its Assistants resources (and ~1,000 pydantic types) on first use; import them
# with the rest of orch so that one-time cost is paid at start-up, not by a run's first item.
import openai.resources.beta.threads.runs.runs  # noqa: F401
from openai.resources.beta.assistants import Assistants as AssistantsAPI
from openai.resources.beta.threads import Threads as ThreadsAPI

from orch.errors import NotFoundError
from orch.targets import retry
from orch.targets.base import META_HASH, META_NAME, META_PROJECT, Backend, RemoteAssistant
from orch.targets.client import open_remote
from orch.targets.files import PAGE, Files, after_cursor, ignore_missing, pages
from orch.targets.functions import ToolRequest, call_handlers
from orch.targets.registry import Connection, TargetKind
from orch.targets.reserve import Reserve
from orch.targets.session import TERMINAL, Session, StepOutcome, Turn, plain
from orch.targets.stream import StreamReader
from orch.targets.threads import answer_text, is_run_event, parsed, tool_call_record

WAITING = TERMINAL | {"requires_action"}


def remote_assistant(obj: Any) -> RemoteAssistant:
    """Normalise an SDK ``Assistant`` into a :class:`RemoteAssistant`."""
    return RemoteAssistant(
        id=obj.id,
        name=obj.name,
        model=obj.model,
        instructions=obj.instructions,
        description=obj.description,
        temperature=obj.temperature,
        top_p=obj.top_p,
        response_format=_wire(obj.response_format),
        tools=[_wire(t) for t in obj.tools or []],
        tool_resources=_wire(obj.tool_resources) or {},
        metadata=dict(obj.metadata or {}),
        created_at=obj.created_at or 0,
    )


def beta_api(client: openai.OpenAI) -> Any:
    """What orch uses of ``client.beta``: ``.assistants`` and ``.threads``, the same resources.

    ``client.beta`` itself imports every beta API the SDK has (realtime, chatkit, agents, …):
    80 ms of CPU at the start of every run, for resources a run never calls.
    """
    return SimpleNamespace(assistants=AssistantsAPI(client), threads=ThreadsAPI(client))


def _wire(value: Any) -> Any:
    """SDK models as the JSON the server sent (aliases such as ``schema``, unset fields dropped)."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", exclude_none=True, by_alias=True)
    return value


class Assistants:
    """Server-side assistants. See :class:`orch.targets.base.AssistantStore`."""

    def __init__(self, client: openai.OpenAI, label: str):
        self.beta = beta_api(client)
        self.label = label

    def list_assistants(self) -> list[RemoteAssistant]:
        """Every assistant; a 404 means the server has no Assistants API: say what to use."""
        found = pages(
            "list assistants",
            lambda after: self.beta.assistants.list(limit=PAGE, order="asc", **after_cursor(after)),
            missing=f"{self.label} answered 404 for /assistants: it does not serve the Assistants "
            "API (OpenAI closed it on 2026-08-26). Use a target of kind: responses for "
            "OpenAI, or an Assistants-v2 server such as `orch serve`.",
        )
        return [remote_assistant(a) for a in found]

    def create_assistant(self, spec: dict[str, Any]) -> RemoteAssistant:
        """Create; after an ambiguous failure, adopt the assistant if it did get created."""
        meta = spec["metadata"]

        def find() -> RemoteAssistant | None:
            for existing in self.list_assistants():
                tags = existing.metadata
                if (
                    tags.get(META_PROJECT) == meta.get(META_PROJECT)
                    and tags.get(META_NAME) == meta.get(META_NAME)
                    and tags.get(META_HASH) == meta.get(META_HASH)
                ):
                    return existing
            return None

        return retry.create_once(
            f"create assistant {meta.get(META_NAME)}",
            lambda: remote_assistant(self.beta.assistants.create(**spec)),
            find,
        )

    def update_assistant(self, assistant_id: str, spec: dict[str, Any]) -> RemoteAssistant:
        """Replace fields; idempotent."""
        obj = retry.call(
            f"update assistant {assistant_id}",
            lambda: self.beta.assistants.update(assistant_id, **spec),
        )
        return remote_assistant(obj)

    def delete_assistant(self, assistant_id: str) -> None:
        """Delete; already gone is fine."""
        ignore_missing(
            lambda: retry.call(
                f"delete assistant {assistant_id}",
                lambda: self.beta.assistants.delete(assistant_id),
            )
        )


class AssistantsSession(Session):
    """An item's thread on the Assistants v2 wire."""

    def __init__(self, client: openai.OpenAI, settings):
        super().__init__(settings)
        self.client = client
        self.beta = beta_api(client)
        self.seen_steps: list[Any] = []  # run steps and messages seen on the stream
        self.seen_messages: list[Any] = []
        #: runs a killed process left on an adopted thread, by nonce; None once none can remain
        self.adoptable: dict[str, Any] | None = None

    def step(self, turn: Turn) -> StepOutcome:
        """Open the item's thread on its first step (or adopt a killed run's), then run the step."""
        if self.thread_id is None:
            self._open_thread()
        return super().step(turn)

    def attempt(self, turn: Turn, first: bool) -> StepOutcome:
        """Start a run (with the step's message on the first attempt) and follow it."""
        outcome = StepOutcome()
        self.seen_steps, self.seen_messages = [], []
        message = None
        if first:
            message = {"role": "user", "content": turn.content}
            if turn.attachments:
                message["attachments"] = turn.attachments
        adopted = self._adopt()
        run = self._drive(adopted or self._start(turn, message), turn, outcome)
        outcome.run_id, outcome.status = run.id, outcome.status or run.status
        # a run the stopped process cancelled answered nothing: the step needs a new one
        outcome.interrupted = adopted is not None and run.status in ("cancelled", "expired")
        if run.usage:
            outcome.add_usage(
                prompt_tokens=run.usage.prompt_tokens,
                completion_tokens=run.usage.completion_tokens,
                total_tokens=run.usage.total_tokens,
            )
        if run.last_error and outcome.last_error is None:
            outcome.last_error = {"code": run.last_error.code, "message": run.last_error.message}
        elif run.status == "incomplete" and run.incomplete_details and outcome.last_error is None:
            reason = run.incomplete_details.reason  # e.g. the reply hit max_completion_tokens
            outcome.last_error = {
                "code": "incomplete",
                "message": f"run ended incomplete: {reason}",
                "reason": reason,
            }
        return outcome

    def cancel(self) -> None:
        """Cancel the run in flight, if any (best effort)."""
        if not (self.thread_id and self.run_id):
            return
        try:
            self.beta.threads.runs.cancel(self.run_id, thread_id=self.thread_id)
        except retry.FAILURES:
            pass

    # -- starting runs -------------------------------------------------------------------------

    def _open_thread(self) -> None:
        """The item's thread: one a killed process left (its runs adoptable), else a new one.

        A new thread is created empty and retried like a read: a lost answer leaves at most an
        empty thread behind, never a message or a model run. It is noted in the ledger before
        any run is created on it.
        """
        self.check()
        ledger = self.settings.ledger
        left = ledger.adopted()
        if left is not None:
            try:
                runs = pages(
                    "list runs",
                    lambda after: self.beta.threads.runs.list(
                        left, limit=PAGE, order="asc", **after_cursor(after)
                    ),
                )
            except NotFoundError:
                runs = None  # the thread is gone: start afresh
            if runs is not None:
                self.thread_id = left
                self.adoptable = {(r.metadata or {}).get("orch_nonce"): r for r in runs}
                return
        reserve = self.settings.reserve
        self.thread_id = (reserve.take() if reserve else None) or self._new_thread()
        ledger.record(self.thread_id)

    def _new_thread(self) -> str:
        """A new empty thread tagged with the run's label (retried like a read)."""
        thread = retry.call(
            "create thread",
            lambda: self.beta.threads.create(
                metadata={"orch": self.settings.label}, timeout=self.remaining()
            ),
            attempts=self.settings.attempts,
        )
        return thread.id

    def _adopt(self):
        """The run a killed process started for this step and attempt, or None.

        Steps and attempts run in order, so once one was not started, none after it was.
        """
        if self.adoptable is None:
            return None
        left = self.adoptable.get(self.nonce())
        if left is None:
            self.adoptable = None
        return left

    def _start(self, turn: Turn, message: dict | None):
        """Create the step's run (its message with it); returns a stream or a Run.

        The create carries the step's nonce: a create whose answer is lost or spoiled is looked
        up by it before it is tried again (and a resumed process adopts it, :meth:`_adopt`). A
        stream is read up to its run's creation before it is returned: a stream that breaks
        or ends earlier is a create whose outcome is unknown, handled the same way.
        """
        nonce = self.nonce()
        self.run_id = None  # the previous step's run is over; the new one is not known yet
        options: dict[str, Any] = {
            "assistant_id": turn.assistant_id,
            "metadata": {"orch_nonce": nonce},
        }
        if turn.instructions is not None:
            options["instructions"] = turn.instructions
        if turn.additional_instructions:
            options["additional_instructions"] = turn.additional_instructions
        if turn.max_tokens is not None:
            options["max_completion_tokens"] = turn.max_tokens
        for key in ("model", "temperature", "top_p"):  # a grading call's own (Turn.model)
            if getattr(turn, key) is not None:
                options[key] = getattr(turn, key)
        if message:
            options["additional_messages"] = [message]

        def create():
            self.check()
            stream = self.settings.stream
            started = self.beta.threads.runs.create(
                self.thread_id, stream=stream, timeout=self.remaining(), **options
            )
            return StreamReader.prime(started, is_run_event) if stream else started

        return retry.create_once(
            "start run",
            create,
            lambda: self._find_run(nonce),
            attempts=self.settings.attempts,
            sleep=self.pause,
        )

    def _find_run(self, nonce: str):
        """The run a failed create may have made (by its metadata nonce), or None."""
        page = retry.call(
            "list runs",
            lambda: self.beta.threads.runs.list(self.thread_id, limit=10, order="desc"),
            attempts=self.settings.attempts,
        )
        for run in page.data:
            if (run.metadata or {}).get("orch_nonce") == nonce:
                return run
        return None

    # -- driving runs --------------------------------------------------------------------------

    def _drive(self, source, turn: Turn, outcome: StepOutcome):
        """Follow a run to a terminal status, answering requires_action; returns the Run."""
        answered: dict[str, str] = {}  # tool call id → output, so a lost submit is not re-run
        rounds = 0
        while True:
            if isinstance(source, StreamReader):
                run = self._consume(source)
            else:
                run = source
                self.thread_id, self.run_id = run.thread_id, run.id
            if run is None or run.status not in WAITING:
                run = self._poll()  # polling, or the stream ended early
            if run.status != "requires_action":
                return run
            if rounds == self.settings.max_tool_rounds:
                self.cancel()  # the run would wait for outputs until it expires
                outcome.stop_tool_loop(rounds)
                return run
            rounds += 1
            source = self._answer(run, turn, outcome, answered)

    def _consume(self, stream: StreamReader):
        """Read a run's events; its last state, or None when none came before the stream broke.

        The run exists (its creation was read, or outputs were submitted to it): a broken,
        truncated or spoiled stream is followed up by polling it, never an item failure.
        """
        run = None
        try:
            for event in stream.events(self.check):
                kind = event.event
                if kind == "thread.run.step.completed":
                    self.seen_steps.append(event.data)
                elif is_run_event(kind):
                    run = event.data
                    self.thread_id, self.run_id = run.thread_id, run.id
                elif kind == "thread.message.completed":
                    self.seen_messages.append(event.data)
        except retry.FAILURES as exc:
            if not retry.is_transient(exc) or self.run_id is None:
                raise retry.to_backend_error("stream run", exc) from exc
            return None  # dropped mid-stream: the caller polls the run
        return run

    def _poll(self):
        """Retrieve the run in flight until it waits for us or is over."""
        attempt = 0
        while True:
            self.check()
            run, headers = retry.call(
                "retrieve run",
                lambda: parsed(
                    self.beta.threads.runs.with_raw_response.retrieve(
                        self.run_id, thread_id=self.thread_id
                    )
                ),
                attempts=self.settings.attempts,
            )
            if run.status in WAITING:
                return run
            hint = headers.get("openai-poll-after-ms")
            delay = float(hint) / 1000 if hint else min(1.0, 0.05 * 2**attempt)
            attempt += 1
            self.pause(delay)

    def _answer(self, run, turn: Turn, outcome: StepOutcome, answered: dict[str, str]):
        """Call the handlers for a requires_action run and submit their outputs.

        A submit whose answer is lost may or may not have landed: the run is polled, never
        resubmitted blindly; when it still asks, the outputs already computed are sent again
        (``answered``), so no handler runs twice for one call.
        """
        calls = [
            ToolRequest(c.id, c.function.name, c.function.arguments)
            for c in run.required_action.submit_tool_outputs.tool_calls
        ]
        settings = self.settings
        fresh = [c for c in calls if c.call_id not in answered]
        answered.update(
            call_handlers(
                fresh, turn.assistant, settings.handler_pool, settings.root, outcome.tool_calls
            )
        )
        outputs = [{"tool_call_id": c.call_id, "output": answered[c.call_id]} for c in calls]
        try:
            submitted = self.beta.threads.runs.submit_tool_outputs(
                run.id,
                thread_id=self.thread_id,
                tool_outputs=outputs,
                stream=settings.stream,
                timeout=self.remaining(),
            )
            if not settings.stream:
                return retry.checked(submitted)
            return StreamReader(submitted)
        except retry.FAILURES as exc:
            if not retry.is_transient(exc):
                raise retry.to_backend_error("submit tool outputs", exc) from exc
            return self._poll()  # outputs may or may not have landed: polling tells

    # -- results -------------------------------------------------------------------------------

    def finish(self, outcome: StepOutcome) -> None:
        """Messages and run steps of the final run → text, tool calls, citations, files."""
        messages, steps = self._final_messages_and_steps(outcome.run_id)
        texts = []
        for message in messages:
            for part in message.content:
                if part.type == "text":
                    texts.append(answer_text(part.text, outcome))
                elif part.type == "image_file":
                    outcome.files.append(self._download(part.image_file.file_id))
            outcome.messages.append(plain(message))
        outcome.output = "\n\n".join(texts)
        for step in steps:
            if step.step_details.type == "tool_calls":
                for call in step.step_details.tool_calls:
                    self._record_call(call, outcome)

    def _final_messages_and_steps(self, run_id: str | None) -> tuple[list, list]:
        steps = [s for s in self.seen_steps if s.run_id == run_id]
        messages = [m for m in self.seen_messages if m.run_id == run_id]
        if messages or not run_id:
            return messages, steps
        attempts = self.settings.attempts
        page = retry.call(
            "list messages",
            lambda: self.beta.threads.messages.list(
                self.thread_id, run_id=run_id, order="asc", limit=100
            ),
            attempts=attempts,
        )
        listed = retry.call(
            "list run steps",
            lambda: self.beta.threads.runs.steps.list(
                run_id, thread_id=self.thread_id, order="asc", limit=100
            ),
            attempts=attempts,
        )
        return list(page.data), list(listed.data)

    def _record_call(self, call: Any, outcome: StepOutcome) -> None:
        record = tool_call_record(call)
        if call.type == "code_interpreter":
            for out in call.code_interpreter.outputs or []:
                if out.type == "image":
                    path = self._download(out.image.file_id)
                    record.setdefault("files", []).append(path)
                    if path not in outcome.files:
                        outcome.files.append(path)
        for existing in outcome.tool_calls:
            if existing["id"] == record["id"]:  # a function call the handlers already recorded
                existing.setdefault("output", record.get("output"))
                return
        outcome.tool_calls.append(record)

    def _download(self, file_id: str) -> str:
        return self.download(
            f"{file_id}.png",
            lambda: retry.call(
                f"download {file_id}",
                lambda: self.client.files.content(file_id),
                attempts=self.settings.attempts,
            ).read(),
        )


def _backend(conn: Connection) -> Backend:
    return Backend(conn.label, Files(conn.client), Assistants(conn.client, conn.label))


def _reserve(conn: Connection, label: str, size: int, items: int) -> Reserve:
    """Empty threads made ahead for a run's items, tagged as a session tags its own."""
    threads = beta_api(conn.client).threads
    return Reserve(
        create=lambda: (
            retry.call(
                "create thread", lambda: threads.create(metadata={"orch": label}, timeout=30)
            ).id
        ),
        delete=lambda thread_id: threads.delete(thread_id, timeout=10),
        size=size,
        items=items,
    )


KIND = TargetKind(
    name="assistants",
    open=open_remote,
    backend=_backend,
    session=lambda conn, settings: AssistantsSession(conn.client, settings),
    reserve=_reserve,
)
