"""Cross-file checks: build model objects from one schema-valid document, reporting problems.

What a JSON Schema cannot say: an unknown assistant, a missing file, a handler that does not
import, a duplicate name or step id, an invalid JSON Schema or regex inside a config, a Jinja
template that does not parse. Used by :mod:`orch.project.loading`, which collects the
problems of every file before raising one ``ConfigError``.
"""

from __future__ import annotations

import csv
import difflib
import glob
import json
from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import jinja2

from orch import templating
from orch.errors import ConfigError, Problem
from orch.project import schemas as jsonschemas
from orch.project.documents import Document, display_path, format_path
from orch.project.handlers import (
    HandlerError,
    check_handler,
    describe,
    resolve_handler,
    schema_from_signature,
)
from orch.project.items import iter_items, read_lines
from orch.project.model import (
    Assertion,
    Assistant,
    Attachment,
    FunctionTool,
    ItemSource,
    LocalFile,
    Pipeline,
    ReportOutput,
    Step,
    Tool,
    parse_duration,
)


class Loader(Protocol):
    """What a :class:`Checker` shares with the loader that reads the whole project."""

    root: Path  #: the project root, which config paths are relative to
    problems: list[Problem]  #: where every problem found is appended
    declared_assistants: set[str]  #: names of every assistant file that parsed, valid or not
    config_broken: bool  #: orch.yml has problems, so its vars and grader are unknown
    import_handlers: bool  #: import handler modules (False: only check where they are)


class Checker:
    """Builds model objects from one schema-valid document, adding cross-file problems."""

    def __init__(self, loader: Loader, doc: Document):
        self.loader = loader
        self.doc = doc
        self.root = loader.root
        self.ok = True

    def problem(self, path: tuple, message: str) -> None:
        """Record a problem at ``path`` in this document."""
        self.ok = False
        self.loader.problems.append(self.doc.problem(path, message))

    # -- shared checks -------------------------------------------------------------------------

    def template(
        self, path: tuple, text: str, context: dict | None = None, source: Path | None = None
    ) -> str:
        """Check Jinja syntax (and render when ``context`` is given); report at the right line.

        ``source`` is the file the text was read from when it is not the YAML value itself.
        """
        source = source or self.doc.includes.get(path)
        try:
            compiled = templating.compile_text(text)
            return compiled.render(**context) if context is not None else text
        except jinja2.TemplateSyntaxError as exc:
            lineno = exc.lineno or 1
            if source is not None:
                where = f"{display_path(source)}:{lineno}"
                self.problem(path, f"template error in {where}: {exc.message}")
            else:
                self.ok = False
                self.loader.problems.append(
                    Problem(
                        self.doc.display,
                        self.doc.text_line(path) + lineno - 1,
                        format_path(path),
                        f"template error: {exc.message}",
                    )
                )
        except jinja2.UndefinedError as exc:
            self.problem(path, f"template error: {exc.message}")
        except Exception as exc:  # noqa: BLE001 - any template runtime error is the user's
            self.problem(path, f"template error: {type(exc).__name__}: {exc}")
        return text

    def local_file(self, path: tuple, rel: str) -> LocalFile | None:
        """Hash a file the config references; a problem when it cannot be read."""
        try:
            return LocalFile.from_path(self.root, rel)
        except FileNotFoundError:
            self.problem(path, f"file not found: {rel}")
        except IsADirectoryError:
            self.problem(path, f"is a directory, not a file: {rel}")
        except OSError as exc:
            self.problem(path, f"cannot read {rel}: {exc.strerror or exc}")
        return None

    def handler(self, path: tuple, spec: str):
        """Import a ``module:function`` handler; a problem when it does not import.

        A handler must be a module of the project (:func:`check_handler`), checked before any
        import. When the loader does not import handlers, that check is all, and None is
        returned: no project code runs.
        """
        if not self.loader.import_handlers:
            problem = check_handler(spec, self.root)
            if problem:
                self.problem(path, problem)
            return None
        try:
            return resolve_handler(spec, self.root)
        except HandlerError as exc:
            self.problem(path, str(exc))
            return None

    def json_schema(self, path: tuple, schema: Any) -> None:
        """A problem when ``schema`` is not a valid JSON Schema."""
        error = jsonschemas.schema_error(schema)
        if error:
            where, why = error
            self.problem((*path, *where), why)

    # -- assistants ----------------------------------------------------------------------------

    def assistant(self, project_vars: dict) -> Assistant | None:
        """The :class:`Assistant` this document declares, or None after problems."""
        data = self.doc.data
        instructions = data.get("instructions")
        if instructions is not None:
            context = {**project_vars, **(data.get("vars") or {})}
            if self.loader.config_broken:
                context = None  # check the syntax only: orch.yml's vars are unknown
            instructions = self.template(("instructions",), instructions, context)
        response_format = data.get("response_format")
        if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
            self.json_schema(
                ("response_format", "json_schema", "schema"),
                response_format["json_schema"]["schema"],
            )
        tools = []
        seen_functions: dict[str, int] = {}
        for i, spec in enumerate(data.get("tools") or []):
            tool = self.tool(("tools", i), spec)
            if tool is None:
                continue
            if tool.function:
                if tool.function.name in seen_functions:
                    self.problem(
                        ("tools", i, "function", "name"),
                        (
                            f"function {tool.function.name!r} is declared twice "
                            f"(also tools[{seen_functions[tool.function.name]}])"
                        ),
                    )
                seen_functions[tool.function.name] = i
            tools.append(tool)
        tool_types = {t.type for t in tools}
        files = []
        for tool_name, paths in (data.get("files") or {}).items():
            if tool_name not in tool_types:
                self.problem(
                    ("files", tool_name),
                    (f"files for {tool_name} need the {tool_name} tool in tools"),
                )
            found = [self.local_file(("files", tool_name, j), p) for j, p in enumerate(paths)]
            files.append((tool_name, tuple(f for f in found if f)))
        if not self.ok:
            return None
        return Assistant(
            name=data["name"],
            model=data["model"],
            source=self.doc.display,
            instructions=instructions,
            description=data.get("description"),
            temperature=data.get("temperature"),
            top_p=data.get("top_p"),
            response_format=response_format,
            tools=tuple(tools),
            files=tuple(sorted(files)),
            metadata=tuple(sorted((data.get("metadata") or {}).items())),
            max_tokens=data.get("max_tokens"),
        )

    def tool(self, path: tuple, spec: Any) -> Tool | None:
        """One tool entry as a :class:`Tool` (function parameters from the handler if needed)."""
        if isinstance(spec, str):
            return Tool(type=spec)
        ((kind, body),) = spec.items()
        if kind != "function":
            return Tool(type=kind, options=tuple(sorted((body or {}).items())))
        parameters = body.get("parameters")
        description = body.get("description")
        if parameters is not None:
            self.json_schema((*path, "function", "parameters"), parameters)
        handler = body.get("handler")
        if handler:
            func = self.handler((*path, "function", "handler"), handler)
            if func is not None:
                if parameters is None:
                    try:
                        parameters = schema_from_signature(func)
                    except (TypeError, ValueError) as exc:
                        self.problem(
                            (*path, "function", "handler"),
                            f"cannot derive parameters from the signature: {exc}",
                        )
                description = description or describe(func)
        timeout = parse_duration(body.get("timeout"), 60.0)
        return Tool(
            type="function",
            function=FunctionTool(
                name=body["name"],
                description=description,
                parameters=parameters,
                strict=body.get("strict"),
                handler=handler,
                timeout=timeout,
            ),
        )

    # -- pipelines -----------------------------------------------------------------------------

    def pipeline(self, assistants: dict[str, Assistant], settings: dict) -> Pipeline | None:
        """The :class:`Pipeline` this document declares, or None after problems."""
        data = self.doc.data
        self.known_assistant(("assistant",), data["assistant"], assistants)
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
        default_expect = self.assertions(
            ("default_expect",), data.get("default_expect") or [], assistants, settings
        )
        if default_expect:
            steps = [_with_expect(s, default_expect) for s in steps]
        items = self.items(data.get("items"))
        reports = []
        for i, spec in enumerate(data.get("report") or []):
            template = spec["template"]
            if not template.startswith("builtin:"):
                if not (self.root / template).is_file():
                    self.problem(("report", i, "template"), f"template not found: {template}")
                else:  # with the report filters (percent, usd, md, ...) it will render with
                    message = templating.check_report_template(self.root, template)
                    if message:
                        self.problem(("report", i, "template"), message)
            self.template(("report", i, "output"), spec["output"])
            reports.append(ReportOutput(template=template, output=spec["output"]))
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
        )

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
        self.template((*path, "prompt"), spec["prompt"])
        for key in ("instructions", "additional_instructions"):
            if key in spec:
                self.template((*path, key), spec[key])
        if "assistant" in spec:
            self.known_assistant((*path, "assistant"), spec["assistant"], assistants)
        attachments = []
        for j, att in enumerate(spec.get("attachments") or []):
            attachments.append(self.attachment((*path, "attachments", j), att))
        expect = self.assertions((*path, "expect"), spec.get("expect") or [], assistants, settings)
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

    def attachment(self, path: tuple, spec: Any) -> Attachment:
        """One attachment entry as an :class:`Attachment` (static paths must exist)."""
        if isinstance(spec, str):
            spec = {"path": spec}
            field_path = path
        else:
            field_path = (*path, "path") if "path" in spec else (*path, "image")
        target = spec.get("path") or spec.get("image")
        self.template(field_path, target)
        is_url = target.startswith(("http://", "https://", "data:"))
        if "{{" not in target and "{%" not in target and not is_url:
            self.local_file(field_path, target)
        return Attachment(
            path=spec.get("path"),
            tools=tuple(spec.get("tools") or ("file_search",)) if spec.get("path") else (),
            image=spec.get("image"),
            detail=spec.get("detail"),
        )

    def assertions(self, path, specs, assistants, settings) -> list[Assertion]:
        """An ``expect`` list as :class:`Assertion` objects (schemas, handlers, graders)."""
        out = []
        for i, spec in enumerate(specs):
            kind = next(k for k in spec if k not in ("name", "weight", "threshold"))
            value = spec[kind]
            here = (*path, i, kind)
            if kind == "json_schema":
                if isinstance(value, str):
                    file = self.root / value
                    try:
                        value = json.loads(file.read_text(encoding="utf-8"))
                    except FileNotFoundError:
                        self.problem(here, f"file not found: {spec[kind]}")
                        value = None
                    except (OSError, ValueError) as exc:
                        self.problem(here, f"cannot load JSON Schema {spec[kind]}: {exc}")
                        value = None
                if value is not None:
                    self.json_schema(here, value)
            elif kind == "python":
                self.handler(here, value)
            elif kind == "llm_rubric":
                grader = value.get("grader") if isinstance(value, dict) else None
                if grader:  # an unknown default grader is reported once, in orch.yml
                    self.known_assistant((*here, "grader"), grader, assistants)
                elif not settings.get("grader") and not self.loader.config_broken:
                    self.problem(
                        here,
                        "llm_rubric needs a grader assistant: set `grader:` here or in orch.yml",
                    )
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

    def items(self, spec: Any) -> ItemSource:
        """The ``items`` entry as an :class:`ItemSource`: files must exist, parse, and hold items.

        A source with no items is a problem, not a run that passes vacuously.
        """
        if spec is None:
            return ItemSource("default")
        if isinstance(spec, list):
            return ItemSource("inline", tuple(spec))
        ((kind, value),) = spec.items()
        here = ("items", kind)
        if kind == "files":
            source = ItemSource("files", tuple([value] if isinstance(value, str) else value))
            unmatched = [
                p for p in source.value if not glob.glob(str(self.root / p), recursive=True)
            ]
            for pattern in unmatched:
                self.problem(here, f"{pattern!r} matches no files")
            if not unmatched and next(iter_items(source, self.root), None) is None:
                self.problem(here, "no items: the patterns match only folders")
            return source
        source = ItemSource(kind, value)
        if not (self.root / value).is_file():
            self.problem(here, f"file not found: {value}")
            return source
        try:  # the same reader the runner uses, so validate and run agree on each line
            if kind == "csv" and not next(csv.reader(read_lines(self.root, value)), None):
                self.problem(here, f"{value} has no header row")
            elif sum(1 for _item in iter_items(source, self.root)) == 0:
                self.problem(here, f"{value}: no items")
        except ConfigError as exc:
            self.problem(here, exc.problems[0].message)
        except OSError as exc:
            self.problem(here, f"cannot read {value}: {exc.strerror or exc}")
        return source


def _with_expect(step: Step, extra: list[Assertion]) -> Step:
    return replace(step, expect=(*step.expect, *extra))
