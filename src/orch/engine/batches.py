"""The Batch API: a JSONL file of requests, executed line by line, answered as two JSONL files.

A batch (OpenAI's ``Batch`` object, ``completion_window: "24h"``) goes ``validating`` →
``in_progress`` → ``finalizing`` → ``completed``; an input file that cannot be read as
requests ends it ``failed`` (``errors`` name the lines), a cancel goes ``cancelling`` →
``cancelled`` and one past ``expires_at`` (created + 24 h) ends ``expired``. Each line is
sent through the engine's own route for the batch's ``endpoint`` by a ``send`` callable the
HTTP layer supplies, so a line is validated and answered exactly as the same request sent
alone. Answers with a 2xx go to the output file, the others (and lines never sent, after a
cancel or expiry) to the error file, both ``batch_output`` files in the input's order.

Each line's answer is stored as soon as it arrives (a ``batch_line`` under the batch), so an
engine restarted mid-batch (:meth:`Batches.recover`) sends only the lines still unanswered.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from typing import Any

from orch.engine.errors import ApiError, bad_request, invalid_choice
from orch.engine.files import Files
from orch.engine.store import Store, child_key, new_id

ENDPOINTS = ("/v1/responses",)
#: every endpoint OpenAI batches; the engine executes only :data:`ENDPOINTS`
KNOWN_ENDPOINTS = (
    "/v1/responses",
    "/v1/chat/completions",
    "/v1/embeddings",
    "/v1/completions",
    "/v1/moderations",
    "/v1/images/generations",
    "/v1/images/edits",
    "/v1/videos",
)
WINDOW_SECONDS = 24 * 3600
TERMINAL = frozenset({"failed", "completed", "expired", "cancelled"})
#: lines in flight at once: a batch must not crowd out the engine's interactive requests
LINE_CONCURRENCY = 8
MAX_LINES = 50_000

#: ``send(url, body) -> (status code, JSON body, request id)``
Sender = Callable[[str, dict[str, Any]], Awaitable[tuple[int, Any, str]]]


class BatchInputError(Exception):
    """The input file cannot be read as batch requests: the batch fails with these errors."""

    def __init__(self, errors: list[dict[str, Any]]):
        super().__init__(errors[0]["message"])
        self.errors = errors


def parse_lines(content: bytes, endpoint: str) -> list[dict[str, Any]]:
    """The requests of an input file; :class:`BatchInputError` naming every bad line.

    Each line is ``{"custom_id", "method": "POST", "url": <the batch's endpoint>, "body"}``
    with ``custom_id`` unique in the file.
    """
    lines, errors, seen = [], [], set()
    for number, raw in enumerate(content.decode("utf-8", "replace").splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            line = json.loads(raw)
        except json.JSONDecodeError:
            line = None
        problem = _line_problem(line, endpoint, seen)
        if problem is not None:
            code, message, param = problem
            errors.append({"code": code, "line": number, "message": message, "param": param})
            continue
        seen.add(line["custom_id"])
        lines.append(line)
    if not lines and not errors:
        errors.append(
            {"code": "empty_file", "line": None, "message": "The file is empty.", "param": None}
        )
    if len(lines) > MAX_LINES:
        message = f"The batch has {len(lines)} requests; the limit is {MAX_LINES}."
        errors.append(
            {"code": "too_many_requests", "line": None, "message": message, "param": None}
        )
    if errors:
        raise BatchInputError(errors)
    return lines


def _line_problem(line: Any, endpoint: str, seen: set[str]) -> tuple[str, str, str | None] | None:
    if not isinstance(line, dict):
        return "invalid_json_line", "This line is not parseable as valid JSON.", None
    custom_id = line.get("custom_id")
    if not isinstance(custom_id, str) or not custom_id:
        return "missing_required_parameter", "Missing required parameter: 'custom_id'.", "custom_id"
    if custom_id in seen:
        return (
            "duplicate_custom_id",
            f"The custom_id '{custom_id}' is used more than once.",
            "custom_id",
        )
    if line.get("method") != "POST":
        return "invalid_method", "Only the POST method is supported for batch requests.", "method"
    if line.get("url") != endpoint:
        message = f"The URL provided for this request does not match the batch endpoint {endpoint}."
        return "mismatched_endpoint", message, "url"
    if not isinstance(line.get("body"), dict):
        return "invalid_type", "Invalid type for 'body': expected an object.", "body"
    if line["body"].get("stream"):
        return "invalid_value", "Streaming is not supported in batch requests.", "body.stream"
    return None


class Batches:
    """Creates batches and executes them on the event loop (one task per batch)."""

    def __init__(self, store: Store, files: Files, send: Sender):
        self.store = store
        self.files = files
        self.send = send
        self._tasks: dict[str, asyncio.Task] = {}

    def create(
        self,
        input_file_id: str,
        endpoint: str,
        completion_window: str,
        metadata: dict[str, str] | None,
        output_expires_after: int | None = None,
    ) -> dict[str, Any]:
        """Validate the request, store the batch (``validating``) and start executing it.

        ``output_expires_after`` (seconds) makes the output and error files expire that long
        after they are made (their ``expires_at``).
        """
        self._check(input_file_id, endpoint, completion_window)
        now = int(time.time())
        batch = {
            "id": new_id("batch"),
            "object": "batch",
            "endpoint": endpoint,
            "errors": None,
            "input_file_id": input_file_id,
            "completion_window": completion_window,
            "status": "validating",
            "output_file_id": None,
            "error_file_id": None,
            "created_at": now,
            "in_progress_at": None,
            "expires_at": now + WINDOW_SECONDS,
            "finalizing_at": None,
            "completed_at": None,
            "failed_at": None,
            "expired_at": None,
            "cancelling_at": None,
            "cancelled_at": None,
            "request_counts": {"total": 0, "completed": 0, "failed": 0},
            "metadata": metadata or {},
            "model": None,
            "usage": None,
            "_output_expires_after": output_expires_after,
        }
        self.store.insert("batch", batch)
        self._start(batch)
        return batch

    def _check(self, input_file_id: str, endpoint: str, completion_window: str) -> None:
        """400/404 for a batch the engine cannot run: endpoint, window, input file."""
        if endpoint not in KNOWN_ENDPOINTS:
            raise invalid_choice(endpoint, KNOWN_ENDPOINTS, "endpoint")
        if endpoint not in ENDPOINTS:
            raise bad_request(
                f"The engine executes batches for {', '.join(ENDPOINTS)} only, not {endpoint}.",
                "endpoint",
                "unsupported_value",
            )
        if completion_window != "24h":
            raise invalid_choice(completion_window, ("24h",), "completion_window")
        file = self.store.get("file", input_file_id)
        if file is None:
            raise ApiError(404, f"No such File object: {input_file_id}", param="input_file_id")
        if file["purpose"] != "batch":
            raise bad_request(
                f"File {input_file_id} has purpose '{file['purpose']}'; a batch's input file "
                "must be uploaded with purpose 'batch'.",
                "input_file_id",
                "invalid_value",
            )

    def get(self, batch_id: str) -> dict[str, Any] | None:
        """The stored batch, or None."""
        return self.store.get("batch", batch_id)

    def cancel(self, batch: dict[str, Any]) -> dict[str, Any]:
        """Ask a batch to stop: ``cancelling`` until the lines in flight end, then ``cancelled``.

        A finished batch cannot be cancelled (400), as with OpenAI.
        """
        if batch["status"] in TERMINAL:
            raise bad_request(
                f"Cannot cancel a batch with status '{batch['status']}'.", None, "invalid_state"
            )
        if batch["status"] != "cancelling":
            batch.update(status="cancelling", cancelling_at=int(time.time()))
            self.store.put(batch)
        if batch["id"] not in self._tasks:  # nothing executes it any more: finish it here
            self._start(batch)
        return batch

    def recover(self) -> None:
        """Go on with batches a previous process left unfinished (call on the event loop)."""
        for batch in self.store.all("batch"):
            if batch["status"] not in TERMINAL and batch["id"] not in self._tasks:
                self._start(batch)

    async def close(self) -> None:
        """Stop executing (the batches stay stored, resumed by :meth:`recover`)."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # -- execution ------------------------------------------------------------------------------

    def _start(self, batch: dict[str, Any]) -> None:
        task = asyncio.get_running_loop().create_task(self._execute(batch["id"]))
        self._tasks[batch["id"]] = task
        task.add_done_callback(lambda _t, bid=batch["id"]: self._tasks.pop(bid, None))

    async def _execute(self, batch_id: str) -> None:
        batch = self.store.get("batch", batch_id)
        assert batch is not None
        content = self.store.get_blob(batch["input_file_id"])
        try:
            lines = parse_lines(content or b"", batch["endpoint"])
        except BatchInputError as exc:
            self._update(batch, status="failed", failed_at=int(time.time()))
            self._update(batch, errors={"object": "list", "data": exc.errors})
            return
        if batch["status"] == "validating":
            counts = {"total": len(lines), "completed": 0, "failed": 0}
            self._update(batch, status="in_progress", in_progress_at=int(time.time()))
            self._update(batch, request_counts=counts, model=lines[0]["body"].get("model"))
        answered = {r["custom_id"] for r in self.store.all("batch_line", batch_id)}
        gate = asyncio.Semaphore(LINE_CONCURRENCY)
        await asyncio.gather(
            *(self._line(batch, line, gate) for line in lines if line["custom_id"] not in answered)
        )
        self._finish(batch, lines)

    async def _line(self, batch: dict[str, Any], line: dict[str, Any], gate: asyncio.Semaphore):
        async with gate:
            batch.update(self.store.get("batch", batch["id"]) or {})  # a cancel may have come
            if batch["status"] == "cancelling" or time.time() >= batch["expires_at"]:
                return
            try:
                status, body, request_id = await self.send(line["url"], line["body"])
            except Exception as exc:  # noqa: BLE001 - one line's failure is that line's answer
                status, request_id = 500, ""
                body = {
                    "error": {"message": f"{type(exc).__name__}: {exc}", "type": "server_error"}
                }
            answer = {
                "id": new_id("batch_req"),
                "custom_id": line["custom_id"],
                "response": {"status_code": status, "request_id": request_id, "body": body},
                "error": None,
            }
            self.store.insert(
                "batch_line", answer, parent=batch["id"], key=child_key(batch["id"], answer["id"])
            )
            counts = dict(batch["request_counts"])
            counts["completed" if 200 <= status < 300 else "failed"] += 1
            self._update(batch, request_counts=counts, usage=_add_usage(batch["usage"], body))

    def _finish(self, batch: dict[str, Any], lines: list[dict[str, Any]]) -> None:
        """Write the output and error files; the batch ends completed, cancelled or expired."""
        batch.update(self.store.get("batch", batch["id"]) or {})
        now = int(time.time())
        if batch["status"] == "in_progress":
            self._update(batch, status="finalizing", finalizing_at=now)
        answers = {a["custom_id"]: a for a in self.store.all("batch_line", batch["id"])}
        expired = batch["status"] != "cancelling" and now >= batch["expires_at"]
        outputs, errors = [], []
        for line in lines:
            answer = answers.get(line["custom_id"]) or _unsent(line, expired)
            status = (answer.get("response") or {}).get("status_code") or 0
            (outputs if 200 <= status < 300 else errors).append(answer)
        files = {}
        for key, rows in (("output_file_id", outputs), ("error_file_id", errors)):
            if rows:
                data = "".join(json.dumps(r, separators=(",", ":")) + "\n" for r in rows)
                name = f"{batch['id']}_{key.split('_')[0]}.jsonl"
                file = self.files.create(data.encode(), name, "batch_output")
                if batch.get("_output_expires_after"):
                    file["expires_at"] = file["created_at"] + batch["_output_expires_after"]
                    self.store.put(file)
                files[key] = file["id"]
        if batch["status"] == "cancelling":
            ending = {"status": "cancelled", "cancelled_at": now}
        elif expired:
            ending = {"status": "expired", "expired_at": now}
        else:
            ending = {"status": "completed", "completed_at": now}
        self._update(batch, **files, **ending)

    def _update(self, batch: dict[str, Any], **fields: Any) -> None:
        """Write ``fields`` over the stored batch (never over a cancel stored meanwhile)."""
        current = self.store.get("batch", batch["id"]) or batch
        current.update(fields)
        batch.clear()
        batch.update(current)
        self.store.put(batch)


def _unsent(line: dict[str, Any], expired: bool) -> dict[str, Any]:
    """The error file's row for a line never sent (the batch was cancelled or expired)."""
    code, message = (
        (
            "batch_expired",
            "This request could not be executed before the completion window expired.",
        )
        if expired
        else ("batch_cancelled", "This request was not executed because the batch was cancelled.")
    )
    return {
        "id": new_id("batch_req"),
        "custom_id": line["custom_id"],
        "response": None,
        "error": {"code": code, "message": message},
    }


def _add_usage(total: dict[str, Any] | None, body: Any) -> dict[str, Any] | None:
    """The batch's token usage with one answer's (``usage`` of a Responses body) added."""
    usage = body.get("usage") if isinstance(body, dict) else None
    if not isinstance(usage, dict):
        return total
    total = total or {
        "input_tokens": 0,
        "input_tokens_details": {"cached_tokens": 0},
        "output_tokens": 0,
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": 0,
    }
    for key in ("input_tokens", "output_tokens", "total_tokens"):
        total[key] += int(usage.get(key) or 0)
    for key, detail in (
        ("input_tokens_details", "cached_tokens"),
        ("output_tokens_details", "reasoning_tokens"),
    ):
        total[key][detail] += int((usage.get(key) or {}).get(detail) or 0)
    return total
