"""The command that runs the embedded engine in the foreground: serve.

Its start-up failures (:class:`orch.engine.errors.EngineSetupError`) reach the user through
:mod:`orch.cli.exits` like any other error.
"""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to bind.")
@click.option(
    "--port",
    default=8000,
    show_default=True,
    type=click.IntRange(0, 65535),  # checked here: the engine's bind would fail with a traceback
    help="Port (0 picks a free one).",
)
@click.option(
    "--db",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path(".orch/engine.db"),
    show_default=True,
    help="SQLite file holding the engine's state; it survives restarts. A relative path is "
    "relative to the project root (the nearest directory upwards with orch.yml, else the "
    "current one), as every path in orch is.",
)
@click.option(
    "--model",
    "model",
    type=click.Choice(["scripted", "openai-chat"]),
    default="scripted",
    show_default=True,
    help="What answers runs: deterministic rules, or any Chat Completions server.",
)
@click.option(
    "--script",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Rules for the scripted model (schemas/script.schema.json), relative to the project "
    "root; built-in default if omitted.",
)
@click.option(
    "--upstream-base-url",
    envvar="ORCH_UPSTREAM_BASE_URL",
    help="Chat Completions base URL for --model openai-chat (e.g. http://localhost:11434/v1).",
)
@click.option(
    "--upstream-api-key-env",
    default="OPENAI_API_KEY",
    show_default=True,
    help="Name of the environment variable holding the upstream API key.",
)
@click.option(
    "--api-key",
    envvar="ORCH_ENGINE_API_KEY",
    help="Require 'Authorization: Bearer KEY' (env ORCH_ENGINE_API_KEY). "
    "Needed for non-loopback hosts.",
)
@click.option(
    "--fault-rate",
    type=click.FloatRange(0.0, 1.0),
    default=0.0,
    help="Fail this fraction of requests with 429/500/dropped connections (for resilience tests).",
)
def serve(**options) -> None:
    """Run the embedded Assistants-v2-compatible engine.

    Scripts written against OpenAI's Assistants API work unchanged by pointing the SDK's
    ``base_url`` at it:

    \b
      orch serve --port 8000 &
      python -c "from openai import OpenAI
      c = OpenAI(base_url='http://127.0.0.1:8000/v1', api_key='x')
      print(c.beta.assistants.create(model='scripted', name='demo').id)"

    \b
    Examples:
      orch serve                                   scripted model, built-in replies
      orch serve --script tests/scripts/quickstart.yml --port 0
      orch serve --model openai-chat --upstream-base-url http://localhost:11434/v1
    """
    from orch.engine.server import serve_forever

    serve_forever(**in_project(options))


def in_project(options: dict) -> dict:
    """``options`` with relative --db and --script made relative to the project root.

    So `orch serve` in a subdirectory (or with -C) uses the project's .orch/engine.db, the
    state `orch run` and `orch sync` see, not a new one where it happens to start.
    """
    from orch.project.loading import find_root

    root = find_root()
    out = dict(options)
    for key in ("db", "script"):
        if out.get(key) is not None and not out[key].is_absolute():
            out[key] = root / out[key]
    if out.get("script") is not None and not out["script"].is_file():
        raise click.BadParameter(f"no such file: {out['script']}", param_hint="--script")
    return out
