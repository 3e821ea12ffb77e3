"""First-token latency: through the engine (``orch serve --model openai-chat``) and direct.

The engine side streams a run with the SDK (``beta.threads.create_and_run(stream=True)``) and
times the first ``thread.message.delta`` carrying text; the direct side streams
``chat.completions.create(stream=True)`` from the model server and times the first chunk with
content. The same prompt, instructions and token cap go both ways, so the difference is what
the engine adds. Streaming is "real" when text arrives in more than one delta and the first one
comes well before the end.
"""

from __future__ import annotations

import statistics
import subprocess
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import openai

from tests.e2e.modelserver import free_port, wait_until_answering

INSTRUCTIONS = "You are a personal history tutor. Answer questions briefly."
PROMPT = "What year was the USA founded?"
MAX_TOKENS = 48


@dataclass
class Timing:
    """One streamed answer: seconds to the first text delta and to the end, and delta count."""

    first_s: float | None
    total_s: float
    deltas: int
    error: str | None = None


@dataclass
class Probe:
    """Several timings of one path."""

    label: str
    timings: list[Timing] = field(default_factory=list)

    def line(self) -> str:
        """``label: first token median X s (min..max), total Y s, N deltas`` or the error."""
        good = [t for t in self.timings if t.first_s is not None and not t.error]
        if not good:
            errors = [t.error for t in self.timings if t.error]
            return f"{self.label}: no text streamed ({errors[0] if errors else 'no deltas'})"
        firsts = [t.first_s for t in good]
        # Most answers, not all: on shared cores one answer may stall before its first token.
        real = sum(t.deltas > 1 and t.first_s < 0.8 * t.total_s for t in good) > len(good) / 2
        return (
            f"{self.label}: first token median {statistics.median(firsts):.3f}s "
            f"(min {min(firsts):.3f}, max {max(firsts):.3f}) over {len(good)}/{len(self.timings)}"
            f", whole answer median {statistics.median(t.total_s for t in good):.2f}s "
            f"(max {max(t.total_s for t in good):.2f}), "
            f"{statistics.median(t.deltas for t in good):.0f} deltas"
            f" — {'streams as it generates' if real else 'NOT incremental'}"
        )


def time_direct(base_url: str, model: str, runs: int) -> Probe:
    """Stream the prompt from the Chat Completions server itself."""
    probe = Probe("direct (llama server chat.completions)")
    with openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=120) as client:
        for _ in range(runs):
            start, first, deltas = time.monotonic(), None, 0
            stream = client.chat.completions.create(
                model=model,
                messages=[
                    {"role": "system", "content": INSTRUCTIONS},
                    {"role": "user", "content": PROMPT},
                ],
                max_tokens=MAX_TOKENS,
                stream=True,
            )
            for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    deltas += 1
                    first = first if first is not None else time.monotonic() - start
            probe.timings.append(Timing(first, time.monotonic() - start, deltas))
    return probe


def time_engine(orch: Path, upstream: str, workdir: Path, runs: int) -> Probe:
    """Start ``orch serve --model openai-chat`` in front of ``upstream`` and stream runs."""
    port = free_port()
    command = [
        str(orch), "serve", "--model", "openai-chat", "--upstream-base-url", upstream,
        "--port", str(port), "--db", str(workdir / "serve.db"),
    ]  # fmt: skip
    with (workdir / "serve.log").open("wb") as log:
        proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    base_url = f"http://127.0.0.1:{port}/v1"
    try:
        wait_until_answering(base_url, 60, proc)
        return _stream_runs(base_url, runs)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _stream_runs(base_url: str, runs: int) -> Probe:
    probe = Probe("engine (orch serve, threads.create_and_run stream)")
    warnings.filterwarnings("ignore", category=DeprecationWarning)  # the Assistants API, on purpose
    with openai.OpenAI(base_url=base_url, api_key="unused", max_retries=0, timeout=120) as client:
        assistant = client.beta.assistants.create(model="gpt-4o", instructions=INSTRUCTIONS)
        for _ in range(runs):
            probe.timings.append(_stream_one(client, assistant.id))
    return probe


def _stream_one(client: openai.OpenAI, assistant_id: str) -> Timing:
    start, first, deltas, error = time.monotonic(), None, 0, None
    stream = client.beta.threads.create_and_run(
        assistant_id=assistant_id,
        thread={"messages": [{"role": "user", "content": PROMPT}]},
        max_completion_tokens=MAX_TOKENS,
        stream=True,
    )
    for event in stream:
        if event.event == "thread.message.delta":
            for part in event.data.delta.content or []:
                if part.type == "text" and part.text and part.text.value:
                    deltas += 1
                    first = first if first is not None else time.monotonic() - start
        elif event.event in ("thread.run.failed", "thread.run.expired", "error"):
            data = event.data
            last = getattr(data, "last_error", None)
            error = f"{event.event}: {last.message if last else data}"
    return Timing(first, time.monotonic() - start, deltas, error)
