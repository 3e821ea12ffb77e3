"""Reading Assistants-v2 objects the way an item's session needs them.

Pure helpers of :mod:`orch.targets.assistants`: which stream events carry the run, a raw
response parsed inside its retried call, a message's text without citation markers, a run
step's tool call as plain data.
"""

from __future__ import annotations

import json
from typing import Any

from orch.targets import retry
from orch.targets.session import StepOutcome, plain


def parsed(raw: Any) -> tuple[Any, Any]:
    """(the parsed object, the headers) of a raw response.

    Parsed inside the retried call, so a spoiled body is retried with the request.
    """
    return retry.checked(raw.parse()), raw.headers


def is_run_event(kind: str) -> bool:
    """``thread.run.*`` events carry the Run itself (``thread.run.step.*`` carry steps)."""
    return kind.startswith("thread.run.") and not kind.startswith("thread.run.step.")


def answer_text(text: Any, outcome: StepOutcome) -> str:
    """A message's text with its citations recorded on ``outcome`` and their markers removed.

    Citation markers (【0:0†file】) are not part of the answer: stripping them keeps JSON
    replies JSON; the annotations keep them.
    """
    value = text.value
    for note in text.annotations or []:
        outcome.citations.append(plain(note))
        if getattr(note, "text", None):
            value = value.replace(note.text, "")
    return value.strip()


def tool_call_record(call: Any) -> dict[str, Any]:
    """A run step's tool call as the step record's plain data (arguments parsed when JSON)."""
    if call.type == "function":
        try:
            arguments = json.loads(call.function.arguments or "{}")
        except ValueError:
            arguments = call.function.arguments
        return {
            "id": call.id,
            "type": "function",
            "name": call.function.name,
            "arguments": arguments,
            "output": call.function.output,
        }
    if call.type == "code_interpreter":
        return {
            "id": call.id,
            "type": "code_interpreter",
            "name": "code_interpreter",
            "input": call.code_interpreter.input,
            "outputs": [plain(o) for o in call.code_interpreter.outputs or []],
        }
    return {"id": call.id, "type": call.type, "name": call.type}
