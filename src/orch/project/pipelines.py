"""Checks of a pipeline document: what only fails once a run has started, found before it.

:class:`PipelineChecker` builds a :class:`~orch.project.model.Pipeline` from one schema-valid
document and adds the problems a JSON Schema cannot see: an unknown assistant, a duplicate step
id, a missing file, an items source with no items, a template that names an item field, a step
or a var that will not be there when it renders (:mod:`orch.project.references`), an invalid
JSONPath, a ``tool_called`` function the assistant does not declare, an unknown built-in report.
``orch run`` loads the project first, so none of them costs a model call.
"""

from __future__ import annotations

import csv
import difflib
import glob
import json
import re
from dataclasses import replace
from typing import Any

from orch import templating
from orch.errors import ConfigError
from orch.evals.graders import SAMPLE_FIELDS, spec_problems, uses_model
from orch.evals.replies import CheckError, jsonpath
from orch.project.checks import Checker
from orch.project.items import item_fields, read_lines
from orch.project.model import (
    Assertion,
    Assistant,
    Attachment,
    ItemSource,
    Pipeline,
    ReportOutput,
    Step,
    parse_duration,
)
from orch.project.references import Scope, unknown_references
from orch.project.variants import check_variants

#: Assertion kinds whose value is not a template (``json_schema`` is data, ``python`` a handler).
#: ``grader`` renders its own templates, over the reply's ``sample`` too.
_NOT_TEMPLATED = ("json_schema", "python", "grader")


def builtin_reports() -> list[str]:
    """The ``builtin:<name>`` report names, from the templates installed with orch."""
    return sorted(p.name.split(".")[0] for p in templating.BUILTIN_REPORTS.glob("*.j2"))


class PipelineChecker(Checker):
    """A :class:`Checker` for pipeline documents."""

    item_scope: tuple[frozenset[str] | None, str] = (None, "")
    step_ids: list[str]
    var_names: frozenset[str] | None = None
    #: who a step without its own ``assistant:`` talks to: the pipeline's, and its variants'
    default_owners: frozenset[str] = frozenset()

    def pipeline(self, assistants: dict[str, Assistant], settings: dict) -> Pipeline | None:
        """The :class:`Pipeline` this document declares, or None after problems."""
        data = self.doc.data
        self.known_assistant(("assistant",), data["assistant"], assistants)
        variants, derived = check_variants(
            self, data.get("variants") or [], data["assistant"], assistants, settings
        )
        self.default_owners = frozenset(
            {data["assistant"], *(dict(v.overrides).get("assistant") for v in variants)} - {None}
        )
        items = self.items(data.get("items"))
        self.step_ids = [s.get("id") or f"step{i + 1}" for i, s in enumerate(data["steps"])]
        if not self.loader.config_broken:
            self.var_names = frozenset({**(settings.get("vars") or {}), **(data.get("vars") or {})})
        steps = []
        ids: dict[str, int] = {}
        for i, spec in enumerate(data["steps"]):
            step = self.step(("steps", i), i, spec, assistants, settings)
            if step.id in ids:
                self.problem(
                    ("steps", i, "id"),
                    (f"step id {step.id!r} is already used by steps[{ids[step.id]}]"),
                )
            ids[step.id] = i
            steps.append(step)
        owners = {o for s in data["steps"] for o in self.owners(s)}
        default_expect = self.assertions(
            ("default_expect",), data.get("default_expect") or [], assistants, settings, 1, owners
        )
        if default_expect:
            steps = [_with_expect(s, default_expect) for s in steps]
        reports = self.reports(data.get("report") or [])
        if not self.ok:
            return None
        return Pipeline(
            name=data["name"],
            assistant=data["assistant"],
            source=self.doc.display,
            steps=tuple(steps),
            items=items,
            description=data.get("description"),
            vars=tuple((data.get("vars") or {}).items()),
            concurrency=data.get("concurrency", 4),
            timeout=parse_duration(data.get("timeout"), 300.0),
            retries=data.get("retries", 2),
            repeat=data.get("repeat", 1),
            pass_rate=data.get("pass_rate", 1.0),
            stream=data.get("stream", True),
            report=tuple(reports),
            max_cost=data.get("max_cost"),
            max_tokens_total=data.get("max_tokens_total"),
            variants=variants,
            derived=derived,
        )

    def owners(self, spec: dict) -> set[str]:
        """The assistants whose replies a step's assertions judge (one per variant's)."""
        return {spec["assistant"]} if spec.get("assistant") else set(self.default_owners)

    def scope(self, done: int) -> Scope:
        """What a template sees once the first ``done`` steps have run."""
        fields, origin = self.item_scope
        return Scope(
            item_fields=fields,
            item_origin=origin,
            steps_done=tuple(self.step_ids[:done]),
            steps_later=tuple(self.step_ids[done:]),
            var_names=self.var_names,
        )

    def reports(self, specs: list[dict]) -> list[ReportOutput]:
        """The ``report`` entries: built-ins must exist, templates must compile."""
        reports = []
        for i, spec in enumerate(specs):
            template = spec["template"]
            here = ("report", i, "template")
            if template.startswith("builtin:"):
                name, known = template.split(":", 1)[1], builtin_reports()
                if name not in known:
                    close = difflib.get_close_matches(name, known, n=1)
                    hint = f"did you mean 'builtin:{close[0]}'? " if close else ""
                    listed = ", ".join(f"builtin:{k}" for k in known)
                    self.problem(here, f"unknown built-in report {template!r} ({hint}{listed})")
            elif not (self.root / template).is_file():
                self.problem(here, f"template not found: {template}")
            else:  # with the report filters (percent, usd, md, ...) it will render with
                message = templating.check_report_template(self.root, template)
                if message:
                    self.problem(here, message)
            self.template(("report", i, "output"), spec["output"])
            reports.append(ReportOutput(template=template, output=spec["output"]))
        return reports

    def known_assistant(self, path: tuple, name: str, assistants: dict[str, Assistant]) -> None:
        """A problem (with a did-you-mean) when ``name`` is not a declared assistant."""
        if name in assistants or name in self.loader.declared_assistants:
            return
        close = difflib.get_close_matches(name, list(assistants), n=1)
        hint = (
            f" (did you mean {close[0]!r}?)"
            if close
            else (
                f" (declared: {', '.join(sorted(assistants))})"
                if assistants
                else " (no assistants declared in assistants/)"
            )
        )
        self.problem(path, f"unknown assistant {name!r}{hint}")

    def step(self, path, index, spec, assistants, settings) -> Step:
        """One step entry as a :class:`Step`."""
        before = self.scope(index)  # its prompt renders before its own result exists
        self.template((*path, "prompt"), spec["prompt"], scope=before)
        for key in ("instructions", "additional_instructions"):
            if key in spec:
                self.template((*path, key), spec[key], scope=before)
        if "assistant" in spec:
            self.known_assistant((*path, "assistant"), spec["assistant"], assistants)
        attachments = []
        for j, att in enumerate(spec.get("attachments") or []):
            attachments.append(self.attachment((*path, "attachments", j), att, before))
        owner = self.owners(spec)
        expect = self.assertions(
            (*path, "expect"), spec.get("expect") or [], assistants, settings, index + 1, owner
        )
        return Step(
            prompt=spec["prompt"],
            id=spec.get("id") or f"step{index + 1}",
            assistant=spec.get("assistant"),
            instructions=spec.get("instructions"),
            additional_instructions=spec.get("additional_instructions"),
            attachments=tuple(attachments),
            expect=tuple(expect),
            threshold=spec.get("threshold", 1.0),
            timeout=parse_duration(spec.get("timeout")),
            max_tokens=spec.get("max_tokens"),
        )

    def attachment(self, path: tuple, spec: Any, scope: Scope) -> Attachment:
        """One attachment entry as an :class:`Attachment` (static paths must exist)."""
        if isinstance(spec, str):
            spec = {"path": spec}
            field_path = path
        else:
            field_path = (*path, "path") if "path" in spec else (*path, "image")
        target = spec.get("path") or spec.get("image")
        self.template(field_path, target, scope=scope)
        is_url = target.startswith(("http://", "https://", "data:"))
        if "{{" not in target and "{%" not in target and not is_url:
            self.local_file(field_path, target)
        return Attachment(
            path=spec.get("path"),
            tools=tuple(spec.get("tools") or ("file_search",)) if spec.get("path") else (),
            image=spec.get("image"),
            detail=spec.get("detail"),
        )

    def assertions(self, path, specs, assistants, settings, done, owners) -> list[Assertion]:
        """An ``expect`` list as :class:`Assertion` objects (schemas, handlers, graders).

        ``done`` steps have run when they are judged (the judged step included); ``owners``
        are the assistants whose replies they judge (``tool_called`` names their functions).
        """
        out = []
        for i, spec in enumerate(specs):
            kind = next(k for k in spec if k not in ("name", "weight", "threshold"))
            here = (*path, i, kind)
            value = self.assertion_value(here, kind, spec[kind], assistants, settings)
            if kind not in _NOT_TEMPLATED:
                for where, text in _strings(spec[kind], here):
                    if "{{" in text or "{%" in text or "{#" in text:
                        self.template(where, text, scope=self.scope(done))
            if kind == "grader" and isinstance(spec[kind], dict):
                self.grader_templates(here, spec[kind], self.scope(done))
            self.reply_lookups(here, kind, spec[kind], owners, assistants)
            out.append(
                Assertion(
                    kind=kind,
                    value=value,
                    weight=spec.get("weight", 1.0),
                    threshold=spec.get("threshold"),
                    name=spec.get("name"),
                    line=self.doc.line(here),
                )
            )
        return out

    def assertion_value(self, here, kind, value, assistants, settings) -> Any:
        """The value of one assertion (a JSON Schema file loaded), checked for its kind."""
        if kind == "json_schema":
            if isinstance(value, str):
                try:
                    value = json.loads((self.root / value).read_text(encoding="utf-8"))
                except FileNotFoundError:
                    self.problem(here, f"file not found: {value}")
                    return None
                except (OSError, ValueError) as exc:
                    self.problem(here, f"cannot load JSON Schema {value}: {exc}")
                    return None
            self.json_schema(here, value)
        elif kind == "python":
            self.handler(here, value)
        elif kind == "grader" and isinstance(value, dict):
            for where, message in spec_problems(value):
                self.problem((*here, *where), message)
            if uses_model(value) and not settings.get("grader") and not self.loader.config_broken:
                self.problem(
                    here, "a model grader asks orch.yml's grader assistant: set `grader:` there"
                )
        elif kind == "llm_rubric":
            grader = value.get("grader") if isinstance(value, dict) else None
            if grader:  # an unknown default grader is reported once, in orch.yml
                self.known_assistant((*here, "grader"), grader, assistants)
            elif not settings.get("grader") and not self.loader.config_broken:
                self.problem(
                    here, "llm_rubric needs a grader assistant: set `grader:` here or in orch.yml"
                )
        return value

    def grader_templates(self, here: tuple, value: dict, scope: Scope) -> None:
        """A grader's templates: Jinja syntax, then the names they use (``sample`` included)."""
        for where, text in _strings(value, here):
            if where[-1] == "source" or not ("{{" in text or "{%" in text or "{#" in text):
                continue
            before = len(self.loader.problems)
            self.template(where, text)
            if len(self.loader.problems) > before:
                continue  # a syntax error, reported
            for message in unknown_references(text, scope, templating.STRICT):
                if "'sample'" not in message:
                    self.problem(where, f"template error: {message}")
            for key in re.findall(r"\bsample\.(\w+)", text):
                if key not in SAMPLE_FIELDS:
                    known = ", ".join(SAMPLE_FIELDS)
                    self.problem(where, f"template error: sample has no {key!r} (sample: {known})")

    def reply_lookups(self, here, kind, value, owners, assistants) -> None:
        """A JSONPath must parse; a ``tool_called`` function must be one the assistant has."""
        if kind in ("jsonpath", "range") and isinstance(value, dict):
            path = value.get("path")
            if isinstance(path, str) and "{{" not in path and "{%" not in path:
                try:
                    jsonpath({}, path)  # parses the whole path before reading anything
                except CheckError as exc:
                    self.problem((*here, "path"), str(exc))
        if kind != "tool_called":
            return
        name = value if isinstance(value, str) else value.get("name")
        where = here if isinstance(value, str) else (*here, "name")
        if not isinstance(name, str) or "{{" in name or "{%" in name:
            return
        for owner in sorted(o for o in owners if o in assistants):
            # a built-in tool's calls are named by its type (code_interpreter, file_search)
            tools = [t.function.name if t.function else t.type for t in assistants[owner].tools]
            if name not in tools:
                close = difflib.get_close_matches(name, tools, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                have = ", ".join(tools) or "none"
                self.problem(
                    where, f"assistant {owner!r} has no tool {name!r} ({hint}its tools: {have})"
                )

    def items(self, spec: Any) -> ItemSource:
        """The ``items`` entry as an :class:`ItemSource`: files must exist, parse, and hold items.

        A source with no items is a problem, not a run that passes vacuously. An inline item
        must be a mapping: its keys are what ``item.<field>`` names. The fields every item has
        become :attr:`item_scope`.
        """
        if spec is None:
            self.item_scope = (frozenset(), "there are no items")
            return ItemSource("default")
        if isinstance(spec, list):
            for i, value in enumerate(spec):
                if not isinstance(value, dict):
                    self.problem(
                        ("items", i),
                        f"an inline item must be a mapping of fields, such as "
                        f"{{question: ..., expected: ...}}; got {json.dumps(value, default=str)}",
                    )
            source = ItemSource("inline", tuple(spec))
            if self.ok:
                self.item_scope = (item_fields(source, self.root), "the items have")
            return source
        ((kind, value),) = spec.items()
        here = ("items", kind)
        if kind == "files":
            source = ItemSource("files", tuple([value] if isinstance(value, str) else value))
            unmatched = [
                p for p in source.value if not glob.glob(str(self.root / p), recursive=True)
            ]
            for pattern in unmatched:
                self.problem(here, f"{pattern!r} matches no files")
            if not unmatched and item_fields(source, self.root) is None:
                self.problem(here, "no items: the patterns match only folders")
            self.item_scope = (frozenset(("path", "name", "stem", "suffix")), "files items have")
            return source
        return self.item_file(here, kind, value)

    def item_file(self, here: tuple, kind: str, value: str) -> ItemSource:
        """A ``csv`` or ``jsonl`` items source: the file must exist, decode and hold items."""
        source = ItemSource(kind, value)
        if not (self.root / value).is_file():
            self.problem(here, f"file not found: {value}")
            return source
        try:  # the same reader the runner uses, so validate and run agree on each line
            if kind == "csv" and not next(csv.reader(read_lines(self.root, value)), None):
                self.problem(here, f"{value} has no header row")
                return source
            fields = item_fields(source, self.root)
            if fields is None:
                self.problem(here, f"{value}: no items")
            else:
                origin = f"{value}'s header has" if kind == "csv" else f"every line of {value} has"
                self.item_scope = (fields, origin)
        except ConfigError as exc:
            self.problem(here, exc.problems[0].message)
        except OSError as exc:
            self.problem(here, f"cannot read {value}: {exc.strerror or exc}")
        return source


def _strings(value: Any, path: tuple):
    """(path, text) of every string inside an assertion's value."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _strings(v, (*path, i))
    elif isinstance(value, dict):
        for k, v in value.items():
            yield from _strings(v, (*path, k))


def _with_expect(step: Step, extra: list[Assertion]) -> Step:
    return replace(step, expect=(*step.expect, *extra))
