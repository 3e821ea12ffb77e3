"""Function tools: calling the Python handlers an assistant declares, for any API.

Parallel calls run in parallel on the run's handler pool, each bounded by its tool's timeout; a
handler's exception, a timeout or bad arguments become a JSON error output to the model and are
recorded on the step, never a crash.
"""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass
from pathlib import Path

from orch.project.handlers import resolve_handler
from orch.project.model import Assistant


@dataclass(frozen=True)
class ToolRequest:
    """A function call the model asked for, whatever the API that carried it."""

    call_id: str
    name: str
    arguments: str


def call_handlers(
    calls: list[ToolRequest],
    assistant: Assistant,
    pool: ThreadPoolExecutor,
    root: Path,
    records: list[dict],
) -> list[tuple[str, str]]:
    """Run every requested function (in parallel), each bounded by its tool's timeout.

    Returns ``(call_id, output)`` pairs in request order and appends a record of each call to
    ``records`` (the step's tool calls).
    """
    futures = []
    for call in calls:
        futures.append((call, pool.submit(invoke, call, assistant, root)))
    outputs = []
    for call, future in futures:
        spec = assistant.function(call.name)
        timeout = spec.timeout if spec else 60.0
        try:
            output, error = future.result(timeout=timeout)
        except FutureTimeout:
            output, error = (
                json.dumps({"error": f"handler timed out after {timeout:g}s"}),
                f"timed out after {timeout:g}s",
            )
        try:
            arguments = json.loads(call.arguments or "{}")
        except ValueError:
            arguments = call.arguments
        records.append(
            {
                "id": call.call_id,
                "type": "function",
                "name": call.name,
                "arguments": arguments,
                "output": output,
                "error": error,
            }
        )
        outputs.append((call.call_id, output))
    return outputs


def invoke(call: ToolRequest, assistant: Assistant, root: Path) -> tuple[str, str | None]:
    """(output for the model, error text or None). Never raises."""
    name = call.name
    spec = assistant.function(name)
    if spec is None or not spec.handler:
        error = f"no handler for function {name!r} in assistant {assistant.name!r}"
        return json.dumps({"error": error}), error
    try:
        arguments = json.loads(call.arguments or "{}")
        if not isinstance(arguments, dict):
            raise ValueError("arguments must be a JSON object")
    except ValueError as exc:
        error = f"invalid arguments JSON: {exc}"
        return json.dumps({"error": error}), error
    try:
        result = resolve_handler(spec.handler, root)(**arguments)
    except Exception as exc:  # noqa: BLE001 - the model gets the error, the run goes on
        error = f"{type(exc).__name__}: {exc}"
        return json.dumps({"error": error}), error
    if isinstance(result, str):
        return result, None
    try:
        return json.dumps(result, default=str), None
    except (TypeError, ValueError):
        return str(result), None
