"""One item's conversation: its thread, one run per step, tool calls, outputs and downloads.

The loop every seed script writes by hand, done once:

* the first step creates the thread and run together (``threads/runs``), later steps add their
  message through ``additional_messages`` on the run, so each step is one create request;
* runs stream over SSE by default; a dropped stream, or ``stream: false``, falls back to polling
  that honours ``openai-poll-after-ms``;
* ``requires_action`` calls the function tools' Python handlers — parallel calls in parallel,
  each with its timeout — and submits the outputs; a handler's exception becomes a JSON error
  output to the model and is recorded, never a crash;
* creates are never blindly repeated: a run create that may have happened is looked up by the
  nonce in its metadata before it is tried again;
* code-interpreter images and files are downloaded into the run's folder.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai

# The SDK imports its Assistants resources (and ~1,000 pydantic types) on first use; import them
# with the rest of orch so that one-time cost is paid at start-up, not by a run's first item.
import openai.resources.beta.threads.runs.runs  # noqa: F401

from orch.errors import BackendError, TransportError
from orch.project.handlers import resolve_handler
from orch.project.model import Assistant
from orch.targets import retry

TERMINAL = {"completed", "failed", "cancelled", "expired", "incomplete"}
RETRYABLE_RUN_ERRORS = {"server_error", "rate_limit_exceeded"}


class ItemTimeout(Exception):
    """The item's time limit passed; the run in flight has been cancelled."""


class Stopped(Exception):
    """The whole pipeline run is stopping (Ctrl-C)."""


@dataclass
class StepOutcome:
    """What one step produced."""

    run_id: str | None = None
    status: str = ""
    output: str = ""
    messages: list[dict] = field(default_factory=list)
    tool_calls: list[dict] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    citations: list[dict] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    last_error: dict | None = None
    attempts: int = 1


@dataclass
class Turn:
    """What to send for one step."""

    assistant: Assistant
    assistant_id: str
    content: list[dict]
    attachments: list[dict]
    instructions: str | None = None
    additional_instructions: str | None = None


class Session:
    """One item's thread on some API: steps run in order on it; one per item, never shared.

    Subclasses implement :meth:`step` (and :meth:`cancel` where the API can). ``thread_id`` and
    ``run_id`` name what a failure record points at.
    """

    def __init__(
        self,
        client: openai.OpenAI,
        *,
        stream: bool,
        deadline: float,
        handler_pool: ThreadPoolExecutor,
        files_dir: Path,
        root: Path,
        stop: threading.Event,
        retries: int = 2,
        attempts: int = 4,
    ):
        self.client = client
        self.stream = stream
        self.deadline = deadline
        self.pool = handler_pool
        self.files_dir = files_dir
        self.root = root
        self.stop = stop
        self.retries = retries
        self.attempts = attempts
        self.thread_id: str | None = None
        self.run_id: str | None = None

    def step(self, turn: Turn) -> StepOutcome:
        """Run one step to a terminal state."""
        raise NotImplementedError

    def cancel(self) -> None:
        """Stop the work in flight, if the API allows (best effort)."""

    def _timeout(self) -> float:
        """Seconds left before the item's deadline; ItemTimeout when none."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise ItemTimeout()
        return max(remaining, 0.05)

    def _check(self) -> None:
        if self.stop.is_set():
            raise Stopped()

    def _pause(self, seconds: float) -> None:
        """Sleep, but never past the item's deadline (a long retry-after must not outlast it)."""
        time.sleep(max(0.0, min(seconds, self._timeout())))


class Conversation(Session):
    """An item's thread on the Assistants v2 wire (the engine, Azure, other v2 servers)."""

    def __init__(self, client: openai.OpenAI, **common: Any):
        super().__init__(client, **common)
        self.beta = client.beta
        self._steps: list[Any] = []  # run steps and messages seen on the stream
        self._messages: list[Any] = []

    # -- public --------------------------------------------------------------------------------

    def step(self, turn: Turn) -> StepOutcome:
        """Run one step to a terminal state (retrying runs that failed transiently)."""
        outcome = StepOutcome()
        message = {"role": "user", "content": turn.content}
        if turn.attachments:
            message["attachments"] = turn.attachments
        first = True
        for attempt in range(self.retries + 1):
            outcome = StepOutcome(attempts=attempt + 1)
            self._steps, self._messages = [], []
            run = self._start(turn, message if first else None, outcome)
            first = False
            run = self._drive(run, turn, outcome)
            outcome.run_id, outcome.status = run.id, run.status
            outcome.usage = _usage(run)
            if run.last_error:
                outcome.last_error = {
                    "code": run.last_error.code,
                    "message": run.last_error.message,
                }
            if (
                run.status == "failed"
                and run.last_error
                and run.last_error.code in RETRYABLE_RUN_ERRORS
                and attempt < self.retries
            ):
                self._pause(min(2.0, 0.25 * 2**attempt))
                continue
            break
        self._collect(outcome)
        return outcome

    def cancel(self) -> None:
        """Cancel the run in flight, if any (best effort)."""
        if not (self.thread_id and self.run_id):
            return
        try:
            self.beta.threads.runs.cancel(self.run_id, thread_id=self.thread_id)
        except openai.OpenAIError:
            pass

    # -- starting runs -------------------------------------------------------------------------

    def _options(self, turn: Turn, nonce: str) -> dict[str, Any]:
        options: dict[str, Any] = {
            "assistant_id": turn.assistant_id,
            "metadata": {"orch_nonce": nonce},
        }
        if turn.instructions is not None:
            options["instructions"] = turn.instructions
        return options

    def _start(self, turn: Turn, message: dict | None, outcome: StepOutcome):
        """Create the run (and the thread on the first step); returns a stream or a Run.

        A stream is read up to its run's creation before it is returned: a stream that breaks
        earlier is a create whose outcome is unknown, handled like any failed create.
        """
        nonce = uuid.uuid4().hex
        options = self._options(turn, nonce)
        self.run_id = None  # the previous step's run is over; the new one is not known yet
        for attempt in range(self.attempts):
            self._check()
            try:
                if self.thread_id is None:
                    thread = {"messages": [message]} if message else {}
                    if turn.additional_instructions:
                        # create-and-run has no additional_instructions: fold them in
                        base = (
                            turn.instructions
                            if turn.instructions is not None
                            else turn.assistant.instructions or ""
                        )
                        options["instructions"] = f"{base}\n\n{turn.additional_instructions}"
                    started = self.beta.threads.create_and_run(
                        thread=thread, stream=self.stream, timeout=self._timeout(), **options
                    )
                else:
                    extra = {"additional_messages": [message]} if message else {}
                    if turn.additional_instructions:
                        extra["additional_instructions"] = turn.additional_instructions
                    started = self.beta.threads.runs.create(
                        self.thread_id,
                        stream=self.stream,
                        timeout=self._timeout(),
                        **options,
                        **extra,
                    )
                return _Primed.read(started) if self.stream else started
            except openai.OpenAIError as exc:
                if not retry.is_transient(exc) or attempt + 1 == self.attempts:
                    raise retry.to_backend_error("start run", exc) from exc
                self._pause(retry.retry_delay(exc, attempt))
                found = self._find_run(nonce)
                if found is not None:
                    return found
        raise AssertionError("unreachable")  # pragma: no cover

    def _find_run(self, nonce: str):
        """The run a failed create may have made (by its metadata nonce), or None."""
        if self.thread_id is None:
            return None  # create-and-run: a thread we never heard of is harmless
        page = retry.call(
            "list runs",
            lambda: self.beta.threads.runs.list(self.thread_id, limit=10, order="desc"),
            attempts=self.attempts,
        )
        for run in page.data:
            if (run.metadata or {}).get("orch_nonce") == nonce:
                return run
        return None

    # -- driving runs --------------------------------------------------------------------------

    def _drive(self, started, turn: Turn, outcome: StepOutcome):
        """Follow a run to a terminal status, answering requires_action; returns the Run."""
        run = None
        source = started
        while True:
            if isinstance(source, openai.Stream | _Primed):
                run = self._consume(source, outcome) or run
                if run is None or run.status not in TERMINAL | {"requires_action"}:
                    run = self._poll(run)  # the stream ended early: carry on by polling
            else:
                run = source
                self.thread_id, self.run_id = run.thread_id, run.id
                if run.status not in TERMINAL | {"requires_action"}:
                    run = self._poll(run)
            if run.status == "requires_action":
                source = self._answer(run, turn, outcome)
                continue
            return run

    def _consume(self, stream, outcome: StepOutcome):
        run = None
        try:
            for event in stream:
                kind = event.event
                if kind == "thread.created":
                    self.thread_id = event.data.id
                elif kind.startswith("thread.run.step."):
                    if kind == "thread.run.step.completed":
                        self._steps.append(event.data)
                elif kind.startswith("thread.run."):
                    run = event.data
                    self.thread_id, self.run_id = run.thread_id, run.id
                elif kind == "thread.message.completed":
                    self._messages.append(event.data)
                elif kind == "error":
                    raise BackendError(f"stream error: {getattr(event.data, 'message', event)}")
                if time.monotonic() > self.deadline:
                    raise ItemTimeout()
                self._check()
        except openai.APIError as exc:
            if not retry.is_transient(exc) or self.run_id is None:
                raise retry.to_backend_error("stream run", exc) from exc
            return None  # dropped mid-stream: the caller polls the run
        finally:
            stream.close()
        return run

    def _poll(self, run):
        if run is None:
            if self.run_id is None:
                raise TransportError("the run's stream ended before the run was created")
            run_id = self.run_id
        else:
            run_id = run.id
        attempt = 0
        while True:
            self._check()
            if time.monotonic() > self.deadline:
                raise ItemTimeout()
            raw = retry.call(
                "retrieve run",
                lambda: self.beta.threads.runs.with_raw_response.retrieve(
                    run_id, thread_id=self.thread_id
                ),
                attempts=self.attempts,
            )
            run = raw.parse()
            if run.status in TERMINAL | {"requires_action"}:
                return run
            hint = raw.headers.get("openai-poll-after-ms")
            delay = float(hint) / 1000 if hint else min(1.0, 0.05 * 2**attempt)
            attempt += 1
            self._pause(delay)

    def _answer(self, run, turn: Turn, outcome: StepOutcome):
        """Call the handlers for a requires_action run and submit their outputs."""
        calls = [
            ToolRequest(c.id, c.function.name, c.function.arguments)
            for c in run.required_action.submit_tool_outputs.tool_calls
        ]
        outputs = [
            {"tool_call_id": call_id, "output": output}
            for call_id, output in call_handlers(
                calls, turn.assistant, self.pool, self.root, outcome
            )
        ]
        try:
            return self.beta.threads.runs.submit_tool_outputs(
                run.id,
                thread_id=self.thread_id,
                tool_outputs=outputs,
                stream=self.stream,
                timeout=self._timeout(),
            )
        except openai.OpenAIError as exc:
            if not retry.is_transient(exc):
                raise retry.to_backend_error("submit tool outputs", exc) from exc
            # outputs may or may not have landed: polling tells, never resubmit blindly
            return self._poll(run)

    # -- results -------------------------------------------------------------------------------

    def _collect(self, outcome: StepOutcome) -> None:
        """Messages and run steps of the final run → text, tool calls, citations, files."""
        steps = [s for s in self._steps if s.run_id == outcome.run_id]
        messages = [m for m in self._messages if m.run_id == outcome.run_id]
        if not messages and outcome.run_id:
            page = retry.call(
                "list messages",
                lambda: self.beta.threads.messages.list(
                    self.thread_id, run_id=outcome.run_id, order="asc", limit=100
                ),
                attempts=self.attempts,
            )
            messages = list(page.data)
            listed = retry.call(
                "list run steps",
                lambda: self.beta.threads.runs.steps.list(
                    outcome.run_id, thread_id=self.thread_id, order="asc", limit=100
                ),
                attempts=self.attempts,
            )
            steps = list(listed.data)
        texts = []
        for message in messages:
            for part in message.content:
                if part.type == "text":
                    value = part.text.value
                    for note in part.text.annotations or []:
                        outcome.citations.append(note.model_dump(mode="json", exclude_none=True))
                        # citation markers (【0:0†file】) are not part of the answer: strip them
                        # so JSON replies stay JSON; the annotations keep them
                        if getattr(note, "text", None):
                            value = value.replace(note.text, "")
                    texts.append(value.strip())
                elif part.type == "image_file":
                    outcome.files.append(self._download(part.image_file.file_id, ".png"))
            outcome.messages.append(message.model_dump(mode="json", exclude_none=True))
        outcome.output = "\n\n".join(texts)
        recorded = {c["id"] for c in outcome.tool_calls}
        for step in steps:
            if step.step_details.type != "tool_calls":
                continue
            for call in step.step_details.tool_calls:
                record = _tool_call_record(call)
                if call.type == "code_interpreter":
                    for out in call.code_interpreter.outputs or []:
                        if out.type == "image":
                            path = self._download(out.image.file_id, ".png")
                            record.setdefault("files", []).append(path)
                            if path not in outcome.files:
                                outcome.files.append(path)
                if record["id"] in recorded:
                    for existing in outcome.tool_calls:
                        if existing["id"] == record["id"]:
                            existing.setdefault("output", record.get("output"))
                    continue
                outcome.tool_calls.append(record)

    def _download(self, file_id: str, suffix: str) -> str:
        self.files_dir.mkdir(parents=True, exist_ok=True)
        target = self.files_dir / f"{file_id}{suffix}"
        if not target.exists():
            response = retry.call(
                f"download {file_id}",
                lambda: self.client.files.content(file_id),
                attempts=self.attempts,
            )
            target.write_bytes(response.read())
        return str(target)


class _Primed:
    """A run's event stream whose first events, up to the run's creation, are already read."""

    def __init__(self, head: list, stream: openai.Stream):
        self.head = head
        self.stream = stream

    @classmethod
    def read(cls, stream: openai.Stream) -> _Primed:
        """Read ``stream`` until it names its run (or errs); transport errors propagate."""
        head = []
        try:
            for event in stream:
                head.append(event)
                kind = event.event
                if kind == "error" or (
                    kind.startswith("thread.run.") and not kind.startswith("thread.run.step.")
                ):
                    break
        except BaseException:
            stream.close()
            raise
        return cls(head, stream)

    def __iter__(self):
        yield from self.head
        yield from self.stream

    def close(self) -> None:
        """Release the connection."""
        self.stream.close()


@dataclass(frozen=True)
class ToolRequest:
    """A function call the model asked for, whatever the API that carried it."""

    call_id: str
    name: str
    arguments: str


def call_handlers(
    calls: list[ToolRequest],
    assistant: Assistant,
    pool: ThreadPoolExecutor,
    root: Path,
    outcome: StepOutcome,
) -> list[tuple[str, str]]:
    """Run every requested function (in parallel), each bounded by its tool's timeout.

    Returns ``(call_id, output)`` pairs in request order and records each call on ``outcome``.
    """
    futures = []
    for call in calls:
        futures.append((call, pool.submit(_invoke, call, assistant, root)))
    outputs = []
    for call, future in futures:
        spec = assistant.function(call.name)
        timeout = spec.timeout if spec else 60.0
        try:
            output, error = future.result(timeout=timeout)
        except FutureTimeout:
            output, error = (
                json.dumps({"error": f"handler timed out after {timeout:g}s"}),
                f"timed out after {timeout:g}s",
            )
        try:
            arguments = json.loads(call.arguments or "{}")
        except ValueError:
            arguments = call.arguments
        outcome.tool_calls.append(
            {
                "id": call.call_id,
                "type": "function",
                "name": call.name,
                "arguments": arguments,
                "output": output,
                "error": error,
            }
        )
        outputs.append((call.call_id, output))
    return outputs


def _invoke(call: ToolRequest, assistant: Assistant, root: Path) -> tuple[str, str | None]:
    """(output for the model, error text or None). Never raises."""
    name = call.name
    spec = assistant.function(name)
    if spec is None or not spec.handler:
        error = f"no handler for function {name!r} in assistant {assistant.name!r}"
        return json.dumps({"error": error}), error
    try:
        arguments = json.loads(call.arguments or "{}")
        if not isinstance(arguments, dict):
            raise ValueError("arguments must be a JSON object")
    except ValueError as exc:
        error = f"invalid arguments JSON: {exc}"
        return json.dumps({"error": error}), error
    try:
        result = resolve_handler(spec.handler, root)(**arguments)
    except Exception as exc:  # noqa: BLE001 - the model gets the error, the run goes on
        error = f"{type(exc).__name__}: {exc}"
        return json.dumps({"error": error}), error
    if isinstance(result, str):
        return result, None
    try:
        return json.dumps(result, default=str), None
    except (TypeError, ValueError):
        return str(result), None


def _tool_call_record(call) -> dict[str, Any]:
    if call.type == "function":
        try:
            arguments = json.loads(call.function.arguments or "{}")
        except ValueError:
            arguments = call.function.arguments
        return {
            "id": call.id,
            "type": "function",
            "name": call.function.name,
            "arguments": arguments,
            "output": call.function.output,
        }
    if call.type == "code_interpreter":
        outputs = [
            o.model_dump(mode="json", exclude_none=True)
            for o in call.code_interpreter.outputs or []
        ]
        return {
            "id": call.id,
            "type": "code_interpreter",
            "name": "code_interpreter",
            "input": call.code_interpreter.input,
            "outputs": outputs,
        }
    return {"id": call.id, "type": call.type, "name": call.type}


def _usage(run) -> dict[str, int]:
    if not run.usage:
        return {}
    return {
        "prompt_tokens": run.usage.prompt_tokens,
        "completion_tokens": run.usage.completion_tokens,
        "total_tokens": run.usage.total_tokens,
    }
