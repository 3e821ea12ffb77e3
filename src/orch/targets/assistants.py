"""Target kind ``assistants``: servers speaking the Assistants v2 wire (Azure, ``orch serve``, …).

Assistants live on the server (:class:`Assistants`, managed by sync). An item's thread is one
Assistants thread (:class:`AssistantsSession`):

* the first step creates the thread and run together (``threads/runs``), later steps add their
  message through ``additional_messages`` on the run, so each step is one create request;
* runs stream over SSE by default; a dropped stream, or ``stream: false``, falls back to polling
  that honours ``openai-poll-after-ms``;
* ``requires_action`` calls the function tools' Python handlers and submits the outputs;
* creates are never blindly repeated: a run create that may have happened is looked up by the
  nonce in its metadata before it is tried again;
* code-interpreter images and files are downloaded into the run's folder.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

import openai

# The SDK imports its Assistants resources (and ~1,000 pydantic types) on first use; import them
# with the rest of orch so that one-time cost is paid at start-up, not by a run's first item.
import openai.resources.beta.threads.runs.runs  # noqa: F401

from orch.errors import NotFoundError, TransportError
from orch.targets import retry
from orch.targets.base import META_HASH, META_NAME, META_PROJECT, Backend, RemoteAssistant
from orch.targets.client import open_remote
from orch.targets.files import PAGE, Files, after_cursor, ignore_missing, pages
from orch.targets.functions import ToolRequest, call_handlers
from orch.targets.registry import Connection, TargetKind
from orch.targets.session import TERMINAL, Session, StepOutcome, Turn, plain
from orch.targets.stream import StreamReader

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


def _wire(value: Any) -> Any:
    """SDK models as the JSON the server sent (aliases such as ``schema``, unset fields dropped)."""
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json", exclude_none=True, by_alias=True)
    return value


class Assistants:
    """Server-side assistants. See :class:`orch.targets.base.AssistantStore`."""

    def __init__(self, client: openai.OpenAI, label: str):
        self.beta = client.beta
        self.label = label

    def list_assistants(self) -> list[RemoteAssistant]:
        """Every assistant; a 404 means the server has no Assistants API: say what to use."""
        try:
            found = pages(
                "list assistants",
                lambda after: self.beta.assistants.list(
                    limit=PAGE, order="asc", **after_cursor(after)
                ),
            )
        except NotFoundError as exc:
            raise NotFoundError(
                f"{self.label} answered 404 for /assistants: it does not serve the Assistants "
                "API (OpenAI closed it on 2026-08-26). Use a target of kind: responses for "
                "OpenAI, or an Assistants-v2 server such as `orch serve`."
            ) from exc
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
        self.beta = client.beta
        self.seen_steps: list[Any] = []  # run steps and messages seen on the stream
        self.seen_messages: list[Any] = []

    def attempt(self, turn: Turn, first: bool) -> StepOutcome:
        """Start a run (with the step's message on the first attempt) and follow it."""
        outcome = StepOutcome()
        self.seen_steps, self.seen_messages = [], []
        message = None
        if first:
            message = {"role": "user", "content": turn.content}
            if turn.attachments:
                message["attachments"] = turn.attachments
        run = self._drive(self._start(turn, message), turn, outcome)
        outcome.run_id, outcome.status = run.id, run.status
        if run.usage:
            outcome.add_usage(
                prompt_tokens=run.usage.prompt_tokens,
                completion_tokens=run.usage.completion_tokens,
                total_tokens=run.usage.total_tokens,
            )
        if run.last_error:
            outcome.last_error = {"code": run.last_error.code, "message": run.last_error.message}
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

    def _start(self, turn: Turn, message: dict | None):
        """Create the run (and the thread on the first step); returns a stream or a Run.

        A stream is read up to its run's creation before it is returned: a stream that breaks
        earlier is a create whose outcome is unknown, handled like any failed create.
        """
        nonce = uuid.uuid4().hex
        options: dict[str, Any] = {
            "assistant_id": turn.assistant_id,
            "metadata": {"orch_nonce": nonce},
        }
        if turn.instructions is not None:
            options["instructions"] = turn.instructions
        self.run_id = None  # the previous step's run is over; the new one is not known yet

        def create():
            self.check()
            started = self._create(turn, message, options)
            return StreamReader.prime(started, _is_run_event) if self.settings.stream else started

        return retry.create_once(
            "start run",
            create,
            lambda: self._find_run(nonce),
            attempts=self.settings.attempts,
            sleep=self.pause,
        )

    def _create(self, turn: Turn, message: dict | None, options: dict[str, Any]):
        stream, timeout = self.settings.stream, self.remaining()
        if self.thread_id is None:
            thread = {"messages": [message]} if message else {}
            if turn.additional_instructions:
                # create-and-run has no additional_instructions: fold them in
                base = (
                    turn.instructions
                    if turn.instructions is not None
                    else turn.assistant.instructions or ""
                )
                options = {**options, "instructions": f"{base}\n\n{turn.additional_instructions}"}
            return self.beta.threads.create_and_run(
                thread=thread, stream=stream, timeout=timeout, **options
            )
        extra: dict[str, Any] = {"additional_messages": [message]} if message else {}
        if turn.additional_instructions:
            extra["additional_instructions"] = turn.additional_instructions
        return self.beta.threads.runs.create(
            self.thread_id, stream=stream, timeout=timeout, **options, **extra
        )

    def _find_run(self, nonce: str):
        """The run a failed create may have made (by its metadata nonce), or None."""
        if self.thread_id is None:
            return None  # create-and-run: a thread we never heard of is harmless
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
        run = None
        while True:
            if isinstance(source, StreamReader):
                run = self._consume(source) or run
            else:
                run = source
                self.thread_id, self.run_id = run.thread_id, run.id
            if run is None or run.status not in WAITING:
                run = self._poll(run)  # polling, or the stream ended early
            if run.status != "requires_action":
                return run
            source = self._answer(run, turn, outcome)

    def _consume(self, stream: StreamReader):
        """Read a run's events; None when the stream broke after the run was created."""
        run = None
        try:
            for event in stream.events(self.check):
                kind = event.event
                if kind == "thread.created":
                    self.thread_id = event.data.id
                elif kind == "thread.run.step.completed":
                    self.seen_steps.append(event.data)
                elif _is_run_event(kind):
                    run = event.data
                    self.thread_id, self.run_id = run.thread_id, run.id
                elif kind == "thread.message.completed":
                    self.seen_messages.append(event.data)
        except openai.APIError as exc:
            if not retry.is_transient(exc) or self.run_id is None:
                raise retry.to_backend_error("stream run", exc) from exc
            return None  # dropped mid-stream: the caller polls the run
        return run

    def _poll(self, run):
        if run is None and self.run_id is None:
            raise TransportError("the run's stream ended before the run was created")
        run_id = run.id if run is not None else self.run_id
        attempt = 0
        while True:
            self.check()
            raw = retry.call(
                "retrieve run",
                lambda: self.beta.threads.runs.with_raw_response.retrieve(
                    run_id, thread_id=self.thread_id
                ),
                attempts=self.settings.attempts,
            )
            run = raw.parse()
            if run.status in WAITING:
                return run
            hint = raw.headers.get("openai-poll-after-ms")
            delay = float(hint) / 1000 if hint else min(1.0, 0.05 * 2**attempt)
            attempt += 1
            self.pause(delay)

    def _answer(self, run, turn: Turn, outcome: StepOutcome):
        """Call the handlers for a requires_action run and submit their outputs."""
        calls = [
            ToolRequest(c.id, c.function.name, c.function.arguments)
            for c in run.required_action.submit_tool_outputs.tool_calls
        ]
        settings = self.settings
        outputs = [
            {"tool_call_id": call_id, "output": output}
            for call_id, output in call_handlers(
                calls, turn.assistant, settings.handler_pool, settings.root, outcome.tool_calls
            )
        ]
        try:
            submitted = self.beta.threads.runs.submit_tool_outputs(
                run.id,
                thread_id=self.thread_id,
                tool_outputs=outputs,
                stream=settings.stream,
                timeout=self.remaining(),
            )
        except openai.OpenAIError as exc:
            if not retry.is_transient(exc):
                raise retry.to_backend_error("submit tool outputs", exc) from exc
            # outputs may or may not have landed: polling tells, never resubmit blindly
            return self._poll(run)
        return StreamReader(submitted) if settings.stream else submitted

    # -- results -------------------------------------------------------------------------------

    def finish(self, outcome: StepOutcome) -> None:
        """Messages and run steps of the final run → text, tool calls, citations, files."""
        messages, steps = self._final_messages_and_steps(outcome.run_id)
        texts = []
        for message in messages:
            for part in message.content:
                if part.type == "text":
                    texts.append(_answer_text(part.text, outcome))
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
        record = _tool_call_record(call)
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


def _is_run_event(kind: str) -> bool:
    """``thread.run.*`` events carry the Run itself (``thread.run.step.*`` carry steps)."""
    return kind.startswith("thread.run.") and not kind.startswith("thread.run.step.")


def _answer_text(text: Any, outcome: StepOutcome) -> str:
    """A message's text with its citations recorded on ``outcome`` and their markers removed.

    Citation markers (【0:0†file】) are not part of the answer: stripping them keeps JSON
    replies JSON; the annotations keep them.
    """
    value = text.value
    for note in text.annotations or []:
        outcome.citations.append(plain(note))
        if getattr(note, "text", None):
            value = value.replace(note.text, "")
    return value.strip()


def _tool_call_record(call: Any) -> dict[str, Any]:
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
        return {
            "id": call.id,
            "type": "code_interpreter",
            "name": "code_interpreter",
            "input": call.code_interpreter.input,
            "outputs": [plain(o) for o in call.code_interpreter.outputs or []],
        }
    return {"id": call.id, "type": call.type, "name": call.type}


def _backend(conn: Connection) -> Backend:
    return Backend(conn.label, Files(conn.client), Assistants(conn.client, conn.label))


KIND = TargetKind(
    name="assistants",
    open=open_remote,
    backend=_backend,
    session=lambda conn, settings: AssistantsSession(conn.client, settings),
)
