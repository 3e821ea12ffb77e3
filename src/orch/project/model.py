"""The declarative model: frozen dataclasses built from validated YAML, with fingerprints.

An :class:`Assistant`'s :meth:`~Assistant.fingerprint` is the sha256 of its canonical JSON,
including the sha256 of every file it references, so a changed PDF changes the hash even when no
YAML line moved. Sync stores it remotely as ``orch_hash``.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from orch.errors import Problem

SCHEMA_VERSION = 1


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no insignificant whitespace: equal data, equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_text(text: str) -> str:
    """Hex sha256 of UTF-8 text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def parse_duration(value: float | int | str | None, default: float | None = None) -> float | None:
    """Seconds from a number or a string such as ``500ms``, ``30s``, ``5m``, ``1h``."""
    if value is None:
        return default
    if isinstance(value, int | float):
        return float(value)
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*", value)
    if not match:
        raise ValueError(f"not a duration: {value!r}")
    number, unit = float(match.group(1)), match.group(2)
    return number * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]


@dataclass(frozen=True)
class LocalFile:
    """A file the config references: where it is and what it holds (by hash)."""

    path: str  # as written, relative to the project root
    sha256: str
    size: int

    @classmethod
    def from_path(cls, root: Path, rel: str) -> LocalFile:
        """Hash ``root/rel``; raises OSError when it cannot be read."""
        full = (root / rel).resolve()
        return cls(path=rel, sha256=sha256_file(full), size=full.stat().st_size)


@dataclass(frozen=True)
class FunctionTool:
    """A function the model may call; ``handler`` answers it during ``orch run``."""

    name: str
    description: str | None = None
    parameters: dict | None = None
    strict: bool | None = None
    handler: str | None = None
    timeout: float = 60.0

    def wire(self) -> dict:
        """The tool as the Assistants API expects it."""
        function: dict[str, Any] = {"name": self.name}
        if self.description:
            function["description"] = self.description
        function["parameters"] = self.parameters or {"type": "object", "properties": {}}
        if self.strict is not None:
            function["strict"] = self.strict
        return {"type": "function", "function": function}


@dataclass(frozen=True)
class Tool:
    """One tool: ``code_interpreter``, ``file_search`` (with options) or a function."""

    type: str
    options: tuple[tuple[str, Any], ...] = ()
    function: FunctionTool | None = None

    def wire(self) -> dict:
        """The tool as the Assistants API expects it."""
        if self.function:
            return self.function.wire()
        out: dict[str, Any] = {"type": self.type}
        if self.options:
            out[self.type] = dict(self.options)
        return out


@dataclass(frozen=True)
class Assistant:
    """A declared assistant, the unit ``orch sync`` reconciles."""

    name: str
    model: str
    source: str  # file it came from, for messages
    instructions: str | None = None
    description: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    response_format: Any = None
    tools: tuple[Tool, ...] = ()
    files: tuple[tuple[str, tuple[LocalFile, ...]], ...] = ()  # (tool, files)
    metadata: tuple[tuple[str, str], ...] = ()
    #: cap on the reply's tokens per run (``max_completion_tokens`` / ``max_output_tokens``)
    max_tokens: int | None = None
    #: reasoning settings (``effort``, ``summary``), sent by targets of kind ``agents``
    reasoning: tuple[tuple[str, str], ...] = ()
    #: per target kind with rules: the declared fields it has no place for, located in the
    #: YAML (found at load time; see :func:`orch.targets.registry.refusals`)
    refusals: tuple[tuple[str, tuple[Problem, ...]], ...] = field(default=(), compare=False)

    def files_for(self, tool: str) -> tuple[LocalFile, ...]:
        """Files declared for ``tool`` (``file_search`` or ``code_interpreter``)."""
        return dict(self.files).get(tool, ())

    def function(self, name: str) -> FunctionTool | None:
        """The function tool called ``name``, if declared."""
        for tool in self.tools:
            if tool.function and tool.function.name == name:
                return tool.function
        return None

    def refused_by(self, kind: str) -> tuple[Problem, ...]:
        """What a target of ``kind`` cannot take from this assistant (empty: it takes it all)."""
        return dict(self.refusals).get(kind, ())

    def canonical(self) -> dict:
        """Everything that defines the assistant remotely, as plain JSON-able data."""
        return {
            "name": self.name,
            "model": self.model,
            "instructions": self.instructions,
            "description": self.description,
            "temperature": self.temperature,
            "top_p": self.top_p,
            "response_format": self.response_format,
            "tools": [tool.wire() for tool in self.tools],
            "files": {tool: [f.sha256 for f in files] for tool, files in self.files},
            "metadata": dict(self.metadata),
            # only when set, so assistants without it keep the identity they always had
            **({"max_tokens": self.max_tokens} if self.max_tokens is not None else {}),
            **({"reasoning": dict(self.reasoning)} if self.reasoning else {}),
        }

    def fingerprint(self) -> str:
        """sha256 of the canonical JSON (file contents by hash): equal config, equal hash."""
        return sha256_text(canonical_json({"v": SCHEMA_VERSION, **self.canonical()}))


@dataclass(frozen=True)
class Attachment:
    """A file attached to a step's message: a path for tools, or an image (path or URL)."""

    path: str | None = None
    tools: tuple[str, ...] = ("file_search",)
    image: str | None = None
    detail: str | None = None


@dataclass(frozen=True)
class Assertion:
    """One expectation on a step's result; ``kind`` is the assertion key, ``value`` its argument."""

    kind: str
    value: Any
    weight: float = 1.0
    threshold: float | None = None
    name: str | None = None
    line: int = 0


@dataclass(frozen=True)
class Step:
    """One prompt in a pipeline; steps of an item share its thread."""

    prompt: str
    id: str
    assistant: str | None = None
    instructions: str | None = None
    additional_instructions: str | None = None
    attachments: tuple[Attachment, ...] = ()
    expect: tuple[Assertion, ...] = ()
    threshold: float = 1.0
    timeout: float | None = None
    #: cap on this step's reply tokens (overrides the assistant's ``max_tokens``)
    max_tokens: int | None = None


@dataclass(frozen=True)
class ItemSource:
    """Where a pipeline's items come from: ``files``, ``csv``, ``jsonl``, ``inline``, or one."""

    kind: str  # files | csv | jsonl | inline | default
    value: Any = None


@dataclass(frozen=True)
class ReportOutput:
    """A report to render after a run: template (``builtin:*`` or a path) and output path."""

    template: str
    output: str


@dataclass(frozen=True)
class Variant:
    """One of a pipeline's ``variants:``: every item runs once per variant.

    ``assistant`` is what the pipeline's steps talk to in this variant (steps that name their
    own ``assistant:`` keep it): the declared one when the variant only switches assistants,
    else the assistant derived from it with the overrides (:mod:`orch.project.variants`).
    """

    name: str
    assistant: str
    #: the overrides as declared (``assistant`` included), for reports and the fingerprint
    overrides: tuple[tuple[str, Any], ...] = ()


@dataclass(frozen=True)
class Pipeline:
    """A declared pipeline: items × steps against an assistant, with expectations and reports."""

    name: str
    assistant: str
    source: str
    steps: tuple[Step, ...]
    items: ItemSource = field(default_factory=lambda: ItemSource("default"))
    description: str | None = None
    vars: tuple[tuple[str, Any], ...] = ()
    concurrency: int = 4
    timeout: float = 300.0
    retries: int = 2
    repeat: int = 1
    pass_rate: float = 1.0
    stream: bool = True
    report: tuple[ReportOutput, ...] = ()
    #: budget caps (USD from ``prices:``; tokens): no new item starts once they are reached
    max_cost: float | None = None
    max_tokens_total: int | None = None
    #: A/B variants: every item runs once per variant (empty: once, as declared)
    variants: tuple[Variant, ...] = ()
    #: the assistants the variants derive (name → assistant), synced like declared ones
    derived: tuple[tuple[str, Assistant], ...] = field(default=(), compare=False)

    def fingerprint(self) -> str:
        """sha256 of the pipeline's canonical JSON; recorded with each run.

        The budget caps are left out: they change what a run may spend, not what its items
        are, so raising one in the YAML still lets ``--resume`` continue a capped run. So are
        absent variants (a pipeline without them keeps the hash it always had) and the derived
        assistants (their fingerprints are in the run's ``pipeline_hash``).
        """
        data = {"v": SCHEMA_VERSION, **asdict(self), "source": None}
        del data["max_cost"], data["max_tokens_total"], data["derived"]
        if not self.variants:
            del data["variants"]
        return sha256_text(canonical_json(data))

    def variant(self, name: str) -> Variant | None:
        """The variant called ``name``, if declared."""
        return next((v for v in self.variants if v.name == name), None)


@dataclass(frozen=True)
class Target:
    """A server orch talks to: the embedded engine, an Assistants-v2 server, or Responses."""

    name: str
    kind: str  # engine | assistants | responses
    base_url: str | None = None
    api_key_env: str = "OPENAI_API_KEY"
    options: tuple[tuple[str, Any], ...] = ()

    def option(self, key: str, default: Any = None) -> Any:
        """A kind-specific setting (model, script, db, headers, capabilities, ...)."""
        return dict(self.options).get(key, default)

    def model_for(self, model: str) -> str:
        """The name this target knows ``model`` by (its ``models:`` map; ``*`` maps the rest)."""
        models = self.option("models") or {}
        return models.get(model) or models.get("*") or model


EMBEDDED = Target(name="embedded", kind="engine", options=(("model", "scripted"),))


@dataclass(frozen=True)
class Project:
    """A loaded, validated project: settings, assistants and pipelines by name."""

    root: Path
    name: str
    target: str
    targets: tuple[tuple[str, Target], ...]
    assistants: tuple[tuple[str, Assistant], ...]
    pipelines: tuple[tuple[str, Pipeline], ...]
    vars: tuple[tuple[str, Any], ...] = ()
    prices: tuple[tuple[str, tuple[float, float]], ...] = ()
    #: fraction off ``prices`` in batch runs, by model (a model not listed: 0.5, OpenAI's)
    batch_discounts: tuple[tuple[str, float], ...] = ()
    grader: str | None = None
    config_file: Path | None = None

    def assistant(self, name: str) -> Assistant | None:
        """The assistant called ``name``, if declared or derived by a pipeline's variant."""
        return dict(self.assistants).get(name) or dict(self.variant_assistants()).get(name)

    def variant_assistants(self) -> list[tuple[str, Assistant]]:
        """(name, assistant) of every assistant the pipelines' variants derive, by name.

        Sync keeps them like declared ones (one remote assistant each); the loader refuses two
        pipelines deriving one name differently.
        """
        found: dict[str, Assistant] = {}
        for _, pipeline in self.pipelines:
            for name, assistant in pipeline.derived:
                found.setdefault(name, assistant)
        return sorted(found.items())

    def pipeline(self, name: str) -> Pipeline | None:
        """The pipeline called ``name``, if declared."""
        return dict(self.pipelines).get(name)

    def get_target(self, name: str | None = None) -> Target | None:
        """The target called ``name`` (default: the project's), or None when undefined."""
        name = name or self.target
        targets = dict(self.targets)
        if name in targets:
            return targets[name]
        return EMBEDDED if name == "embedded" else None

    def summary(self) -> str:
        """One line for humans: what was found."""
        na, np_ = len(self.assistants), len(self.pipelines)
        return (
            f"project {self.name!r}: {na} assistant{'s' if na != 1 else ''}, "
            f"{np_} pipeline{'s' if np_ != 1 else ''}, target {self.target!r} — valid"
        )
