"""The ``openai-chat`` model: any Chat Completions server answers runs.

The thread becomes chat messages (instructions as the system message, image parts as
``image_url`` parts), function tools become chat tools, and tool calls go through
``requires_action``; submitted outputs come back as ``tool`` messages. With ``file_search`` on
the run, the best chunks of its vector stores are given to the model as a system message.
"""

from __future__ import annotations

import base64
import mimetypes
import os
from typing import Any

import openai

from orch.engine.models.base import (
    FunctionCall,
    ModelError,
    SearchCall,
    Turn,
    TurnContext,
    message_text,
)


class OpenAIChatModel:
    """Answers runs through an upstream Chat Completions endpoint."""

    name = "openai-chat"

    def __init__(
        self, base_url: str | None, api_key_env: str = "OPENAI_API_KEY", timeout: float = 600.0
    ):
        if not base_url:
            raise ValueError("the openai-chat model needs an upstream base URL")
        self.base_url = base_url
        # Local servers (Ollama, llama.cpp, vLLM) accept any key; the SDK insists on one.
        key = os.environ.get(api_key_env) or "unused"
        self.client = openai.AsyncOpenAI(
            base_url=base_url, api_key=key, max_retries=2, timeout=timeout
        )

    async def aclose(self) -> None:
        """Close the upstream HTTP client."""
        await self.client.close()

    def _content(self, message: dict[str, Any], ctx: TurnContext) -> Any:
        blocks = message.get("content", [])
        if all(b.get("type") == "text" for b in blocks):
            return message_text(message)
        parts: list[dict[str, Any]] = []
        for block in blocks:
            kind = block.get("type")
            if kind == "text":
                parts.append({"type": "text", "text": block["text"]["value"]})
            elif kind == "file_text":
                parts.append({"type": "text", "text": block["text"]})
            elif kind == "image_url":
                parts.append({"type": "image_url", "image_url": {"url": block["image_url"]["url"]}})
            elif kind == "image_file":
                data = ctx.load_file(block["image_file"]["file_id"])
                if data is not None:
                    mime = (
                        "image/png"
                        if data[:4] == b"\x89PNG"
                        else (mimetypes.guess_type("x.jpg")[0] or "image/jpeg")
                    )
                    url = f"data:{mime};base64,{base64.b64encode(data).decode()}"
                    parts.append({"type": "image_url", "image_url": {"url": url}})
        return parts

    async def _messages(self, ctx: TurnContext) -> tuple[list[dict[str, Any]], SearchCall | None]:
        chat: list[dict[str, Any]] = []
        instructions = ctx.run.get("instructions")
        if instructions:
            chat.append({"role": "system", "content": instructions})
        search = None
        tools = {t.get("type") for t in ctx.run.get("tools", [])}
        if "file_search" in tools and ctx.user_text and not ctx.after_tool_outputs:
            hits = await ctx.search(ctx.user_text, 5)
            if hits:
                search = SearchCall(ctx.user_text, hits)
                excerpts = "\n\n".join(f"[{h.filename}]\n{h.text}" for h in hits)
                chat.append(
                    {
                        "role": "system",
                        "content": "Relevant excerpts from the user's files:\n\n" + excerpts,
                    }
                )
        for m in ctx.messages:
            if m.get("_round"):
                chat.extend(_tool_round(m["_round"]))
            else:
                chat.append({"role": m["role"], "content": self._content(m, ctx)})
        if not ctx.rounds_in_messages:
            for past in ctx.state.get("rounds", []):
                chat.extend(past)
        if ctx.tool_outputs:
            chat.extend(_tool_round(ctx.tool_outputs))
        return chat, search

    def _request(self, ctx: TurnContext, messages: list[dict[str, Any]]) -> dict[str, Any]:
        run = ctx.run
        kwargs: dict[str, Any] = {"model": run["model"], "messages": messages}
        for key in ("temperature", "top_p"):
            if run.get(key) is not None:
                kwargs[key] = run[key]
        if run.get("max_completion_tokens"):
            kwargs["max_tokens"] = run["max_completion_tokens"]
        functions = [
            {"type": "function", "function": t["function"]}
            for t in run.get("tools", [])
            if t.get("type") == "function"
        ]
        choice = run.get("tool_choice")
        if functions and choice != "none":
            kwargs["tools"] = functions
            if isinstance(choice, dict) and choice.get("type") == "function":
                kwargs["tool_choice"] = choice
            elif choice in ("auto", "required"):
                kwargs["tool_choice"] = choice
            if run.get("parallel_tool_calls") is False:
                kwargs["parallel_tool_calls"] = False
        fmt = run.get("response_format")
        if isinstance(fmt, dict) and fmt.get("type") in ("json_object", "json_schema"):
            kwargs["response_format"] = fmt
        return kwargs

    async def respond(self, ctx: TurnContext) -> Turn:
        """One Chat Completions call for this turn."""
        messages, search = await self._messages(ctx)
        try:
            response = await self.client.chat.completions.create(**self._request(ctx, messages))
        except openai.RateLimitError as exc:
            raise ModelError(f"upstream rate limit: {exc.message}", "rate_limit_exceeded") from exc
        except openai.APIStatusError as exc:
            raise ModelError(f"upstream error {exc.status_code}: {exc.message}") from exc
        except openai.APIError as exc:
            raise ModelError(f"upstream unreachable ({self.base_url}): {exc}") from exc
        if not response.choices:
            raise ModelError("upstream returned no choices")
        message = response.choices[0].message
        usage = (
            (response.usage.prompt_tokens, response.usage.completion_tokens)
            if response.usage
            else None
        )
        turn = Turn(search=search, usage=usage)
        if message.tool_calls:
            turn.tool_calls = [
                FunctionCall(tc.function.name, tc.function.arguments or "{}")
                for tc in message.tool_calls
                if getattr(tc, "function", None) is not None
            ]
            rounds = list(ctx.state.get("rounds", []))
            if ctx.tool_outputs:
                rounds.extend(_tool_round(ctx.tool_outputs))
            turn.state = {"rounds": rounds}
        if not turn.tool_calls:
            turn.text = message.content or ""
        return turn


def _tool_round(outputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The assistant tool-call message and the tool messages answering it."""
    calls = [
        {
            "id": o["tool_call_id"],
            "type": "function",
            "function": {"name": o["name"], "arguments": o["arguments"]},
        }
        for o in outputs
    ]
    round_ = [{"role": "assistant", "content": None, "tool_calls": calls}]
    round_.extend(
        {"role": "tool", "tool_call_id": o["tool_call_id"], "content": o["output"]} for o in outputs
    )
    return round_
