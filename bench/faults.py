"""`orch run` under injected faults: are items lost, messages duplicated, model runs orphaned?

Usage: python bench/faults.py [--items 200] [--steps 1] [--concurrency 16] [--fault-rate 0.2]
                              [--drop-rate 0.1] [--modes lost,cut,empty,untyped,truncated]
                              [--seed 1] [--poll] [--no-kill] [--timeout 300]

Everything stays on loopback. An engine (scripted model) is started in this process with
``fault_rate`` 0.2: a fifth of its requests fail *before* being processed (429, 500, or a reset
connection). In front of it runs the chaos proxy of the resilience tests
(``tests/run/chaos.py``), which spoils ``--drop-rate`` of the answers *after* the engine
processed them: lost entirely, cut after the first SSE event, an empty 200 (typed or not), or
truncated JSON / SSE. ``orch sync`` and ``orch run`` then run as subprocesses through the proxy,
as users run them; by default the run is killed with SIGKILL a third of the way through and
finished with ``orch run --resume``.

Then the engine is stopped and its SQLite state audited against the run's results:

* lost items: items without a passed result;
* duplicated messages: user messages that exist more than once (every prompt is unique);
* orphan model runs: runs on the engine that no result points at.

All three must be 0 (exit 1 otherwise). Also printed: empty threads (left by a lost thread
create: no message, no model run, no cost), the faults injected, requests per item and time.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))  # the chaos proxy and the audit live with the tests

from tests.run.chaos import BEFORE, ChaosProxy, EngineAudit  # noqa: E402

from orch.engine.server import start_engine  # noqa: E402
from orch.results.history import History  # noqa: E402

SPOILERS = {"lost": 0.25, "cut": 0.15, "empty": 0.2, "untyped": 0.15, "truncated": 0.25}


def write_project(root: Path, items: int, steps: int, concurrency: int) -> None:
    """orch.yml, one assistant and a pipeline whose every prompt is unique."""
    (root / "assistants").mkdir(parents=True)
    (root / "pipelines").mkdir()
    (root / "orch.yml").write_text("project: faults\n")
    (root / "assistants/echo.yml").write_text("name: echo\nmodel: gpt-4o\n")
    lines = [
        "name: faults",
        "assistant: echo",
        f"concurrency: {concurrency}",
        "timeout: 2m",
        "retries: 8",  # each call gets 10 attempts: 20 % faults exhaust them ~1e-6 of the time
        "items:",
        *[f"  - {{value: {i}}}" for i in range(items)],
        "steps:",
    ]
    for s in range(steps):
        lines += [
            f"  - id: s{s}",
            f'    prompt: "step {s} item {{{{ item.value }}}}"',
            "    expect:",
            f'      - contains: "step {s} item {{{{ item.value }}}}"',
        ]
    (root / "pipelines/faults.yml").write_text("\n".join(lines) + "\n")


def orch(root: Path, *args: str, timeout: float) -> subprocess.CompletedProcess:
    """Run ``python -m orch ARGS`` in the project, bounded in time."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    return subprocess.run(
        [sys.executable, "-m", "orch", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def killed_run(root: Path, url: str, flags: list[str], at: int, timeout: float) -> str:
    """Start the run, SIGKILL it once ``at`` results are written; its run id."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    cmd = [sys.executable, "-m", "orch", "run", "faults", "--target", url, "-q", *flags]
    proc = subprocess.Popen(cmd, cwd=root, env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        for path in (root / ".orch/runs").glob("*/results.jsonl"):
            if len(path.read_bytes().splitlines()) >= at:
                proc.send_signal(signal.SIGKILL)
                proc.wait()
                return path.parent.name
        time.sleep(0.01)
    proc.kill()
    raise SystemExit(f"the run ended before it could be killed: {proc.stderr.read()[-500:]!r}")


def run(args: argparse.Namespace, root: Path) -> tuple[str, float, dict]:
    """Sync and run (killed and resumed) through the faults; (run id, seconds, proxy stats)."""
    engine = start_engine(root / "engine.db", fault_rate=args.fault_rate, fault_seed=args.seed)
    modes = {m: SPOILERS[m] for m in args.modes.split(",")}
    spoil = {mode: share * args.drop_rate / sum(modes.values()) for mode, share in modes.items()}
    proxy = ChaosProxy(engine.base_url, seed=args.seed, faults=spoil).start()
    flags = ["--poll"] if args.poll else []
    t0 = time.monotonic()
    try:
        synced = orch(root, "sync", "--target", proxy.base_url, timeout=args.timeout)
        if synced.returncode:
            raise SystemExit(f"orch sync failed: {synced.stderr.strip()[-500:]}")
        if args.no_kill:
            done = orch(root, "run", "faults", "--target", proxy.base_url, "--json", *flags,
                        timeout=args.timeout)  # fmt: skip
        else:
            run_id = killed_run(root, proxy.base_url, flags, args.items // 3, args.timeout)
            done = orch(root, "run", "--resume", run_id, "--json", *flags, timeout=args.timeout)
        try:  # exit 2 with a summary (items in error) is measured like any other outcome
            run_id = json.loads(done.stdout)["run_id"]
        except ValueError:
            raise SystemExit(
                f"orch run exited {done.returncode}: {done.stderr.strip()[-500:]}"
            ) from None
        seconds = time.monotonic() - t0
        stats = {"injected": Counter(m for m, _ in proxy.injected.elements())}
        stats["requests"] = engine.stats()
    finally:
        proxy.stop()
        engine.stop()
    return run_id, seconds, stats


def report(args: argparse.Namespace, root: Path, run_id: str, seconds: float, stats: dict) -> int:
    """Print the audit; 0 when nothing was lost, duplicated or orphaned."""
    with History(root) as history:
        records = list(history.items(run_id))
    audit = EngineAudit.read(root / "engine.db")
    keys = {str(i) for i in range(args.items)}
    figures = {
        "lost items": audit.lost(records, keys),
        "duplicated messages": audit.duplicated(),
        "orphan model runs": audit.orphans(records),
    }
    runs = sum(len(r) for r in audit.runs.values())
    served = sum(stats["requests"].values())
    injected = stats["injected"]
    refused = {m: injected[m] for m in BEFORE if injected[m]}
    spoiled = {m: injected[m] for m in SPOILERS if injected[m]}
    how = "killed with SIGKILL at a third, then --resume" if not args.no_kill else "one go"
    print(f"faults: {args.items} items × {args.steps} step(s), concurrency {args.concurrency}, "
          f"{'poll' if args.poll else 'stream'}, {how}")  # fmt: skip
    print(f"  engine faults       {args.fault_rate:.0%} of requests (429 / 500 / reset), "
          f"before processing")  # fmt: skip
    extra = f"; proxy refusals {refused}" if refused else ""
    print(f"  spoiled answers     {sum(spoiled.values())} by the proxy ({args.drop_rate:.0%}): "
          f"{dict(sorted(spoiled.items()))}{extra}")  # fmt: skip
    print(f"  passed              {sum(r['status'] == 'passed' for r in records)} / {args.items}")
    for name, value in figures.items():
        print(f"  {name:<19} {value}")
    print(
        f"  empty threads       {audit.empty_threads()} (lost thread creates: no message, no run)"
    )
    print(f"  model runs          {runs} for {args.items * args.steps} steps")
    print(f"  requests per item   {served / args.items:.2f} served by the engine (incl. sync)")
    print(f"  wall time           {seconds:.1f} s")
    ok = not any(figures.values())
    print("  verdict             " + ("OK: nothing lost, duplicated or orphaned" if ok else "FAIL"))
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=200)
    parser.add_argument("--steps", type=int, default=1)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--fault-rate", type=float, default=0.2)
    parser.add_argument("--drop-rate", type=float, default=0.1)
    parser.add_argument("--modes", default=",".join(SPOILERS), help="how answers are spoiled")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--poll", action="store_true")
    parser.add_argument("--no-kill", action="store_true")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds per command")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="orch-faults-") as tmp:
        root = Path(tmp)
        write_project(root, args.items, args.steps, args.concurrency)
        try:
            run_id, seconds, stats = run(args, root)
        except subprocess.TimeoutExpired as exc:
            raise SystemExit(
                f"a command took longer than {exc.timeout:g}s: {exc.cmd[3:5]}"
            ) from None
        return report(args, root, run_id, seconds, stats)


if __name__ == "__main__":
    sys.exit(main())
