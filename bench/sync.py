"""Re-sync cost: a project of N assistants and N files, synced once, then synced again.

Usage: python bench/sync.py [--assistants 50] [--files 50]

Builds a throwaway project (half the files for code_interpreter, half for file_search, each
file_search assistant owning a vector store), starts a fresh engine in-process, runs
``orch sync`` against it through the same code path as the CLI (a URL target), then runs it
again with nothing changed. Prints the requests the engine served for the re-sync by kind, the
write count (must be 0) and the wall time of both syncs. A last line times a no-op
``orch sync --check`` in a fresh process, interpreter start and imports included (what CI pays).

Target (design.md): a re-sync with nothing changed makes zero writes, O(pages) list requests,
and takes well under 2 s.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

from orch.cli.project import sync_assistants
from orch.engine.server import start_engine

warnings.simplefilter("ignore", DeprecationWarning)


def build_project(root: Path, assistants: int, files: int) -> None:
    """Write orch.yml, ``assistants`` YAML files and ``files`` data files under ``root``."""
    (root / "assistants").mkdir(parents=True)
    (root / "data").mkdir()
    (root / "orch.yml").write_text("project: bench\n", encoding="utf-8")
    for j in range(files):
        ext = "csv" if j % 2 == 0 else "md"
        body = (
            f"id,value\n{j},{j * j}\n"
            if ext == "csv"
            else f"# Document {j}\nFact number {j} is that {j} squared is {j * j}.\n"
        )
        (root / "data" / f"f{j:03}.{ext}").write_text(body, encoding="utf-8")
    for i in range(assistants):
        lines = [
            f"name: bench-{i:03}",
            "model: gpt-4o",
            f"instructions: |\n  You are bench assistant {i}.\n  Answer briefly.",
            f"temperature: {round(0.1 + (i % 10) / 10, 1)}",
        ]
        if files:
            j = i % files
            tool = "code_interpreter" if j % 2 == 0 else "file_search"
            ext = "csv" if j % 2 == 0 else "md"
            lines += [f"tools: [{tool}]", f"files:\n  {tool}: [data/f{j:03}.{ext}]"]
        lines.append(f"metadata: {{team: t{i % 5}}}")
        (root / "assistants" / f"bench-{i:03}.yml").write_text(
            "\n".join(lines) + "\n", encoding="utf-8"
        )


def timed_sync(root: Path, url: str, out: list[str]) -> tuple[int, float]:
    start = time.perf_counter()
    code = sync_assistants(root, url, prune=False, check=False, only_deletes=False, echo=out.append)
    return code, time.perf_counter() - start


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--assistants", type=int, default=50)
    parser.add_argument("--files", type=int, default=50)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="orch-bench-sync-") as tmp:
        root = Path(tmp) / "project"
        build_project(root, args.assistants, args.files)
        with start_engine(Path(tmp) / "engine.db") as engine:
            out: list[str] = []
            code, first = timed_sync(root, engine.base_url, out)
            if code != 0:
                print("\n".join(out), file=sys.stderr)
                return 2
            first_requests = sum(engine.stats().values())
            first_writes = engine.write_count()

            engine.reset_stats()
            out.clear()
            code, again = timed_sync(root, engine.base_url, out)
            stats = engine.stats()
            writes = engine.write_count()

            env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCH_", "OPENAI_"))}
            engine.reset_stats()
            start = time.perf_counter()
            check = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "orch",
                    "sync",
                    "--check",
                    "--target",
                    engine.base_url,
                    "-C",
                    str(root),
                ],
                env=env,
                capture_output=True,
                text=True,
            )
            cold = time.perf_counter() - start
            cold_writes = engine.write_count()

    print(
        f"project: {args.assistants} assistants, {args.files} files "
        f"({(args.files + 1) // 2} code_interpreter, {args.files // 2} file_search)"
    )
    print(f"first sync:  {first:6.3f} s  ({first_requests} requests, {first_writes} writes)")
    print(
        f"re-sync:     {again:6.3f} s  ({sum(stats.values())} requests, {writes} writes; "
        f"result: {out[-1] if out else '?'})"
    )
    for key, n in sorted(stats.items()):
        print(f"    {n:4d}  {key}")
    print(
        f"fresh-process `orch sync --check`: {cold:6.3f} s (exit {check.returncode}, "
        f"{cold_writes} writes; interpreter start and imports included)"
    )
    ok = writes == 0 and cold_writes == 0 and check.returncode == 0 and again < 2.0
    print("OK: zero writes, well under 2 s" if ok else "NOT OK")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
