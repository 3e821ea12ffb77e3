"""OpenAI eval definitions as orch files: what ``orch import-eval`` writes, and what it cannot.

An OpenAI eval is three things: a data source config (the JSON schema of each item), testing
criteria (graders) and, per run, a data source (the items, and for generated samples the model,
the input-message template and sampling parameters). orch holds the same things as an assistant
(model, instructions, sampling settings), a pipeline (one step whose prompt is the template's
user message, whose ``expect`` is the graders, verbatim, as ``grader:`` entries) and an items
file (one JSON object per line: the ``item`` namespace).

:func:`convert` never guesses silently: whatever has no orch equivalent (a ``sample`` already
in the data, an image in a template, a seed, a data source that lives on OpenAI's servers) is
listed in :attr:`Conversion.skipped` with the reason. Input that is not an eval (or a run) as
the SDK's types describe it is a :class:`~orch.errors.UsageError` naming the file and field.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jsonschema

from orch.errors import UsageError

#: sampling parameters of a completions/responses data source that map to assistant settings
_SETTINGS = {"temperature": "temperature", "top_p": "top_p", "max_completion_tokens": "max_tokens"}
_ITEM_REF = re.compile(r"\{\{\s*item\.([^\s{}]+?)\s*\}\}")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_DEFAULT_MODEL = "gpt-4.1-mini"


@dataclass
class Conversion:
    """The files' contents (``assistant``, ``pipeline`` as YAML-ready data, ``items``) + notes."""

    slug: str
    assistant: dict[str, Any]
    pipeline: dict[str, Any]
    items: list[dict[str, Any]]
    skipped: list[str] = field(default_factory=list)


def read_json(path: Path) -> Any:
    """The JSON in ``path``; a missing file or bad JSON is one line naming file:line."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{path}:{exc.lineno}: not JSON: {exc.msg}") from exc


def read_data(path: Path) -> list[tuple[str, dict[str, Any]]]:
    """``(where, row)`` per line of an eval's JSONL data: ``{"item": {...}, "sample": {...}?}``.

    A line without ``item`` is taken as the item itself; ``where`` is ``file:line``.
    """
    rows: list[tuple[str, dict[str, Any]]] = []
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from exc
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{path}:{number}: not JSON: {exc.msg}") from exc
        if not isinstance(row, dict):
            raise UsageError(f"{path}:{number}: a line must be a JSON object, not {_kind(row)}")
        rows.append((f"{path}:{number}", row if "item" in row else {"item": row}))
    return rows


def _kind(value: Any) -> str:
    return {list: "a list", str: "a string"}.get(type(value), type(value).__name__)


def parse_eval(data: Any, source: str) -> dict[str, Any]:
    """The eval object in ``data`` (``evals.retrieve``'s JSON, a one-eval list, or create params).

    Checked against the SDK's ``EvalRetrieveResponse`` (or ``EvalCreateParams`` for the JSON a
    team passes to ``evals.create``); returns the plain dict with ``schema`` (the item schema,
    or None), ``name``, ``id`` and ``testing_criteria``.
    """
    if isinstance(data, dict) and data.get("object") == "list":
        evals = data.get("data") or []
        if len(evals) != 1:
            raise UsageError(f"{source}: a list of {len(evals)} evals; save one eval per file")
        data = evals[0]
    if not isinstance(data, dict):
        raise UsageError(f"{source}: not an OpenAI eval (a JSON object with testing_criteria)")
    if data.get("object") == "eval":
        _validate(data, "openai.types.eval_retrieve_response:EvalRetrieveResponse", source)
        config = data["data_source_config"]
        schema = config.get("schema")
    else:
        _validate(data, "openai.types.eval_create_params:EvalCreateParams", source)
        config = data["data_source_config"]
        schema = config.get("item_schema")
        if isinstance(schema, dict) and config.get("type") == "custom":
            schema = {"type": "object", "properties": {"item": schema}}
    return {
        "id": data.get("id"),
        "name": data.get("name") or Path(source).stem,
        "schema": schema,
        "source_type": config.get("type"),
        "testing_criteria": list(data["testing_criteria"]),
    }


def _validate(data: dict, spec: str, source: str) -> None:
    """Validate ``data`` against the SDK type ``module:Name``; the first error names its field."""
    import importlib

    import pydantic

    module, name = spec.split(":")
    kind = getattr(importlib.import_module(module), name)
    try:
        pydantic.TypeAdapter(kind).validate_python(data)
    except pydantic.ValidationError as exc:
        located = [_locate(error, data) for error in exc.errors()]
        where, message = next((found for found in located if found[2]), located[0])[:2]
        raise UsageError(f"{source}: {where or 'eval'}: {message} (not an OpenAI eval?)") from None


def _locate(error: dict, data: Any) -> tuple[str, str, bool]:
    """``(field path, message, relevant)`` for a pydantic error on ``data``.

    In a union, pydantic reports every member's complaints under the member's class name;
    those names are dropped from the path, and only the member whose name matches the
    object's ``type`` (``string_check`` → ``StringCheckGrader``) counts as relevant.
    """
    path, relevant, here = [], True, data
    for part in error["loc"]:
        if isinstance(part, str) and part[:1].isupper() and not _has(here or {}, part):
            wanted = str(here.get("type", "")).replace("_", "")
            relevant &= bool(wanted) and wanted in part.lower().replace("_", "")
            continue
        path.append(str(part))
        here = here[part] if isinstance(here, (dict, list)) and _has(here, part) else None
    return ".".join(path), error["msg"], relevant


def _has(container: dict | list, key: Any) -> bool:
    if isinstance(container, dict):
        return key in container
    return isinstance(key, int) and 0 <= key < len(container)


def parse_run(data: Any, source: str) -> dict[str, Any]:
    """The ``data_source`` of an eval run (``evals.runs.retrieve``'s JSON, or a one-run list)."""
    if isinstance(data, dict) and data.get("object") == "list":
        runs = data.get("data") or []
        if not runs:
            raise UsageError(f"{source}: an empty list of runs")
        data = runs[0]  # the newest run: evals.runs.list returns newest first
    if not isinstance(data, dict) or not isinstance(data.get("data_source"), dict):
        raise UsageError(f"{source}: not an OpenAI eval run (a JSON object with data_source)")
    if data.get("object") == "eval.run":
        spec = "openai.types.evals.run_retrieve_response:DataSource"
        _validate(data["data_source"], spec, f"{source}: data_source")
    return data["data_source"]


def convert(
    evaluation: dict[str, Any],
    data_source: dict[str, Any] | None = None,
    rows: list[tuple[str, dict[str, Any]]] | None = None,
) -> Conversion:
    """Map an eval (:func:`parse_eval`), its run's data source and data rows to orch files.

    ``rows`` (from ``--data``) win over the rows a run carries inline. Items are checked
    against the eval's item schema: a row that does not fit is a UsageError naming its line.
    """
    slug = _slug(evaluation["name"])
    skipped: list[str] = []
    assistant: dict[str, Any] = {"name": slug, "model": _DEFAULT_MODEL}
    step: dict[str, Any] = {"id": "answer"}
    if data_source is None:
        skipped.append(
            f"no run given (--runs): the model is a placeholder ({_DEFAULT_MODEL}) and the prompt "
            "is each item's fields as JSON; pass a run JSON to take both from it"
        )
        step["prompt"] = "{{ item | tojson }}"
    else:
        _map_sampling(data_source, assistant, skipped)
        _map_messages(data_source.get("input_messages"), assistant, step, skipped)
        rows = rows if rows is not None else _inline_rows(data_source, skipped)
    items = _items(rows or [], evaluation.get("schema"), skipped)
    step["expect"] = [{"grader": dict(criterion)} for criterion in evaluation["testing_criteria"]]
    if not step["expect"]:
        skipped.append("the eval has no testing criteria: the step only records replies")
        del step["expect"]
    described = f"OpenAI eval {evaluation['id']}" if evaluation.get("id") else "an OpenAI eval"
    pipeline = {
        "name": slug,
        "description": f"Imported from {described} ({evaluation['name']}) by orch import-eval.",
        "assistant": slug,
        "items": {"jsonl": f"pipelines/data/{slug}.jsonl"},
        "steps": [step],
    }
    return Conversion(slug, assistant, pipeline, items, skipped)


def _slug(name: str) -> str:
    text = re.sub(r"[^A-Za-z0-9_.-]+", "-", name.strip()).strip("-._").lower()
    return (text or "imported-eval")[:64]


def _map_sampling(source: dict[str, Any], assistant: dict[str, Any], skipped: list[str]) -> None:
    if source.get("model"):
        assistant["model"] = source["model"]
    else:
        skipped.append(f"the run names no model: {_DEFAULT_MODEL} is a placeholder")
    params = dict(source.get("sampling_params") or {})
    for key, setting in _SETTINGS.items():
        if params.get(key) is not None:
            assistant[setting] = params.pop(key)
    params = {key: value for key, value in params.items() if value is not None}
    if "response_format" in params:
        assistant["response_format"] = params.pop("response_format")
    if isinstance(params.get("text"), dict) and params["text"].get("format"):
        assistant["response_format"] = _chat_format(params.pop("text")["format"])
    if "reasoning_effort" in params:
        assistant["reasoning"] = {"effort": params.pop("reasoning_effort")}
        skipped.append("reasoning_effort became `reasoning:`, which only `agents` targets take")
    if params.get("tools"):
        assistant["tools"] = _tools(params.pop("tools"), skipped)
    for key in sorted(params):
        skipped.append(f"sampling_params.{key}: orch assistants have no such setting")


def _chat_format(text_format: dict[str, Any]) -> Any:
    """A Responses ``text.format`` as the Chat/Assistants ``response_format`` orch declares."""
    if text_format.get("type") != "json_schema":
        return {"type": text_format.get("type", "text")}
    inner = {
        k: text_format[k] for k in ("name", "schema", "strict", "description") if k in text_format
    }
    return {"type": "json_schema", "json_schema": inner}


def _tools(tools: list[dict[str, Any]], skipped: list[str]) -> list[Any]:
    """Function tools, as declarations without a handler (the user adds one); others skipped."""
    declared: list[Any] = []
    for tool in tools:
        function = tool.get("function", tool) if tool.get("type") == "function" else None
        if function is None or not function.get("name"):
            skipped.append(f"tool of type {tool.get('type')!r}: not mapped")
            continue
        keys = ("name", "description", "parameters", "strict")
        declared.append({"function": {k: function[k] for k in keys if function.get(k) is not None}})
        skipped.append(
            f"function {function['name']}: declared without a handler; add `handler: "
            "module:function` so orch run can answer its calls"
        )
    return declared


def _map_messages(
    messages: dict[str, Any] | None,
    assistant: dict[str, Any],
    step: dict[str, Any],
    skipped: list[str],
) -> None:
    """The input-message template as instructions (system/developer) and the step's prompt."""
    if not messages:
        skipped.append("the run has no input_messages: the prompt is each item's fields as JSON")
        step["prompt"] = "{{ item | tojson }}"
        return
    if messages.get("type") == "item_reference":
        ref = _jinja_path(messages["item_reference"])
        step["prompt"] = (
            f"{{{{ ({ref} | selectattr('role', 'equalto', 'user') | list | last).content }}}}"
        )
        skipped.append(
            f"input_messages refers to {messages['item_reference']}: only the last user message "
            "of each item's conversation is sent; earlier turns are dropped"
        )
        return
    template = [(m.get("role"), _text(m.get("content"), skipped)) for m in messages["template"]]
    users = [i for i, (role, _) in enumerate(template) if role == "user"]
    if not users:
        raise UsageError("the run's input_messages template has no user message to send")
    last = users[-1]
    system = [text for role, text in template[:last] if role in ("system", "developer")]
    examples = [(role, text) for role, text in template[:last] if role in ("user", "assistant")]
    if examples:
        lines = [f"{role.capitalize()}: {text}" for role, text in examples]
        system.append("Example conversation:\n" + "\n".join(lines))
        skipped.append(
            f"{len(examples)} earlier template messages became example text in the instructions"
        )
    for role, _ in template[last + 1 :]:
        skipped.append(f"a {role} message after the last user message: not mapped")
    step["prompt"] = _jinja(template[last][1])
    if system:
        instructions = _jinja("\n\n".join(system))
        # Per-item instructions must be rendered per step; fixed ones belong to the assistant.
        (step if "{{" in instructions else assistant)["instructions"] = instructions


def _text(content: Any, skipped: list[str]) -> str:
    """A template message's content as text; images and audio are listed as skipped."""
    if isinstance(content, str):
        return content
    parts = content if isinstance(content, list) else [content]
    texts = []
    for part in parts:
        if isinstance(part, str):
            texts.append(part)
        elif isinstance(part, dict) and part.get("type") in ("input_text", "output_text"):
            texts.append(part.get("text", ""))
        else:
            kind = part.get("type") if isinstance(part, dict) else type(part).__name__
            skipped.append(f"a {kind} part of a template message: orch prompts are text")
    return "\n".join(texts)


def _jinja(template: str) -> str:
    """OpenAI's ``{{item.a-b}}`` as Jinja that means the same: ``{{ item["a-b"] }}``."""
    return _ITEM_REF.sub(lambda m: "{{ " + _jinja_path("item." + m.group(1)) + " }}", template)


def _jinja_path(path: str) -> str:
    head, *parts = path.split(".")
    return head + "".join(
        f".{p}" if _IDENTIFIER.fullmatch(p) else f"[{json.dumps(p)}]" for p in parts
    )


def _inline_rows(source: dict[str, Any], skipped: list[str]) -> list[tuple[str, dict[str, Any]]]:
    """Rows the run carries in its data source; where they live elsewhere, why not."""
    inner = source.get("source") or {}
    kind = inner.get("type")
    if kind == "file_content":
        content = inner.get("content") or []
        return [
            (f"the run's data_source.source.content[{i}]", row) for i, row in enumerate(content)
        ]
    if kind == "file_id":
        skipped.append(
            f"the run's items are in OpenAI file {inner.get('id')}: download it "
            f"(client.files.content('{inner.get('id')}')) and pass it as --data"
        )
    elif kind:
        skipped.append(
            f"the run's items come from {kind} on OpenAI's servers: "
            "export them to JSONL and pass --data"
        )
    return []


def _items(
    rows: list[tuple[str, dict[str, Any]]], schema: Any, skipped: list[str]
) -> list[dict[str, Any]]:
    """The ``item`` of each row, checked against the eval's item schema."""
    if not rows:
        reasons = (
            "; ".join(note for note in skipped if "--data" in note) or "pass --data ITEMS.jsonl"
        )
        raise UsageError(f"no items to import: {reasons}")
    item_schema = schema.get("properties", {}).get("item") if isinstance(schema, dict) else None
    validator = (
        jsonschema.Draft202012Validator(item_schema) if isinstance(item_schema, dict) else None
    )
    items, samples = [], 0
    for where, row in rows:
        item = row.get("item")
        if not isinstance(item, dict):
            raise UsageError(f"{where}: item must be a JSON object, not {_kind(item)}")
        error = next(iter(validator.iter_errors(item)), None) if validator else None
        if error is not None:
            field_path = "".join(f"[{p!r}]" if isinstance(p, int) else f".{p}" for p in error.path)
            raise UsageError(f"{where}: item{field_path}: {error.message} (the eval's item schema)")
        samples += "sample" in row
        items.append(item)
    if samples:
        skipped.append(
            f"{samples} rows carry a sample (an output made earlier): orch makes its own outputs "
            "by running the assistant, so those samples are dropped"
        )
    return items
