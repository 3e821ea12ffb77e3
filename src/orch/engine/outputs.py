"""A response's output items and the stream events that build them.

:class:`OutputWriter` is the part of :class:`orch.engine.responding.ResponseExecutor` that
writes: it appends code-interpreter, file-search, function-call and message items to
``response["output"]`` and sends their ``response.*`` events, each with the response's next
``sequence_number``.
"""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from typing import Any

from orch.engine.containers import Containers
from orch.engine.models.base import CodeCall, SearchCall, Turn
from orch.engine.sse import Channels, encode_event, pieces
from orch.engine.store import Store, new_id, public

_MARKER = re.compile(r" ?【\d+:\d+†[^】]*】")


class MarkerFilter:
    """Takes 【i:j†file】 citation markers out of text that arrives in pieces.

    The Responses API cites by position, not by marker; a space before a marker goes with it.
    :meth:`feed` returns what can be sent now; a piece that may begin a marker (a space, an
    unclosed 【) waits for the next. :attr:`text` is everything returned so far and
    :attr:`positions` where each marker stood in it (with the marker). Trailing whitespace
    is dropped when the text had markers (a reply ending in its citations ends with a word).
    """

    #: a held piece longer than this is not a marker after all
    LONGEST_MARKER = 200

    def __init__(self) -> None:
        self.held = ""
        self.text = ""
        self.positions: list[tuple[int, str]] = []  # (where, the marker)

    def feed(self, piece: str) -> str:
        """The part of ``piece`` (and what was held) that is clean text for sure."""
        buf = self.held + piece
        out: list[str] = []
        last = 0
        for match in _MARKER.finditer(buf):
            out.append(buf[last : match.start()])
            where = len(self.text) + sum(map(len, out))
            self.positions.append((where, match.group().lstrip(" ")))
            last = match.end()
        rest = buf[last:]
        keep = _held_suffix(rest)
        self.held = rest[len(rest) - keep :] if keep else ""
        out.append(rest[: len(rest) - keep])
        clean = "".join(out)
        self.text += clean
        return clean

    def finish(self) -> str:
        """What was held back, now that no more text comes."""
        rest, self.held = self.held, ""
        if self.positions:
            rest = rest.rstrip()
            end = len(self.text) + len(rest)
            self.positions = [(min(p, end), marker) for p, marker in self.positions]
        self.text += rest
        return rest


def _held_suffix(text: str) -> int:
    """How many trailing characters of ``text`` may still turn into (the space before) a marker."""
    opening = text.rfind("【")
    if opening >= 0 and "】" not in text[opening:]:
        if len(text) - opening <= MarkerFilter.LONGEST_MARKER:
            start = opening - 1 if text[opening - 1 : opening] == " " else opening
            return len(text) - start
    return len(text) - len(text.rstrip())


@dataclass
class MessageDraft:
    """A message item being streamed: the item, where it is, and its marker filter."""

    item: dict[str, Any]
    index: int
    markers: MarkerFilter = field(default_factory=MarkerFilter)

    @property
    def ref(self) -> dict[str, Any]:
        """The fields naming the item's text in its events."""
        return {"item_id": self.item["id"], "output_index": self.index, "content_index": 0}


class OutputWriter:
    """Writes a response's output items and sends its stream events."""

    def __init__(self, store: Store, containers: Containers, channels: Channels):
        self.store = store
        self.containers = containers
        self.channels = channels

    # -- events --------------------------------------------------------------------------------
    def send(self, target: dict[str, Any], kind: str, **data: Any) -> None:
        """Number one event of the response and send it to its listeners, if any."""
        # ``target`` is the response; event fields may themselves be called "response".
        target["_seq"] += 1
        rid = target["id"]
        if rid in self.channels.listeners:
            data = {"type": kind, **data, "sequence_number": target["_seq"]}
            self.channels.send(rid, encode_event(kind, data))

    def send_state(self, response: dict[str, Any], kind: str) -> None:
        """Send an event carrying the whole response (``response.created``, ...)."""
        self.send(response, kind, response=public(response))

    # -- output items --------------------------------------------------------------------------
    def _open_item(self, response: dict[str, Any], item: dict[str, Any]) -> int:
        response["output"].append(item)
        index = len(response["output"]) - 1
        self.send(response, "response.output_item.added", output_index=index, item=item)
        return index

    def _close_item(self, response: dict[str, Any], index: int, item: dict[str, Any]) -> None:
        response["output"][index] = item
        self.send(response, "response.output_item.done", output_index=index, item=item)

    def write_code(self, response: dict[str, Any], code: CodeCall) -> dict[str, Any] | None:
        """A code_interpreter_call item; returns the citation of the image it made, if any."""
        container_id = self.containers.for_response(response)
        item_id = new_id("ci")
        base = {"id": item_id, "type": "code_interpreter_call", "container_id": container_id}
        index = self._open_item(
            response, {**base, "status": "in_progress", "code": "", "outputs": None}
        )
        ref = {"item_id": item_id, "output_index": index}
        self.send(response, "response.code_interpreter_call.in_progress", **ref)
        for piece in pieces(code.input, 64):
            self.send(response, "response.code_interpreter_call_code.delta", delta=piece, **ref)
        self.send(response, "response.code_interpreter_call_code.done", code=code.input, **ref)
        self.send(response, "response.code_interpreter_call.interpreting", **ref)
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
        self.send(response, "response.code_interpreter_call.completed", **ref)
        shown = outputs if "code_interpreter_call.outputs" in response["_include"] else None
        self._close_item(
            response, index, {**base, "status": "completed", "code": code.input, "outputs": shown}
        )
        return cited

    def write_search(self, response: dict[str, Any], search: SearchCall) -> dict[str, str]:
        """A file_search_call item; returns ``{file id: filename}`` of its hits."""
        item_id = new_id("fs")
        base = {"id": item_id, "type": "file_search_call", "queries": [search.query]}
        index = self._open_item(response, {**base, "status": "in_progress", "results": None})
        ref = {"item_id": item_id, "output_index": index}
        for stage in ("in_progress", "searching", "completed"):
            self.send(response, f"response.file_search_call.{stage}", **ref)
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

    def write_calls(self, response: dict[str, Any], turn: Turn) -> None:
        """A function_call item for each call of the turn."""
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
            self.send(response, "response.function_call_arguments.delta", delta=fc.arguments, **ref)
            self.send(
                response, "response.function_call_arguments.done", arguments=fc.arguments, **ref
            )
            self._close_item(
                response, index, {**item, "arguments": fc.arguments, "status": "completed"}
            )
            # The continuation (the next request's function_call_output) finds the model's
            # private state by call id, whether it comes by conversation or previous response.
            self.store.insert("call_state", {"id": call_id, "state": turn.state})

    def open_message(self, response: dict[str, Any]) -> MessageDraft:
        """Add the assistant message item, in progress, ready for its text deltas."""
        item = {
            "id": new_id("msg"),
            "type": "message",
            "role": "assistant",
            "status": "in_progress",
            "content": [],
        }
        index = self._open_item(response, item)
        draft = MessageDraft(item, index)
        empty = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
        self.send(response, "response.content_part.added", part=empty, **draft.ref)
        return draft

    def message_delta(self, response: dict[str, Any], draft: MessageDraft, delta: str) -> None:
        """Send a piece of the message's text, its citation markers taken out."""
        clean = draft.markers.feed(delta)
        # The item shows its text so far: a response cancelled now keeps what was sent.
        part = {"type": "output_text", "text": draft.markers.text, "annotations": []}
        draft.item["content"] = [{**part, "logprobs": []}]
        if clean:
            self.send(response, "response.output_text.delta", delta=clean, logprobs=[], **draft.ref)

    def close_message(
        self,
        response: dict[str, Any],
        draft: MessageDraft,
        turn: Turn,
        files: dict[str, str],
        cited_image: dict[str, Any] | None,
        incomplete: bool,
    ) -> None:
        """Complete the message: the rest of its text, its annotations, its ``done`` events.

        ``files`` names the cited files; ``incomplete`` (the output limit was reached) ends
        the item ``incomplete``.
        """
        tail = draft.markers.finish()
        if tail:
            self.send(response, "response.output_text.delta", delta=tail, logprobs=[], **draft.ref)
        text = draft.markers.text
        annotations = _annotations(turn, draft.markers.positions, files, cited_image, len(text))
        for i, annotation in enumerate(annotations):
            self.send(
                response,
                "response.output_text.annotation.added",
                annotation_index=i,
                annotation=annotation,
                **draft.ref,
            )
        self.send(response, "response.output_text.done", text=text, logprobs=[], **draft.ref)
        part = {"type": "output_text", "text": text, "annotations": annotations, "logprobs": []}
        self.send(response, "response.content_part.done", part=part, **draft.ref)
        status = "incomplete" if incomplete else "completed"
        self._close_item(response, draft.index, {**draft.item, "status": status, "content": [part]})


def _annotations(
    turn: Turn,
    positions: list[tuple[int, str]],
    files: dict[str, str],
    cited_image: dict[str, Any] | None,
    length: int,
) -> list[dict[str, Any]]:
    """The reply's annotations: a ``file_citation`` where each cited marker stood, then the image.

    A marker no citation of the turn names (a model's invention) is dropped without one.
    """
    by_marker = {c.marker: c for c in turn.citations}
    annotations: list[dict[str, Any]] = [
        {
            "type": "file_citation",
            "file_id": by_marker[marker].file_id,
            "filename": files.get(by_marker[marker].file_id, by_marker[marker].file_id),
            "index": min(pos, length),
        }
        for pos, marker in positions
        if marker in by_marker
    ]
    if cited_image is not None:
        span = {"start_index": length, "end_index": length}
        annotations.append({"type": "container_file_citation", **cited_image, **span})
    return annotations
