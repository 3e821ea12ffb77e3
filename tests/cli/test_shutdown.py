"""The end of an ``orch run`` process: no interpreter teardown, nothing lost, the same exit.

Each test starts a fresh interpreter (the fast ending is the process's; click's test runner
never takes it) on a project with the embedded engine in-process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

FILES = {
    "orch.yml": """
        project: ending
        targets:
          embedded: {kind: engine, model: scripted, script: script.yml}
    """,
    "script.yml": """
        rules:
          - when: {contains: "two"}
            reply: "wrong"
        default: {reply: "ok"}
    """,
    "assistants/bot.yml": "name: bot\nmodel: gpt-test\ninstructions: Be brief.\n",
    "pipelines/q.yml": """
        name: q
        assistant: bot
        concurrency: 4
        items: [{q: one}, {q: two}, {q: three}, {q: four}, {q: five}, {q: six}]
        steps:
          - prompt: "{{ item.q }}"
            expect: [{contains: ok}]
        report:
          - {template: builtin:markdown, output: out/q.md}
    """,
}

# ``orch`` as its console script runs it, with two witnesses: an atexit handler (which must run)
# and an object only the interpreter's teardown frees (whose finalizer must not run when the
# process ends early)
WITNESSED = """
import atexit, sys

class Witness:
    def __del__(self):
        sys.stderr.write("witness: teardown\\n")

witness = Witness()
atexit.register(lambda: sys.stderr.write("witness: atexit\\n"))
from orch.cli import main
sys.argv = ["orch", *sys.argv[1:]]
main()
"""

# a command run in-process, then every file object and SQLite connection still open
LEFT_OPEN = """
import gc, io, json, sqlite3, sys, threading
from orch.cli import main
try:
    main.main(sys.argv[1:], standalone_mode=False)
finally:
    std = set()
    for stream in (sys.stdin, sys.stdout, sys.stderr):  # and the layers under them
        while stream is not None:
            std.add(id(stream))
            stream = getattr(stream, "buffer", None) or getattr(stream, "raw", None)
    files, connections = [], 0
    for o in gc.get_objects():
        if type(o) in (io.TextIOWrapper, io.BufferedWriter, io.BufferedRandom, io.FileIO):
            if not o.closed and id(o) not in std:
                files.append(repr(o))
        elif type(o) is sqlite3.Connection:
            try:
                o.total_changes  # raises once closed
                connections += 1
            except sqlite3.ProgrammingError:
                pass
    threads = [t.name for t in threading.enumerate() if t is not threading.main_thread()]
    print(json.dumps({"files": files, "connections": connections, "threads": threads}),
          file=sys.stderr)
"""


@pytest.fixture
def project(make_project) -> Path:
    return make_project(FILES)


def python(project: Path, code: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def witnesses(done: subprocess.CompletedProcess) -> list[str]:
    return [line for line in done.stderr.splitlines() if line.startswith("witness:")]


def test_a_run_ends_without_teardown_and_loses_nothing(project: Path) -> None:
    done = python(project, WITNESSED, "run", "q", "--json")

    assert done.returncode == 1, done.stderr  # one item fails its assertion: exit 1, as always
    assert witnesses(done) == ["witness: atexit"]  # atexit ran; the teardown did not
    summary = json.loads(done.stdout)  # the whole summary reached the pipe
    assert summary["counts"] == {"total": 6, "passed": 5, "failed": 1, "errors": 0}
    run_dir = project / ".orch" / "runs" / summary["run_id"]
    assert len((run_dir / "results.jsonl").read_text().splitlines()) == 6
    assert json.loads((run_dir / "run.json").read_text())["status"] == "completed"
    report = (project / "out" / "q.md").read_text()
    assert "six" in report and report.rstrip().endswith("</sub>")  # the report, whole

    listed = python(project, WITNESSED, "history", "--json")  # other commands end as usual

    assert listed.returncode == 0, listed.stderr
    assert witnesses(listed) == ["witness: atexit", "witness: teardown"]
    assert json.loads(listed.stdout)[0]["status"] == "completed"


def test_a_run_returns_with_nothing_left_open(project: Path) -> None:
    """What makes skipping the teardown safe: no file, database or thread is left behind."""
    done = python(project, LEFT_OPEN, "run", "q", "--json")

    left = json.loads(done.stderr.strip().splitlines()[-1])
    assert left == {"files": [], "connections": 0, "threads": []}, done.stderr
