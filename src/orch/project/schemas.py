"""The JSON Schemas (draft 2020-12) that define orch's file formats, and validation with locations.

The schemas live once, in the repository's top-level ``schemas/`` directory; the wheel ships
them as ``orch/schemas/`` package data. In an editable install they are read from the
repository directly.
"""

from __future__ import annotations

import difflib
import functools
import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError

from orch.errors import Problem
from orch.project.documents import Document

SCHEMA_NAMES = ("orch", "assistant", "pipeline", "script")


def schema_dir() -> Path:
    """Directory holding the ``*.schema.json`` files (package data, else the repo's)."""
    packaged = resources.files("orch") / "schemas"
    if packaged.is_dir():
        return Path(str(packaged))
    return Path(__file__).resolve().parents[3] / "schemas"


@functools.cache
def load_schema(name: str) -> dict[str, Any]:
    """Return the parsed schema ``schemas/<name>.schema.json``."""
    return json.loads((schema_dir() / f"{name}.schema.json").read_text(encoding="utf-8"))


@functools.cache
def _validator(name: str) -> Draft202012Validator:
    return Draft202012Validator(
        load_schema(name), format_checker=Draft202012Validator.FORMAT_CHECKER
    )


def validate(doc: Document, name: str) -> list[Problem]:
    """Validate ``doc.data`` against schema ``name``; one located problem per real mistake."""
    explained = [
        (error.validator, path, message)
        for error in _validator(name).iter_errors(doc.data)
        for path, message in _explain(error, load_schema(name))
    ]
    # A misspelt key also breaks "exactly one of ..." (or "missing 'regex'") on its object: the
    # unknown key, with its did-you-mean, is the one problem to report there.
    unknown = [(path, message) for _v, path, message in explained if message.startswith(_UNKNOWN)]
    return [
        doc.problem(path, message)
        for validator, path, message in explained
        if not any(
            _explained_by(validator, path, message, u_path, hint) for u_path, hint in unknown
        )
    ]


_UNKNOWN = "unknown field"


def _explained_by(
    validator: str, path: tuple, message: str, unknown_path: tuple, unknown_message: str
) -> bool:
    if path != unknown_path[:-1]:
        return False
    if validator in ("oneOf", "anyOf", "minProperties", "maxProperties"):
        return True
    if validator == "required":  # "missing 'model'" explained by "modl: ... did you mean 'model'?"
        missing = message.removeprefix("missing required field ")
        return f"did you mean {missing}?" in unknown_message
    return False


def schema_error(schema: Any) -> tuple[tuple, str] | None:
    """Where (a path inside ``schema``) and why it is not a valid draft 2020-12 JSON Schema."""
    try:
        Draft202012Validator.check_schema(schema)
    except jsonschema.SchemaError as exc:
        return tuple(exc.absolute_path), f"invalid JSON Schema: {exc.message}"
    return None


def check_schema(schema: Any) -> str | None:
    """Return why ``schema`` is not a valid draft 2020-12 JSON Schema, or None when it is."""
    error = schema_error(schema)
    if error is None:
        return None
    where, why = error
    return f"{why} (at {'/'.join(map(str, where))})" if where else why


def _explain(error: ValidationError, root: dict) -> list[tuple[tuple, str]]:
    """Turn one jsonschema error into (path, message) pairs a person can act on."""
    path = tuple(error.absolute_path)
    custom = error.schema.get("errorMessage") if isinstance(error.schema, dict) else None
    if "propertyNames" in error.relative_schema_path and isinstance(error.instance, str):
        # jsonschema locates a bad key at its object; point at the key itself.
        path = (*path, error.instance)
    if error.validator == "pattern":
        rule = custom or f"must match {error.validator_value}"
        return [(path, f"{_show(error.instance)} is not valid: {rule}")]
    if custom and error.validator == "type" and "pattern" in error.schema:
        custom = None  # the message describes the pattern; "42 is not of type string" is clearer
    if custom and error.validator not in ("additionalProperties", "unevaluatedProperties"):
        return [(path, custom)]
    if error.validator in ("additionalProperties", "unevaluatedProperties"):
        instance = error.instance if isinstance(error.instance, dict) else {}
        allowed = _allowed_keys(error.schema, root)
        extra = [k for k in instance if k not in allowed] if allowed else []
        if not extra:
            extra = [m for m in re.findall(r"'([^']+)'", error.message) if m in instance]
        return [((*path, key), f"unknown field{_hint(key, allowed)}") for key in extra]
    if error.validator == "required":
        missing = re.findall(r"^'([^']+)' is a required property", error.message)
        name = missing[0] if missing else error.message
        return [(path, f"missing required field '{name}'")]
    if error.validator in ("oneOf", "anyOf"):
        return [(path, _explain_alternatives(error, root))]
    if error.validator == "type":
        expected = error.validator_value
        expected = " or ".join(expected) if isinstance(expected, list) else expected
        return [(path, f"{_show(error.instance)} is not of type {expected}")]
    if error.validator == "enum":
        options = ", ".join(json.dumps(v) for v in error.validator_value)
        return [(path, f"{_show(error.instance)} is not one of: {options}")]
    if error.validator == "const":
        return [(path, f"must be {json.dumps(error.validator_value)}")]
    if error.validator == "maxLength":
        return [
            (
                path,
                f"{_show(error.instance)} is too long: {len(error.instance)} characters, "
                f"at most {error.validator_value} allowed",
            )
        ]
    if error.validator == "minLength" and error.validator_value == 1:
        return [(path, "must not be empty")]
    if error.validator == "format" and error.validator_value == "regex":
        try:
            re.compile(error.instance)
        except re.error as exc:
            return [(path, f"invalid regular expression {_show(error.instance)}: {exc}")]
    if error.validator == "maxProperties" and path[-1:] == ("metadata",):
        return [(path, f"at most {error.validator_value} metadata keys are allowed")]
    return [(path, error.message)]


def _explain_alternatives(error: ValidationError, root: dict) -> str:
    """For oneOf/anyOf, report the most relevant branch instead of 'not valid under any'."""
    context = [e for e in (error.context or []) if e.validator != "type"]
    if context:
        best = jsonschema.exceptions.best_match(context)
        sub = _explain(best, root)
        if sub:
            return sub[0][1]
    types = []
    for branch in error.validator_value:
        t = branch.get("type")
        if t:
            types.extend(t if isinstance(t, list) else [t])
    if types:
        return f"{_show(error.instance)} is not of type {' or '.join(dict.fromkeys(types))}"
    return f"{_show(error.instance)} is not valid here"


def _allowed_keys(schema: dict, root: dict) -> list[str]:
    """Property names a node allows, following local ``$ref``/``allOf`` (unevaluatedProperties)."""
    keys = list(schema.get("properties", {}))
    for sub in [schema.get("$ref"), *(s.get("$ref") for s in schema.get("allOf", []))]:
        if sub and sub.startswith("#/$defs/"):
            target = root.get("$defs", {}).get(sub.split("/")[-1], {})
            keys += _allowed_keys(target, root)
    for sub in schema.get("allOf", []):
        keys += list(sub.get("properties", {}))
    return sorted(set(keys))


def _hint(key: str, allowed: list[str]) -> str:
    close = difflib.get_close_matches(key, allowed, n=1, cutoff=0.7)
    if close:
        return f" (did you mean '{close[0]}'?)"
    return f" (allowed: {', '.join(allowed)})" if allowed else ""


def _show(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, default=str)
    return text if len(text) <= 60 else text[:57] + "..."
