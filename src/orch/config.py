"""Find and load a project: orch.yml, assistants/*.yml, pipelines/*.yml.

Loading runs in three passes and collects every problem before raising one
:class:`~orch.errors.ConfigError`:

1. parse each YAML file (lines, duplicate keys, ``!file``, ``${ENV}``) — :mod:`orch.document`;
2. validate each against its JSON Schema — :mod:`orch.jsonschemas`;
3. cross-file checks (unknown assistant, missing files, handlers that do not import, duplicate
   names, invalid JSON Schemas and Jinja templates) — this module, in :class:`_Checker`.

Paths written in configs (files, attachments, items, schemas, report outputs) are relative to the
project root, the directory holding orch.yml. ``!file`` includes are relative to the including
file. ``${VAR}`` is expanded in orch.yml, in assistants' ``metadata`` and in pipelines' ``vars``;
a ``.env`` file in the project root supplies variables not already set.
"""

from __future__ import annotations

import csv
import glob
import json
import os
from pathlib import Path
from typing import Any

import jinja2
from dotenv import dotenv_values

from orch import jsonschemas
from orch.document import Document, format_path, load_document
from orch.errors import ConfigError, Problem
from orch.model import (
    EMBEDDED,
    Assertion,
    Assistant,
    Attachment,
    FunctionTool,
    ItemSource,
    LocalFile,
    Pipeline,
    Project,
    ReportOutput,
    Step,
    Target,
    Tool,
    parse_duration,
)
from orch.tools import HandlerError, describe, resolve_handler, schema_from_signature

CONFIG_FILE = "orch.yml"
ASSISTANTS_DIR = "assistants"
PIPELINES_DIR = "pipelines"
_JINJA = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)


def find_root(start: Path | None = None) -> Path:
    """The nearest directory at or above ``start`` (default: cwd) with orch.yml, else ``start``."""
    start = (start or Path.cwd()).resolve()
    for candidate in (start, *start.parents):
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    return start


def load_project(path: Path | None = None, environ: dict[str, str] | None = None) -> Project:
    """Load and validate the whole project at ``path``; raise ConfigError listing every problem."""
    root = find_root(path)
    if path is not None and not Path(path).exists():
        raise ConfigError(Problem(str(path), 0, "", "no such file or directory"))
    loader = _ProjectLoader(root, environ)
    project = loader.load()
    if loader.problems:
        raise ConfigError(loader.problems)
    assert project is not None
    return project


def validate_path(file: Path, environ: dict[str, str] | None = None) -> str:
    """Validate one YAML file (kind guessed from its folder/name/content) in its project.

    Cross-file checks run against the rest of the project, but only this file's problems are
    reported. Returns a one-line summary; raises ConfigError on problems.
    """
    file = file.resolve()
    kind = _guess_kind(file)
    if kind == "script":
        load_script(file)
        return f"{_display(file)}: valid scripted-model script"
    root = find_root(file.parent)
    if root == file.parent and file.parent.name in (ASSISTANTS_DIR, PIPELINES_DIR):
        root = file.parent.parent  # a project without orch.yml
    loader = _ProjectLoader(root, environ)
    project = loader.load()
    if kind != "project config" and file.parent != root / _FOLDERS[kind]:
        loader.load_extra(file, kind, project)  # not one of the files the project scans
    mine = [p for p in loader.problems if p.file in (_display(file), "")]
    if mine:
        raise ConfigError(mine)
    return f"{_display(file)}: valid {kind}"


def load_script(path: Path) -> dict[str, Any]:
    """Load a scripted-model rules file, validated against schemas/script.schema.json."""
    doc = load_document(Path(path), _display(Path(path)))
    problems = list(doc.problems)
    if not problems:
        problems += jsonschemas.validate(doc, "script")
    if problems:
        raise ConfigError(problems)
    return doc.data


_FOLDERS = {"assistant": ASSISTANTS_DIR, "pipeline": PIPELINES_DIR}
_INTERPOLATE = {
    "orch": lambda _p: True,
    "assistant": lambda p: p[:1] == ("metadata",),
    "pipeline": lambda p: p[:1] == ("vars",),
}


def _guess_kind(file: Path) -> str:
    if file.name == CONFIG_FILE:
        return "project config"
    if file.parent.name == ASSISTANTS_DIR:
        return "assistant"
    if file.parent.name == PIPELINES_DIR:
        return "pipeline"
    doc = load_document(file, _display(file))
    if doc.problems and doc.data is None:
        raise ConfigError(doc.problems)
    data = doc.data if isinstance(doc.data, dict) else {}
    if "rules" in data or "default" in data:
        return "script"
    if "steps" in data:
        return "pipeline"
    if "model" in data:
        return "assistant"
    raise ConfigError(
        Problem(_display(file), 1, "", "cannot tell what this file is: put it in assistants/ "
                "or pipelines/, or name it orch.yml")
    )


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def _yaml_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.suffix in (".yml", ".yaml") and p.is_file())


class _ProjectLoader:
    """Loads every file of a project, collecting problems instead of stopping at the first."""

    def __init__(self, root: Path, environ: dict[str, str] | None):
        self.root = root
        env = dict(os.environ if environ is None else environ)
        dotenv = root / ".env"
        if dotenv.is_file():
            for key, value in dotenv_values(dotenv).items():
                if value is not None:
                    env.setdefault(key, value)
        self.environ = env
        self.problems: list[Problem] = []
        # Names of every assistant file that parsed, valid or not: a pipeline naming a broken
        # assistant is not also told the assistant is unknown.
        self.declared_assistants: set[str] = set()
        # orch.yml exists but has problems: its vars and grader are unknown, so checks that need
        # them are skipped rather than reported as more (wrong) problems.
        self.config_broken = False

    def _load(self, path: Path, kind: str, interpolate) -> Document | None:
        doc = load_document(path, _display(path), interpolate, self.environ)
        self.problems += doc.problems
        if doc.data is None and doc.problems:
            return None  # unreadable, or not YAML at all
        if not isinstance(doc.data, dict):
            article = "an" if kind[0] in "aeiou" else "a"
            self.problems.append(doc.problem((), f"{article} {kind} file must be a YAML mapping"))
            return None
        if kind == "assistant" and isinstance(doc.data.get("name"), str):
            self.declared_assistants.add(doc.data["name"])
        # A duplicate key or a missing ${VAR} must not hide the file's other mistakes, but a
        # value already reported (e.g. a missing !file, now null) is not reported twice.
        schema_problems = [
            p for p in jsonschemas.validate(doc, kind)
            if not any(_within(p, q) for q in doc.problems)
        ]
        self.problems += schema_problems
        return None if schema_problems or doc.problems else doc

    def load(self) -> Project | None:
        config_path = self.root / CONFIG_FILE
        settings: dict[str, Any] = {}
        config_doc = None
        if config_path.is_file():
            config_doc = self._load(config_path, "orch", _INTERPOLATE["orch"])
            settings = config_doc.data if config_doc else {}
            self.config_broken = config_doc is None

        assistants: dict[str, Assistant] = {}
        assistant_docs: dict[str, Document] = {}
        for path in _yaml_files(self.root / ASSISTANTS_DIR):
            doc = self._load(path, "assistant", _INTERPOLATE["assistant"])
            if doc is None:
                continue
            name = doc.data["name"]
            if name in assistants:
                self.problems.append(doc.problem(("name",), (
                    f"assistant name {name!r} is already declared in {assistants[name].source}")))
                continue
            assistant = _Checker(self, doc).assistant(settings.get("vars") or {})
            if assistant is not None:
                assistants[name] = assistant
                assistant_docs[name] = doc

        pipelines: dict[str, Pipeline] = {}
        for path in _yaml_files(self.root / PIPELINES_DIR):
            doc = self._load(path, "pipeline", _INTERPOLATE["pipeline"])
            if doc is None:
                continue
            name = doc.data["name"]
            if name in pipelines:
                self.problems.append(doc.problem(("name",), (
                    f"pipeline name {name!r} is already declared in {pipelines[name].source}")))
                continue
            pipeline = _Checker(self, doc).pipeline(assistants, settings)
            if pipeline is not None:
                pipelines[name] = pipeline

        targets = _targets(settings.get("targets") or {})
        target = self.environ.get("ORCH_TARGET") or settings.get("target") or "embedded"
        is_url = target.startswith(("http://", "https://"))  # an ad-hoc Assistants-v2 server
        if (config_doc and "target" in settings and not is_url
                and target not in dict(targets) | {"embedded": 1}):
            self.problems.append(config_doc.problem(("target",), (
                f"unknown target {target!r} "
                f"(defined: {', '.join(dict.fromkeys(['embedded', *dict(targets)]))})")))
        if config_doc and settings.get("grader") and settings["grader"] not in assistants:
            self.problems.append(config_doc.problem(("grader",), (
                f"unknown assistant {settings['grader']!r}")))
        for name, spec in (settings.get("targets") or {}).items():
            if config_doc and spec.get("script"):
                script = self.root / spec["script"]
                if not script.is_file():
                    self.problems.append(config_doc.problem(
                        ("targets", name, "script"), f"file not found: {spec['script']}"))
                else:
                    try:
                        load_script(script)
                    except ConfigError as exc:
                        self.problems += exc.problems
        return Project(
            root=self.root,
            name=settings.get("project") or _default_project_name(self.root),
            target=target,
            targets=targets,
            assistants=tuple(sorted(assistants.items())),
            pipelines=tuple(sorted(pipelines.items())),
            vars=tuple((settings.get("vars") or {}).items()),
            prices=tuple(
                (model, (float(p["input"]), float(p["output"])))
                for model, p in (settings.get("prices") or {}).items()
            ),
            grader=settings.get("grader"),
            config_file=config_path if config_path.is_file() else None,
        )


    def load_extra(self, path: Path, kind: str, project: Project) -> None:
        """Check one assistant or pipeline file outside the project's folders against it."""
        doc = self._load(path, kind, _INTERPOLATE[kind])
        if doc is None:
            return
        checker = _Checker(self, doc)
        if kind == "assistant":
            checker.assistant(dict(project.vars))
        else:
            checker.pipeline(dict(project.assistants), {"grader": project.grader})


def _within(problem: Problem, other: Problem) -> bool:
    """Whether ``problem`` is about the value ``other`` reports (or a part of it)."""
    if problem.file != other.file or not other.field:
        return False
    return problem.field == other.field or problem.field.startswith(
        (f"{other.field}.", f"{other.field}[")
    )


def _default_project_name(root: Path) -> str:
    name = "".join(c if c.isalnum() or c in "-_." else "-" for c in root.name).strip("-._")
    return name[:64] or "default"


def _targets(specs: dict[str, dict]) -> tuple[tuple[str, Target], ...]:
    out = {}
    for name, spec in specs.items():
        options = tuple(sorted(
            (k, v) for k, v in spec.items() if k not in ("kind", "base_url", "api_key_env")
        ))
        out[name] = Target(
            name=name,
            kind=spec["kind"],
            base_url=spec.get("base_url"),
            api_key_env=spec.get("api_key_env", "OPENAI_API_KEY"),
            options=options,
        )
    if "embedded" not in out:
        out["embedded"] = EMBEDDED
    return tuple(out.items())


class _Checker:
    """Builds model objects from one schema-valid document, adding cross-file problems."""

    def __init__(self, loader: _ProjectLoader, doc: Document):
        self.loader = loader
        self.doc = doc
        self.root = loader.root
        self.ok = True

    def problem(self, path: tuple, message: str) -> None:
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
            compiled = _JINJA.from_string(text)
            return compiled.render(**context) if context is not None else text
        except jinja2.TemplateSyntaxError as exc:
            lineno = exc.lineno or 1
            if source is not None:
                self.problem(path, f"template error in {_display(source)}:{lineno}: {exc.message}")
            else:
                self.ok = False
                self.loader.problems.append(Problem(
                    self.doc.display, self.doc.text_line(path) + lineno - 1, format_path(path),
                    f"template error: {exc.message}",
                ))
        except jinja2.UndefinedError as exc:
            self.problem(path, f"template error: {exc.message}")
        except Exception as exc:  # noqa: BLE001 - any template runtime error is the user's
            self.problem(path, f"template error: {type(exc).__name__}: {exc}")
        return text

    def local_file(self, path: tuple, rel: str) -> LocalFile | None:
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
        try:
            return resolve_handler(spec, self.root)
        except HandlerError as exc:
            self.problem(path, str(exc))
            return None

    def json_schema(self, path: tuple, schema: Any) -> None:
        error = jsonschemas.schema_error(schema)
        if error:
            where, why = error
            self.problem((*path, *where), why)

    # -- assistants ----------------------------------------------------------------------------

    def assistant(self, project_vars: dict) -> Assistant | None:
        data = self.doc.data
        instructions = data.get("instructions")
        if instructions is not None:
            context = {**project_vars, **(data.get("vars") or {})}
            if self.loader.config_broken:
                context = None  # check the syntax only: orch.yml's vars are unknown
            instructions = self.template(("instructions",), instructions, context)
        response_format = data.get("response_format")
        if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
            self.json_schema(("response_format", "json_schema", "schema"),
                             response_format["json_schema"]["schema"])
        tools = []
        seen_functions: dict[str, int] = {}
        for i, spec in enumerate(data.get("tools") or []):
            tool = self.tool(("tools", i), spec)
            if tool is None:
                continue
            if tool.function:
                if tool.function.name in seen_functions:
                    self.problem(("tools", i, "function", "name"), (
                        f"function {tool.function.name!r} is declared twice "
                        f"(also tools[{seen_functions[tool.function.name]}])"))
                seen_functions[tool.function.name] = i
            tools.append(tool)
        tool_types = {t.type for t in tools}
        files = []
        for tool_name, paths in (data.get("files") or {}).items():
            if tool_name not in tool_types:
                self.problem(("files", tool_name), (
                    f"files for {tool_name} need the {tool_name} tool in tools"))
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
        )

    def tool(self, path: tuple, spec: Any) -> Tool | None:
        if isinstance(spec, str):
            return Tool(type=spec)
        (kind, body), = spec.items()
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
                        self.problem((*path, "function", "handler"),
                                     f"cannot derive parameters from the signature: {exc}")
                description = description or describe(func)
        timeout = parse_duration(body.get("timeout"), 60.0)
        return Tool(type="function", function=FunctionTool(
            name=body["name"], description=description, parameters=parameters,
            strict=body.get("strict"), handler=handler, timeout=timeout,
        ))

    # -- pipelines -----------------------------------------------------------------------------

    def pipeline(self, assistants: dict[str, Assistant], settings: dict) -> Pipeline | None:
        data = self.doc.data
        self.known_assistant(("assistant",), data["assistant"], assistants)
        steps = []
        ids: dict[str, int] = {}
        for i, spec in enumerate(data["steps"]):
            step = self.step(("steps", i), i, spec, assistants, settings)
            if step.id in ids:
                self.problem(("steps", i, "id"), (
                    f"step id {step.id!r} is already used by steps[{ids[step.id]}]"))
            ids[step.id] = i
            steps.append(step)
        default_expect = self.assertions(("default_expect",), data.get("default_expect") or [],
                                         assistants, settings)
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
                    from orch.reports import check_template

                    message = check_template(self.root, template)
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
        if name in assistants or name in self.loader.declared_assistants:
            return
        import difflib

        close = difflib.get_close_matches(name, list(assistants), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else (
            f" (declared: {', '.join(sorted(assistants))})" if assistants else
            " (no assistants declared in assistants/)")
        self.problem(path, f"unknown assistant {name!r}{hint}")

    def step(self, path, index, spec, assistants, settings) -> Step:
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
        )

    def attachment(self, path: tuple, spec: Any) -> Attachment:
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
                    self.problem(here, "llm_rubric needs a grader assistant: set `grader:` here "
                                       "or in orch.yml")
            out.append(Assertion(
                kind=kind, value=value, weight=spec.get("weight", 1.0),
                threshold=spec.get("threshold"), name=spec.get("name"),
                line=self.doc.line(here),
            ))
        return out

    def items(self, spec: Any) -> ItemSource:
        if spec is None:
            return ItemSource("default")
        if isinstance(spec, list):
            return ItemSource("inline", tuple(spec))
        (kind, value), = spec.items()
        here = ("items", kind)
        if kind == "files":
            patterns = [value] if isinstance(value, str) else value
            for pattern in patterns:
                if not glob.glob(str(self.root / pattern), recursive=True):
                    self.problem(here, f"{pattern!r} matches no files")
            return ItemSource("files", tuple(patterns))
        file = self.root / value
        if not file.is_file():
            self.problem(here, f"file not found: {value}")
        elif kind == "csv":
            with file.open(newline="", encoding="utf-8") as fh:
                header = next(csv.reader(fh), None)
            if not header:
                self.problem(here, f"{value} has no header row")
        elif kind == "jsonl":
            with file.open(encoding="utf-8") as fh:
                for n, line in enumerate(fh, 1):
                    if not line.strip():
                        continue
                    try:
                        row = json.loads(line)
                    except ValueError as exc:
                        self.problem(here, f"{value}:{n}: not JSON: {exc}")
                        break
                    if not isinstance(row, dict):
                        self.problem(here, f"{value}:{n}: each line must be a JSON object")
                        break
        return ItemSource(kind, value)


def _with_expect(step: Step, extra: list[Assertion]) -> Step:
    from dataclasses import replace

    return replace(step, expect=(*step.expect, *extra))
