"""Time to the first streamed text delta: through the engine's openai-chat model vs direct.

Usage: python bench/first_token.py [--samples 20] [--first-token-ms 250] [--token-ms 14]
       python bench/first_token.py --upstream-url http://127.0.0.1:8080/v1   (a real server)

Starts the strict upstream double of the tests (tests/engine/upstream.py) on a loopback port,
answering token by token: ``--first-token-ms`` before the first token (the prompt's
processing) and ``--token-ms`` between tokens (14 ms is ~70 tokens/s, SmolLM2-135M on llama.cpp
on this machine's kind). Then, ``--samples`` times each, it measures from sending the request
to the first non-empty text delta:

- direct: a streamed Chat Completions request to the double;
- runs: ``threads.create_and_run(stream=True)`` on an in-process engine (model openai-chat,
  upstream the double), until the first ``thread.message.delta``;
- responses: ``responses.create(stream=True)`` on the same engine, until the first
  ``response.output_text.delta``.

Prints the medians, p95s and the ratio to direct (the goal is at most 1.2). With
``--upstream-url`` the same is measured against that server (llama.cpp, Ollama, vLLM on
loopback) instead of the double.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import statistics
import sys
import tempfile
import time
import warnings
from collections.abc import Awaitable, Callable
from pathlib import Path

from openai import AsyncOpenAI

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the tests' upstream double

from tests.engine.upstream import StrictUpstream, serving  # noqa: E402

from orch.engine.server import start_engine  # noqa: E402

warnings.simplefilter("ignore", DeprecationWarning)
PROMPT = "write an essay"


async def direct(client: AsyncOpenAI) -> float:
    start = time.perf_counter()
    stream = await client.chat.completions.create(
        model="m",
        messages=[{"role": "user", "content": PROMPT}],
        stream=True,
        max_completion_tokens=20,
    )
    first = None
    # read to the end, as the engine does: some servers (llama-cpp-python) answer the request
    # after an abandoned stream with an empty one
    async for chunk in stream:
        if first is None and chunk.choices and chunk.choices[0].delta.content:
            first = time.perf_counter() - start
    return first


def through_runs(assistant_id: str) -> Callable[[AsyncOpenAI], Awaitable[float]]:
    async def measure(client: AsyncOpenAI) -> float:
        start = time.perf_counter()
        stream = await client.beta.threads.create_and_run(
            assistant_id=assistant_id,
            thread={"messages": [{"role": "user", "content": PROMPT}]},
            max_completion_tokens=20,
            stream=True,
        )
        first = None
        async for event in stream:
            if first is None and event.event == "thread.message.delta":
                first = time.perf_counter() - start
        return first

    return measure


async def through_responses(client: AsyncOpenAI) -> float:
    start = time.perf_counter()
    stream = await client.responses.create(
        model="m", input=PROMPT, max_output_tokens=20, stream=True
    )
    first = None
    async for event in stream:
        if first is None and event.type == "response.output_text.delta":
            first = time.perf_counter() - start
    return first


async def sample(measure, client: AsyncOpenAI, samples: int) -> list[float]:
    await measure(client)  # warm up connections and code paths
    times = [await measure(client) for _ in range(samples)]
    if None in times:
        raise SystemExit(f"{measure.__name__}: a stream brought no text")
    return times


def line(name: str, times: list[float], base: float | None) -> str:
    median = statistics.median(times)
    p95 = sorted(times)[max(0, int(len(times) * 0.95) - 1)]
    ratio = f"  {median / base:.2f}x direct" if base else ""
    return f"{name:10} median {median * 1000:7.1f} ms  p95 {p95 * 1000:7.1f} ms{ratio}"


async def bench(samples: int, upstream_url: str, engine_url: str) -> None:
    upstream = AsyncOpenAI(base_url=upstream_url, api_key="x", max_retries=0)
    engine = AsyncOpenAI(base_url=engine_url, api_key="x", max_retries=0)
    assistant = await engine.beta.assistants.create(model="m", name="first-token")
    base = await sample(direct, upstream, samples)
    runs = await sample(through_runs(assistant.id), engine, samples)
    responses = await sample(through_responses, engine, samples)
    print(line("direct", base, None))
    print(line("runs", runs, statistics.median(base)))
    print(line("responses", responses, statistics.median(base)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--first-token-ms", type=float, default=250.0)
    parser.add_argument("--token-ms", type=float, default=14.0)
    parser.add_argument("--upstream-url", help="a real Chat Completions server instead")
    args = parser.parse_args()
    double = StrictUpstream(
        token_delay=args.token_ms / 1000, first_token_delay=args.first_token_ms / 1000
    )
    with contextlib.ExitStack() as stack:
        if args.upstream_url:
            url = args.upstream_url
            print(f"upstream: {url}; {args.samples} samples each")
        else:
            url = stack.enter_context(serving(double))
            print(
                f"upstream: the double, first token after {args.first_token_ms:g} ms, then "
                f"one every {args.token_ms:g} ms; {args.samples} samples each"
            )
        tmp = stack.enter_context(tempfile.TemporaryDirectory())
        db = Path(tmp) / "bench.db"
        engine = stack.enter_context(start_engine(db, model="openai-chat", upstream_base_url=url))
        asyncio.run(bench(args.samples, url, engine.base_url))
    if double.rejected:
        raise SystemExit(f"the upstream rejected {len(double.rejected)} request(s)")


if __name__ == "__main__":
    main()
