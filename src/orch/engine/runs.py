"""The run state machine: one asyncio task per executing run, events to SSE listeners.

Statuses follow OpenAI: ``queued → in_progress → (requires_action → queued → in_progress)*
→ completed | incomplete | failed``; ``cancel`` goes through ``cancelling`` to ``cancelled``;
a run left in ``requires_action`` past ``expires_at`` becomes ``expired``. While a run is not
terminal, the dict in :attr:`RunExecutor.live` is its source of truth (every transition is also
written to the store), and its thread has it as the one active run.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any

from orch.engine.errors import bad_request
from orch.engine.files import Files
from orch.engine.models.base import CodeCall, SearchCall, Turn, TurnContext, message_text
from orch.engine.sandbox import InputFile
from orch.engine.steps import Reply, StepWriter
from orch.engine.store import new_object, public
from orch.engine.turns import Draft, TurnExecutor, TurnServices

TERMINAL = frozenset({"cancelled", "failed", "completed", "incomplete", "expired"})
_STREAM_END = TERMINAL | {"requires_action"}


def _now() -> int:
    return int(time.time())


def searched_stores(assistant: dict[str, Any], thread: dict[str, Any]) -> list[str]:
    """The vector stores a run searches: the assistant's and the thread's."""
    ids: list[str] = []
    for owner in (assistant, thread):
        fs = ((owner or {}).get("tool_resources") or {}).get("file_search") or {}
        for vs in fs.get("vector_store_ids") or []:
            if vs not in ids:
                ids.append(vs)
    return ids


def code_file_ids(
    assistant: dict[str, Any], thread: dict[str, Any], messages: list[dict[str, Any]]
) -> list[str]:
    """The ids of the files a run's code interpreter sees, each once.

    They are the assistant's and the thread's ``tool_resources.code_interpreter`` files and
    the files attached to the thread's messages for the code interpreter.
    """
    ids: list[str] = []
    for owner in (assistant, thread):
        ci = ((owner or {}).get("tool_resources") or {}).get("code_interpreter") or {}
        ids += ci.get("file_ids") or []
    for message in messages:
        for attachment in message.get("attachments") or []:
            if any(t.get("type") == "code_interpreter" for t in attachment.get("tools") or []):
                ids.append(attachment["file_id"])
    return list(dict.fromkeys(ids))


class RunExecutor(TurnExecutor):
    """Creates, executes, cancels and expires runs; publishes their stream events."""

    kind = "run"
    crash_message = "The engine failed while processing the run: {}"
    unfinished = ("queued", "in_progress", "cancelling", "requires_action")

    def __init__(self, services: TurnServices, files: Files, expiry_seconds: float):
        super().__init__(services)
        self.expiry_seconds = expiry_seconds
        self.active: dict[str, str] = {}
        self.timers: dict[str, asyncio.TimerHandle] = {}
        self.steps = StepWriter(self.store, files, self.channels, self.model.name)
        self._emit = self.steps.emit

    # -- lookup --------------------------------------------------------------------------------
    def get(self, thread_id: str, run_id: str) -> dict[str, Any] | None:
        """The run (live version when executing), if it belongs to the thread."""
        run = self.live.get(run_id)
        if run is not None:
            return run if run["thread_id"] == thread_id else None
        return self.store.get("run", run_id, parent=thread_id)

    def active_run(self, thread_id: str) -> str | None:
        """The id of the thread's non-terminal run, if any."""
        return self.active.get(thread_id)

    def check_idle(self, thread_id: str) -> None:
        """400 unless the thread has no active run (OpenAI's wording)."""
        run_id = self.active.get(thread_id)
        if run_id is not None:
            raise bad_request(f"Thread {thread_id} already has an active run {run_id}.")

    # -- events --------------------------------------------------------------------------------
    def _emit_run(self, run: dict[str, Any]) -> None:
        rid = run["id"]
        self._emit(rid, "thread.run." + run["status"], run)
        if run["status"] in _STREAM_END:
            self.channels.close(rid)

    def _save(self, run: dict[str, Any]) -> None:
        self.store.put(run)

    # -- lifecycle -----------------------------------------------------------------------------
    def create(
        self, thread_id: str, assistant: dict[str, Any], params: dict[str, Any]
    ) -> dict[str, Any]:
        """Store a queued run (call :meth:`start` once listeners are attached)."""
        self.check_idle(thread_id)
        now = time.time()
        instructions = params.get("instructions")
        if instructions is None:
            instructions = assistant.get("instructions") or ""
        if params.get("additional_instructions"):
            instructions = (instructions + "\n\n" if instructions else "") + params[
                "additional_instructions"
            ]
        tools = params.get("tools")
        if tools is None:
            tools = assistant.get("tools") or []
        created = int(now)
        run: dict[str, Any] = new_object(
            "thread.run",
            created_at=created,
            assistant_id=assistant["id"],
            thread_id=thread_id,
            status="queued",
            started_at=None,
            expires_at=created + math.ceil(self.expiry_seconds),  # OpenAI: created_at + 600
            cancelled_at=None,
            failed_at=None,
            completed_at=None,
            required_action=None,
            last_error=None,
            model=params.get("model") or assistant["model"],
            instructions=instructions,
            tools=tools,
            metadata=params.get("metadata") or {},
            incomplete_details=None,
            usage=None,
            temperature=params.get("temperature", assistant.get("temperature", 1.0)),
            top_p=params.get("top_p", assistant.get("top_p", 1.0)),
            max_prompt_tokens=params.get("max_prompt_tokens"),
            max_completion_tokens=params.get("max_completion_tokens"),
            truncation_strategy=params.get("truncation_strategy")
            or {"type": "auto", "last_messages": None},
            response_format=params.get(
                "response_format", assistant.get("response_format") or "auto"
            ),
            tool_choice=params.get("tool_choice") or "auto",
            parallel_tool_calls=params.get("parallel_tool_calls", True),
            _usage=[0, 0],
            _open=[],
        )
        self.store.insert("run", run, parent=thread_id)
        self.live[run["id"]] = run
        self.active[thread_id] = run["id"]
        return run

    def start(self, run: dict[str, Any]) -> None:
        """Announce the queued run and schedule its execution."""
        self._emit(run["id"], "thread.run.created", run)
        self._emit_run(run)
        self._spawn(run)

    # -- the turn ------------------------------------------------------------------------------
    def _time_left(self, run: dict[str, Any]) -> float:
        # A run still working at expires_at expires, like one left in requires_action.
        return max(0.0, run["expires_at"] - time.time())

    def _timed_out(self, run: dict[str, Any], exc: TimeoutError) -> None:
        self.steps.close_open(run, "expired", "run_expired")
        self._terminate(run, "expired")

    def _begin(self, run: dict[str, Any]) -> None:
        run["status"] = "in_progress"
        if run["started_at"] is None:
            run["started_at"] = _now()
        self._save(run)
        self._emit_run(run)

    async def _context(self, run: dict[str, Any]) -> TurnContext:
        store = self.store
        assistant = store.get("assistant", run["assistant_id"]) or {
            "id": run["assistant_id"],
            "model": run["model"],
        }
        messages = [
            m for m in store.all("message", run["thread_id"]) if m.get("run_id") != run["id"]
        ]
        strategy = run.get("truncation_strategy") or {}
        if strategy.get("type") == "last_messages" and strategy.get("last_messages"):
            messages = messages[-strategy["last_messages"] :]
        user_text = next((message_text(m) for m in reversed(messages) if m["role"] == "user"), "")
        thread = store.get("thread", run["thread_id"]) or {}
        store_ids = searched_stores(assistant, thread)
        ctx = TurnContext(
            run=run,
            assistant=assistant,
            messages=messages,
            user_text=user_text,
            tool_outputs=run.get("_tool_outputs") or [],
            state=run.get("_model_state") or {},
            search=self._searcher(store_ids),
            load_file=lambda file_id: store.get_blob(file_id),
            max_output_tokens=self._budget(run),
        )
        if any(t.get("type") == "code_interpreter" for t in run.get("tools") or []):
            # One session per thread: the thread's runs share variables and files.
            files = self._input_files(code_file_ids(assistant, thread, messages))
            await self._offer_code(ctx, run["thread_id"], files)
        return ctx

    def _input_files(self, file_ids: list[str]) -> list[InputFile]:
        """The files, by id, as the sandbox places them (read only when placed)."""
        store = self.store
        found = []
        for file_id in file_ids:
            file = store.get("file", file_id)
            if file is not None:
                found.append(
                    InputFile(file["filename"], file_id, lambda f=file_id: store.get_blob(f))
                )
        return found

    @staticmethod
    def _budget(run: dict[str, Any]) -> int | None:
        """Completion tokens the run may still spend (its limit counts over all its turns)."""
        limit = run.get("max_completion_tokens")
        return max(1, limit - run["_usage"][1]) if limit else None

    def _count_usage(self, run: dict[str, Any], turn: Turn) -> bool:
        if turn.usage:
            run["_usage"][0] += turn.usage[0]
            run["_usage"][1] += turn.usage[1]
        prompt_limit = run.get("max_prompt_tokens")
        if prompt_limit and run["_usage"][0] > prompt_limit:
            self._finish(run, "incomplete", "max_prompt_tokens")
            return False
        return True

    def _write_code(self, run: dict[str, Any], code: CodeCall, draft: Draft) -> None:
        images, outputs = self.steps.write_code(run, code)
        draft.images += images
        draft.outputs.update(outputs)

    def _write_search(self, run: dict[str, Any], search: SearchCall) -> dict[str, str]:
        self.steps.write_search(run, search)
        return {}  # a run's reply cites by file id only

    def _over_limit(self, run: dict[str, Any], turn: Turn) -> bool:
        limit = run.get("max_completion_tokens")
        return turn.truncated or (bool(limit) and run["_usage"][1] > limit)

    def _cut(self, run: dict[str, Any], text: str) -> str:
        limit = run.get("max_completion_tokens")
        return text[: max(1, limit) * 4] if limit else text

    def _open_reply(self, run: dict[str, Any], draft: Draft) -> Reply:
        return self.steps.open_reply(run, draft.images, draft.outputs)

    def _reply_delta(self, run: dict[str, Any], draft: Draft, delta: str) -> None:
        self.steps.reply_delta(run, draft.reply, delta)

    def _close_reply(self, run: dict[str, Any], draft: Draft, turn: Turn, incomplete: bool) -> None:
        if incomplete:
            self._bill_cut_reply(run, turn)
        self.steps.close_reply(run, draft.reply, draft.streamed, turn, incomplete)

    @staticmethod
    def _bill_cut_reply(run: dict[str, Any], turn: Turn) -> None:
        """A reply cut at ``max_completion_tokens`` counts that many tokens, not what it cost.

        The run's and the message step's ``usage.completion_tokens`` never exceed the limit
        (the model may have produced more before the cut, as the scripted model does).
        """
        limit = run.get("max_completion_tokens")
        excess = run["_usage"][1] - limit if limit else 0
        if excess > 0:
            run["_usage"][1] = limit
            if turn.usage:
                turn.usage = (turn.usage[0], max(0, turn.usage[1] - excess))

    # -- tool calls ----------------------------------------------------------------------------
    def _write_calls(self, run: dict[str, Any], turn: Turn) -> None:
        """The run waits in ``requires_action`` for the outputs of the turn's function calls."""
        calls = self.steps.write_calls(run, turn)
        run["status"] = "requires_action"
        run["required_action"] = {
            "type": "submit_tool_outputs",
            "submit_tool_outputs": {
                "tool_calls": [
                    {
                        "id": c["id"],
                        "type": "function",
                        "function": {
                            "name": c["function"]["name"],
                            "arguments": c["function"]["arguments"],
                        },
                    }
                    for c in calls
                ]
            },
        }
        run["_model_state"] = turn.state
        run["_tool_outputs"] = None
        self._save(run)
        self._emit_run(run)
        self._arm_expiry(run)

    def _arm_expiry(self, run: dict[str, Any]) -> None:
        delay = max(0.0, run["expires_at"] - time.time())
        loop = asyncio.get_running_loop()
        self.timers[run["id"]] = loop.call_later(delay, self._expire, run)

    def _disarm_expiry(self, run_id: str) -> None:
        handle = self.timers.pop(run_id, None)
        if handle is not None:
            handle.cancel()

    def submit_tool_outputs(self, run: dict[str, Any], outputs: list[dict[str, Any]]) -> None:
        """Record the outputs of the pending function calls and resume the run."""
        if run["status"] != "requires_action":
            raise bad_request(f'Runs in status "{run["status"]}" do not accept tool outputs.')
        expected = [c["id"] for c in run["required_action"]["submit_tool_outputs"]["tool_calls"]]
        given = [o.get("tool_call_id") for o in outputs]
        unknown = [g for g in given if g not in expected]
        if unknown:
            raise bad_request(f"No tool call found with id '{unknown[0]}'.", "tool_outputs")
        missing = [e for e in expected if e not in given]
        if missing:
            raise bad_request(
                f"Expected tool outputs for call_ids {json.dumps(expected)}, "
                f"got {json.dumps(given)}",
                "tool_outputs",
            )
        self._disarm_expiry(run["id"])
        by_id = {o["tool_call_id"]: o.get("output") or "" for o in outputs}
        run["_tool_outputs"] = self.steps.record_outputs(run, by_id)
        run["status"] = "queued"
        run["required_action"] = None
        self._save(run)
        self._emit_run(run)
        self._spawn(run)

    # -- endings -------------------------------------------------------------------------------
    def _terminate(self, run: dict[str, Any], status: str) -> None:
        run["status"] = status
        run["required_action"] = None
        p, c = run.get("_usage") or (0, 0)
        run["usage"] = {"prompt_tokens": p, "completion_tokens": c, "total_tokens": p + c}
        if status != "expired":
            run["expires_at"] = None
        self.live.pop(run["id"], None)
        if self.active.get(run["thread_id"]) == run["id"]:
            del self.active[run["thread_id"]]
        self._disarm_expiry(run["id"])
        self._save(run)
        self._emit_run(run)

    def _finish(
        self, run: dict[str, Any], status: str, reason: str = "max_completion_tokens"
    ) -> None:
        if status == "completed":
            run["completed_at"] = _now()
        else:
            run["incomplete_details"] = {"reason": reason}
        self._terminate(run, status)

    def _fail(self, run: dict[str, Any], code: str, message: str) -> None:
        if run["status"] in TERMINAL:
            return
        error = {"code": code, "message": message}
        self.steps.close_open(run, "failed", "run_failed", error)
        run["failed_at"] = _now()
        run["last_error"] = error
        self._terminate(run, "failed")

    def _expire(self, run: dict[str, Any]) -> None:
        self.timers.pop(run["id"], None)
        if run["status"] != "requires_action":
            return
        self.steps.close_open(run, "expired", "run_expired")
        self._terminate(run, "expired")

    def cancel(self, run: dict[str, Any]) -> dict[str, Any]:
        """Ask a run to stop; it passes through ``cancelling`` to ``cancelled``."""
        if run["status"] not in ("queued", "in_progress", "requires_action"):
            raise bad_request(f"Cannot cancel run with status '{run['status']}'.")
        run["status"] = "cancelling"
        self._disarm_expiry(run["id"])
        self._save(run)
        self._emit_run(run)
        snapshot = public(run)
        task = self.tasks.get(run["id"])
        if task is not None:
            task.cancel()
        else:
            asyncio.get_running_loop().call_soon(self._cancelled, run)
        return snapshot

    def _cancelled(self, run: dict[str, Any]) -> None:
        if run["status"] in TERMINAL:
            return
        self.steps.close_open(run, "cancelled", "run_cancelled")
        run["cancelled_at"] = _now()
        self._terminate(run, "cancelled")

    # -- startup / shutdown --------------------------------------------------------------------
    def _resume(self, run: dict[str, Any]) -> None:
        """Waiting runs wait on, executing ones fail, cancelling ones are cancelled."""
        run.setdefault("_open", [])
        run.setdefault("_usage", [0, 0])
        self.live[run["id"]] = run
        self.active[run["thread_id"]] = run["id"]
        if run["status"] == "requires_action":
            self._arm_expiry(run)
        elif run["status"] == "cancelling":
            self._cancelled(run)
        else:
            self._fail(run, "server_error", "The engine restarted while this run was in progress.")

    async def close(self) -> None:
        """Stop executing runs and expiry timers without changing their stored state."""
        for handle in self.timers.values():
            handle.cancel()
        await super().close()
