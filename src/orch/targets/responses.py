"""Targets speaking the Responses API + Conversations API.

That is OpenAI since 2026-08-26, Open-Responses servers (vLLM, Ollama, LM Studio, llama.cpp,
Llama Stack) and the embedded engine.

Assistants stay in the YAML and are sent with every request (instructions, model, tools,
temperature/top_p, ``text.format``); nothing remote is created for them. Sync manages only their
files and vector stores (:class:`ResponsesBackend`). A pipeline item's thread maps to a
conversation — or, on servers without conversations, to the full item history sent with each
request — and the function-call loop runs client-side (:class:`ResponsesSession`).

Capabilities (``targets.<name>.capabilities`` in orch.yml): ``conversations`` (default true),
``hosted_tools`` (file_search / code_interpreter; default true), ``streaming`` (default true).
"""

from __future__ import annotations

import base64
import json
import time
import uuid
from pathlib import Path
from typing import Any

import openai

from orch.errors import BackendError, UsageError
from orch.project.model import Assistant
from orch.targets import retry
from orch.targets.assistants import AssistantsBackend
from orch.targets.base import RemoteAssistant
from orch.targets.session import (
    ItemTimeout,
    Session,
    StepOutcome,
    Stopped,
    ToolRequest,
    Turn,
    call_handlers,
)

DONE = {"completed", "failed", "incomplete", "cancelled"}


class ResponsesBackend(AssistantsBackend):
    """Files and vector stores through the same endpoints; assistants are local definitions."""

    local_assistants = True

    def _list_assistants(self) -> list[RemoteAssistant]:
        return []

    def _refuse(self, *_args, **_kwargs):
        raise UsageError("a Responses API target keeps assistants local: nothing to create")

    create_assistant = update_assistant = delete_assistant = _refuse


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
    """One item's conversation over the Responses API; same contract as ``Conversation``."""

    def __init__(
        self,
        client: openai.OpenAI,
        *,
        resources: dict[str, dict] | None = None,
        capabilities: dict | None = None,
        label: str = "orch",
        **common: Any,
    ):
        super().__init__(client, **common)
        caps = {
            "conversations": True,
            "hosted_tools": True,
            "streaming": True,
            **(capabilities or {}),
        }
        self.stream = self.stream and caps["streaming"]
        self.resources = resources or {}
        self.use_conversations = caps["conversations"]
        self.hosted = caps["hosted_tools"]
        self.label = label
        self.history: list[Any] = []  # without conversations: every item so far
        self.item_stores: list[str] = []
        self.item_files: list[str] = []

    # -- public --------------------------------------------------------------------------------

    def step(self, turn: Turn) -> StepOutcome:
        """Send the step's message, answer function calls until the model stops asking."""
        self._attach(turn.attachments)
        if self.use_conversations and self.thread_id is None:
            conv = retry.call(
                "create conversation",
                lambda: self.client.conversations.create(metadata={"orch": self.label}),
                idempotent=False,
            )
            self.thread_id = conv.id
        for attempt in range(self.retries + 1):
            outcome = StepOutcome(attempts=attempt + 1)
            inputs: list[Any] = [] if attempt else [self._user_message(turn)]
            response = None
            for _round in range(32):  # bound on function-call round trips
                response = self._create(turn, inputs)
                self.run_id = response.id
                self._collect(response, outcome)
                calls = [
                    ToolRequest(o.call_id, o.name, o.arguments)
                    for o in response.output
                    if o.type == "function_call"
                ]
                if response.status != "completed" or not calls:
                    break
                outputs = call_handlers(calls, turn.assistant, self.pool, self.root, outcome)
                inputs = [
                    {"type": "function_call_output", "call_id": call_id, "output": out}
                    for call_id, out in outputs
                ]
            outcome.run_id, outcome.status = response.id, response.status
            if response.error:
                outcome.last_error = {
                    "code": response.error.code,
                    "message": response.error.message,
                }
            elif response.status == "incomplete" and response.incomplete_details:
                outcome.last_error = {
                    "code": "incomplete",
                    "message": str(response.incomplete_details.reason),
                }
            retryable = response.error and response.error.code in (
                "server_error",
                "rate_limit_exceeded",
            )
            if response.status == "failed" and retryable and attempt < self.retries:
                self._pause(min(2.0, 0.25 * 2**attempt))
                continue
            return outcome
        raise AssertionError("unreachable")  # pragma: no cover

    def cancel(self) -> None:
        """Responses run to completion server-side; nothing to cancel for foreground requests."""

    # -- requests ------------------------------------------------------------------------------

    def _user_message(self, turn: Turn) -> dict:
        parts = []
        for part in turn.content:
            if part["type"] == "text":
                parts.append({"type": "input_text", "text": part["text"]})
            elif part["type"] == "image_url":
                image = part["image_url"]
                parts.append(
                    {
                        "type": "input_image",
                        "image_url": image["url"],
                        "detail": image.get("detail", "auto"),
                    }
                )
            elif part["type"] == "image_file":
                image = part["image_file"]
                parts.append(
                    {
                        "type": "input_image",
                        "file_id": image["file_id"],
                        "detail": image.get("detail", "auto"),
                    }
                )
        return {"role": "user", "content": parts}

    def _attach(self, attachments: list[dict]) -> None:
        """Put attachments where the Responses API can use them.

        It has no message attachments: file_search files go into the item's vector store,
        code-interpreter files into the container.
        """
        search = [
            a["file_id"] for a in attachments if any(t["type"] == "file_search" for t in a["tools"])
        ]
        self.item_files += [
            a["file_id"]
            for a in attachments
            if any(t["type"] == "code_interpreter" for t in a["tools"])
        ]
        if not search:
            return
        if not self.item_stores:
            store = retry.call(
                "create vector store",
                lambda: self.client.vector_stores.create(
                    name=f"{self.label}-item", expires_after={"anchor": "last_active_at", "days": 1}
                ),
                idempotent=False,
            )
            self.item_stores.append(store.id)
        backend = AssistantsBackend(self.client)
        backend._add_files(self.item_stores[0], "the item's vector store", search)

    def _create(self, turn: Turn, inputs: list[Any]):
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
                self.resources.get(assistant.name, {}),
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
        fmt = text_format(assistant.response_format)
        if fmt:
            params["text"] = {"format": fmt}
        if self.use_conversations:
            params["conversation"] = self.thread_id
            params["input"] = inputs
        else:
            params["input"] = [*self.history, *inputs]
        for attempt in range(self.attempts):
            if self.stop.is_set():
                raise Stopped()
            try:
                if self.stream:
                    response = self._consume(
                        self.client.responses.create(stream=True, timeout=self._timeout(), **params)
                    )
                else:
                    response = self.client.responses.create(timeout=self._timeout(), **params)
                break
            except openai.OpenAIError as exc:
                # a lost answer may still have appended to the conversation: only retry what
                # surely did not reach the server (429, connection refused) or carries no state
                safe = isinstance(exc, openai.RateLimitError) or not self.use_conversations
                if not (retry.is_transient(exc) and safe) or attempt + 1 == self.attempts:
                    raise retry.to_backend_error("create response", exc) from exc
                self._pause(retry.retry_delay(exc, attempt))
        if not self.use_conversations:
            self.history += [*inputs, *[_as_input(o) for o in response.output]]
        return response

    def _consume(self, stream):
        final = None
        response_id = None
        try:
            for event in stream:
                kind = event.type
                if kind == "response.created":
                    response_id = event.response.id
                elif kind in ("response.completed", "response.failed", "response.incomplete"):
                    final = event.response
                elif kind == "error":
                    raise BackendError(f"stream error: {getattr(event, 'message', event)}")
                if time.monotonic() > self.deadline:
                    raise ItemTimeout()
                if self.stop.is_set():
                    raise Stopped()
        except openai.APIError as exc:
            if not retry.is_transient(exc) or response_id is None:
                raise
        finally:
            stream.close()
        if final is not None:
            return final
        if response_id is None:
            raise BackendError("the response stream ended before the response was created")
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
            if time.monotonic() > self.deadline:
                raise ItemTimeout()
            self._pause(delay)
            delay = min(delay * 2, 1.0)

    # -- results -------------------------------------------------------------------------------

    def _collect(self, response, outcome: StepOutcome) -> None:
        texts = []
        for item in response.output:
            if item.type == "message":
                for part in item.content:
                    if part.type != "output_text":
                        continue
                    texts.append(part.text)
                    for note in part.annotations or []:
                        outcome.citations.append(note.model_dump(mode="json", exclude_none=True))
                        if note.type == "container_file_citation":
                            path = self._download(
                                note.container_id, note.file_id, getattr(note, "filename", "") or ""
                            )
                            if path not in outcome.files:
                                outcome.files.append(path)
            elif item.type == "code_interpreter_call":
                outputs = [o.model_dump(mode="json", exclude_none=True) for o in item.outputs or []]
                record = {
                    "id": item.id,
                    "type": "code_interpreter",
                    "name": "code_interpreter",
                    "input": item.code,
                    "outputs": outputs,
                }
                for out in item.outputs or []:
                    url = getattr(out, "url", None)
                    if out.type == "image" and url and url.startswith("data:"):
                        path = self._save_data_url(item.id, url)
                        record.setdefault("files", []).append(path)
                        outcome.files.append(path)
                outcome.tool_calls.append(record)
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
        usage = response.usage
        if usage:
            for key, value in (
                ("prompt_tokens", usage.input_tokens),
                ("completion_tokens", usage.output_tokens),
                ("total_tokens", usage.total_tokens),
            ):
                outcome.usage[key] = outcome.usage.get(key, 0) + (value or 0)

    def _download(self, container_id: str, file_id: str, filename: str) -> str:
        self.files_dir.mkdir(parents=True, exist_ok=True)
        suffix = Path(filename).suffix or ".bin"
        target = self.files_dir / f"{file_id}{suffix}"
        if not target.exists():
            content = retry.call(
                f"download {file_id}",
                lambda: self.client.containers.files.content.retrieve(
                    file_id, container_id=container_id
                ),
            )
            target.write_bytes(content.read())
        return str(target)

    def _save_data_url(self, name: str, url: str) -> str:
        header, _, data = url.partition(",")
        suffix = ".png" if "png" in header else ".bin"
        self.files_dir.mkdir(parents=True, exist_ok=True)
        target = self.files_dir / f"{name}{suffix}"
        target.write_bytes(base64.b64decode(data) if ";base64" in header else data.encode())
        return str(target)


def _as_input(item: Any) -> dict:
    """An output item, echoed back as input for servers without conversations."""
    data = item.model_dump(mode="json", exclude_none=True)
    if data.get("type") == "message":
        data.pop("status", None)
    return json.loads(json.dumps(data))
