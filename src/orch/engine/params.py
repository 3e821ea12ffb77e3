"""Request validation, with OpenAI's wording of 400 errors (bodies: ``routes.bodies``)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request

from orch.engine.errors import (
    ApiError,
    bad_request,
    invalid_choice,
    missing_parameter,
    unknown_parameter,
)

_MISSING = object()
_TYPE_WORDS = {
    str: "a string",
    int: "an integer",
    float: "a decimal",
    bool: "a boolean",
    dict: "an object",
    list: "an array",
}


def _kind(value: Any) -> str:
    for typ in (bool, int, float, str, dict, list):
        if isinstance(value, typ):
            return _TYPE_WORDS[typ]
    return "null" if value is None else type(value).__name__


def check_keys(body: dict[str, Any], allowed: set[str] | frozenset[str], param: str = "") -> None:
    """Reject fields the endpoint does not know; ``param`` locates a nested object.

    The error names the field by its full path (``thread.messages[0].file_ids``).
    """
    prefix = f"{param}." if param else ""
    for key in body:
        if key not in allowed:
            raise unknown_parameter(prefix + key)


def field(
    body: dict[str, Any],
    key: str,
    typ: type | tuple[type, ...],
    *,
    required: bool = False,
    nullable: bool = True,
    default: Any = None,
    minimum: float | None = None,
    maximum: float | None = None,
    max_length: int | None = None,
    choices: tuple[str, ...] | None = None,
    param: str | None = None,
) -> Any:
    """One validated body field.

    Absent (or null, when ``nullable`` and not ``required``): ``default``. Otherwise the value
    must have the type (an int passes for a float, a bool never for an int) and meet the
    checks given, or the request gets OpenAI's 400 for ``param`` (default: ``key``).
    """
    param = param or key
    value = body.get(key, _MISSING)
    if value is _MISSING:
        if required:
            raise missing_parameter(param)
        return default
    if value is None:
        if nullable and not required:
            return default
        raise _wrong_type(param, _word(typ), "null")
    types = typ if isinstance(typ, tuple) else (typ,)
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if float in types and isinstance(value, int) and not isinstance(value, bool):
        ok = True
    if not ok:
        raise _wrong_type(param, _word(typ), _kind(value))
    if minimum is not None or maximum is not None:
        _check_range(value, typ, param, minimum, maximum)
    if max_length is not None and isinstance(value, (str, list)) and len(value) > max_length:
        what = "string" if isinstance(value, str) else "array"
        raise bad_request(
            f"Invalid '{param}': {what} too long. Expected a {what} with maximum length "
            f"{max_length}, but got a {what} with length {len(value)} instead.",
            param,
            f"{what}_above_max_length",
        )
    if choices is not None and value not in choices:
        raise invalid_choice(value, choices, param)
    return value


def _wrong_type(param: str, expected: str, got: str) -> ApiError:
    return bad_request(
        f"Invalid type for '{param}': expected {expected}, but got {got} instead.",
        param,
        "invalid_type",
    )


def _check_range(
    value: Any,
    typ: type | tuple[type, ...],
    param: str,
    minimum: float | None,
    maximum: float | None,
) -> None:
    """400 when a number is below ``minimum`` or above ``maximum``."""
    noun = _word(typ).split()[-1]
    kind = "integer" if isinstance(value, int) else "decimal"
    if minimum is not None and value < minimum:
        raise bad_request(
            f"Invalid '{param}': {noun} below minimum value. Expected a value "
            f">= {minimum:g}, but got {value} instead.",
            param,
            f"{kind}_below_min_value",
        )
    if maximum is not None and value > maximum:
        raise bad_request(
            f"Invalid '{param}': {noun} above maximum value. Expected a value "
            f"<= {maximum:g}, but got {value} instead.",
            param,
            f"{kind}_above_max_value",
        )


def _word(typ: type | tuple[type, ...]) -> str:
    types = typ if isinstance(typ, tuple) else (typ,)
    return " or ".join(_TYPE_WORDS.get(t, t.__name__) for t in types)


def metadata(body: dict[str, Any], key: str = "metadata") -> dict[str, str] | None:
    """Validate OpenAI's metadata limits: 16 keys, keys <= 64 chars, string values <= 512."""
    value = field(body, key, dict)
    if value is None:
        return None
    if len(value) > 16:
        raise bad_request(
            f"Invalid '{key}': too many properties. Expected an object with at most 16 "
            f"properties, but got an object with {len(value)} properties instead.",
            key,
            "object_above_max_properties",
        )
    for k, v in value.items():
        if len(k) > 64:
            raise bad_request(
                f"Invalid '{key}': metadata key is too long. Expected a string with maximum "
                f"length 64, but got a string with length {len(k)} instead.",
                f"{key}.{k}",
                "string_above_max_length",
            )
        if not isinstance(v, str):
            raise _wrong_type(f"{key}.{k}", "a string", _kind(v))
        if len(v) > 512:
            raise bad_request(
                f"Invalid '{key}.{k}': string too long. Expected a string with maximum length "
                f"512, but got a string with length {len(v)} instead.",
                f"{key}.{k}",
                "string_above_max_length",
            )
    return value


def page_params(request: Request, max_limit: int = 100) -> dict[str, Any]:
    """``limit``/``order``/``after``/``before`` from the query string, validated."""
    q = request.query_params
    raw = q.get("limit", "20")
    try:
        limit = int(raw)
    except ValueError:
        raise bad_request(
            f"Invalid 'limit': expected an integer, but got '{raw}' instead.", "limit"
        ) from None
    if not 1 <= limit <= max_limit:
        raise bad_request(
            f"Invalid 'limit': integer out of range. Expected a value between 1 and {max_limit}, "
            f"but got {limit} instead.",
            "limit",
            "integer_out_of_range",
        )
    order = q.get("order", "desc")
    if order not in ("asc", "desc"):
        raise bad_request(
            f"Invalid value: '{order}'. Supported values are: 'asc' and 'desc'.",
            "order",
            "invalid_value",
        )
    return {
        "limit": limit,
        "order": order,
        "after": q.get("after") or None,
        "before": q.get("before") or None,
    }


def list_body(items: list[dict[str, Any]], has_more: bool) -> dict[str, Any]:
    """OpenAI's cursor page: ``{object: list, data, first_id, last_id, has_more}``."""
    return {
        "object": "list",
        "data": items,
        "first_id": items[0]["id"] if items else None,
        "last_id": items[-1]["id"] if items else None,
        "has_more": has_more,
    }


def page_list(
    items: list[dict[str, Any]],
    *,
    limit: int = 20,
    order: str = "desc",
    after: str | None = None,
    before: str | None = None,
) -> dict[str, Any]:
    """A cursor page (``list_body``) over items held in memory, oldest first."""
    ordered = items if order == "asc" else items[::-1]
    if after is not None:
        ids = [i["id"] for i in ordered]
        ordered = ordered[ids.index(after) + 1 :] if after in ids else []
    if before is not None:
        ids = [i["id"] for i in ordered]
        ordered = ordered[: ids.index(before)] if before in ids else []
        return list_body(ordered[-limit:], len(ordered) > limit)
    return list_body(ordered[:limit], len(ordered) > limit)


# -- shared object fields ------------------------------------------------------------------

_FUNCTION_NAME_OK = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-")


def function_name(spec: dict[str, Any], param: str) -> str:
    """A function tool's ``name``: 1-64 characters of ``[a-zA-Z0-9_-]``."""
    name = field(spec, "name", str, required=True, param=param, max_length=64)
    if not name or not set(name) <= _FUNCTION_NAME_OK:
        raise bad_request(
            f"Invalid '{param}': string does not match pattern. Expected a "
            "string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
            param,
            "invalid_value",
        )
    return name


#: The keys of each kind of assistant/run tool, and of a function's definition.
TOOL_KEYS = {
    "function": frozenset({"type", "function"}),
    "code_interpreter": frozenset({"type"}),
    "file_search": frozenset({"type", "file_search"}),
}
FUNCTION_KEYS = frozenset({"name", "description", "parameters", "strict"})
FILE_SEARCH_KEYS = frozenset({"max_num_results", "ranking_options"})


def tools(body: dict[str, Any], key: str = "tools") -> list[dict[str, Any]] | None:
    """Validate an assistant/run ``tools`` list (function, code_interpreter, file_search).

    Unknown keys are refused at every level, a function's definition included.
    """
    value = field(body, key, list, max_length=128)
    if value is None:
        return None
    out = []
    for i, tool in enumerate(value):
        p = f"{key}[{i}]"
        if not isinstance(tool, dict):
            raise _wrong_type(p, "an object", _kind(tool))
        kind = field(tool, "type", str, required=True, param=f"{p}.type")
        if kind not in TOOL_KEYS:
            raise bad_request(
                f"Invalid value: '{kind}'. Supported values are: 'code_interpreter', 'function', "
                "and 'file_search'.",
                f"{p}.type",
                "invalid_value",
            )
        check_keys(tool, TOOL_KEYS[kind], p)
        if kind == "function":
            out.append({"type": "function", "function": function_definition(tool, p)})
        elif kind == "code_interpreter":
            out.append({"type": "code_interpreter"})
        else:
            entry: dict[str, Any] = {"type": "file_search"}
            options = field(tool, "file_search", dict, param=f"{p}.file_search")
            if options is not None:
                check_keys(options, FILE_SEARCH_KEYS, f"{p}.file_search")
                entry["file_search"] = options
            out.append(entry)
    return out


def function_definition(tool: dict[str, Any], param: str) -> dict[str, Any]:
    """A function tool's ``function``: name, description, parameters, strict; nothing else."""
    where = f"{param}.function"
    fn = field(tool, "function", dict, required=True, param=where)
    check_keys(fn, FUNCTION_KEYS, where)
    function_name(fn, f"{where}.name")
    field(fn, "description", str, param=f"{where}.description")
    field(fn, "parameters", dict, param=f"{where}.parameters")
    field(fn, "strict", bool, param=f"{where}.strict")
    return fn


def response_format(body: dict[str, Any]) -> Any:
    """Validate ``response_format``: "auto", or {type: text|json_object|json_schema}."""
    value = body.get("response_format")
    if value is None or value == "auto":
        return value
    if isinstance(value, dict) and value.get("type") in ("text", "json_object"):
        return value
    if isinstance(value, dict) and value.get("type") == "json_schema":
        schema = value.get("json_schema")
        if not isinstance(schema, dict) or not isinstance(schema.get("name"), str):
            raise missing_parameter("response_format.json_schema.name")
        return value
    raise bad_request(
        "Invalid 'response_format': expected 'auto' or an object with type 'text', 'json_object' "
        "or 'json_schema'.",
        "response_format",
        "invalid_value",
    )


def tool_choice(body: dict[str, Any]) -> Any:
    """Validate ``tool_choice``: none/auto/required or {type, function?}."""
    value = body.get("tool_choice")
    if value is None or value in ("none", "auto", "required"):
        return value
    if isinstance(value, dict) and value.get("type") in (
        "function",
        "code_interpreter",
        "file_search",
    ):
        if value["type"] == "function" and not isinstance(
            (value.get("function") or {}).get("name"), str
        ):
            raise missing_parameter("tool_choice.function.name")
        return value
    raise bad_request(
        "Invalid value for 'tool_choice': expected 'none', 'auto', 'required' or a tool object.",
        "tool_choice",
        "invalid_value",
    )


def truncation_strategy(body: dict[str, Any]) -> dict[str, Any] | None:
    """Validate ``truncation_strategy`` ({type: auto|last_messages, last_messages?})."""
    value = field(body, "truncation_strategy", dict)
    if value is None:
        return None
    check_keys(value, frozenset({"type", "last_messages"}), "truncation_strategy")
    field(
        value,
        "type",
        str,
        required=True,
        choices=("auto", "last_messages"),
        param="truncation_strategy.type",
    )
    field(value, "last_messages", int, minimum=1, param="truncation_strategy.last_messages")
    return {"type": value["type"], "last_messages": value.get("last_messages")}


def tool_resources(body: dict[str, Any], key: str = "tool_resources") -> dict[str, Any] | None:
    """Validate ``tool_resources``: code_interpreter.file_ids, file_search.vector_store_ids."""
    value = field(body, key, dict)
    if value is None:
        return None
    out: dict[str, Any] = {}
    check_keys(value, frozenset({"code_interpreter", "file_search"}), key)
    ci = field(value, "code_interpreter", dict, param=f"{key}.code_interpreter")
    if ci is not None:
        check_keys(ci, frozenset({"file_ids"}), f"{key}.code_interpreter")
        ids = field(ci, "file_ids", list, param=f"{key}.code_interpreter.file_ids", max_length=20)
        out["code_interpreter"] = {"file_ids": list(ids or [])}
    fs = field(value, "file_search", dict, param=f"{key}.file_search")
    if fs is not None:
        check_keys(fs, frozenset({"vector_store_ids", "vector_stores"}), f"{key}.file_search")
        ids = field(
            fs, "vector_store_ids", list, param=f"{key}.file_search.vector_store_ids", max_length=1
        )
        out["file_search"] = {"vector_store_ids": list(ids or [])}
        if fs.get("vector_stores"):
            out["file_search"]["_new_vector_stores"] = fs["vector_stores"]
    return out


def sampling(body: dict[str, Any]) -> dict[str, Any]:
    """``temperature`` (0..2) and ``top_p`` (0..1) when given."""
    out = {}
    for key, top in (("temperature", 2), ("top_p", 1)):
        if key in body:
            out[key] = field(body, key, float, minimum=0, maximum=top)
    return out
