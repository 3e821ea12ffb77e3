"""Connecting to a target: choose it, then let its kind open it.

Which target: ``--target`` (a name from orch.yml, or a URL for an ad-hoc Assistants-v2 server),
else ``ORCH_TARGET``, else orch.yml's ``target``, else ``embedded``. What opening means is the
kind's business (:mod:`orch.targets.registry`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit, urlunsplit

from orch.errors import UsageError
from orch.project.environment import read_environment
from orch.project.model import Project, Target
from orch.targets import registry
from orch.targets.registry import Connection


def resolve_target(project: Project, name: str | None) -> Target:
    """The Target for ``name`` (or the project's default); a URL makes an ad-hoc one."""
    name = name or os.environ.get("ORCH_TARGET") or project.target
    if name.startswith(("http://", "https://")):
        return Target(name=name, kind="assistants", base_url=name)
    target = project.get_target(name)
    if target is None:
        known = ", ".join(dict(project.targets)) or "embedded"
        raise UsageError(f"unknown target {name!r} (orch.yml defines: {known})")
    return target


def same_target(project: Project, name: str, other: str) -> bool:
    """Whether two target names (or URLs) mean the same server: same name, or same base URL.

    URLs are compared without their userinfo (runs record them without it) and without a
    trailing slash. A name no longer in orch.yml only equals itself.
    """
    if _url(name) == _url(other):
        return True
    try:
        first, second = resolve_target(project, name), resolve_target(project, other)
    except UsageError:
        return False
    return first.base_url is not None and _url(first.base_url) == _url(second.base_url)


def _url(url: str | None) -> str:
    parts = urlsplit((url or "").rstrip("/"))
    if not parts.scheme:
        return url or ""  # a target's name
    host = parts.netloc.rpartition("@")[2].lower()
    return urlunsplit((parts.scheme.lower(), host, parts.path, parts.query, ""))


@contextmanager
def connect(
    project: Project, name: str | None = None, quiet: bool = False, timeout: float = 60.0
) -> Iterator[Connection]:
    """Open the target ``name`` for the duration of the block."""
    target = resolve_target(project, name)
    kind = registry.get(target.kind)
    with kind.open(project, target, read_environment(project.root), quiet, timeout) as opened:
        yield Connection(target, kind, opened.client, opened.label, opened.engine)
