"""Connecting to a target: choose it, build an SDK client, start the embedded engine if needed.

Which target: ``--target`` (a name from orch.yml, or a URL for an ad-hoc Assistants-v2 server),
else ``ORCH_TARGET``, else orch.yml's ``target``, else ``embedded``. For kind ``assistants``
without a ``base_url``, ``OPENAI_BASE_URL`` is honoured; API keys come from the environment
variable the target names (``api_key_env``, default ``OPENAI_API_KEY``), a project ``.env`` file
included. Kind ``engine`` starts the embedded engine in-process on an ephemeral loopback port,
state under ``.orch/`` (or the target's ``db``), and says so on stderr.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import openai
from dotenv import dotenv_values

from orch.errors import UsageError
from orch.project.documents import display_path
from orch.project.model import Project, Target

ENGINE_API_KEY = "orch-embedded"  # the in-process engine listens on loopback without auth


@dataclass
class Connection:
    """An open target: the SDK client, a label for messages, the engine handle if we started it."""

    target: Target
    client: openai.OpenAI
    label: str
    engine: Any = None

    def backend(self):
        """The sync backend for this target's kind."""
        if self.target.kind == "responses":
            from orch.targets.responses import ResponsesBackend

            return ResponsesBackend(self.client, label=self.label)
        from orch.targets.assistants import AssistantsBackend

        return AssistantsBackend(self.client, label=self.label)


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


def _environ(project: Project) -> dict[str, str]:
    env = dict(os.environ)
    dotenv = project.root / ".env"
    if dotenv.is_file():
        for key, value in dotenv_values(dotenv).items():
            if value is not None:
                env.setdefault(key, value)
    return env


@contextmanager
def connect(
    project: Project, name: str | None = None, quiet: bool = False, timeout: float = 60.0
) -> Iterator[Connection]:
    """Open the target ``name``; for kind engine, start and later stop the embedded engine."""
    target = resolve_target(project, name)
    env = _environ(project)
    if target.kind == "engine":
        from orch.engine.server import start_engine

        db = project.root / (target.option("db") or ".orch/engine.db")
        script = target.option("script")
        model = target.option("model", "scripted")
        db.parent.mkdir(parents=True, exist_ok=True)
        handle = start_engine(
            db_path=db,
            model=model,
            script=project.root / script if script else None,
            upstream_base_url=target.base_url,
            upstream_api_key_env=target.api_key_env,
        )
        try:
            if not quiet:
                print(
                    f"Started the embedded engine at {handle.base_url} (model: {model}, "
                    f"state: {display_path(db)})",
                    file=sys.stderr,
                )
            client = openai.OpenAI(
                base_url=handle.base_url, api_key=ENGINE_API_KEY, max_retries=0, timeout=timeout
            )
            try:
                yield Connection(target, client, f"the embedded engine ({handle.base_url})", handle)
            finally:
                client.close()  # idle keep-alive connections would hold up the engine's stop
        finally:
            handle.stop()
        return
    base_url = target.base_url or env.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
    api_key = env.get(target.api_key_env)
    if not api_key and _is_loopback(base_url):
        api_key = ENGINE_API_KEY  # a local `orch serve` without --api-key accepts anything
    if not api_key:
        raise UsageError(
            f"target {target.name!r} needs an API key: set the environment variable "
            f"{target.api_key_env} (or put it in {project.root / '.env'})"
        )
    headers = target.option("headers") or None
    client = openai.OpenAI(
        base_url=base_url,
        api_key=api_key,
        max_retries=0,
        timeout=timeout,
        organization=target.option("organization"),
        default_headers=headers,
    )
    label = base_url if target.name == base_url else f"target {target.name!r} ({base_url})"
    try:
        yield Connection(target, client, label)
    finally:
        client.close()


def _is_loopback(url: str) -> bool:
    from urllib.parse import urlparse

    host = urlparse(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")
