"""Agent configuration: what a saved agent (``/v1/agents``) and a session's agent hold.

A saved agent and a session's agent share their settings (model, instructions, tools, text,
reasoning, ...). :func:`read_settings` validates the settings a request body gives, with
OpenAI's 400s, into their resolved form (a ``null`` becomes what OpenAI documents it to mean);
:func:`new_agent`, :func:`update_agent` and :func:`session_agent` fold them into an agent.

The engine runs client-side ``function`` tools only. Hosted tools (web search, MCP, computer
use, tool search, ...) and subagents are refused with a 400 that says so rather than accepted
and silently never used.
"""

from __future__ import annotations

import time
from typing import Any

from orch.engine import params as p
from orch.engine.errors import bad_request, invalid_choice, invalid_type
from orch.engine.store import new_id

#: Tool types of the Agents API that need a service the engine does not have.
HOSTED_TOOLS = (
    "tool_search",
    "programmatic_tool_calling",
    "mcp",
    "web_search",
    "computer_use",
    "automations",
)
SERVICE_TIERS = ("auto", "default", "flex", "priority", "fast", "ultrafast")
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")
SUMMARIES = ("concise", "detailed", "auto")
VERBOSITIES = ("low", "medium", "high")
#: Settings a session's ``agent`` may override (no name, no metadata: those are the agent's).
SESSION_KEYS = frozenset(
    {
        "compaction",
        "experimental",
        "instructions",
        "model",
        "multi_agent",
        "reasoning",
        "service_tier",
        "text",
        "tools",
    }
)
AGENT_KEYS = SESSION_KEYS | {"name", "metadata"}
_FUNCTION_KEYS = frozenset({"type", "name", "description", "parameters", "defer_loading", "async"})


def unsupported(message: str, param: str) -> Exception:
    """A 400 for something the Agents API has that the engine does not do."""
    return bad_request(message, param, "unsupported_value")


def defaults() -> dict[str, Any]:
    """The resolved settings of an agent created with a model only (the model is added)."""
    return {
        "instructions": None,
        "multi_agent": {"enabled": False, "max_concurrent_subagents": None},
        "name": None,
        "reasoning": {"effort": None, "summary": None},
        "service_tier": "auto",
        "text": {"format": {"type": "text"}, "verbosity": "medium"},
        "tools": [],
        "compaction": {"async": False},
        "experimental": {"time_awareness": False},
    }


def read_settings(
    body: dict[str, Any], keys: frozenset[str], where: str = "", *, creating: bool = False
) -> dict[str, Any]:
    """The settings ``body`` gives, validated and resolved; absent keys are left out.

    ``where`` prefixes parameter names in errors (``agent.`` for a session's overrides);
    ``creating`` makes ``model`` required. ``experimental`` is returned as given (it merges).
    """
    p.check_keys(body, keys, where.rstrip("."))
    out: dict[str, Any] = {}
    model = p.field(body, "model", str, required=creating, nullable=False, param=where + "model")
    if model is not None:
        out["model"] = model
    for key, limit in (("name", 256), ("instructions", 256000)):
        if key in body and key in keys:
            out[key] = p.field(body, key, str, max_length=limit, param=where + key)
    if "metadata" in body and "metadata" in keys:
        out["metadata"] = p.metadata(body) or {}
    if "service_tier" in body:
        tier = p.field(
            body, "service_tier", str, choices=SERVICE_TIERS, param=where + "service_tier"
        )
        out["service_tier"] = tier or "auto"
    readers = {
        "compaction": _compaction,
        "experimental": _experimental,
        "multi_agent": _multi_agent,
        "reasoning": _reasoning,
        "text": _text,
        "tools": _tools,
    }
    for key, read in readers.items():
        if key in body:
            out[key] = read(body.get(key), where + key)
    return out


def _object(value: Any, param: str, keys: frozenset[str]) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise invalid_type(param)
    p.check_keys(value, keys, param)
    return value


def _compaction(value: Any, param: str) -> dict[str, Any]:
    """``null`` and ``{}`` mean blocking compaction (``async: false``)."""
    if value is None:
        return {"async": False}
    value = _object(value, param, frozenset({"async"}))
    return {"async": bool(p.field(value, "async", bool, param=param + ".async"))}


def _experimental(value: Any, param: str) -> dict[str, Any]:
    value = _object(value, param, frozenset({"time_awareness"}))
    flag = p.field(value, "time_awareness", bool, nullable=False, param=param + ".time_awareness")
    return {} if flag is None else {"time_awareness": flag}


def _multi_agent(value: Any, param: str) -> dict[str, Any]:
    if value is None:
        return defaults()["multi_agent"]
    value = _object(value, param, frozenset({"enabled", "max_concurrent_subagents"}))
    enabled = p.field(value, "enabled", bool, required=True, param=param + ".enabled")
    p.field(
        value, "max_concurrent_subagents", int, minimum=1, param=param + ".max_concurrent_subagents"
    )
    if enabled:
        raise unsupported(
            "The orch engine does not run subagents; set multi_agent.enabled to false.",
            param + ".enabled",
        )
    return {"enabled": False, "max_concurrent_subagents": None}


def _reasoning(value: Any, param: str) -> dict[str, Any]:
    if value is None:
        return defaults()["reasoning"]
    value = _object(value, param, frozenset({"effort", "summary"}))
    return {
        "effort": p.field(value, "effort", str, choices=EFFORTS, param=param + ".effort"),
        "summary": p.field(value, "summary", str, choices=SUMMARIES, param=param + ".summary"),
    }


def _text(value: Any, param: str) -> dict[str, Any]:
    if value is None:
        return defaults()["text"]
    value = _object(value, param, frozenset({"format", "verbosity"}))
    verbosity = p.field(value, "verbosity", str, choices=VERBOSITIES, param=param + ".verbosity")
    fmt = value.get("format")
    if fmt is None:
        fmt = {"type": "text"}
    else:
        where = param + ".format"
        fmt = _object(fmt, where, frozenset({"type", "schema"}))
        kind = p.field(
            fmt, "type", str, required=True, choices=("text", "json_schema"), param=where + ".type"
        )
        if kind == "json_schema":
            schema = p.field(fmt, "schema", dict, required=True, param=where + ".schema")
            fmt = {"type": "json_schema", "schema": schema}
        else:
            p.check_keys(fmt, frozenset({"type"}), where)
            fmt = {"type": "text"}
    return {"format": fmt, "verbosity": verbosity or "medium"}


def _tools(value: Any, param: str) -> list[dict[str, Any]]:
    """Function tools, resolved (``defer_loading: false``); ``null`` clears the list."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid_type(param, "an array")
    tools = [_function_tool(tool, f"{param}[{i}]") for i, tool in enumerate(value)]
    names = [t["name"] for t in tools]
    for i, name in enumerate(names):
        if name in names[:i]:
            raise bad_request(
                f"Duplicate function name '{name}' in '{param}'.", f"{param}[{i}].name"
            )
    return tools


def _function_tool(tool: Any, where: str) -> dict[str, Any]:
    if not isinstance(tool, dict):
        raise invalid_type(where)
    kind = p.field(tool, "type", str, required=True, param=where + ".type")
    if kind in HOSTED_TOOLS:
        raise unsupported(
            f"The orch engine does not run '{kind}' tools: agents on it have 'function' tools, "
            "which the client answers.",
            where + ".type",
        )
    if kind != "function":
        raise invalid_choice(kind, ("function", *HOSTED_TOOLS), where + ".type")
    p.check_keys(tool, _FUNCTION_KEYS, where)
    out: dict[str, Any] = {
        "type": "function",
        "name": p.function_name(tool, where + ".name"),
        "description": p.field(
            tool, "description", str, required=True, param=where + ".description"
        ),
        "parameters": p.field(tool, "parameters", dict, required=True, param=where + ".parameters"),
        "defer_loading": False,
    }
    if p.field(tool, "defer_loading", bool, param=where + ".defer_loading"):
        raise unsupported(
            "The orch engine has no tool search: defer_loading must be false.",
            where + ".defer_loading",
        )
    if "async" in tool:
        if p.field(tool, "async", bool, param=where + ".async"):
            raise unsupported(
                "The orch engine runs function tools synchronously: async must be false.",
                where + ".async",
            )
        out["async"] = False
    return out


def merge(agent: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """``agent`` with ``settings`` applied (``experimental`` merges by key, the rest replaces)."""
    out = {**agent, **settings}
    if "experimental" in settings:
        out["experimental"] = {**(agent.get("experimental") or {}), **settings["experimental"]}
    return out


def new_agent(settings: dict[str, Any]) -> dict[str, Any]:
    """A saved agent (``object: agent``) with these settings over the defaults."""
    now = int(time.time())
    head = {"id": new_id("agent"), "object": "agent", "created_at": now, "updated_at": now}
    return merge({**head, **defaults(), "metadata": {}}, settings)


def update_agent(agent: dict[str, Any], settings: dict[str, Any]) -> dict[str, Any]:
    """The saved agent with ``settings`` applied and ``updated_at`` moved on."""
    out = merge(agent, settings)
    out["updated_at"] = max(int(time.time()), agent["updated_at"])
    return out


def session_agent(saved: dict[str, Any] | None, overrides: dict[str, Any]) -> dict[str, Any]:
    """The agent a session runs: the saved agent (or none) with the session's overrides.

    Without a saved agent, ``overrides`` must hold the model; the agent gets a fresh id, as
    an agent configured inline has no saved one.
    """
    base = saved if saved is not None else {"id": new_id("agent"), **defaults()}
    agent = merge(base, overrides)
    keys = ("id", "instructions", "model", "multi_agent", "name", "reasoning", "service_tier")
    rest = ("text", "tools", "compaction", "experimental")
    return {k: agent.get(k) for k in (*keys, *rest)}
