"""Cross-file checks: build model objects from one schema-valid document, reporting problems.

What a JSON Schema cannot say: an unknown assistant, a missing file, a handler that does not
import, a duplicate name or step id, an invalid JSON Schema or regex inside a config, a Jinja
template that does not parse. Used by :mod:`orch.project.loading`, which collects the
problems of every file before raising one ``ConfigError``.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, Protocol

import jinja2

from orch import templating
from orch.errors import Problem
from orch.project import schemas as jsonschemas
from orch.project.documents import Document, display_path, format_path
from orch.project.handlers import (
    HandlerError,
    check_handler,
    describe,
    resolve_handler,
    schema_from_signature,
)
from orch.project.model import (
    Assistant,
    FunctionTool,
    LocalFile,
    Tool,
    parse_duration,
)
from orch.project.references import Scope, unknown_references
from orch.targets import registry


class Loader(Protocol):
    """What a :class:`Checker` shares with the loader that reads the whole project."""

    root: Path  #: the project root, which config paths are relative to
    problems: list[Problem]  #: where every problem found is appended
    declared_assistants: set[str]  #: names of every assistant file that parsed, valid or not
    #: assistants derived by pipelines' variants so far: name → (fingerprint, pipeline file)
    derived_assistants: dict[str, tuple[str, str]]
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
        self,
        path: tuple,
        text: str,
        context: dict | None = None,
        source: Path | None = None,
        scope: Scope | None = None,
    ) -> str:
        """Check Jinja syntax (and render when ``context`` is given); report at the right line.

        ``source`` is the file the text was read from when it is not the YAML value itself.
        With a ``scope``, every name the template uses that will not be there when it renders
        (an item field, a step, a var) is a problem too.
        """
        source = source or self.doc.includes.get(path)
        try:
            compiled = templating.compile_text(text)
            if scope is not None:
                for message in unknown_references(text, scope, templating.STRICT):
                    self.problem(path, f"template error: {message}")
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
        assistant = Assistant(
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
            reasoning=tuple(sorted((data.get("reasoning") or {}).items())),
        )
        return replace(assistant, refusals=self.refusals(assistant))

    def refusals(self, assistant: Assistant) -> tuple[tuple[str, tuple[Problem, ...]], ...]:
        """Per target kind with rules, the fields of ``assistant`` it has no place for.

        Located here, where the YAML's lines are known; reported where the assistant meets a
        target of that kind (validate's default target, then plan, sync, run).
        """
        found = []
        for kind in registry.ruled():
            problems = tuple(
                self.doc.problem(path, f"a target of kind {kind} has no place for it: {why}")
                for path, why in registry.refusals(kind, assistant)
            )
            if problems:
                found.append((kind, problems))
        return tuple(found)

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
