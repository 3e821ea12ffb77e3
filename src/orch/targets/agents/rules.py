"""Which assistant fields a saved agent has no place for, and which only saved agents take.

``orch validate`` asks these rules for every assistant (through
:data:`orch.targets.registry.RULES`), so this module imports nothing heavy: no SDK, no other
kind. A refusal is ``(field path in the YAML, why)``; the loader turns it into
``file:line: field: message``. A field is refused rather than dropped: a saved agent that
silently lost its temperature would not be the assistant the YAML declares.

What maps where is :mod:`orch.targets.agents.wire`'s business; the fields refused here are
exactly those it has no destination for.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # annotations only: validate must not pay for imports
    from orch.project.model import Assistant

#: metadata pairs a saved agent holds (OpenAI's limit)
METADATA_LIMIT = 16
#: orch's own metadata keys on a saved agent: project, name, hash (and the description)
ORCH_KEYS = 3

Refusal = tuple[tuple[str | int, ...], str]


def refuse(assistant: Assistant) -> list[Refusal]:
    """The declared fields of ``assistant`` a saved agent (Agents API) has no place for."""
    found: list[Refusal] = []
    for key in ("temperature", "top_p"):
        if getattr(assistant, key) is not None:
            found.append(((key,), f"saved agents have no {key} (the Agents API sets none)"))
    if assistant.max_tokens is not None:
        found.append((("max_tokens",), "saved agents and their turns have no cap on output tokens"))
    if assistant.description and len(assistant.metadata) + ORCH_KEYS >= METADATA_LIMIT:
        found.append(
            (
                ("description",),
                "a saved agent keeps the description in its metadata (orch_description), "
                f"which then holds more than {METADATA_LIMIT} pairs: declare at most "
                f"{METADATA_LIMIT - ORCH_KEYS - 1} metadata keys with a description",
            )
        )
    found += _format_refusals(assistant.response_format)
    found += _tool_refusals(assistant)
    if assistant.files_for("file_search"):
        found.append((("files", "file_search"), "saved agents have no vector stores to search"))
    return found


def _format_refusals(response_format: object) -> list[Refusal]:
    """An agent's ``text.format`` is ``text`` or ``json_schema`` (a schema, always enforced)."""
    if response_format == "json_object" or (
        isinstance(response_format, dict) and response_format.get("type") == "json_object"
    ):
        why = "an agent's text format is text or json_schema; declare a json_schema"
        return [(("response_format",), why)]
    if not (isinstance(response_format, dict) and response_format.get("type") == "json_schema"):
        return []
    spec = response_format.get("json_schema") or {}
    found: list[Refusal] = []
    if spec.get("strict") is False:
        why = "an agent's json_schema format is always enforced (strict)"
        found.append((("response_format", "json_schema", "strict"), why))
    if spec.get("description"):
        why = "an agent's json_schema format has no description"
        found.append((("response_format", "json_schema", "description"), why))
    return found


def _tool_refusals(assistant: Assistant) -> list[Refusal]:
    """Function tools map to agent function tools; code_interpreter to a hosted environment."""
    found: list[Refusal] = []
    for i, tool in enumerate(assistant.tools):
        if tool.type == "file_search":
            why = "saved agents have no file_search tool (no vector stores)"
            found.append((("tools", i), why))
        elif tool.function is not None and tool.function.strict is not None:
            why = "an agent's function tools have no strict flag"
            found.append((("tools", i, "function", "strict"), why))
    return found


def refuse_agent_fields(assistant: Assistant) -> list[Refusal]:
    """For the other kinds: the fields only saved agents take (``reasoning``)."""
    if assistant.reasoning:
        why = "only targets of kind agents send reasoning settings"
        return [(("reasoning",), why)]
    return []
