"""The openai-chat model's turn: upstream rounds until a reply or client function calls."""

from __future__ import annotations

import os
from typing import Any

import openai

from orch.engine.models.base import FunctionCall, ModelError, Turn, TurnContext, estimate_tokens
from orch.engine.models.openai_chat.hosted import HostedTools
from orch.engine.models.openai_chat.prompt import (
    chat_messages,
    cut_results,
    output_round,
    settings,
    tool_round,
)
from orch.engine.models.openai_chat.stream import Completion, ContextFull, Upstream, UpstreamCall

#: Hosted tool rounds one turn may take; then the upstream must answer in text.
MAX_HOSTED_ROUNDS = 8


def _usage(request: dict[str, Any], done: Completion) -> tuple[int, int]:
    """The completion's token usage, estimated when the upstream does not report it."""
    if done.usage is not None:
        return done.usage
    prompt = sum(estimate_tokens(str(m.get("content") or "")) for m in request["messages"])
    made = estimate_tokens(done.text) + sum(estimate_tokens(c.arguments) for c in done.calls)
    return prompt, made


class OpenAIChatModel:
    """Answers turns through an upstream Chat Completions server (see the package docstring)."""

    name = "openai-chat"

    def __init__(
        self,
        base_url: str | None,
        api_key_env: str = "OPENAI_API_KEY",
        timeout: float = 600.0,
        embeddings_model: str | None = None,
        embeddings_base_url: str | None = None,
    ):
        if not base_url:
            raise ValueError("the openai-chat model needs an upstream base URL")
        self.base_url = base_url
        # Local servers (Ollama, llama.cpp, vLLM) accept any key; the SDK insists on one.
        key = os.environ.get(api_key_env) or "unused"
        # No SDK retries: Upstream decides what is worth a second try.
        self.client = openai.AsyncOpenAI(
            base_url=base_url, api_key=key, max_retries=0, timeout=timeout
        )
        self.upstream = Upstream(self.client, base_url)
        self.embeddings_model = embeddings_model or os.environ.get("ORCH_EMBEDDINGS_MODEL")
        self.embeddings_client = self.client
        url = embeddings_base_url or os.environ.get("ORCH_EMBEDDINGS_BASE_URL")
        if self.embeddings_model and url and url != base_url:
            self.embeddings_client = openai.AsyncOpenAI(
                base_url=url, api_key=key, max_retries=1, timeout=timeout
            )
        # The executor ranks file_search hybrid when the model has ``embed``.
        self.embed = self._embed if self.embeddings_model else None

    async def aclose(self) -> None:
        """Close the upstream HTTP clients."""
        await self.client.close()
        if self.embeddings_client is not self.client:
            await self.embeddings_client.close()

    async def _embed(self, texts: list[str]) -> list[list[float]]:
        """Embeddings of ``texts`` from the embeddings upstream (``/v1/embeddings``)."""
        params = {"model": self.embeddings_model, "input": texts, "encoding_format": "float"}
        return (await self.embeddings(params))[0]

    async def embeddings(self, params: dict[str, Any]) -> tuple[list[list[float]], int, str]:
        """``/v1/embeddings`` answered by the upstream: (vectors, prompt tokens, model).

        ModelError when the upstream fails; the route turns it into the client's error.
        """
        try:
            res = await self.embeddings_client.embeddings.create(**params)
        except openai.APIStatusError as exc:
            code = "invalid_prompt" if exc.status_code < 500 else "server_error"
            raise ModelError(f"embeddings upstream error {exc.status_code}: {exc}", code) from exc
        except openai.APIConnectionError as exc:
            raise ModelError(f"embeddings upstream unreachable: {exc}") from exc
        vectors = [d.embedding for d in sorted(res.data, key=lambda d: d.index)]
        used = res.usage.prompt_tokens if res.usage else 0
        return vectors, used, res.model

    async def respond(self, ctx: TurnContext) -> Turn:
        """Stream upstream rounds: hosted tool calls run here, then a reply or function calls.

        Text streams to the client as it comes (``ctx.emit_text``); the turn's token budget
        (``ctx.max_output_tokens``) is shared by its rounds; a completion cut at the budget
        ends the turn ``truncated``.
        """
        hosted = HostedTools(ctx)
        functions = [
            # unset fields are left out, not sent as null (the request types do not allow it)
            {
                "type": "function",
                "function": {k: v for k, v in t["function"].items() if v is not None},
            }
            for t in ctx.run.get("tools", [])
            if t.get("type") == "function"
        ]
        base = settings(ctx, functions + hosted.definitions(), hosted.by_type)
        chat = chat_messages(ctx)
        rounds: list[dict[str, Any]] = []  # this turn's hosted rounds, as chat messages
        used = [0, 0]
        reply = ""  # text streamed since the last hosted call (the executor's open reply)
        for round_no in range(MAX_HOSTED_ROUNDS + 1):
            request = {**base, "messages": chat + rounds}
            if ctx.max_output_tokens:
                self.upstream.limit(request, max(1, ctx.max_output_tokens - used[1]))
            if round_no == MAX_HOSTED_ROUNDS and "tools" in request:
                request["tool_choice"] = "none"
            elif (round_no or ctx.tool_outputs) and request.get("tool_choice") not in (
                None,
                "none",
            ):
                # a forced tool is called once: with its result the model may answer
                request["tool_choice"] = "auto"
            done = await self._complete(request, rounds, ctx)
            for i, n in enumerate(_usage(request, done)):
                used[i] += n
            reply += done.text
            if done.finish_reason == "length":
                return self._turn(hosted, reply, used, truncated=True)
            own = [c for c in done.calls if hosted.handles(c.name)]
            asked = [c for c in done.calls if c.name in ctx.function_names()]
            strays = [c for c in done.calls if c not in own and c not in asked]
            if own or strays:
                rounds.extend(await self._hosted_round(hosted, own, strays, done.text))
                reply = "" if own else reply
            if asked:
                return self._calls(ctx, asked, rounds, used)
            if not own and not strays:
                return self._turn(hosted, reply, used)
        raise ModelError("upstream kept calling tools after tool_choice none")

    async def _complete(
        self, request: dict[str, Any], rounds: list[dict[str, Any]], ctx: TurnContext
    ) -> Completion:
        """One upstream completion; a context overflow cuts this turn's tool results and retries.

        ``rounds`` are the request's own message dicts, so cutting them changes the request.
        Small local models (n_ctx 4096) overflow after a few file_search rounds; without tool
        results to cut, the overflow fails the run with the upstream's words.
        """
        while True:
            try:
                return await self.upstream.complete(request, ctx.emit_text)
            except ContextFull:
                if not cut_results(rounds):
                    raise

    @staticmethod
    async def _hosted_round(
        hosted: HostedTools, own: list[UpstreamCall], strays: list[UpstreamCall], text: str
    ) -> list[dict[str, Any]]:
        """Run the hosted calls; a call of a tool nobody offered is answered with an error."""
        outputs = [await hosted.run(c) for c in own]
        outputs += [f"Error: there is no tool named {c.name!r}." for c in strays]
        made = [{"id": c.id, "name": c.name, "arguments": c.arguments} for c in own + strays]
        return tool_round(made, outputs, text)

    @staticmethod
    def _turn(hosted: HostedTools, text: str, used: list[int], truncated: bool = False) -> Turn:
        return Turn(
            text=text,
            citations=hosted.citations(text),
            usage=(used[0], used[1]),
            truncated=truncated,
        )

    @staticmethod
    def _calls(
        ctx: TurnContext,
        asked: list[UpstreamCall],
        rounds: list[dict[str, Any]],
        used: list[int],
    ) -> Turn:
        """Function calls for the client; the rounds the thread will not show go in the state.

        A run's thread shows none of them, so its state carries every round so far; a
        response's items show the function rounds, so only this turn's hosted ones.
        """
        if ctx.rounds_in_messages:
            kept = rounds
        else:
            kept = list(ctx.state.get("rounds") or [])
            if ctx.tool_outputs:
                kept.extend(output_round(ctx.tool_outputs))
            kept.extend(rounds)
        return Turn(
            tool_calls=[FunctionCall(c.name, c.arguments or "{}") for c in asked],
            usage=(used[0], used[1]),
            state={"rounds": kept},
        )
