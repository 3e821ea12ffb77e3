"""Function tools and ``python:`` assertions bound to Python callables in the project.

A function tool in an assistant's YAML names its handler as ``"package.module:function"``; a
``python:`` assertion names its check the same way. The module must be a file of the project:
``package/module.py`` or ``package/module/__init__.py`` under the project root (see README,
"Security"), or one of the example handlers orch ships (:data:`SHIPPED_HANDLERS`). A name that
reaches anywhere else (``os:system``, anything installed) is refused before anything is
imported, and again after importing when the name was already bound to a module elsewhere; to
use an installed library, re-export it from a project module, where a reviewer sees it as code.
The module is imported with the project root first on ``sys.path``. When the YAML gives no
``parameters``, the JSON Schema is derived from the handler's signature (type hints, defaults)
and its docstring's first line.
"""

from __future__ import annotations

import importlib
import importlib.util
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


#: Packages of orch's own whose functions may be handlers: example handlers, harmless by design.
#: Nothing else outside a project is: orch's other functions write files and open connections.
SHIPPED_HANDLERS = ("orch.examples",)


class HandlerError(Exception):
    """A handler spec cannot be resolved to a callable; the message says why."""


def project_module_file(module_name: str, root: Path) -> Path | None:
    """The file under ``root`` that defines ``module_name``, or None; nothing is imported.

    ``a.b`` is ``a/b.py`` or ``a/b/__init__.py``. Links are followed: a file that resolves outside
    ``root`` is not the project's.
    """
    parts = module_name.split(".")
    if not all(part.isidentifier() for part in parts):
        return None
    base = root.joinpath(*parts)
    for candidate in (base.parent / f"{parts[-1]}.py", base / "__init__.py"):
        if candidate.is_file() and _inside(candidate, root):
            return candidate
    return None


def check_handler(spec: str, root: Path) -> str | None:
    """What is wrong with ``spec`` as a handler of the project at ``root``, without importing.

    None when it looks like ``module:function`` and the module is a file of the project.
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        return f"handler {spec!r} must look like 'module:function'"
    if project_module_file(module_name, root) is not None or _shipped(module_name):
        return None
    top = module_name.split(".")[0]
    in_project = (root / top).is_dir() or (root / f"{top}.py").is_file()
    if not in_project and (top in sys.builtin_module_names or _installed(top)):
        return (
            f"module {module_name!r} is not part of the project: a handler must be a module "
            "under the project root (re-export a library function from one; README: Security)"
        )
    where = "/".join(module_name.split("."))
    return f"cannot import module {module_name!r}: no {where}.py in the project"


def resolve_handler(spec: str, root: Path | None = None) -> Callable[..., Any]:
    """Import ``module:function`` and return the callable; HandlerError says what is wrong.

    With ``root`` (every caller in orch passes it), the module must be a file of the project at
    ``root`` (:func:`check_handler`), which goes first on sys.path; after importing, the module
    must still be that file (a name already imported from elsewhere, like ``os``, is refused).
    """
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise HandlerError(f"handler {spec!r} must look like 'module:function'")
    if root is not None:
        problem = check_handler(spec, root)
        if problem:
            raise HandlerError(problem)
        if str(root) not in sys.path:
            sys.path.insert(0, str(root))
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise HandlerError(f"cannot import module {module_name!r}: {exc}") from exc
    except Exception as exc:  # the user's module raised while importing
        raise HandlerError(
            f"importing {module_name!r} failed: {type(exc).__name__}: {exc}"
        ) from exc
    where = getattr(module, "__file__", None)
    if root is not None and not (_shipped(module_name) or (where and _inside(where, root))):
        raise HandlerError(
            f"module {module_name!r} resolves to {where or 'a built-in module'}, outside the "
            "project: a handler must be a module under the project root"
        )
    func = getattr(module, attr, None)
    if func is None:
        raise HandlerError(f"module {module_name!r} has no attribute {attr!r}")
    if not callable(func):
        raise HandlerError(f"{spec!r} is not callable")
    return func


def _inside(path: str | Path, root: Path) -> bool:
    """Whether ``path`` (links resolved) is a file inside ``root``."""
    return bool(path) and Path(path).resolve().is_relative_to(root.resolve())


def _shipped(module_name: str) -> bool:
    """Whether ``module_name`` is in one of orch's own handler packages."""
    return any(module_name == p or module_name.startswith(f"{p}.") for p in SHIPPED_HANDLERS)


def _installed(top: str) -> bool:
    """Whether a top-level module named ``top`` exists outside the project (not imported)."""
    if top in sys.modules:
        return True
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):
        return False


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
