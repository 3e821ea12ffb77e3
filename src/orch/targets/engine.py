"""Target kind ``engine``: the embedded engine, started in-process for the command's duration.

It speaks the Assistants v2 wire, so backend and sessions are those of kind ``assistants``;
only opening differs: the engine starts on an ephemeral loopback port with its state under
``.orch/`` (or the target's ``db``), and says so on stderr. Runs and reports name it by what
answers (:func:`engine_label`), not by that port, which means nothing once the command ends.
"""

from __future__ import annotations

import dataclasses
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from urllib.parse import urlsplit

from orch.project.documents import display_path
from orch.project.loading import load_script
from orch.project.model import Project, Target
from orch.targets import assistants
from orch.targets.client import LOCAL_API_KEY, sdk_client
from orch.targets.registry import Opened


@contextmanager
def open_engine(
    project: Project, target: Target, environ: dict[str, str], quiet: bool, timeout: float
) -> Iterator[Opened]:
    """Start the engine, yield a client for it, stop it (state committed) at the end."""
    from orch.engine.server import start_engine  # only commands that run it pay for it

    db = project.root / (target.option("db") or ".orch/engine.db")
    script = target.option("script")
    model = target.option("model", "scripted")
    db.parent.mkdir(parents=True, exist_ok=True)
    handle = start_engine(
        db_path=db,
        model=model,
        # validated here, where a bad rule gets orch's file:line message; the engine takes data
        script=load_script(project.root / script) if script else None,
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
        client = sdk_client(base_url=handle.base_url, api_key=LOCAL_API_KEY, timeout=timeout)
        try:
            yield Opened(client, engine_label(target), handle)
        finally:
            client.close()  # idle keep-alive connections would hold up the engine's stop
    finally:
        handle.stop()


def engine_label(target: Target) -> str:
    """How runs, summaries and reports name an embedded engine: by what answers, not its port.

    ``engine (embedded, scripted model)``, or with ``model: openai-chat``
    ``engine (embedded, openai-chat → HOST[:PORT])`` naming the upstream without any userinfo
    (a key in the URL is never recorded).
    """
    model = target.option("model", "scripted")
    if model == "scripted":
        return "engine (embedded, scripted model)"
    host = urlsplit(target.base_url or "").netloc.rpartition("@")[2]
    return f"engine (embedded, {model} → {host or 'no upstream'})"


def is_rehearsal(target: Target) -> bool:
    """The scripted model gives rehearsal replies, not an AI's."""
    return target.option("model", "scripted") == "scripted"


KIND = dataclasses.replace(assistants.KIND, name="engine", open=open_engine, rehearsal=is_rehearsal)
