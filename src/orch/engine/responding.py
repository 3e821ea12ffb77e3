"""The Responses API's executor: one model turn per response, its lifecycle and its ending.

A response is created ``in_progress`` (``queued`` in background mode), answered by the engine's
model in an asyncio task, and ends ``completed``, ``incomplete``, ``failed`` or ``cancelled``.
Function calls end the response too: the client runs them and sends ``function_call_output``
items in its next request. Output items and events are written by
:class:`orch.engine.outputs.OutputWriter`.

The model layer is the one Assistants runs use: :meth:`ResponseExecutor._context` presents the
response as a run (Assistants-shaped tools, ``response_format`` from ``text.format``) and its
items as thread messages. For the scripted model's ``when: {assistant: ...}`` there is no
assistant: the response's ``metadata.orch_assistant`` plays its name.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from orch.engine.containers import Containers
from orch.engine.conversations import Conversations
from orch.engine.errors import bad_request
from orch.engine.items import file_texts, turn_inputs
from orch.engine.models.base import CodeCall, SearchCall, Turn, TurnContext
from orch.engine.outputs import MessageDraft, OutputWriter
from orch.engine.turns import Draft, TurnExecutor, TurnServices

TERMINAL = frozenset({"completed", "incomplete", "failed", "cancelled"})
# ResponseError.code is a closed set; anything else is reported as a server error.
ERROR_CODES = frozenset(
    {"server_error", "rate_limit_exceeded", "invalid_prompt", "vector_store_timeout"}
)


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
        elif tool["type"] == "file_search":
            keys = ("max_num_results", "ranking_options")
            settings = {k: tool[k] for k in keys if tool.get(k) is not None}
            tools.append({"type": "file_search", "file_search": settings})
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


class ResponseExecutor(TurnExecutor):
    """Creates, executes, cancels and streams responses; appends them to conversations."""

    kind = "response"
    crash_message = "The engine failed while responding: {}"
    unfinished = ("queued", "in_progress")

    def __init__(
        self, services: TurnServices, containers: Containers, conversations: Conversations
    ):
        super().__init__(services)
        self.containers = containers
        self.conversations = conversations
        self.output = OutputWriter(self.store, containers, self.channels)

    # -- lookup --------------------------------------------------------------------------------
    def get(self, response_id: str) -> dict[str, Any] | None:
        """The response (live version while executing), or None."""
        return self.live.get(response_id) or self.store.get("response", response_id)

    def history(self, response: dict[str, Any]) -> list[dict[str, Any]]:
        """Everything a follow-up (``previous_response_id``) sees: context, then output."""
        return [*response["_context"], *response["output"]]

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
        self.output.send_state(response, "response.created")
        if response["status"] == "queued":
            self.output.send_state(response, "response.queued")
        return self._spawn(response)

    # -- the turn ------------------------------------------------------------------------------
    def _begin(self, response: dict[str, Any]) -> None:
        if response["status"] == "queued":
            response["status"] = "in_progress"
            self._save(response)
        self.output.send_state(response, "response.in_progress")

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
        ctx = TurnContext(
            run=run_view(response),
            assistant=assistant,
            messages=inputs.messages,
            user_text=inputs.user_text,
            tool_outputs=inputs.tool_outputs,
            state=state,
            search=self._searcher(store_ids, cap),
            load_file=self.store.get_blob,
            rounds_in_messages=True,
            max_output_tokens=response.get("max_output_tokens"),
        )
        if any(t["type"] == "code_interpreter" for t in response["tools"]):
            # The code runs in the response's container: its files go in, what it writes
            # comes back as container files.
            cid = self.containers.for_response(response)
            keep = self.containers.keep_outputs
            await self._offer_code(
                ctx, cid, self.containers.input_files(cid), lambda result: keep(cid, result)
            )
        return ctx

    def _count_usage(self, response: dict[str, Any], turn: Turn) -> bool:
        response["usage"] = usage_body(*(turn.usage or (0, 0)))
        return True

    def _write_code(self, response: dict[str, Any], code: CodeCall, draft: Draft) -> None:
        cited = self.output.write_code(response, code)
        if cited is not None:
            draft.images.append(cited)

    def _write_search(self, response: dict[str, Any], search: SearchCall) -> dict[str, str]:
        return self.output.write_search(response, search)

    def _write_calls(self, response: dict[str, Any], turn: Turn) -> None:
        """The response completes with its function_call items; the client answers them."""
        self.output.write_calls(response, turn)
        self._end(response, "completed")

    def _over_limit(self, response: dict[str, Any], turn: Turn) -> bool:
        limit = response.get("max_output_tokens")
        return turn.truncated or (bool(limit) and (turn.usage or (0, 0))[1] > limit)

    def _cut(self, response: dict[str, Any], text: str) -> str:
        limit = response.get("max_output_tokens")
        return text[: max(1, limit) * 4] if limit else text

    def _open_reply(self, response: dict[str, Any], draft: Draft) -> MessageDraft:
        return self.output.open_message(response)

    def _reply_delta(self, response: dict[str, Any], draft: Draft, delta: str) -> None:
        self.output.message_delta(response, draft.reply, delta)

    def _close_reply(
        self, response: dict[str, Any], draft: Draft, turn: Turn, incomplete: bool
    ) -> None:
        # The message cites one image (the first the turn's code showed).
        image = draft.images[0] if draft.images else None
        self.output.close_message(response, draft.reply, turn, draft.files, image, incomplete)

    # -- endings -------------------------------------------------------------------------------
    def _save(self, response: dict[str, Any]) -> None:
        if response["store"]:
            self.store.put(response)

    def _finish(self, response: dict[str, Any], status: str) -> None:
        self._end(response, status)

    def _cancelled(self, response: dict[str, Any]) -> None:
        self._end(response, "cancelled")

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
            self.output.send_state(response, f"response.{status}")
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
    def _resume(self, response: dict[str, Any]) -> None:
        """Responses a restart interrupted fail, as runs do."""
        response.setdefault("_seq", 0)
        self._fail(response, "server_error", "The engine restarted while responding.")
