"""`orch run` overhead and memory: the runner as users run it, against an engine elsewhere.

Usage: python bench/run.py [--items 200] [--latency-ms 250] [--concurrency 16] [--repeat 3]
                           [--memory-items 10000] [--skip-latency] [--skip-memory]
                           [--skip-commands]

Builds a throwaway project, starts ``orch serve`` (the engine, scripted model) in its own
process, then runs ``python -m orch run … --target URL`` as a subprocess, as a user or CI would:

1. latency, ``--repeat`` times: N items, one step each, the scripted model waiting L ms per
   reply, C at a time. Compared with the floor ⌈N/C⌉·L (no runner can do better: the last
   round waits L too): the items phase (first item started → last item persisted; target
   ≤ 1.08×), the run (``duration_s``: sync check, every item, history) and the whole process
   (interpreter start, imports and exit included; target ≤ 1.5×), with where the process's time
   went, then the best and the median over the repeats, and the engine's requests per item.
2. local commands: ``orch history``, ``show``, ``report``, ``compare`` and ``validate`` on the
   runs just made, one process each, best and median of 3 (target ≤ 0.4 s each).
3. memory: M items with no latency. Prints the peak RSS of the ``orch run`` process alone
   (``wait4`` rusage; the engine's memory is not counted) and its RSS sampled as results
   accumulate, to show whether memory stays flat with item count (target: < 200 MB, flat).

The machine's load average is printed first: figures move with it.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import urllib.request
from pathlib import Path

SCRIPT = """
rules:
  - when: {contains: "slow"}
    delay_ms: LATENCY
    reply: "slow reply to {{ message }}"
default:
  reply: "reply to {{ message }}"
"""

PIPELINE = """
name: NAME
assistant: bench
items: {jsonl: ITEMS}
concurrency: CONCURRENCY
timeout: 5m
steps:
  - id: answer
    prompt: "PREFIX item {{ item.value }}"
    expect:
      - contains: "item {{ item.value }}"
"""


def write(path: Path, text: str) -> None:
    """Write dedented text, creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text).lstrip(), encoding="utf-8")


def make_project(root: Path, latency_ms: int, concurrency: int, sizes: dict[str, int]) -> None:
    """orch.yml, one assistant, the script, and a pipeline per size."""
    write(root / "orch.yml", "project: bench\n")
    write(root / "assistants/bench.yml", "name: bench\nmodel: gpt-4o\ninstructions: Reply.\n")
    write(root / "script.yml", SCRIPT.replace("LATENCY", str(latency_ms)))
    for name, n in sizes.items():
        items = root / f"data/{name}.jsonl"
        items.parent.mkdir(parents=True, exist_ok=True)
        items.write_text("".join(f'{{"value": {i}}}\n' for i in range(n)), encoding="utf-8")
        text = (
            PIPELINE.replace("NAME", name)
            .replace("ITEMS", f"data/{name}.jsonl")
            .replace("CONCURRENCY", str(concurrency))
            .replace("PREFIX", "slow" if name == "latency" else "fast")
        )
        write(root / f"pipelines/{name}.yml", text)


def start_engine(root: Path) -> tuple[subprocess.Popen, str]:
    """``orch serve`` on a free port in its own process; (process, base URL)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "orch",
            "serve",
            "--port",
            "0",
            "--db",
            str(root / "engine.db"),
            "--script",
            str(root / "script.yml"),
        ],
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    line = proc.stdout.readline()
    match = re.search(r"(http://\S+/v1)", line)
    if not match:
        proc.kill()
        raise SystemExit(f"the engine did not start: {line!r}")
    return proc, match.group(1)


def engine_stats(base_url: str) -> dict[str, int]:
    """The engine's request counts by endpoint."""
    with urllib.request.urlopen(f"{base_url}/_orch/stats") as response:
        return json.load(response)["requests"]


def orch(root: Path, *args: str) -> tuple[list[str], dict[str, str]]:
    """The command line and environment for ``python -m orch ARGS``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    return [sys.executable, "-m", "orch", *args], env


def run_cli(root: Path, *args: str) -> tuple[dict, float, object, dt.datetime]:
    """Run ``orch run … --json`` to completion; (summary, wall s, its rusage, when it started)."""
    cmd, env = orch(root, "run", *args, "--json")
    began = dt.datetime.now(dt.UTC)
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    out = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"orch run exited {proc.returncode}: {out[-2000:]!r}")
    return json.loads(out), wall, usage, began


def rss_mb(pid: int) -> float | None:
    """Resident set size of a live process, from /proc."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    match = re.search(r"VmRSS:\s+(\d+) kB", status)
    return int(match.group(1)) / 1024 if match else None


def latency_run(root: Path, url: str, n: int) -> dict[str, float]:
    """One ``orch run`` of the latency pipeline: its phases in seconds, and its CPU."""
    summary, wall, usage, began = run_cli(root, "pipelines/latency.yml", "--target", url)
    assert summary["counts"]["passed"] == n, summary["counts"]
    run_dir = Path(summary["run_dir"])
    started, setup_s, items_s = phases(run_dir)
    run_s = summary["duration_s"]
    before_s = (started - began).total_seconds()
    return {
        "items": items_s,
        "run": run_s,
        "process": wall,
        "setup": setup_s,
        "before": before_s,  # interpreter start, imports, project loading
        "after": wall - before_s - run_s,  # history totals, reports, summary, exit
        "cpu": usage.ru_utime + usage.ru_stime,
    }


def bench_latency(
    root: Path, url: str, n: int, latency_ms: int, concurrency: int, repeat: int
) -> list[str]:
    """Run the latency pipeline ``repeat`` times; prints each and the best/median ratios.

    Returns the run ids (for the local commands' bench).
    """
    before = engine_stats(url)
    floor = -(-n // concurrency) * latency_ms / 1000
    ideal = n * latency_ms / 1000 / concurrency
    print(f"latency: {n} items × {latency_ms} ms at concurrency {concurrency}, {repeat} run(s)")
    print(
        f"  floor ⌈N/C⌉·L       {floor:7.3f} s   (N·L/C = {ideal:.3f} s, but the last round, "
        f"{n % concurrency or concurrency}/{concurrency} full, waits L too)"
    )
    runs = []
    for i in range(repeat):
        r = latency_run(root, url, n)
        runs.append(r)
        print(
            f"  run {i + 1}: items {r['items']:.3f} s ({r['items'] / floor:.3f}×)  run "
            f"{r['run']:.3f} s ({r['run'] / floor:.3f}×)  process {r['process']:.3f} s "
            f"({r['process'] / floor:.3f}×) = {r['before']:.3f} before the run + {r['run']:.3f} "
            f"+ {r['after']:.3f} after it; {r['setup']:.3f} s of the run before its 1st item; "
            f"CPU {r['cpu']:.2f} s"
        )
    after = engine_stats(url)
    targets = {"items": "≤ 1.08", "run": "", "process": "≤ 1.5"}
    labels = {
        "items": "items phase / floor",
        "run": "run / floor",
        "process": "process / floor",
    }
    for key, label in labels.items():
        ratios = sorted(r[key] / floor for r in runs)
        target = f"   (target {targets[key]})" if targets[key] else ""
        print(f"  {label:<20} best {ratios[0]:.3f}  median {statistics.median(ratios):.3f}{target}")
    delta = {k: after.get(k, 0) - before.get(k, 0) for k in after}
    delta = {k: v for k, v in sorted(delta.items(), key=lambda kv: -kv[1]) if v}
    total = sum(delta.values())
    print(
        f"  requests per item   {total / n / repeat:7.3f}   ({total} requests in {repeat} "
        "run(s); incl. the sync checks)"
    )
    for key, count in delta.items():
        print(f"      {count / n / repeat:7.3f}  {key}")
    return sorted(p.name for p in (root / ".orch" / "runs").iterdir())


def bench_commands(root: Path, run_ids: list[str]) -> None:
    """The local commands, one process each, on the latency runs: best and median of 3."""
    first, last = run_ids[0], run_ids[-1]
    commands = {
        "history": ["history"],
        "show": ["show", last],
        "report": ["report", last, "-T", "builtin:markdown", "-o", "out/bench.md"],
        "compare": ["compare", first, last],
        "validate": ["validate"],
    }
    print(f"local commands (one process each, on runs of {len(run_ids)} × latency items)")
    for name, args in commands.items():
        cmd, env = orch(root, *args)
        times = []
        for _ in range(3):
            start = time.perf_counter()
            done = subprocess.run(cmd, cwd=root, env=env, capture_output=True)
            times.append(time.perf_counter() - start)
            if done.returncode not in (0, 1):  # compare exits 1 on a regression
                raise SystemExit(f"orch {' '.join(args)}: {done.stderr.decode()[-2000:]}")
        print(
            f"  orch {name:<9} best {min(times):.3f} s  median {statistics.median(times):.3f} s"
            "   (target ≤ 0.4)"
        )


def phases(run_dir: Path) -> tuple[dt.datetime, float, float]:
    """(the run's start, seconds from it to its first item, seconds from there to the last)."""
    meta = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    first = last = None
    with (run_dir / "results.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            started = dt.datetime.fromisoformat(record["started_at"])
            finished = dt.datetime.fromisoformat(record["finished_at"])
            first = started if first is None else min(first, started)
            last = finished if last is None else max(last, finished)
    start = dt.datetime.fromisoformat(meta["started_at"])
    return start, (first - start).total_seconds(), (last - first).total_seconds()


def bench_memory(root: Path, url: str, n: int, concurrency: int) -> None:
    cmd, env = orch(root, "run", "pipelines/memory.yml", "--target", url, "--json")
    runs = root / ".orch" / "runs"
    existing = set(runs.iterdir()) if runs.exists() else set()
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd, cwd=root, env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL
    )
    out: list[bytes] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.read()), daemon=True)
    reader.start()
    samples: list[tuple[int, float]] = []  # (items done, RSS MB), every 50 ms
    done, offset, results = 0, 0, None
    while True:
        pid, status, usage = os.wait4(proc.pid, os.WNOHANG)  # not poll(): keep the rusage
        if pid:
            break
        if results is None and runs.exists():
            fresh = [p for p in runs.iterdir() if p not in existing]
            results = fresh[0] / "results.jsonl" if fresh else None
        if results is not None and results.exists():
            with results.open("rb") as fh:  # count new lines only
                fh.seek(offset)
                chunk = fh.read()
            done += chunk.count(b"\n")
            offset += len(chunk)
        rss = rss_mb(proc.pid)
        if rss is not None:
            samples.append((done, rss))
        time.sleep(0.05)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    reader.join()
    if proc.returncode:
        raise SystemExit(f"orch run exited {proc.returncode}: {out[0][-2000:]!r}")
    summary = json.loads(out[0])
    assert summary["counts"]["passed"] == n, summary["counts"]
    peak = usage.ru_maxrss / 1024  # kB on Linux

    def at(k: int) -> float:
        """Highest RSS seen while at most ``k`` items were done."""
        return max((r for d, r in samples if d <= k), default=float("nan"))

    print(f"memory: {n} items, no latency, concurrency {concurrency}")
    print(
        f"  wall time           {wall:7.2f} s   ({n / summary['duration_s']:.0f} items/s in "
        f"the run; runner CPU {usage.ru_utime + usage.ru_stime:.1f} s)"
    )
    print(f"  peak RSS            {peak:7.1f} MB  (the orch run process alone; target < 200)")
    marks = sorted({m for m in (100, 1000, n // 4, n // 2, 3 * n // 4, n) if 0 < m <= n})
    print("  RSS by items done   " + "  ".join(f"{m}: {at(m):.1f}" for m in marks) + " MB")
    base = at(min(1000, n))
    print(
        f"  growth              {at(n) - base:+7.1f} MB from {min(1000, n)} to {n} items "
        f"(items loop), {peak - base:+.1f} MB to the peak (incl. the end of the run) → "
        f"{'flat' if peak - base < 20 else 'NOT flat'}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--latency-ms", type=int, default=250)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--repeat", type=int, default=3, help="latency runs (best, median)")
    parser.add_argument("--memory-items", type=int, default=10_000)
    parser.add_argument("--skip-latency", action="store_true")
    parser.add_argument("--skip-commands", action="store_true")
    parser.add_argument("--skip-memory", action="store_true")
    args = parser.parse_args()
    print("load average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))
    with tempfile.TemporaryDirectory(prefix="orch-bench-") as tmp:
        root = Path(tmp)
        make_project(
            root,
            args.latency_ms,
            args.concurrency,
            {"latency": args.items, "memory": args.memory_items},
        )
        engine, url = start_engine(root)
        try:
            cmd, env = orch(root, "sync", "--target", url)
            subprocess.run(cmd, cwd=root, env=env, check=True, stdout=subprocess.DEVNULL)
            print(f"engine: `orch serve` in its own process (pid {engine.pid}) at {url}")
            if not args.skip_latency:
                run_ids = bench_latency(
                    root, url, args.items, args.latency_ms, args.concurrency, args.repeat
                )
                if not args.skip_commands:
                    bench_commands(root, run_ids)
            if not args.skip_memory:
                bench_memory(root, url, args.memory_items, args.concurrency)
        finally:
            engine.send_signal(signal.SIGINT)
            try:
                engine.wait(10)
            except subprocess.TimeoutExpired:
                engine.kill()
        print("load average (1, 5, 15 min): " + ", ".join(f"{x:.2f}" for x in os.getloadavg()))


if __name__ == "__main__":
    main()
