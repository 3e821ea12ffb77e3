"""Find and load a project: orch.yml, assistants/*.yml, pipelines/*.yml.

Loading runs in three passes and collects every problem before raising one
:class:`~orch.errors.ConfigError`:

1. parse each YAML file (lines, duplicate keys, ``!file``, ``${ENV}``) —
   :mod:`orch.project.documents`;
2. validate each against its JSON Schema — :mod:`orch.project.schemas`;
3. cross-file checks (unknown assistant, missing files, handlers that do not import, duplicate
   names, invalid JSON Schemas and Jinja templates) — this module, in :mod:`orch.project.checks`.

Paths written in configs (files, attachments, items, schemas, report outputs) are relative to the
project root, the directory holding orch.yml. ``!file`` includes are relative to the including
file. ``${VAR}`` is expanded in orch.yml, in assistants' ``metadata`` and in pipelines' ``vars``;
a ``.env`` file in the project root supplies variables not already set.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import jinja2
from dotenv import dotenv_values

from orch.errors import ConfigError, Problem
from orch.project import schemas as jsonschemas
from orch.project.checks import Checker
from orch.project.documents import Document, display_path, load_document
from orch.project.model import (
    EMBEDDED,
    Assistant,
    Pipeline,
    Project,
    Target,
)

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
        return f"{display_path(file)}: valid scripted-model script"
    root = find_root(file.parent)
    if root == file.parent and file.parent.name in (ASSISTANTS_DIR, PIPELINES_DIR):
        root = file.parent.parent  # a project without orch.yml
    loader = _ProjectLoader(root, environ)
    project = loader.load()
    if kind != "project config" and file.parent != root / _FOLDERS[kind]:
        loader.load_extra(file, kind, project)  # not one of the files the project scans
    mine = [p for p in loader.problems if p.file in (display_path(file), "")]
    if mine:
        raise ConfigError(mine)
    return f"{display_path(file)}: valid {kind}"


def load_script(path: Path) -> dict[str, Any]:
    """Load a scripted-model rules file, validated against schemas/script.schema.json."""
    doc = load_document(Path(path), display_path(Path(path)))
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
    doc = load_document(file, display_path(file))
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
        Problem(
            display_path(file),
            1,
            "",
            "cannot tell what this file is: put it in assistants/ "
            "or pipelines/, or name it orch.yml",
        )
    )


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
        doc = load_document(path, display_path(path), interpolate, self.environ)
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
            p
            for p in jsonschemas.validate(doc, kind)
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
                self.problems.append(
                    doc.problem(
                        ("name",),
                        f"assistant name {name!r} is already declared in {assistants[name].source}",
                    )
                )
                continue
            assistant = Checker(self, doc).assistant(settings.get("vars") or {})
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
                self.problems.append(
                    doc.problem(
                        ("name",),
                        (f"pipeline name {name!r} is already declared in {pipelines[name].source}"),
                    )
                )
                continue
            pipeline = Checker(self, doc).pipeline(assistants, settings)
            if pipeline is not None:
                pipelines[name] = pipeline

        targets = _targets(settings.get("targets") or {})
        target = self.environ.get("ORCH_TARGET") or settings.get("target") or "embedded"
        is_url = target.startswith(("http://", "https://"))  # an ad-hoc Assistants-v2 server
        if (
            config_doc
            and "target" in settings
            and not is_url
            and target not in dict(targets) | {"embedded": 1}
        ):
            self.problems.append(
                config_doc.problem(
                    ("target",),
                    (
                        f"unknown target {target!r} "
                        f"(defined: {', '.join(dict.fromkeys(['embedded', *dict(targets)]))})"
                    ),
                )
            )
        if config_doc and settings.get("grader") and settings["grader"] not in assistants:
            self.problems.append(
                config_doc.problem(("grader",), (f"unknown assistant {settings['grader']!r}"))
            )
        for name, spec in (settings.get("targets") or {}).items():
            if config_doc and spec.get("script"):
                script = self.root / spec["script"]
                if not script.is_file():
                    self.problems.append(
                        config_doc.problem(
                            ("targets", name, "script"), f"file not found: {spec['script']}"
                        )
                    )
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
        checker = Checker(self, doc)
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
        options = tuple(
            sorted((k, v) for k, v in spec.items() if k not in ("kind", "base_url", "api_key_env"))
        )
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
