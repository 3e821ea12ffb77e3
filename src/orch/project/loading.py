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

import difflib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from orch.errors import ConfigError, Problem
from orch.project import schemas as jsonschemas
from orch.project.checks import Checker
from orch.project.documents import Document, display_path, load_document
from orch.project.environment import read_environment
from orch.project.model import (
    EMBEDDED,
    Assistant,
    Pipeline,
    Project,
    Target,
)
from orch.project.pipelines import PipelineChecker
from orch.targets import registry

CONFIG_FILE = "orch.yml"
ASSISTANTS_DIR = "assistants"
PIPELINES_DIR = "pipelines"
_Declared = TypeVar("_Declared", Assistant, Pipeline)


def find_root(start: Path | None = None) -> Path:
    """The nearest directory at or above ``start`` (default: cwd) with orch.yml, else ``start``."""
    start = (start or Path.cwd()).resolve()
    for candidate in (start, *start.parents):
        if (candidate / CONFIG_FILE).is_file():
            return candidate
    return start


def load_project(
    path: Path | None = None,
    environ: dict[str, str] | None = None,
    *,
    import_handlers: bool = True,
) -> Project:
    """Load and validate the whole project at ``path``; raise ConfigError listing every problem.

    ``import_handlers=False`` runs no project code: handler and ``python:`` modules are checked
    to be files of the project but not imported, so parameters a handler's signature would give
    stay unset. Commands that only read the history load projects this way.
    """
    root = find_root(path)
    if path is not None and not Path(path).exists():
        raise ConfigError(Problem(str(path), 0, "", "no such file or directory"))
    loader = _ProjectLoader(root, environ, import_handlers)
    project = loader.load()
    if loader.problems:
        raise ConfigError(loader.problems)
    return project


def validate_path(
    file: Path, environ: dict[str, str] | None = None, *, import_handlers: bool = True
) -> str:
    """Validate one YAML file (kind guessed from its folder/name/content) in its project.

    Cross-file checks run against the rest of the project, but only this file's problems are
    reported. Returns a one-line summary; raises ConfigError on problems. ``import_handlers``
    is as for :func:`load_project`.
    """
    file = file.resolve()
    kind = _guess_kind(file)
    if kind == "script":
        load_script(file)
        return f"{display_path(file)}: valid scripted-model script"
    root = find_root(file.parent)
    if root == file.parent and file.parent.name in (ASSISTANTS_DIR, PIPELINES_DIR):
        root = file.parent.parent  # a project without orch.yml
    loader = _ProjectLoader(root, environ, import_handlers)
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

    def __init__(self, root: Path, environ: dict[str, str] | None, import_handlers: bool = True):
        self.root = root
        self.import_handlers = import_handlers
        self.environ = read_environment(root, environ)
        self.problems: list[Problem] = []
        # Names of every assistant file that parsed, valid or not: a pipeline naming a broken
        # assistant is not also told the assistant is unknown.
        self.declared_assistants: set[str] = set()
        # Assistants pipelines' variants derive: name → (fingerprint, pipeline file), so two
        # pipelines cannot derive one name two ways.
        self.derived_assistants: dict[str, tuple[str, str]] = {}
        # orch.yml exists but has problems: its vars and grader are unknown, so checks that need
        # them are skipped rather than reported as more (wrong) problems.
        self.config_broken = False

    def _load_file(self, path: Path, kind: str, interpolate) -> Document | None:
        """One YAML file parsed and schema-checked: its document, or None after problems."""
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

    def load(self) -> Project:
        """The project, built from every file that is valid; problems land in ``problems``."""
        config_path = self.root / CONFIG_FILE
        config_doc = self._load_config(config_path)
        settings: dict[str, Any] = config_doc.data if config_doc else {}
        assistants = self._load_declared(
            ASSISTANTS_DIR, "assistant", lambda c: c.assistant(settings.get("vars") or {})
        )
        pipelines = self._load_declared(
            PIPELINES_DIR, "pipeline", lambda c: c.pipeline(assistants, settings)
        )
        targets = _targets(settings.get("targets") or {})
        target = self.environ.get("ORCH_TARGET") or settings.get("target") or "embedded"
        if config_doc:
            self._check_config(config_doc, dict(targets), target, assistants)
        derived = {n: a for p in pipelines.values() for n, a in p.derived}
        self._check_refusals(dict(targets), target, {**assistants, **derived})
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
            batch_discounts=tuple(
                (model, float(p["batch_discount"]))
                for model, p in (settings.get("prices") or {}).items()
                if "batch_discount" in p
            ),
            grader=settings.get("grader"),
            config_file=config_path if config_path.is_file() else None,
        )

    def _load_config(self, path: Path) -> Document | None:
        """orch.yml when present and valid; None otherwise (``config_broken`` says which)."""
        if not path.is_file():
            return None
        doc = self._load_file(path, "orch", _INTERPOLATE["orch"])
        self.config_broken = doc is None
        return doc

    def _load_declared(
        self, folder: str, kind: str, build: Callable[[Checker], _Declared | None]
    ) -> dict[str, _Declared]:
        """Name → what ``build`` makes of each valid file in ``folder``.

        A name already declared by an earlier file is a problem at the later one, which is
        then left out.
        """
        declared: dict[str, _Declared] = {}
        for path in _yaml_files(self.root / folder):
            doc = self._load_file(path, kind, _INTERPOLATE[kind])
            if doc is None:
                continue
            name = doc.data["name"]
            if name in declared:
                self.problems.append(
                    doc.problem(
                        ("name",),
                        f"{kind} name {name!r} is already declared in {declared[name].source}",
                    )
                )
                continue
            checker = PipelineChecker if kind == "pipeline" else Checker
            built = build(checker(self, doc))
            if built is not None:
                declared[name] = built
        return declared

    def _check_config(
        self,
        config_doc: Document,
        targets: dict[str, Target],
        target: str,
        assistants: dict[str, Assistant],
    ) -> None:
        """Check what orch.yml names: the target, the grader and the targets' scripts."""
        settings = config_doc.data
        is_url = target.startswith(("http://", "https://"))  # an ad-hoc Assistants-v2 server
        if "target" in settings and not is_url and target not in targets | {"embedded": 1}:
            defined = ", ".join(dict.fromkeys(["embedded", *targets]))
            self.problems.append(
                config_doc.problem(("target",), f"unknown target {target!r} (defined: {defined})")
            )
        if settings.get("grader") and settings["grader"] not in assistants:
            self.problems.append(
                config_doc.problem(("grader",), f"unknown assistant {settings['grader']!r}")
            )
        for name, spec in (settings.get("targets") or {}).items():
            self._check_kind(config_doc, name, spec.get("kind"))
            if spec.get("script"):
                self._check_script(config_doc, ("targets", name, "script"), spec["script"])

    def _check_refusals(
        self, targets: dict[str, Target], target: str, assistants: dict[str, Assistant]
    ) -> None:
        """The assistant fields the default target's kind has no place for, as problems.

        ``orch sync`` would send every assistant there; another target (``--target``) is
        checked when the command meets it (:meth:`orch.targets.registry.Connection.assistant`).
        """
        is_url = target.startswith(("http://", "https://"))  # an ad-hoc Assistants-v2 server
        chosen = Target(target, "assistants", target) if is_url else targets.get(target)
        if chosen is None:
            return  # an unknown target is reported by _check_config
        for assistant in assistants.values():
            self.problems += assistant.refused_by(chosen.kind)

    def _check_kind(self, config_doc: Document, name: str, kind: object) -> None:
        """A target's kind must be one the registry knows (plugins and tests may add kinds)."""
        known = registry.names()
        if isinstance(kind, str) and kind not in known:
            expected = ", ".join(f'"{k}"' for k in known)
            close = difflib.get_close_matches(kind, known, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            self.problems.append(
                config_doc.problem(
                    ("targets", name, "kind"), f'"{kind}" is not one of: {expected}{hint}'
                )
            )

    def _check_script(self, config_doc: Document, field: tuple, rel: str) -> None:
        """A target's scripted-model rules file must exist and be valid."""
        script = self.root / rel
        if not script.is_file():
            self.problems.append(config_doc.problem(field, f"file not found: {rel}"))
            return
        try:
            load_script(script)
        except ConfigError as exc:
            self.problems += exc.problems

    def load_extra(self, path: Path, kind: str, project: Project) -> None:
        """Check one assistant or pipeline file outside the project's folders against it."""
        doc = self._load_file(path, kind, _INTERPOLATE[kind])
        if doc is None:
            return
        if kind == "assistant":
            Checker(self, doc).assistant(dict(project.vars))
        else:
            settings = {"grader": project.grader, "vars": dict(project.vars)}
            PipelineChecker(self, doc).pipeline(dict(project.assistants), settings)


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
