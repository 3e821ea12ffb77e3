"""The mapping between an assistant and a saved agent (``client.beta.agents``), both ways.

Sync speaks Assistants-v2 fields (:func:`orch.sync.wire_spec`, :class:`RemoteAssistant`); a
saved agent holds fewer and other ones. This module is the whole translation:

=====================================  ==============================================
YAML / Assistants field                saved agent
=====================================  ==============================================
name, model, instructions, metadata    the same fields (metadata with orch's tags)
description                            ``metadata.orch_description``
tools: function (name, description,    ``tools``: ``{type: function, name, description,
parameters)                            parameters}``
tools: code_interpreter                not on the agent: each session's environment is
                                       ``openai_hosted`` (see :func:`environment`)
files.code_interpreter                 that environment's ``files`` (uploaded file ids)
response_format text/auto              ``text.format: {type: text}``
response_format json_schema            ``text.format: {type: json_schema, schema}``; the
                                       schema's name is not kept (agents have none)
reasoning (effort, summary)            ``reasoning``
=====================================  ==============================================

Everything else (temperature, top_p, max_tokens, file_search, json_object, strict flags) is
refused at validate time by :mod:`orch.targets.agents.rules`; what reaches this module
anyway is refused here too (UsageError), never dropped.

The planner compares both sides through :func:`comparable`: only what an agent stores, so
the session-level parts (environment, its files) and the schema's name are no diff; their
edits change ``orch_hash``, which is compared, so they still update the agent.
"""

from __future__ import annotations

import posixpath
from typing import Any

from orch.errors import UsageError
from orch.targets.base import RemoteAssistant

#: where a saved agent keeps the assistant's description
META_DESCRIPTION = "orch_description"
#: the hosted environment's working folder, where code_interpreter files are placed
WORKSPACE = "/workspace"
#: the json_schema name an imported agent's format gets (agents keep no name)
IMPORTED_FORMAT_NAME = "output"
_NO_PARAMETERS = {"type": "object", "properties": {}}


def text_format(response_format: Any) -> dict[str, Any]:
    """An assistant's ``response_format`` (YAML or wire form) as an agent's ``text.format``."""
    if response_format in (None, "auto", "text") or response_format == {"type": "text"}:
        return {"type": "text"}
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        return {"type": "json_schema", "schema": response_format["json_schema"]["schema"]}
    raise UsageError(f"a saved agent's text format is text or json_schema, not {response_format!r}")


def agent_tool(tool: dict[str, Any]) -> dict[str, Any]:
    """One Assistants-wire function tool as an agent's function tool."""
    if tool.get("type") != "function":
        raise UsageError(f"a saved agent has no {tool.get('type')} tool")
    fn = tool["function"]
    if fn.get("strict") is not None:
        raise UsageError(f"function {fn['name']}: an agent's function tools have no strict flag")
    return {
        "type": "function",
        "name": fn["name"],
        "description": fn.get("description") or "",
        "parameters": fn.get("parameters") or _NO_PARAMETERS,
    }


def agent_params(spec: dict[str, Any]) -> dict[str, Any]:
    """Create/update parameters of a saved agent from Assistants-wire fields (every field).

    Every setting is given, so an update also resets what was changed behind orch's back:
    ``reasoning: null`` is the model's default, ``instructions: null`` none.
    """
    for key in ("temperature", "top_p"):
        if spec.get(key) not in (None, 1.0):  # wire_spec sends 1.0 for "not declared"
            raise UsageError(f"a saved agent has no {key} (declared: {spec[key]})")
    metadata = dict(spec["metadata"])
    if spec.get("description"):
        metadata[META_DESCRIPTION] = spec["description"]
    tools = [t for t in spec.get("tools") or [] if t.get("type") != "code_interpreter"]
    return {
        "name": spec["name"],
        "model": spec["model"],
        "instructions": spec.get("instructions") or None,
        "metadata": metadata,
        "tools": [agent_tool(t) for t in tools],
        "text": {"format": text_format(spec.get("response_format"))},
        "reasoning": dict(spec["reasoning"]) if spec.get("reasoning") else None,
    }


def remote_agent(agent: Any) -> RemoteAssistant:
    """An SDK ``Agent`` as a :class:`RemoteAssistant` in Assistants-v2 vocabulary."""
    metadata = dict(agent.metadata or {})
    description = metadata.pop(META_DESCRIPTION, None)
    fmt = agent.text.format.model_dump(mode="json", by_alias=True)
    response_format = None
    if fmt.get("type") == "json_schema":
        spec = {"name": IMPORTED_FORMAT_NAME, "schema": fmt["schema"]}
        response_format = {"type": "json_schema", "json_schema": spec}
    reasoning = {k: v for k, v in agent.reasoning.model_dump(mode="json").items() if v}
    return RemoteAssistant(
        id=agent.id,
        name=agent.name,
        model=agent.model,
        instructions=agent.instructions,
        description=description,
        temperature=None,
        top_p=None,
        response_format=response_format,
        tools=[_wire_tool(t) for t in agent.tools],
        tool_resources={},
        metadata=metadata,
        created_at=agent.created_at or 0,
        reasoning=reasoning or None,
    )


def _wire_tool(tool: Any) -> dict[str, Any]:
    """An agent's tool in Assistants-wire form; flags orch never sets are kept, to show."""
    data = tool.model_dump(mode="json", by_alias=True, exclude_none=True)
    kind = data.pop("type")
    if kind != "function":
        return {"type": kind, kind: data}
    fn = {k: data.pop(k) for k in ("name", "description", "parameters")}
    fn.update({k: True for k, v in data.items() if v is True})  # defer_loading, async
    return {"type": "function", "function": fn}


def comparable(source: Any, fields: dict[str, Any]) -> dict[str, Any]:
    """The planner's compared fields narrowed to what a saved agent stores (see above)."""
    out = dict(fields)
    out["response_format"] = text_format(_assistants_format(fields["response_format"]))
    out["tools"] = [t for t in fields["tools"] if t.get("type") != "code_interpreter"]
    out["tool_resources"] = {}  # code_interpreter files belong to each session's environment
    out["reasoning"] = {k: v for k, v in dict(source.reasoning or ()).items() if v}
    return out


def _assistants_format(value: Any) -> Any:
    """The planner's normalised format (``auto`` or ``{type: …}``) as a response_format."""
    if isinstance(value, dict) and value.get("type") in ("text", "json_object"):
        return value["type"]
    return value


def environment(tools: list[str], files: list[tuple[str, str]]) -> dict[str, Any]:
    """A session's environment: ``openai_hosted`` for code_interpreter, else ``none``.

    ``files`` (``(uploaded file id, local path)``) are placed in the hosted environment's
    workspace under their file names.
    """
    if "code_interpreter" not in tools:
        return {"type": "none"}
    placed = [
        {"type": "file_id", "file_id": file_id, "path": posixpath.join(WORKSPACE, _name(path))}
        for file_id, path in files
    ]
    return {"type": "openai_hosted", **({"files": placed} if placed else {})}


def _name(path: str) -> str:
    return posixpath.basename(path.replace("\\", "/")) or "file"
