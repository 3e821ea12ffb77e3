"""Engine throughput: create-and-run with stream=true against the scripted model.

Usage: python bench/engine.py [--clients 16] [--runs 2000] [--base-url URL]

Without --base-url an engine is started in-process (its own thread and event loop, a temporary
database). For a fairer figure on few cores run the engine in another process:
``orch serve --port 8001 --db /tmp/bench.db`` and pass ``--base-url http://127.0.0.1:8001/v1``.
Prints runs/second and p50/p95 latency of whole streamed runs (and, with --server-pid, the
server's CPU time per run).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import warnings
from pathlib import Path

from openai import AsyncOpenAI

warnings.simplefilter("ignore", DeprecationWarning)


async def client_loop(
    client: AsyncOpenAI, assistant_id: str, count: int, latencies: list[float]
) -> None:
    for i in range(count):
        start = time.perf_counter()
        stream = await client.beta.threads.create_and_run(
            assistant_id=assistant_id,
            thread={"messages": [{"role": "user", "content": f"bench {i}"}]},
            stream=True,
        )
        completed = False
        async for event in stream:
            if event.event == "thread.run.completed":
                completed = True
        if not completed:
            raise RuntimeError("a run did not complete")
        latencies.append(time.perf_counter() - start)


def cpu_seconds(pid: int) -> float:
    """User+system CPU time of a process (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def bench(base_url: str, clients: int, runs: int, server_pid: int | None = None) -> None:
    client = AsyncOpenAI(base_url=base_url, api_key="bench", max_retries=0)
    assistant = await client.beta.assistants.create(model="scripted", name="bench")
    # Warm up connections and code paths.
    await client_loop(client, assistant.id, 5, [])
    latencies: list[float] = []
    per_client = max(1, runs // clients)
    cpu_before = cpu_seconds(server_pid) if server_pid else 0.0
    start = time.perf_counter()
    await asyncio.gather(
        *(client_loop(client, assistant.id, per_client, latencies) for _ in range(clients))
    )
    elapsed = time.perf_counter() - start
    latencies.sort()
    total = len(latencies)
    p50 = statistics.median(latencies) * 1000
    p95 = latencies[int(total * 0.95) - 1] * 1000
    print(
        f"{total} streamed create-and-run runs, {clients} concurrent clients: "
        f"{total / elapsed:.0f} runs/s, p50 {p50:.1f} ms, p95 {p95:.1f} ms"
    )
    if server_pid:
        cpu = cpu_seconds(server_pid) - cpu_before
        print(
            f"server process: {cpu:.2f} s CPU, {cpu / total * 1000:.2f} ms CPU per run "
            f"(~{total / cpu:.0f} runs/s per core if the clients were elsewhere)"
        )
    await client.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--runs", type=int, default=2000)
    parser.add_argument("--base-url")
    parser.add_argument(
        "--server-pid", type=int, help="also report this server process's CPU per run"
    )
    args = parser.parse_args()
    if args.base_url:
        asyncio.run(bench(args.base_url, args.clients, args.runs, args.server_pid))
        return
    from orch.engine.server import start_engine

    with tempfile.TemporaryDirectory() as tmp, start_engine(Path(tmp) / "bench.db") as engine:
        asyncio.run(bench(engine.base_url, args.clients, args.runs))


if __name__ == "__main__":
    main()
