"""Function tools bound to Python callables.

A function tool in an assistant's YAML names its handler as ``"package.module:function"``. The
module is imported with the project root first on ``sys.path``, so a project's own helper modules
work without installing them. When the YAML gives no ``parameters``, the JSON Schema is derived
from the handler's signature (type hints, defaults) and its docstring's first line.
"""

from __future__ import annotations

import importlib
import inspect
import sys
import types
import typing
from collections.abc import Callable
from pathlib import Path
from typing import Any

_JSON_TYPES: dict[Any, dict] = {
    str: {"type": "string"},
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    dict: {"type": "object"},
    list: {"type": "array"},
}


class HandlerError(Exception):
    """A handler spec cannot be resolved to a callable; the message says why."""


def resolve_handler(spec: str, root: Path | None = None) -> Callable[..., Any]:
    """Import ``module:function`` (project root first on sys.path) and return the callable."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise HandlerError(f"handler {spec!r} must look like 'module:function'")
    if root is not None and str(root) not in sys.path:
        sys.path.insert(0, str(root))
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise HandlerError(f"cannot import module {module_name!r}: {exc}") from exc
    except Exception as exc:  # the user's module raised while importing
        raise HandlerError(
            f"importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    func = getattr(module, attr, None)
    if func is None:
        raise HandlerError(f"module {module_name!r} has no attribute {attr!r}")
    if not callable(func):
        raise HandlerError(f"{spec!r} is not callable")
    return func


def _schema_for(annotation: Any) -> dict:
    if annotation is inspect.Parameter.empty or annotation is Any:
        return {}
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        non_null = [a for a in args if a is not type(None)]
        if len(non_null) == 1:
            return _schema_for(non_null[0])
        return {"anyOf": [_schema_for(a) for a in non_null]}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (list, tuple, set, frozenset):
        schema: dict = {"type": "array"}
        if args and args[0] is not Ellipsis:
            schema["items"] = _schema_for(args[0])
        return schema
    if origin is dict:
        return {"type": "object"}
    return dict(_JSON_TYPES.get(annotation, {}))


def schema_from_signature(func: Callable[..., Any]) -> dict:
    """JSON Schema for ``func``'s keyword arguments, derived from its signature."""
    try:
        hints = typing.get_type_hints(func)
    except Exception:
        hints = {}
    properties: dict[str, dict] = {}
    required: list[str] = []
    for name, param in inspect.signature(func).parameters.items():
        if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        prop = _schema_for(hints.get(name, param.annotation))
        if param.default is inspect.Parameter.empty:
            required.append(name)
        elif param.default is not None and isinstance(param.default, str | int | float | bool):
            prop["default"] = param.default
        properties[name] = prop
    schema: dict[str, Any] = {"type": "object", "properties": properties}
    if required:
        schema["required"] = required
    return schema


def describe(func: Callable[..., Any]) -> str | None:
    """First paragraph of the handler's docstring, used as the tool description."""
    doc = inspect.getdoc(func)
    if not doc:
        return None
    return doc.split("\n\n", 1)[0].replace("\n", " ").strip() or None
