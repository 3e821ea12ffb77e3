"""Shared fixtures: throwaway projects built from a dict of files."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

MakeProject = Callable[..., Path]


def write_files(root: Path, files: dict[str, str | bytes]) -> None:
    """Write ``{relative_path: text}`` under ``root``; text is dedented, bytes written as is."""
    for rel, content in files.items():
        target = root / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(textwrap.dedent(content), encoding="utf-8")


@pytest.fixture
def make_project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MakeProject]:
    """Build a project from ``{relative_path: text}`` in a fresh directory and chdir into it.

    Text is dedented, so tests can write indented triple-quoted YAML. Calling it again adds or
    overwrites files in the same project. Modules imported from the project (function handlers,
    python assertions) are forgotten afterwards, so another test may reuse a module name.
    """
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    # Never let the developer's environment leak into what a test project sees.
    monkeypatch.delenv("ORCH_TARGET", raising=False)
    monkeypatch.delenv("ORCH_RAISE_ERRORS", raising=False)
    saved_path = list(sys.path)
    saved_modules = set(sys.modules)

    def make(files: dict[str, str | bytes] | None = None) -> Path:
        write_files(root, files or {})
        return root

    yield make

    sys.path[:] = saved_path
    for name in set(sys.modules) - saved_modules:
        module_file = getattr(sys.modules[name], "__file__", None) or ""
        if module_file.startswith(str(tmp_path)):
            del sys.modules[name]
