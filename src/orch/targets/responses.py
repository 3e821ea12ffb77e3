"""Targets speaking the Responses API + Conversations API.

That is OpenAI since 2026-08-26, Open-Responses servers (vLLM, Ollama, LM Studio, llama.cpp,
Llama Stack) and the embedded engine.

Assistants stay in the YAML and are sent with every request (instructions, model, tools,
temperature/top_p, ``text.format``); nothing remote is created for them: the kind's backend has
no assistant store, so sync manages only their files and vector stores. A pipeline item's thread
maps to a conversation — or, on servers without conversations, to the full item history sent
with each request — and the function-call loop runs client-side (:class:`ResponsesSession`).

Capabilities (``targets.<name>.capabilities`` in orch.yml): ``conversations`` (default true),
``hosted_tools`` (file_search / code_interpreter; default true), ``streaming`` (default true).
"""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import openai

from orch.errors import NotFoundError, UsageError
from orch.project.model import Assistant
from orch.targets import retry
from orch.targets.base import Backend
from orch.targets.client import open_remote
from orch.targets.files import Files
from orch.targets.functions import ToolRequest, call_handlers
from orch.targets.registry import Connection, TargetKind
from orch.targets.reserve import Reserve
from orch.targets.session import Session, SessionSettings, StepOutcome, Turn, plain
from orch.targets.stream import StreamReader

DONE = {"completed", "failed", "incomplete", "cancelled"}
DONE_EVENTS = {"response.completed", "response.failed", "response.incomplete"}


def text_format(response_format: Any) -> dict | None:
    """An assistant's ``response_format`` as the Responses ``text.format``."""
    if response_format in (None, "auto", "text"):
        return None
    if response_format == "json_object":
        return {"type": "json_object"}
    if isinstance(response_format, dict):
        if response_format.get("type") == "json_schema":
            spec = response_format["json_schema"]
            fmt = {"type": "json_schema", "name": spec["name"], "schema": spec["schema"]}
            for key in ("description", "strict"):
                if key in spec:
                    fmt[key] = spec[key]
            return fmt
        return {"type": response_format["type"]} if response_format["type"] != "text" else None
    return None


def request_tools(
    assistant: Assistant,
    resources: dict,
    item_stores: list[str],
    item_files: list[str],
    hosted: bool,
) -> list[dict]:
    """The assistant's tools in Responses form, with the vector stores and files they use."""
    tools = []
    for tool in assistant.tools:
        if tool.function:
            fn = tool.function
            tools.append(
                {
                    "type": "function",
                    "name": fn.name,
                    "description": fn.description or "",
                    "parameters": fn.parameters or {"type": "object", "properties": {}},
                    "strict": bool(fn.strict),
                }
            )
            continue
        if not hosted:
            raise UsageError(
                f"assistant {assistant.name!r} uses {tool.type}, which this target does not "
                "support (capabilities.hosted_tools is false)"
            )
        if tool.type == "file_search":
            stores = [*resources.get("vector_store_ids", []), *item_stores]
            if stores:
                tools.append(
                    {"type": "file_search", "vector_store_ids": stores, **dict(tool.options)}
                )
        elif tool.type == "code_interpreter":
            files = [*resources.get("code_interpreter_file_ids", []), *item_files]
            tools.append(
                {"type": "code_interpreter", "container": {"type": "auto", "file_ids": files}}
            )
    return tools


class ResponsesSession(Session):
    """One item's conversation over the Responses API."""

    def __init__(self, client: openai.OpenAI, settings: SessionSettings, capabilities: dict):
        super().__init__(settings)
        self.client = client
        caps = {"conversations": True, "hosted_tools": True, "streaming": True, **capabilities}
        self.stream = settings.stream and caps["streaming"]
        self.use_conversations = caps["conversations"]
        self.hosted = caps["hosted_tools"]
        self.history: list[Any] = []  # without conversations: every item so far
        self.item_stores: list[str] = []
        self.item_files: list[str] = []

    def step(self, turn: Turn) -> StepOutcome:
        """Put attachments in place and open the conversation, then run the step."""
        self._attach(turn.attachments)
        if self.use_conversations and self.thread_id is None:
            reserve = self.settings.reserve
            self.thread_id = (reserve.take() if reserve else None) or self._new_conversation()
        return super().step(turn)

    def _new_conversation(self) -> str:
        """A new empty conversation, retried like a read (a lost answer leaves an empty one)."""
        try:
            conv = retry.call(
                "create conversation",
                lambda: self.client.conversations.create(metadata={"orch": self.settings.label}),
                attempts=self.settings.attempts,
            )
        except NotFoundError as exc:
            raise self._missing_api("conversations", exc) from exc
        return conv.id

    def attempt(self, turn: Turn, first: bool) -> StepOutcome:
        """Send the step's message, answer function calls until the model stops asking."""
        outcome = StepOutcome()
        inputs: list[Any] = [self._user_message(turn)] if first else []
        response = None
        for rounds in range(self.settings.max_tool_rounds + 1):
            response = self.create_response(turn, inputs)
            self.run_id = response.id
            self._collect(response, outcome)
            calls = [
                ToolRequest(o.call_id, o.name, o.arguments)
                for o in response.output
                if o.type == "function_call"
            ]
            if response.status != "completed" or not calls:
                break
            if rounds == self.settings.max_tool_rounds:
                outcome.stop_tool_loop(rounds)
                break
            outputs = call_handlers(
                calls,
                turn.assistant,
                self.settings.handler_pool,
                self.settings.root,
                outcome.tool_calls,
            )
            inputs = [
                {"type": "function_call_output", "call_id": call_id, "output": out}
                for call_id, out in outputs
            ]
        outcome.run_id, outcome.status = response.id, outcome.status or response.status
        if outcome.last_error is not None:
            pass  # orch ended the step (function-call rounds): that is what it reports
        elif response.error:
            outcome.last_error = {"code": response.error.code, "message": response.error.message}
        elif response.status == "incomplete" and response.incomplete_details:
            reason = response.incomplete_details.reason  # e.g. the reply hit max_output_tokens
            outcome.last_error = {
                "code": "incomplete",
                "message": f"response incomplete: {reason}",
                "reason": reason,
            }
        return outcome

    def cancel(self) -> None:
        """Responses run to completion server-side; nothing to cancel for foreground requests."""

    # -- requests ------------------------------------------------------------------------------

    def _user_message(self, turn: Turn) -> dict:
        parts = []
        for part in turn.content:
            if part["type"] == "text":
                parts.append({"type": "input_text", "text": part["text"]})
            elif part["type"] in ("image_url", "image_file"):
                image = part[part["type"]]
                source = {"image_url": image["url"]} if "url" in image else {}
                if "file_id" in image:
                    source = {"file_id": image["file_id"]}
                parts.append(
                    {"type": "input_image", **source, "detail": image.get("detail", "auto")}
                )
        return {"role": "user", "content": parts}

    def _attach(self, attachments: list[dict]) -> None:
        """Put attachments where the Responses API can use them.

        It has no message attachments: file_search files go into the item's vector store,
        code-interpreter files into the container.
        """

        def using(tool: str) -> list[str]:
            return [a["file_id"] for a in attachments if any(t["type"] == tool for t in a["tools"])]

        self.item_files += using("code_interpreter")
        search = using("file_search")
        if not search:
            return
        files = Files(self.client)
        if not self.item_stores:
            store = retry.call(
                "create vector store",
                lambda: self.client.vector_stores.create(
                    name=f"{self.settings.label}-item",
                    expires_after={"anchor": "last_active_at", "days": 1},
                ),
                idempotent=False,
            )
            self.item_stores.append(store.id)
        files.add_files(self.item_stores[0], "the item's vector store", search)

    def request_params(self, turn: Turn, inputs: list[Any]) -> dict[str, Any]:
        """The ``responses.create`` parameters for ``turn`` with these new ``inputs``.

        On a conversation only the new inputs are sent; without one, the item's history
        comes first. Batch runs (:mod:`orch.run.batching`) write these as JSONL lines.
        """
        assistant = turn.assistant
        instructions = (
            turn.instructions if turn.instructions is not None else assistant.instructions
        )
        if turn.additional_instructions:
            instructions = f"{instructions or ''}\n\n{turn.additional_instructions}"
        params: dict[str, Any] = {
            "model": assistant.model,
            "tools": request_tools(
                assistant,
                self.settings.resources.get(assistant.name, {}),
                self.item_stores,
                self.item_files,
                self.hosted,
            ),
            "metadata": {"orch_assistant": assistant.name, "orch_nonce": uuid.uuid4().hex},
        }
        if instructions:
            params["instructions"] = instructions
        for key in ("temperature", "top_p"):
            if getattr(assistant, key) is not None:
                params[key] = getattr(assistant, key)
        if turn.max_tokens is not None:
            params["max_output_tokens"] = turn.max_tokens
        fmt = text_format(assistant.response_format)
        if fmt:
            params["text"] = {"format": fmt}
        if self.use_conversations:
            params["conversation"] = self.thread_id
            params["input"] = inputs
        else:
            params["input"] = [*self.history, *inputs]
        return params

    def create_response(self, turn: Turn, inputs: list[Any]):
        """Create one response (following its stream to the end).

        On a conversation a lost, empty or truncated answer may hide a response that was made
        and appended: the Responses API offers no way to find it (no list, conversation items
        carry no response id), so only a 429 is retried and anything else ambiguous is the
        item's error, never a second message. Without conversations nothing is appended, so
        every transient failure is retried.
        """
        params = self.request_params(turn, inputs)
        attempts = self.settings.attempts
        for attempt in range(attempts):
            self.check()
            try:
                if self.stream:
                    created = self.client.responses.create(
                        stream=True, timeout=self.remaining(), **params
                    )
                    response = self._consume(StreamReader(created))
                else:
                    response = retry.checked(
                        self.client.responses.create(timeout=self.remaining(), **params)
                    )
                break
            except retry.FAILURES as exc:
                if isinstance(exc, openai.NotFoundError) and not self.history:
                    error = retry.to_backend_error("create response", exc)
                    raise self._missing_api("responses", error) from exc
                safe = isinstance(exc, openai.RateLimitError) or not self.use_conversations
                if not (retry.is_transient(exc) and safe) or attempt + 1 == attempts:
                    raise retry.to_backend_error("create response", exc) from exc
                self.pause(retry.retry_delay(exc, attempt))
        if not self.use_conversations:
            self.history += [*inputs, *[as_input(o) for o in response.output]]
        return response

    def _missing_api(self, path: str, error: Exception) -> NotFoundError:
        """A 404 for /responses or /conversations itself: name the server and the way out."""
        url = str(self.client.base_url).rstrip("/")
        instead = (
            "capabilities: {conversations: false} on the target (orch then sends the item's "
            "history with each request), or "
            if path == "conversations"
            else ""
        )
        return NotFoundError(
            f"{url} answered 404 for /{path} ({error}). For a server that only speaks Chat "
            f"Completions (llama.cpp, Ollama, LM Studio, ...), use {instead}a target of "
            f"`kind: engine, model: openai-chat, base_url: {url}`."
        )

    def _consume(self, stream: StreamReader):
        final = None
        response_id = None
        try:
            for event in stream.events(self.check):
                if event.type == "response.created":
                    response_id = event.response.id
                elif event.type in DONE_EVENTS:
                    final = event.response
        except retry.FAILURES as exc:
            if not retry.is_transient(exc) or response_id is None:
                raise
        if final is not None:
            return final
        if response_id is None:
            raise retry.MalformedResponse("the stream ended before the response was created")
        return self._wait(response_id)

    def _wait(self, response_id: str):
        """Poll a response whose stream broke until it is done."""
        delay = 0.05
        while True:
            response = retry.call(
                "retrieve response", lambda: self.client.responses.retrieve(response_id)
            )
            if response.status in DONE:
                return response
            self.check()
            self.pause(delay)
            delay = min(delay * 2, 1.0)

    # -- results -------------------------------------------------------------------------------

    def _collect(self, response, outcome: StepOutcome) -> None:
        texts = []
        for item in response.output:
            if item.type == "message":
                texts += [
                    self._output_text(p, outcome) for p in item.content if p.type == "output_text"
                ]
            elif item.type == "code_interpreter_call":
                outcome.tool_calls.append(self._code_call(item, outcome))
            elif item.type == "file_search_call":
                outcome.tool_calls.append(
                    {
                        "id": item.id,
                        "type": "file_search",
                        "name": "file_search",
                        "queries": list(item.queries or []),
                    }
                )
        if texts:
            outcome.output = "\n\n".join(t for t in [outcome.output, *texts] if t)
        outcome.add_response_usage(response.usage)

    def _output_text(self, part: Any, outcome: StepOutcome) -> str:
        for note in part.annotations or []:
            outcome.citations.append(plain(note))
            if note.type == "container_file_citation":
                suffix = Path(getattr(note, "filename", "") or "").suffix or ".bin"
                path = self.download(
                    f"{note.file_id}{suffix}",
                    lambda note=note: retry.call(
                        f"download {note.file_id}",
                        lambda: self.client.containers.files.content.retrieve(
                            note.file_id, container_id=note.container_id
                        ),
                    ).read(),
                )
                if path not in outcome.files:
                    outcome.files.append(path)
        return part.text

    def _code_call(self, item: Any, outcome: StepOutcome) -> dict:
        record = {
            "id": item.id,
            "type": "code_interpreter",
            "name": "code_interpreter",
            "input": item.code,
            "outputs": [plain(o) for o in item.outputs or []],
        }
        for out in item.outputs or []:
            url = getattr(out, "url", None)
            if out.type == "image" and url and url.startswith("data:"):
                header, _, data = url.partition(",")
                suffix = ".png" if "png" in header else ".bin"
                raw = base64.b64decode(data) if ";base64" in header else data.encode()
                path = self.download(f"{item.id}{suffix}", lambda raw=raw: raw)
                record.setdefault("files", []).append(path)
                outcome.files.append(path)
        return record


def as_input(item: Any) -> dict:
    """An output item, echoed back as input for servers without conversations."""
    data = item.model_dump(mode="json", exclude_none=True)
    if data.get("type") == "message":
        data.pop("status", None)
    return json.loads(json.dumps(data))


def _reserve(conn: Connection, label: str, size: int, items: int) -> Reserve | None:
    """Empty conversations made ahead for a run's items (none where the server has none)."""
    if not {"conversations": True, **(conn.target.option("capabilities") or {})}["conversations"]:
        return None
    conversations = conn.client.conversations
    return Reserve(
        create=lambda: (
            retry.call(
                "create conversation",
                lambda: conversations.create(metadata={"orch": label}, timeout=30),
            ).id
        ),
        delete=lambda conversation_id: conversations.delete(conversation_id, timeout=10),
        size=size,
        items=items,
    )


KIND = TargetKind(
    name="responses",
    open=open_remote,
    # assistants stay local: only files and vector stores are synced
    backend=lambda conn: Backend(conn.label, Files(conn.client)),
    session=lambda conn, settings: ResponsesSession(
        conn.client, settings, conn.target.option("capabilities") or {}
    ),
    reserve=_reserve,
)
