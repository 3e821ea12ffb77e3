"""Run steps and assistant messages: what a run's turn writes, and the stream events it sends.

:class:`StepWriter` is the part of :class:`orch.engine.runs.RunExecutor` that writes: it stores
steps and messages and sends their ``thread.run.step.*`` / ``thread.message.*`` events (and,
through :meth:`StepWriter.emit`, the run's own). Objects a run has open (an in-progress step or
message) are tracked in ``run["_open"]`` so a cancel, failure or expiry can close them.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from orch.engine.files import Files
from orch.engine.messages import new_message
from orch.engine.models.base import Citation, CodeCall, SearchCall, Turn
from orch.engine.retrieval import result_entry
from orch.engine.sse import Channels, encode_event, pieces
from orch.engine.store import Store, new_id, new_object, public


def _now() -> int:
    return int(time.time())


@dataclass
class Reply:
    """An assistant message being streamed: the message, its step, the blocks before its text.

    ``outputs`` (``{path the model was told: file id}``) are the files the turn's code wrote:
    the message gets them as attachments, and a ``file_path`` annotation where its text links
    one (``sandbox:/mnt/data/report.csv``).
    """

    msg: dict[str, Any]
    step: dict[str, Any]
    content: list[dict[str, Any]] = field(default_factory=list)
    started: bool = False
    text: list[str] = field(default_factory=list)  # the pieces streamed so far
    outputs: dict[str, str] = field(default_factory=dict)


def _annotations(citations: list[Citation], text_length: int) -> list[dict[str, Any]]:
    """The reply's ``file_citation`` annotations that fall inside its (maybe cut) text."""
    return [
        {
            "type": "file_citation",
            "text": c.marker,
            "start_index": c.start,
            "end_index": c.end,
            "file_citation": {"file_id": c.file_id},
        }
        for c in citations
        if c.end <= text_length
    ]


def _file_paths(outputs: dict[str, str], text: str) -> list[dict[str, Any]]:
    """``file_path`` annotations where the text links a file the code wrote, in text order."""
    found = []
    for path, file_id in outputs.items():
        link = f"sandbox:{path}"
        start = text.find(link)
        while start >= 0:
            end = start + len(link)
            annotation = {"type": "file_path", "text": link, "start_index": start}
            found.append({**annotation, "end_index": end, "file_path": {"file_id": file_id}})
            start = text.find(link, end)
    return sorted(found, key=lambda a: a["start_index"])


class StepWriter:
    """Creates a run's steps and messages, with their stream events."""

    def __init__(self, store: Store, files: Files, channels: Channels, model_name: str):
        self.store = store
        self.files = files
        self.channels = channels
        self.model_name = model_name
        # Replies being streamed, by message id: a run ended mid-reply keeps what was sent.
        self.streaming: dict[str, Reply] = {}

    # -- events --------------------------------------------------------------------------------
    def emit(self, run_id: str, event: str, data: dict[str, Any]) -> None:
        """Send one event of the run to its listeners (engine-private keys stripped)."""
        if run_id in self.channels.listeners:
            self.channels.send(run_id, encode_event(event, public(data)))

    def _step_delta(
        self, run: dict[str, Any], step: dict[str, Any], tool_calls: list[dict[str, Any]]
    ) -> None:
        if run["id"] in self.channels.listeners:
            self.emit(
                run["id"],
                "thread.run.step.delta",
                {
                    "id": step["id"],
                    "object": "thread.run.step.delta",
                    "delta": {"step_details": {"type": "tool_calls", "tool_calls": tool_calls}},
                },
            )

    def _message_delta(self, run_id: str, msg_id: str, content: list[dict[str, Any]]) -> None:
        self.emit(
            run_id,
            "thread.message.delta",
            {"id": msg_id, "object": "thread.message.delta", "delta": {"content": content}},
        )

    # -- steps ---------------------------------------------------------------------------------
    def open_step(self, run: dict[str, Any], kind: str, details: dict[str, Any]) -> dict[str, Any]:
        """Store an in-progress step of the run and announce it."""
        step = new_object(
            "thread.run.step",
            created_at=_now(),
            run_id=run["id"],
            assistant_id=run["assistant_id"],
            thread_id=run["thread_id"],
            type=kind,
            status="in_progress",
            cancelled_at=None,
            completed_at=None,
            expired_at=None,
            failed_at=None,
            last_error=None,
            step_details=details,
            usage=None,
            metadata={},
        )
        self.store.insert("step", step, parent=run["id"])
        run["_open"].append(["step", step["id"]])
        self.emit(run["id"], "thread.run.step.created", step)
        self.emit(run["id"], "thread.run.step.in_progress", step)
        return step

    def close_step(
        self, run: dict[str, Any], step: dict[str, Any], usage: tuple[int, int] | None = None
    ) -> None:
        """Complete a step (with the turn's token usage, for a message step)."""
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
        self.emit(run["id"], "thread.run.step.completed", step)

    @staticmethod
    def _drop_open(run: dict[str, Any], object_id: str) -> None:
        run["_open"] = [o for o in run["_open"] if o[1] != object_id]

    def _tool_step(self, run: dict[str, Any]) -> dict[str, Any]:
        return self.open_step(run, "tool_calls", {"type": "tool_calls", "tool_calls": []})

    def write_code(self, run: dict[str, Any], code: CodeCall) -> tuple[list[str], dict[str, str]]:
        """A completed code-interpreter step, its images and files stored as engine files.

        Each image becomes a file (purpose ``assistants_output``) and an ``image`` output;
        each file the code wrote becomes a file of the same purpose. Returns the image file
        ids and ``{path the model was told: file id}`` of the written files.
        """
        step = self._tool_step(run)
        call_id = new_id("call")
        outputs: list[dict[str, Any]] = []
        if code.logs is not None:
            outputs.append({"type": "logs", "logs": code.logs})
        image_ids = []
        for image in code.images:
            image_ids.append(self.files.create(image, "image.png", "assistants_output")["id"])
            outputs.append({"type": "image", "image": {"file_id": image_ids[-1]}})
        written = {}
        for file in code.files:
            name = file.name.rsplit("/", 1)[-1]
            written[file.path] = self.files.create(file.content, name, "assistants_output")["id"]
        opened = {"index": 0, "id": call_id, "type": "code_interpreter"}
        self._step_delta(run, step, [{**opened, "code_interpreter": {"input": "", "outputs": []}}])
        head = {"index": 0, "type": "code_interpreter"}
        for piece in pieces(code.input, 64):
            self._step_delta(run, step, [{**head, "code_interpreter": {"input": piece}}])
        if outputs:
            indexed = [dict(o, index=i) for i, o in enumerate(outputs)]
            self._step_delta(run, step, [{**head, "code_interpreter": {"outputs": indexed}}])
        step["step_details"]["tool_calls"] = [
            {
                "id": call_id,
                "type": "code_interpreter",
                "code_interpreter": {"input": code.input, "outputs": outputs},
            }
        ]
        self.close_step(run, step)
        return image_ids, written

    def write_search(self, run: dict[str, Any], search: SearchCall) -> None:
        """A completed file_search step with its results."""
        step = self._tool_step(run)
        call = {
            "id": new_id("call"),
            "type": "file_search",
            "file_search": {
                "ranking_options": search.ranking_options,
                "results": [result_entry(h, with_content=True) for h in search.hits],
            },
        }
        self._step_delta(
            run, step, [{"index": 0, "id": call["id"], "type": "file_search", "file_search": {}}]
        )
        step["step_details"]["tool_calls"] = [call]
        self.close_step(run, step)

    def write_calls(self, run: dict[str, Any], turn: Turn) -> list[dict[str, Any]]:
        """An open step with the turn's function calls (it completes with their outputs)."""
        step = self._tool_step(run)
        calls = []
        for i, fc in enumerate(turn.tool_calls):
            call = {
                "id": new_id("call"),
                "type": "function",
                "function": {"name": fc.name, "arguments": fc.arguments, "output": None},
            }
            calls.append(call)
            opened = {"name": fc.name, "arguments": "", "output": None}
            self._step_delta(
                run, step, [{"index": i, "id": call["id"], "type": "function", "function": opened}]
            )
            self._step_delta(
                run,
                step,
                [{"index": i, "type": "function", "function": {"arguments": fc.arguments}}],
            )
        step["step_details"]["tool_calls"] = calls
        self.store.put(step)
        run["_pending_step"] = step["id"]
        return calls

    def record_outputs(self, run: dict[str, Any], outputs: dict[str, str]) -> list[dict[str, Any]]:
        """Complete the pending function-call step with the outputs (by call id).

        Returns the calls with their outputs, as the model reads them on the next turn.
        """
        step = self.store.get("step", run["_pending_step"])
        recorded = []
        if step is not None:
            for call in step["step_details"]["tool_calls"]:
                call["function"]["output"] = outputs.get(call["id"], "")
                recorded.append(
                    {
                        "tool_call_id": call["id"],
                        "name": call["function"]["name"],
                        "arguments": call["function"]["arguments"],
                        "output": call["function"]["output"],
                    }
                )
            self.close_step(run, step)
        return recorded

    # -- the reply -----------------------------------------------------------------------------
    def open_reply(
        self,
        run: dict[str, Any],
        image_ids: list[str] | None = None,
        outputs: dict[str, str] | None = None,
    ) -> Reply:
        """Open the assistant message of a turn, in its message-creation step, for streaming.

        The images the turn's code made are the message's first blocks, sent at once; the
        files it wrote (``outputs``) are the message's attachments.
        """
        outputs = dict(outputs or {})
        tools = [{"type": "code_interpreter"}]
        msg = new_message(
            run["thread_id"],
            "assistant",
            [],
            assistant_id=run["assistant_id"],
            run_id=run["id"],
            attachments=[{"file_id": f, "tools": tools} for f in outputs.values()],
            metadata={},  # the client's to set: OpenAI returns {} (the run names the model)
            done=False,
        )
        step = self.open_step(
            run,
            "message_creation",
            {"type": "message_creation", "message_creation": {"message_id": msg["id"]}},
        )
        self._open_message(run, msg)
        reply = Reply(msg, step, outputs=outputs)
        self.streaming[msg["id"]] = reply
        for image_id in image_ids or []:
            block = {"type": "image_file", "image_file": {"file_id": image_id, "detail": "auto"}}
            index = len(reply.content)
            self._message_delta(run["id"], msg["id"], [dict(block, index=index)])
            reply.content.append(block)
        return reply

    def reply_delta(self, run: dict[str, Any], reply: Reply, piece: str) -> None:
        """Send one piece of the reply's text as a ``thread.message.delta``."""
        delta: dict[str, Any] = {
            "index": len(reply.content),
            "type": "text",
            "text": {"value": piece},
        }
        if not reply.started:
            delta["text"]["annotations"] = []
            reply.started = True
        reply.text.append(piece)
        self._message_delta(run["id"], reply.msg["id"], [delta])

    def close_reply(
        self, run: dict[str, Any], reply: Reply, text: str, turn: Turn, incomplete: bool
    ) -> None:
        """Complete the reply with ``text`` (what was streamed) and ``turn``'s citations.

        ``incomplete`` (the output limit was reached) ends the message ``incomplete``.
        """
        annotations = _annotations(turn.citations, len(text)) + _file_paths(reply.outputs, text)
        if annotations:
            indexed = [dict(a, index=j) for j, a in enumerate(annotations)]
            delta = {"index": len(reply.content), "type": "text", "text": {"annotations": indexed}}
            self._message_delta(run["id"], reply.msg["id"], [delta])
        content = [
            *reply.content,
            {"type": "text", "text": {"value": text, "annotations": annotations}},
        ]
        self.streaming.pop(reply.msg["id"], None)
        self._close_message(run, reply.msg, content, incomplete)
        self.close_step(run, reply.step, turn.usage)

    def _open_message(self, run: dict[str, Any], msg: dict[str, Any]) -> None:
        self.store.insert("message", msg, parent=run["thread_id"])
        run["_open"].append(["message", msg["id"]])
        self.emit(run["id"], "thread.message.created", msg)
        self.emit(run["id"], "thread.message.in_progress", msg)

    def _close_message(
        self,
        run: dict[str, Any],
        msg: dict[str, Any],
        content: list[dict[str, Any]],
        incomplete: bool,
    ) -> None:
        msg["content"] = content
        if incomplete:
            msg["status"] = "incomplete"
            msg["incomplete_at"] = _now()
            msg["incomplete_details"] = {"reason": "max_tokens"}
        else:
            msg["status"] = "completed"
            msg["completed_at"] = _now()
        self.store.put(msg)
        self._drop_open(run, msg["id"])
        event = "thread.message.incomplete" if incomplete else "thread.message.completed"
        self.emit(run["id"], event, msg)

    # -- endings -------------------------------------------------------------------------------
    def close_open(
        self,
        run: dict[str, Any],
        step_status: str,
        message_reason: str,
        error: dict[str, Any] | None = None,
    ) -> None:
        """End what the run left open: steps get ``step_status``, messages go incomplete."""
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
                self.emit(run["id"], f"thread.run.step.{step_status}", obj)
            elif kind == "message" and obj["status"] == "in_progress":
                reply = self.streaming.pop(object_id, None)
                if reply is not None:  # the text the client saw stays in the message
                    text = {"value": "".join(reply.text), "annotations": []}
                    obj["content"] = [*reply.content, {"type": "text", "text": text}]
                obj["status"] = "incomplete"
                obj["incomplete_at"] = now
                obj["incomplete_details"] = {"reason": message_reason}
                self.store.put(obj)
                self.emit(run["id"], "thread.message.incomplete", obj)
        run["_open"] = []
