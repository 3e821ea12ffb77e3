"""Run steps and assistant messages: what a turn writes, and the stream events it sends.

:class:`StepWriter` is mixed into :class:`orch.engine.runs.RunExecutor`; it relies on the
executor's ``store``, ``model``, ``files``, ``listeners`` and ``_emit``. Objects a run has open (an
in-progress step or message) are tracked in ``run["_open"]`` so a cancel, failure or expiry can
close them.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from orch.engine.files import Files
from orch.engine.models.base import CodeCall, Model, SearchCall, Turn
from orch.engine.retrieval import result_entry
from orch.engine.store import Store, new_id

_DELTA_CHARS = 24


def _now() -> int:
    return int(time.time())


def pieces(text: str, size: int = _DELTA_CHARS) -> list[str]:
    """Split text into stream deltas of about ``size`` characters, at spaces where possible."""
    out = []
    start = 0
    while start < len(text):
        end = min(len(text), start + size)
        if end < len(text):
            cut = text.find(" ", end)
            end = cut + 1 if 0 <= cut < end + size else end
        out.append(text[start:end])
        start = end
    return out


class StepWriter:
    """Creates run steps and messages for a run, with their stream events."""

    store: Store
    model: Model
    files: Files
    listeners: dict[str, list[Any]]
    _emit: Callable[[str, str, dict[str, Any]], None]

    def _new_step(self, run: dict[str, Any], kind: str, details: dict[str, Any]) -> dict[str, Any]:
        step = {
            "id": new_id("step"),
            "object": "thread.run.step",
            "created_at": _now(),
            "run_id": run["id"],
            "assistant_id": run["assistant_id"],
            "thread_id": run["thread_id"],
            "type": kind,
            "status": "in_progress",
            "cancelled_at": None,
            "completed_at": None,
            "expired_at": None,
            "failed_at": None,
            "last_error": None,
            "step_details": details,
            "usage": None,
            "metadata": {},
        }
        self.store.insert("step", step, parent=run["id"])
        run["_open"].append(["step", step["id"]])
        self._emit(run["id"], "thread.run.step.created", step)
        self._emit(run["id"], "thread.run.step.in_progress", step)
        return step

    def _step_delta(
        self, run: dict[str, Any], step: dict[str, Any], tool_calls: list[dict[str, Any]]
    ) -> None:
        if run["id"] in self.listeners:
            self._emit(
                run["id"],
                "thread.run.step.delta",
                {
                    "id": step["id"],
                    "object": "thread.run.step.delta",
                    "delta": {"step_details": {"type": "tool_calls", "tool_calls": tool_calls}},
                },
            )

    def _close_step(
        self, run: dict[str, Any], step: dict[str, Any], usage: tuple[int, int] | None = None
    ) -> None:
        step["status"] = "completed"
        step["completed_at"] = _now()
        if usage is not None:
            step["usage"] = {
                "prompt_tokens": usage[0],
                "completion_tokens": usage[1],
                "total_tokens": sum(usage),
            }
        self.store.put(step)
        self._drop_open(run, step["id"])
        self._emit(run["id"], "thread.run.step.completed", step)

    @staticmethod
    def _drop_open(run: dict[str, Any], object_id: str) -> None:
        run["_open"] = [o for o in run["_open"] if o[1] != object_id]

    def _code_step(self, run: dict[str, Any], code: CodeCall) -> str | None:
        step = self._new_step(run, "tool_calls", {"type": "tool_calls", "tool_calls": []})
        call_id = new_id("call")
        outputs: list[dict[str, Any]] = []
        image_id = None
        if code.logs is not None:
            outputs.append({"type": "logs", "logs": code.logs})
        if code.image is not None:
            image_id = self.files.create(code.image, "image.png", "assistants_output")["id"]
            outputs.append({"type": "image", "image": {"file_id": image_id}})
        self._step_delta(
            run,
            step,
            [
                {
                    "index": 0,
                    "id": call_id,
                    "type": "code_interpreter",
                    "code_interpreter": {"input": "", "outputs": []},
                }
            ],
        )
        for piece in pieces(code.input, 64):
            self._step_delta(
                run,
                step,
                [{"index": 0, "type": "code_interpreter", "code_interpreter": {"input": piece}}],
            )
        if outputs:
            self._step_delta(
                run,
                step,
                [
                    {
                        "index": 0,
                        "type": "code_interpreter",
                        "code_interpreter": {
                            "outputs": [dict(o, index=i) for i, o in enumerate(outputs)]
                        },
                    }
                ],
            )
        step["step_details"]["tool_calls"] = [
            {
                "id": call_id,
                "type": "code_interpreter",
                "code_interpreter": {"input": code.input, "outputs": outputs},
            }
        ]
        self._close_step(run, step)
        return image_id

    def _search_step(self, run: dict[str, Any], search: SearchCall) -> None:
        step = self._new_step(run, "tool_calls", {"type": "tool_calls", "tool_calls": []})
        call = {
            "id": new_id("call"),
            "type": "file_search",
            "file_search": {
                "ranking_options": {"ranker": "default_2024_08_21", "score_threshold": 0.0},
                "results": [result_entry(h, with_content=True) for h in search.hits],
            },
        }
        self._step_delta(
            run, step, [{"index": 0, "id": call["id"], "type": "file_search", "file_search": {}}]
        )
        step["step_details"]["tool_calls"] = [call]
        self._close_step(run, step)

    def _reply(
        self, run: dict[str, Any], turn: Turn, image_id: str | None, incomplete: bool
    ) -> None:
        rid = run["id"]
        msg_id = new_id("msg")
        step = self._new_step(
            run,
            "message_creation",
            {"type": "message_creation", "message_creation": {"message_id": msg_id}},
        )
        msg: dict[str, Any] = {
            "id": msg_id,
            "object": "thread.message",
            "created_at": _now(),
            "assistant_id": run["assistant_id"],
            "thread_id": run["thread_id"],
            "run_id": rid,
            "role": "assistant",
            "content": [],
            "attachments": [],
            "metadata": {"orch_model": self.model.name},
            "status": "in_progress",
            "completed_at": None,
            "incomplete_at": None,
            "incomplete_details": None,
        }
        self.store.insert("message", msg, parent=run["thread_id"])
        run["_open"].append(["message", msg_id])
        self._emit(rid, "thread.message.created", msg)
        self._emit(rid, "thread.message.in_progress", msg)
        streaming = rid in self.listeners
        content: list[dict[str, Any]] = []
        if image_id is not None:
            block = {"type": "image_file", "image_file": {"file_id": image_id, "detail": "auto"}}
            if streaming:
                self._message_delta(rid, msg_id, [dict(block, index=0)])
            content.append(block)
        text = turn.text or ""
        if incomplete and run.get("max_completion_tokens"):
            text = text[: max(1, run["max_completion_tokens"]) * 4]
        annotations = [
            {
                "type": "file_citation",
                "text": c.marker,
                "start_index": c.start,
                "end_index": c.end,
                "file_citation": {"file_id": c.file_id},
            }
            for c in turn.citations
            if c.end <= len(text)
        ]
        index = len(content)
        if streaming:
            for i, piece in enumerate(pieces(text) or [""]):
                block = {"index": index, "type": "text", "text": {"value": piece}}
                if i == 0:
                    block["text"]["annotations"] = []
                self._message_delta(rid, msg_id, [block])
            if annotations:
                self._message_delta(
                    rid,
                    msg_id,
                    [
                        {
                            "index": index,
                            "type": "text",
                            "text": {
                                "annotations": [dict(a, index=j) for j, a in enumerate(annotations)]
                            },
                        }
                    ],
                )
        content.append({"type": "text", "text": {"value": text, "annotations": annotations}})
        msg["content"] = content
        if incomplete:
            msg["status"] = "incomplete"
            msg["incomplete_at"] = _now()
            msg["incomplete_details"] = {"reason": "max_tokens"}
        else:
            msg["status"] = "completed"
            msg["completed_at"] = _now()
        self.store.put(msg)
        self._drop_open(run, msg_id)
        self._emit(
            rid, "thread.message.incomplete" if incomplete else "thread.message.completed", msg
        )
        self._close_step(run, step, turn.usage)

    def _message_delta(self, run_id: str, msg_id: str, content: list[dict[str, Any]]) -> None:
        self._emit(
            run_id,
            "thread.message.delta",
            {"id": msg_id, "object": "thread.message.delta", "delta": {"content": content}},
        )

    def _close_open(
        self,
        run: dict[str, Any],
        step_status: str,
        message_reason: str,
        error: dict[str, Any] | None = None,
    ) -> None:
        now = _now()
        for kind, object_id in run.get("_open", []):
            obj = self.store.get(kind, object_id)
            if obj is None:
                continue
            if kind == "step" and obj["status"] == "in_progress":
                obj["status"] = step_status
                obj[f"{step_status}_at"] = now
                if error is not None:
                    obj["last_error"] = error
                self.store.put(obj)
                self._emit(run["id"], f"thread.run.step.{step_status}", obj)
            elif kind == "message" and obj["status"] == "in_progress":
                obj["status"] = "incomplete"
                obj["incomplete_at"] = now
                obj["incomplete_details"] = {"reason": message_reason}
                self.store.put(obj)
                self._emit(run["id"], "thread.message.incomplete", obj)
        run["_open"] = []
