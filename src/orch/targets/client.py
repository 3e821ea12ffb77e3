"""Opening a remote target: an SDK client with the target's URL, key and headers.

For a target without ``base_url``, ``OPENAI_BASE_URL`` is honoured; the API key comes from the
environment variable the target names (``api_key_env``, default ``OPENAI_API_KEY``), a project
``.env`` file included. Clients are created with ``max_retries=0``: :mod:`orch.targets.retry`
is the only place orch retries.

Every client orch makes (:func:`sdk_client`) refuses a 2xx answer to a JSON request whose body
is neither JSON nor SSE (say, an empty 200 without a content type from a proxy): the SDK would
hand back text, or crash inside a list call, where orch expects an object. The refusal is an
``openai.APIResponseValidationError``, which :mod:`orch.targets.retry` treats as transient.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlparse

import openai

from orch.errors import UsageError
from orch.project.model import Project, Target
from orch.targets.registry import Opened

#: what a loopback server without authentication (``orch serve``, the embedded engine) accepts
LOCAL_API_KEY = "orch-embedded"


def is_loopback(url: str) -> bool:
    """Whether ``url`` points at this machine."""
    host = urlparse(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def sdk_client(**options: Any) -> openai.OpenAI:
    """An SDK client (``max_retries=0``) whose answers are checked by :func:`require_json`."""
    http = openai.DefaultHttpxClient(event_hooks={"response": [require_json]})
    return openai.OpenAI(max_retries=0, http_client=http, **options)


def require_json(response: Any) -> None:
    """Refuse a 2xx answer to a JSON request that is neither JSON nor an event stream."""
    if response.status_code >= 300 or response.request.headers.get("accept") != "application/json":
        return  # errors are the SDK's to read; downloads ask for application/binary
    kind = response.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind.endswith("json") or kind == "text/event-stream":
        return
    response.close()
    shown = f"a {kind} body" if kind else "a body without a content type"
    raise openai.APIResponseValidationError(
        response, None, message=f"the server answered {shown} where JSON was expected"
    )


@contextmanager
def open_remote(
    project: Project, target: Target, environ: dict[str, str], quiet: bool, timeout: float
) -> Iterator[Opened]:
    """An SDK client for ``target``; closed when the block ends."""
    base_url = target.base_url or environ.get("OPENAI_BASE_URL") or "https://api.openai.com/v1"
    api_key = environ.get(target.api_key_env)
    if not api_key and is_loopback(base_url):
        api_key = LOCAL_API_KEY  # a local `orch serve` without --api-key accepts anything
    if not api_key:
        raise UsageError(
            f"target {target.name!r} needs an API key: set the environment variable "
            f"{target.api_key_env} (or put it in {project.root / '.env'})"
        )
    client = sdk_client(
        base_url=base_url,
        api_key=api_key,
        timeout=timeout,
        organization=target.option("organization"),
        default_headers=target.option("headers") or None,
    )
    label = base_url if target.name == base_url else f"target {target.name!r} ({base_url})"
    try:
        yield Opened(client, label)
    finally:
        client.close()
