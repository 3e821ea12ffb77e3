"""``make e2e-llm``: orch's pipelines through the engine in front of a real (tiny) model.

Starts llama-cpp-python's OpenAI-compatible server on 127.0.0.1 with SmolLM2-135M-Instruct (or
uses ``--upstream``), puts a recording proxy (:mod:`tests.e2e.wiretap`) between it and the
engine, runs quickstart, weather, pedro-batch (its ``json_object`` variant) and sales-chart with
``orch run`` on a temporary copy of the example project, then measures first-token latency
through the engine and directly. Prints one line per pipeline and the latencies.

A 135M model fails many assertions; that is expected. Exit status: 0 when every pipeline ran to
completion with no infrastructure problem (see :mod:`tests.e2e.outcomes`), 2 otherwise, with
the reasons printed.

    python -m tests.e2e.llm --llm-python .venv-llm/bin/python
    python -m tests.e2e.llm --upstream http://127.0.0.1:8080/v1   # a server already running
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import re
import shutil
import sys
import tempfile
from pathlib import Path

import openai

from tests.e2e import latency, outcomes
from tests.e2e.modelserver import ALIAS, ModelServer
from tests.e2e.project import JSON_VARIANT, make_project
from tests.e2e.wiretap import Wiretap

ROOT = Path(__file__).resolve().parents[2]
_EXCEPTION = re.compile(r"^[A-Za-z_.]*(Error|Exception): .+")
PIPELINES = ["quickstart", "weather", JSON_VARIANT, "sales-chart"]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--llm-python", type=Path, help="python of the venv with llama_cpp")
    where.add_argument("--upstream", help="base URL of a Chat Completions server already up")
    parser.add_argument("--chat-format", default="chatml-function-calling")
    parser.add_argument("--orch", type=Path, default=Path(sys.executable).parent / "orch")
    parser.add_argument("--timeout", type=float, default=600, help="seconds per pipeline")
    parser.add_argument("--pipelines", nargs="+", default=PIPELINES)
    parser.add_argument("--latency-runs", type=int, default=5)
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run everything; 0 when orch's machinery held up everywhere, else 2."""
    args = parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="orch-e2e-llm-"))
    with contextlib.ExitStack() as stack:
        if args.llm_python:
            server = stack.enter_context(
                ModelServer(args.llm_python, args.chat_format, workdir / "llama-server.log")
            )
            upstream = server.base_url
            print(f"model server {upstream}: {server.gguf.name}, chat format {args.chat_format}")
        else:
            upstream = args.upstream
            print(f"model server {upstream} (already running)")
        latency.time_direct(upstream, ALIAS, 1)  # warm-up: the first answer pays for loading
        tap = stack.enter_context(Wiretap(upstream))
        try:
            problems = run_all(args, workdir, tap)
        finally:
            tap.dump(workdir / "exchanges.jsonl")
    keep = args.keep or bool(problems)  # exchanges.jsonl there shows every failed request
    print(f"\nwork directory: {workdir}" + ("" if keep else " (removed)"))
    if not keep:
        shutil.rmtree(workdir, ignore_errors=True)
    if problems and (workdir / "llama-server.log").is_file():
        for line in server_errors(workdir / "llama-server.log"):
            print(f"model server log: {line}")
    if problems:
        print(f"\nE2E-LLM: BROKE — {len(problems)} infrastructure problem(s):")
        for problem in problems:
            print(f"  - {problem}")
        return 2
    print("\nE2E-LLM: every pipeline ran to completion (assertion failures are the model's)")
    return 0


def server_errors(log: Path) -> list[str]:
    """The distinct exception lines in the model server's log (why it answered badly)."""
    lines = log.read_text(encoding="utf-8", errors="replace").splitlines()
    found = [m.group(0) for line in lines if (m := _EXCEPTION.match(line.strip(" |")))]
    return list(dict.fromkeys(found))[:3]


def run_all(args: argparse.Namespace, workdir: Path, tap: Wiretap) -> list[str]:
    """The pipelines, then the latency probes; the infrastructure problems found."""
    project = workdir / "project"
    project.mkdir()
    print(f"date {dt.date.today()}, engine upstream via recording proxy {tap.base_url}")
    for note in make_project(ROOT, project, tap.base_url, ALIAS):
        print(f"note: {note}")
    print()
    problems = []
    for name in args.pipelines:
        mark = tap.mark()
        outcome = outcomes.run_pipeline(args.orch, project, name, args.timeout)
        outcome.exchanges = tap.since(mark)
        print("\n".join(outcomes.report_lines(outcome)), flush=True)
        problems += [f"{name}: {p.splitlines()[0]}" for p in outcome.infrastructure_problems()]
    sent = sorted(
        {str(x.request.get("model")) for x in tap.since(0) if isinstance(x.request, dict)}
    )
    print(f"models named in upstream requests: {', '.join(sent) or 'none'}")
    print("\nfirst-token latency (same prompt, max 48 tokens):")
    direct = latency.time_direct(tap.base_url, ALIAS, args.latency_runs)
    print(f"  {direct.line()}", flush=True)
    mark = tap.mark()
    try:
        engine = latency.time_engine(args.orch, tap.base_url, workdir, args.latency_runs)
    except (RuntimeError, openai.APIError) as exc:
        print(f"  engine: probe failed: {exc} (log: {workdir / 'serve.log'})")
        return [*problems, f"latency probe: {exc}"]
    upstream = tap.since(mark)
    print(f"  {engine.line()}")
    print(
        f"  engine -> server: {sum(x.streamed for x in upstream)}/{len(upstream)} "
        "upstream requests streamed"
    )
    for note in sorted({n for x in upstream for n in x.notes}):
        print(f"  note: {note}")
    problems += [f"latency probe: {t.error}" for t in engine.timings if t.error][:1]
    return problems


if __name__ == "__main__":
    sys.exit(main())
