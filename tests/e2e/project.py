"""A throw-away copy of the example project whose target is the engine in front of a real model.

The copy holds ``assistants/``, ``pipelines/`` (with their data) and ``schemas/`` and a fresh
``orch.yml`` with one target, ``llm``: ``{kind: engine, model: openai-chat, base_url: ...}``.
When the target schema knows a per-target ``models`` map it also maps the assistants' model
(gpt-4o) to the server's alias. ``pedro-batch`` gets a ``json_object`` variant when the project
has none: its assistant asks for ``json_schema``, which small local models cannot honour.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import yaml

JSON_VARIANT = "pedro-batch-json"
ASSISTANT_MODEL = "gpt-4o"


def supports_models_map(source: Path) -> bool:
    """Whether ``orch.yml``'s schema lets a target map assistant models to server models."""
    schema = json.loads((source / "schemas" / "orch.schema.json").read_text(encoding="utf-8"))
    return "models" in schema["$defs"]["target"]["properties"]


def make_project(source: Path, dest: Path, base_url: str, alias: str) -> list[str]:
    """Lay the copy out in ``dest``; return notes on what was adapted (for the report)."""
    for folder in ("assistants", "pipelines", "schemas"):
        shutil.copytree(source / folder, dest / folder)
    target: dict = {"kind": "engine", "model": "openai-chat", "base_url": base_url}
    notes = []
    if supports_models_map(source):
        target["models"] = {ASSISTANT_MODEL: alias}
        notes.append(f"target maps models: {ASSISTANT_MODEL} -> {alias}")
    else:
        notes.append(
            f"no per-target models map in orch.schema.json yet: the engine sends "
            f"model={ASSISTANT_MODEL!r} and the server answers with its only model"
        )
    config = {"project": "e2e-llm", "target": "llm", "targets": {"llm": target}}
    (dest / "orch.yml").write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    if not (dest / "pipelines" / f"{JSON_VARIANT}.yml").exists():
        _make_json_variant(dest)
        notes.append(f"made {JSON_VARIANT}: pedro-batch with response_format json_object")
    return notes


def _make_json_variant(dest: Path) -> None:
    """``pedro-rater-json`` (json_object instead of json_schema) and a pipeline using it."""
    rater = (dest / "assistants" / "pedro-rater.yml").read_text(encoding="utf-8")
    # Text edits, not a YAML round trip: the file uses orch's ``!file`` tag.
    renamed, n_name = re.subn(r"^name: pedro-rater$", "name: pedro-rater-json", rater, flags=re.M)
    variant, n_format = re.subn(
        r"^response_format:\n(?:[ ].*\n)+",
        "response_format: {type: json_object}\n",
        renamed,
        flags=re.M,
    )
    if (n_name, n_format) != (1, 1):
        raise RuntimeError("assistants/pedro-rater.yml changed shape; update tests/e2e/project.py")
    (dest / "assistants" / "pedro-rater-json.yml").write_text(variant, encoding="utf-8")
    pipeline = yaml.safe_load((dest / "pipelines" / "pedro-batch.yml").read_text(encoding="utf-8"))
    pipeline["name"] = JSON_VARIANT
    pipeline["assistant"] = "pedro-rater-json"
    text = yaml.safe_dump(pipeline, sort_keys=False)
    (dest / "pipelines" / f"{JSON_VARIANT}.yml").write_text(text, encoding="utf-8")
