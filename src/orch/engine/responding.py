"""The Responses API's executor: one model turn per response, output items, stream events.

A response is created ``in_progress`` (``queued`` in background mode), answered by the engine's
model in an asyncio task, and ends ``completed``, ``incomplete``, ``failed`` or ``cancelled``.
Function calls end the response too: the client runs them and sends ``function_call_output``
items in its next request. Every event a streaming client sees carries a ``sequence_number``.

The model layer is the one Assistants runs use: :meth:`ResponseExecutor._context` presents the
response as a run (Assistants-shaped tools, ``response_format`` from ``text.format``) and its
items as thread messages. For the scripted model's ``when: {assistant: ...}`` there is no
assistant: the response's ``metadata.orch_assistant`` plays its name.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import re
import time
from typing import Any

from orch.engine.containers import Containers
from orch.engine.conversations import Conversations
from orch.engine.errors import bad_request
from orch.engine.items import file_texts, turn_inputs
from orch.engine.models.base import CodeCall, Model, ModelError, SearchCall, Turn, TurnContext
from orch.engine.sse import Channels, encode_event
from orch.engine.steps import pieces
from orch.engine.store import Store, new_id, public
from orch.engine.vectors import VectorStores

log = logging.getLogger("orch.engine")

TERMINAL = frozenset({"completed", "incomplete", "failed", "cancelled"})
# ResponseError.code is a closed set; anything else is reported as a server error.
ERROR_CODES = frozenset(
    {"server_error", "rate_limit_exceeded", "invalid_prompt", "vector_store_timeout"}
)
_MARKER = re.compile(r" ?【\d+:\d+†[^】]*】")


def _now() -> int:
    return int(time.time())


def usage_body(input_tokens: int, output_tokens: int) -> dict[str, Any]:
    """``ResponseUsage`` for these counts."""
    return {
        "input_tokens": input_tokens,
        "input_tokens_details": {"cached_tokens": 0, "cache_write_tokens": 0},
        "output_tokens": output_tokens,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": input_tokens + output_tokens,
    }


def run_view(response: dict[str, Any]) -> dict[str, Any]:
    """The response as the models see a run: Assistants-shaped tools and response_format."""
    tools = []
    for tool in response["tools"]:
        if tool["type"] == "function":
            fn = {k: tool.get(k) for k in ("name", "description", "parameters", "strict")}
            tools.append({"type": "function", "function": fn})
        else:
            tools.append({"type": tool["type"]})
    choice = response["tool_choice"]
    if isinstance(choice, dict) and choice.get("type") == "function":
        choice = {"type": "function", "function": {"name": choice["name"]}}
    fmt = (response.get("text") or {}).get("format") or {"type": "text"}
    if fmt["type"] == "json_schema":
        schema = {k: fmt[k] for k in ("name", "schema", "strict", "description") if k in fmt}
        fmt = {"type": "json_schema", "json_schema": schema}
    return {
        "id": response["id"],
        "model": response["model"],
        "instructions": response.get("instructions") or "",
        "tools": tools,
        "tool_choice": choice,
        "parallel_tool_calls": response["parallel_tool_calls"],
        "temperature": response.get("temperature"),
        "top_p": response.get("top_p"),
        "max_completion_tokens": response.get("max_output_tokens"),
        "response_format": fmt,
        "metadata": response.get("metadata") or {},
    }


def input_items(response: dict[str, Any]) -> list[dict[str, Any]]:
    """The items this response's request sent (the end of its context)."""
    context = response["_context"]
    return context[len(context) - response["_n_input"] :]


def strip_markers(text: str) -> tuple[str, list[int]]:
    """Text without 【i:j†file】 citation markers, and where each marker stood in the result.

    The Responses API cites by position, not by marker; a space before a marker goes with it.
    """
    out: list[str] = []
    positions: list[int] = []
    last = 0
    length = 0
    for match in _MARKER.finditer(text):
        out.append(text[last : match.start()])
        length += match.start() - last
        positions.append(length)
        last = match.end()
    out.append(text[last:])
    clean = "".join(out)
    if positions and clean != clean.rstrip():
        clean = clean.rstrip()
        positions = [min(pos, len(clean)) for pos in positions]
    return clean, positions


class ResponseExecutor:
    """Creates, executes, cancels and streams responses; appends them to conversations."""

    def __init__(
        self,
        store: Store,
        model: Model,
        vectors: VectorStores,
        containers: Containers,
        conversations: Conversations,
    ):
        self.store = store
        self.model = model
        self.vectors = vectors
        self.containers = containers
        self.conversations = conversations
        self.live: dict[str, dict[str, Any]] = {}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.channels = Channels()
        self.closing = False

    # -- lookup --------------------------------------------------------------------------------
    def get(self, response_id: str) -> dict[str, Any] | None:
        """The response (live version while executing), or None."""
        return self.live.get(response_id) or self.store.get("response", response_id)

    def history(self, response: dict[str, Any]) -> list[dict[str, Any]]:
        """Everything a follow-up (``previous_response_id``) sees: context, then output."""
        return [*response["_context"], *response["output"]]

    # -- events --------------------------------------------------------------------------------
    def _send(self, target: dict[str, Any], kind: str, **data: Any) -> None:
        # ``target`` is the response; event fields may themselves be called "response".
        target["_seq"] += 1
        rid = target["id"]
        if rid in self.channels.listeners:
            data = {"type": kind, **data, "sequence_number": target["_seq"]}
            self.channels.send(rid, encode_event(kind, data))

    def _send_state(self, response: dict[str, Any], kind: str) -> None:
        self._send(response, kind, response=public(response))

    # -- lifecycle -----------------------------------------------------------------------------
    def create(self, response: dict[str, Any]) -> dict[str, Any]:
        """Register a new response (from the route's validated request); call :meth:`start`."""
        response["_seq"] = -1
        if response["store"]:
            self.store.insert("response", response)
        self.live[response["id"]] = response
        return response

    def start(self, response: dict[str, Any]) -> asyncio.Task[None]:
        """Announce the response and schedule its turn."""
        self._send_state(response, "response.created")
        if response["status"] == "queued":
            self._send_state(response, "response.queued")
        task = asyncio.get_running_loop().create_task(self._execute(response))
        self.tasks[response["id"]] = task

        def done(t: asyncio.Task[None]) -> None:
            self.tasks.pop(response["id"], None)
            if t.cancelled() and not self.closing:
                self._end(response, "cancelled")

        task.add_done_callback(done)
        return task

    async def _execute(self, response: dict[str, Any]) -> None:
        try:
            await self._turn(response)
        except asyncio.CancelledError:
            if not self.closing:
                self._end(response, "cancelled")
        except ModelError as exc:
            self._fail(response, exc.code, exc.message)
        except Exception as exc:  # a bug or an upstream surprise must not leave it hanging
            log.exception("response %s failed", response["id"])
            self._fail(response, "server_error", f"The engine failed while responding: {exc}")

    async def _context(self, response: dict[str, Any]) -> TurnContext:
        items = response["_context"]
        texts = await asyncio.to_thread(file_texts, self.store, items)
        has_outputs = any(i["type"] == "function_call_output" for i in input_items(response))
        inputs = turn_inputs(items, texts, has_outputs)
        state: dict[str, Any] = {}
        if inputs.tool_outputs:
            saved = self.store.get("call_state", inputs.tool_outputs[0]["tool_call_id"])
            state = (saved or {}).get("state") or {}
        metadata = response.get("metadata") or {}
        assistant = {
            "id": None,
            "name": metadata.get("orch_assistant"),
            "instructions": response.get("instructions"),
            "metadata": metadata,
            "model": response["model"],
        }
        search_tools = [t for t in response["tools"] if t["type"] == "file_search"]
        store_ids = [vs for t in search_tools for vs in t["vector_store_ids"]]
        cap = min((t.get("max_num_results") or 50 for t in search_tools), default=50)

        vectors = self.vectors

        async def search(query: str, limit: int) -> list:
            return await vectors.search(store_ids, query, min(limit, cap))

        return TurnContext(
            run=run_view(response),
            assistant=assistant,
            messages=inputs.messages,
            user_text=inputs.user_text,
            tool_outputs=inputs.tool_outputs,
            state=state,
            search=search,
            load_file=self.store.get_blob,
            rounds_in_messages=True,
        )

    async def _turn(self, response: dict[str, Any]) -> None:
        if response["status"] == "queued":
            response["status"] = "in_progress"
            self._save(response)
        self._send_state(response, "response.in_progress")
        turn = await self.model.respond(await self._context(response))
        if turn.delay_ms:
            await asyncio.sleep(turn.delay_ms / 1000)
        if turn.fail is not None:
            self._fail(response, *turn.fail)
            return
        usage = turn.usage or (0, 0)
        response["usage"] = usage_body(*usage)
        cited_image = self._code_item(response, turn.code) if turn.code else None
        hits = self._search_item(response, turn.search) if turn.search is not None else {}
        if turn.tool_calls:
            self._function_calls(response, turn)
            self._end(response, "completed")
            return
        limit = response.get("max_output_tokens")
        incomplete = bool(limit) and usage[1] > limit
        self._message(response, turn, hits, cited_image, incomplete)
        self._end(response, "incomplete" if incomplete else "completed")

    # -- output items --------------------------------------------------------------------------
    def _open_item(self, response: dict[str, Any], item: dict[str, Any]) -> int:
        response["output"].append(item)
        index = len(response["output"]) - 1
        self._send(response, "response.output_item.added", output_index=index, item=item)
        return index

    def _close_item(self, response: dict[str, Any], index: int, item: dict[str, Any]) -> None:
        response["output"][index] = item
        self._send(response, "response.output_item.done", output_index=index, item=item)

    def _code_item(self, response: dict[str, Any], code: CodeCall) -> dict[str, Any] | None:
        container_id = self.containers.for_response(response)
        item_id = new_id("ci")
        base = {"id": item_id, "type": "code_interpreter_call", "container_id": container_id}
        index = self._open_item(
            response, {**base, "status": "in_progress", "code": "", "outputs": None}
        )
        ref = {"item_id": item_id, "output_index": index}
        self._send(response, "response.code_interpreter_call.in_progress", **ref)
        for piece in pieces(code.input, 64):
            self._send(response, "response.code_interpreter_call_code.delta", delta=piece, **ref)
        self._send(response, "response.code_interpreter_call_code.done", code=code.input, **ref)
        self._send(response, "response.code_interpreter_call.interpreting", **ref)
        outputs: list[dict[str, Any]] = []
        if code.logs is not None:
            outputs.append({"type": "logs", "logs": code.logs})
        cited = None
        if code.image is not None:
            cfile = self.containers.add_file(
                container_id, code.image, f"/mnt/data/{item_id}.png", "assistant"
            )
            cited = {
                "container_id": container_id,
                "file_id": cfile["id"],
                "filename": cfile["path"].rsplit("/", 1)[-1],
            }
            url = "data:image/png;base64," + base64.b64encode(code.image).decode()
            outputs.append({"type": "image", "url": url})
        self._send(response, "response.code_interpreter_call.completed", **ref)
        shown = outputs if "code_interpreter_call.outputs" in response["_include"] else None
        self._close_item(
            response, index, {**base, "status": "completed", "code": code.input, "outputs": shown}
        )
        return cited

    def _search_item(self, response: dict[str, Any], search: SearchCall) -> dict[str, str]:
        item_id = new_id("fs")
        base = {"id": item_id, "type": "file_search_call", "queries": [search.query]}
        index = self._open_item(response, {**base, "status": "in_progress", "results": None})
        ref = {"item_id": item_id, "output_index": index}
        for stage in ("in_progress", "searching", "completed"):
            self._send(response, f"response.file_search_call.{stage}", **ref)
        results = None
        if "file_search_call.results" in response["_include"]:
            results = [
                {
                    "file_id": h.file_id,
                    "filename": h.filename,
                    "score": h.score,
                    "text": h.text,
                    "attributes": {},
                }
                for h in search.hits
            ]
        self._close_item(response, index, {**base, "status": "completed", "results": results})
        return {h.file_id: h.filename for h in search.hits}

    def _function_calls(self, response: dict[str, Any], turn: Turn) -> None:
        for fc in turn.tool_calls:
            call_id = new_id("call")
            item = {
                "id": new_id("fc"),
                "type": "function_call",
                "call_id": call_id,
                "name": fc.name,
                "arguments": "",
                "status": "in_progress",
            }
            index = self._open_item(response, item)
            ref = {"item_id": item["id"], "output_index": index}
            self._send(
                response, "response.function_call_arguments.delta", delta=fc.arguments, **ref
            )
            self._send(
                response, "response.function_call_arguments.done", arguments=fc.arguments, **ref
            )
            self._close_item(
                response, index, {**item, "arguments": fc.arguments, "status": "completed"}
            )
            # The continuation (the next request's function_call_output) finds the model's
            # private state by call id, whether it comes by conversation or previous response.
            self.store.insert("call_state", {"id": call_id, "state": turn.state})

    def _message(
        self,
        response: dict[str, Any],
        turn: Turn,
        files: dict[str, str],
        cited_image: dict[str, Any] | None,
        incomplete: bool,
    ) -> None:
        text, positions = strip_markers(turn.text or "")
        annotations: list[dict[str, Any]] = []
        for citation, pos in zip(turn.citations, positions, strict=False):
            annotations.append(
                {
                    "type": "file_citation",
                    "file_id": citation.file_id,
                    "filename": files.get(citation.file_id, citation.file_id),
                    "index": pos,
                }
            )
        limit = response.get("max_output_tokens")
        if incomplete and limit:
            text = text[: max(1, limit) * 4]
            annotations = [a for a in annotations if a["index"] <= len(text)]
        if cited_image is not None:
            span = {"start_index": len(text), "end_index": len(text)}
            annotations.append({"type": "container_file_citation", **cited_image, **span})
        item = {
            "id": new_id("msg"),
            "type": "message",
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        index = self._open_item(response, item)
        ref = {"item_id": item["id"], "output_index": index, "content_index": 0}
        empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        self._send(response, "response.content_part.added", part=empty, **ref)
        for piece in pieces(text):
            self._send(response, "response.output_text.delta", delta=piece, logprobs=[], **ref)
        for i, annotation in enumerate(annotations):
            self._send(
                response,
                "response.output_text.annotation.added",
                annotation_index=i,
                annotation=annotation,
                **ref,
            )
        self._send(response, "response.output_text.done", text=text, logprobs=[], **ref)
        part = {"type": "output_text", "text": text, "annotations": annotations, "logprobs": []}
        self._send(response, "response.content_part.done", part=part, **ref)
        status = "incomplete" if incomplete else "completed"
        self._close_item(response, index, {**item, "status": status, "content": [part]})

    # -- endings -------------------------------------------------------------------------------
    def _save(self, response: dict[str, Any]) -> None:
        if response["store"]:
            self.store.put(response)

    def _end(self, response: dict[str, Any], status: str) -> None:
        if response["status"] in TERMINAL:
            return
        response["status"] = status
        if status == "completed":
            response["completed_at"] = _now()
        elif status == "incomplete":
            response["incomplete_details"] = {"reason": "max_output_tokens"}
        if response["usage"] is None:
            response["usage"] = usage_body(0, 0)
        for item in response["output"]:
            if item.get("status") == "in_progress":
                item["status"] = "incomplete"
        if status in ("completed", "incomplete") and response.get("conversation"):
            self.conversations.append(
                response["conversation"]["id"],
                input_items(response) + response["output"],
            )
        self.live.pop(response["id"], None)
        self._save(response)
        if status != "cancelled":
            self._send_state(response, f"response.{status}")
        self.channels.close(response["id"])

    def _fail(self, response: dict[str, Any], code: str, message: str) -> None:
        if response["status"] in TERMINAL:
            return
        response["error"] = {
            "code": code if code in ERROR_CODES else "server_error",
            "message": message,
        }
        self._end(response, "failed")

    def cancel(self, response: dict[str, Any], force: bool = False) -> dict[str, Any]:
        """Cancel a background response (a finished one is returned unchanged, as OpenAI does).

        ``force`` cancels any response (deleting one that is still running).
        """
        if not response.get("background") and not force:
            raise bad_request("Only responses created with background=true can be cancelled.")
        task = self.tasks.get(response["id"])
        if task is not None:
            task.cancel()
        self._end(response, "cancelled")
        return response

    async def wait(self, response: dict[str, Any]) -> dict[str, Any]:
        """The response once its turn is over (the client's disconnect does not stop it)."""
        task = self.tasks.get(response["id"])
        if task is not None:
            await asyncio.shield(task)
        return response

    # -- startup / shutdown --------------------------------------------------------------------
    def recover(self) -> None:
        """Responses a restart interrupted fail, as runs do."""
        for response in self.store.all_where("response", "status", ("queued", "in_progress")):
            response.setdefault("_seq", 0)
            self._fail(response, "server_error", "The engine restarted while responding.")

    async def close(self) -> None:
        """Stop executing responses without changing their stored state."""
        self.closing = True
        tasks = list(self.tasks.values())
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
