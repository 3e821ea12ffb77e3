"""YAML documents that remember where every value came from.

``load_document`` parses YAML safely and returns a :class:`Document`: plain Python data plus a
map from each value's path (``("tools", 1, "function", "name")``) to its line, so any later check
can report ``file:line: field.path: message``. While loading it also

* rejects duplicate keys (PyYAML silently keeps the last one),
* resolves ``!file path`` includes (relative to the including file) to the file's text,
* interpolates ``${VAR}`` / ``${VAR:-default}`` in the string values a caller allows
  (``$${`` keeps a literal ``${``),
* refuses every other explicit tag (no ``!!python/object`` surprises),
* refuses an alias that contains itself, and aliases that would expand to more than
  :data:`ALIAS_EXPANSION_LIMIT` values beyond those written (a "billion laughs" file is refused
  in milliseconds instead of eating memory for minutes).

Problems are collected, not raised one by one, so a user sees every mistake at once.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from orch.errors import Problem

Path_ = tuple[str | int, ...]

#: How many values aliases may add to a document beyond the nodes written in it. A config
#: that repeats a block a few times stays far below; a "billion laughs" file asks for 10^9.
ALIAS_EXPANSION_LIMIT = 100_000

_ENV_RE = re.compile(r"\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
_PLAIN_TAGS = {
    "tag:yaml.org,2002:str",
    "tag:yaml.org,2002:int",
    "tag:yaml.org,2002:float",
    "tag:yaml.org,2002:bool",
    "tag:yaml.org,2002:null",
    "tag:yaml.org,2002:timestamp",
    "tag:yaml.org,2002:map",
    "tag:yaml.org,2002:seq",
    "tag:yaml.org,2002:binary",
}


def format_path(path: Iterable[str | int]) -> str:
    """Render a value path the way users write it: ``tools[1].function.name``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def relative_to(path: str | Path, base: Path) -> str:
    """``path`` relative to ``base`` (POSIX slashes) when inside it, else ``path`` as given.

    Both are resolved first, so links and ``..`` do not hide that one is inside the other.
    """
    try:
        return Path(path).resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return str(path)


def display_path(path: str | Path) -> str:
    """How to show a path to the user: relative to the working directory when inside it."""
    return relative_to(path, Path.cwd())


@dataclass
class Document:
    """Parsed YAML data with the line of every value and the files it included."""

    path: Path
    display: str
    data: Any
    lines: dict[Path_, int] = field(default_factory=dict)
    text_lines: dict[Path_, int] = field(default_factory=dict)
    includes: dict[Path_, Path] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)

    def line(self, path: Iterable[str | int]) -> int:
        """The line of the value at ``path``, or of its nearest ancestor that has one."""
        parts = tuple(path)
        while parts:
            if parts in self.lines:
                return self.lines[parts]
            parts = parts[:-1]
        return self.lines.get((), 1)

    def text_line(self, path: Iterable[str | int]) -> int:
        """The line where the text of the string at ``path`` starts.

        For a block scalar (``|`` or ``>``) that is the line after the key, so line N of the
        text (a Jinja error, say) is at ``text_line(path) + N - 1`` in the file.
        """
        parts = tuple(path)
        return self.text_lines.get(parts) or self.line(parts)

    def problem(self, path: Iterable[str | int], message: str) -> Problem:
        """A :class:`Problem` located at ``path`` in this document."""
        parts = tuple(path)
        return Problem(self.display, self.line(parts), format_path(parts), message)


class _Loader(yaml.SafeLoader):
    """SafeLoader that keeps ``!file`` as a tag we resolve ourselves."""


def load_document(
    path: Path,
    display: str | None = None,
    interpolate: Callable[[Path_], bool] = lambda _path: False,
    environ: dict[str, str] | None = None,
) -> Document:
    """Load one YAML file into a :class:`Document`; problems are collected on ``doc.problems``.

    ``interpolate(path)`` says whether ``${VAR}`` is expanded in the string at ``path``.
    """
    display = display or str(path)
    doc = Document(path=path, display=display, data=None)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        doc.problems.append(Problem(display, 0, "", "file not found"))
        return doc
    except (OSError, UnicodeDecodeError) as exc:
        doc.problems.append(Problem(display, 0, "", f"cannot read file: {exc}"))
        return doc
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark else 0
        what = " ".join(str(p) for p in (exc.context, exc.problem) if p)
        doc.problems.append(Problem(display, line, "", f"YAML syntax error: {what}"))
        return doc
    except yaml.YAMLError as exc:
        doc.problems.append(Problem(display, 0, "", f"YAML error: {exc}"))
        return doc
    except RecursionError:  # PyYAML composes nested collections recursively
        doc.problems.append(Problem(display, 0, "", "YAML nested too deeply"))
        return doc
    if node is None:
        doc.data = {}
        doc.lines[()] = 1
        return doc
    refused = _alias_problem(node)
    if refused:
        doc.problems.append(Problem(display, node.start_mark.line + 1, "", refused))
        return doc
    builder = _Builder(doc, loader, interpolate, os.environ if environ is None else environ)
    doc.data = builder.build(node, ())
    return doc


def _alias_problem(root: yaml.Node) -> str | None:
    """Why the node graph under ``root`` must not be built, or None.

    The builder copies an alias's target every time it is referred to, so the values it would
    create are counted first, each node once (memoized): linear in the document's size however
    large the expansion.
    """
    sizes: dict[int, int] = {}
    building: set[int] = set()

    def size(node: yaml.Node) -> int | None:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in building:
            return None  # an alias inside the collection it names
        building.add(key)
        total = 1
        for child in _children(node):
            child_size = size(child)
            if child_size is None:
                return None
            total += child_size
        building.discard(key)
        sizes[key] = total
        return total

    try:
        expanded = size(root)
    except RecursionError:
        return "YAML nested too deeply"
    if expanded is None:
        return "a YAML alias refers to a collection that contains it"
    if expanded - len(sizes) > ALIAS_EXPANSION_LIMIT:
        return (
            f"YAML aliases would expand this file to {expanded:,} values; at most "
            f"{ALIAS_EXPANSION_LIMIT:,} more than written are allowed (an alias bomb?)"
        )
    return None


def _children(node: yaml.Node) -> list[yaml.Node]:
    """The nodes directly inside ``node``: a mapping's keys and values, a sequence's items."""
    if isinstance(node, yaml.MappingNode):
        return [part for pair in node.value for part in pair]
    if isinstance(node, yaml.SequenceNode):
        return list(node.value)
    return []


class _Builder:
    """Walks a composed YAML node tree into Python data, recording lines and problems."""

    def __init__(self, doc: Document, loader: yaml.SafeLoader, interpolate, environ):
        self.doc = doc
        self.loader = loader
        self.interpolate = interpolate
        self.environ = environ

    def build(self, node: yaml.Node, path: Path_) -> Any:
        self.doc.lines.setdefault(path, node.start_mark.line + 1)
        if node.tag == "!file":
            return self._include(node, path)
        if node.tag not in _PLAIN_TAGS:
            tag = node.tag.replace("tag:yaml.org,2002:", "!!")
            self._problem(path, node, f"unsupported YAML tag {tag!r} (only !file is allowed)")
            return None
        if isinstance(node, yaml.MappingNode):
            return self._mapping(node, path)
        if isinstance(node, yaml.SequenceNode):
            return [self.build(child, (*path, i)) for i, child in enumerate(node.value)]
        value = self.loader.construct_object(node, deep=True)
        block = isinstance(node, yaml.ScalarNode) and node.style in ("|", ">")
        self.doc.text_lines[path] = node.start_mark.line + (2 if block else 1)
        if isinstance(value, str) and self.interpolate(path):
            value = self._expand(value, node, path)
        elif not isinstance(value, str | int | float | bool | type(None)):
            value = str(node.value)  # timestamps, binary: keep the text the user wrote
        return value

    def _mapping(self, node: yaml.MappingNode, path: Path_) -> dict:
        self.loader.flatten_mapping(node)
        out: dict[Any, Any] = {}
        for key_node, value_node in node.value:
            key = self.loader.construct_object(key_node, deep=True)
            if not isinstance(key, str):
                key = str(key)
            child = (*path, key)
            if key in out:
                first = self.doc.lines.get(child, 0)
                self._problem(
                    child, key_node, f"duplicate key {key!r} (first defined on line {first})"
                )
                continue
            self.doc.lines[child] = key_node.start_mark.line + 1
            out[key] = self.build(value_node, child)
        return out

    def _include(self, node: yaml.Node, path: Path_) -> str | None:
        if not isinstance(node, yaml.ScalarNode) or not str(node.value).strip():
            self._problem(path, node, "!file needs a file path, e.g. `!file prompts/tutor.md`")
            return None
        target = (self.doc.path.parent / str(node.value).strip()).resolve()
        try:
            text = target.read_text(encoding="utf-8")
        except FileNotFoundError:
            self._problem(path, node, f"!file {node.value}: file not found ({target})")
            return None
        except (OSError, UnicodeDecodeError) as exc:
            self._problem(path, node, f"!file {node.value}: cannot read: {exc}")
            return None
        self.doc.includes[path] = target
        return text

    def _expand(self, value: str, node: yaml.Node, path: Path_) -> str:
        def sub(match: re.Match) -> str:
            if match.group(0) == "$${":
                return "${"
            name, default = match.group(1), match.group(2)
            if name in self.environ:
                return self.environ[name]
            if default is not None:
                return default
            self._problem(
                path,
                node,
                f"environment variable {name} is not set "
                f"(write ${{{name}:-default}} for a default)",
            )
            return ""

        return _ENV_RE.sub(sub, value)

    def _problem(self, path: Path_, node: yaml.Node, message: str) -> None:
        self.doc.problems.append(
            Problem(self.doc.display, node.start_mark.line + 1, format_path(path), message)
        )


_Loader.add_constructor("!file", lambda loader, node: loader.construct_scalar(node))
