"""What answers runs: ``scripted`` (deterministic rules) and ``openai-chat`` (upstream server)."""

from __future__ import annotations

from typing import Any

from orch.engine.models.base import Model


def create_model(
    name: str,
    *,
    script: Any = None,
    upstream_base_url: str | None = None,
    upstream_api_key_env: str = "OPENAI_API_KEY",
) -> Model:
    """Build the model named ``name`` ("scripted" or "openai-chat")."""
    if name == "scripted":
        from orch.engine.models.scripted import ScriptedModel

        return ScriptedModel.from_source(script)
    if name == "openai-chat":
        from orch.engine.models.openai_chat import OpenAIChatModel

        return OpenAIChatModel(upstream_base_url, upstream_api_key_env)
    raise ValueError(f"unknown engine model {name!r} (expected 'scripted' or 'openai-chat')")
