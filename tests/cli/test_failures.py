"""Failures that are not assertions, end to end: exit 2 with one line, never a traceback.

Each test provokes one thing the environment or the input can do to a command — an `out/` or
`.orch/` that cannot be written, a full disk, a damaged history database, a CSV that is not
UTF-8, an empty dataset, a server file named ``..``, a port out of range, a reader that goes
away, Ctrl-C — and checks what the user sees. Runs use the embedded engine in-process.
"""

from __future__ import annotations

import errno
import json
import os
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import pytest
from click.testing import CliRunner

from orch.cli import main
from orch.run.progress import LineReporter

SCRIPT = """
rules: []
default: {reply: "ok"}
"""

FILES = {
    "orch.yml": """
        project: failing
        targets:
          embedded: {kind: engine, model: scripted, script: script.yml}
    """,
    "script.yml": SCRIPT,
    "assistants/bot.yml": "name: bot\nmodel: gpt-test\ninstructions: Be brief.\n",
    "pipelines/q.yml": """
        name: q
        assistant: bot
        items: [{q: one}, {q: two}]
        steps:
          - prompt: "{{ item.q }}"
            expect: [{contains: ok}]
        report:
          - {template: builtin:markdown, output: out/q.md}
    """,
}


STARTED = "Started the embedded engine at "  # a notice on stderr, not part of the failure


@pytest.fixture
def project(make_project) -> Path:
    return make_project(FILES)


def cli(*args: str):
    """``orch ARGS`` in-process; a traceback that would reach the user fails the test."""
    result = CliRunner().invoke(main, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result


def one_error_line(result, *phrases: str) -> str:
    """The single stderr line of a failed command (exit 2), holding every phrase."""
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.stderr.splitlines() if not line.startswith(STARTED)]
    assert len(lines) == 1, result.stderr
    for phrase in phrases:
        assert phrase in lines[0], lines[0]
    return lines[0]


def write_pipeline(project: Path, items: str, extra: str = "") -> None:
    """pipelines/q.yml with other ``items`` (YAML text) and ``extra`` top-level lines."""
    text = textwrap.dedent(FILES["pipelines/q.yml"])
    text = text.replace("items: [{q: one}, {q: two}]", f"items: {items}")
    (project / "pipelines" / "q.yml").write_text(text + extra)


def history(run_id: str | None = None) -> dict:
    """The latest run in the history (or ``run_id``), as `orch history --json` shows it."""
    runs = json.loads(cli("history", "--json").stdout)
    return next(r for r in runs if run_id in (None, r["run_id"]))


# -- unwritable or full out/ and .orch/ ----------------------------------------------------------


def test_out_that_is_a_file_fails_the_report_not_the_run(project):
    (project / "out").write_text("not a folder")

    result = cli("run", "q")

    line = one_error_line(result, "cannot write out/q.md: out is a file, not a folder")
    run_id = history()["run_id"]
    assert f"`orch report {run_id}` writes its reports again" in line
    assert history()["status"] == "completed"  # the results are kept; only the report failed
    (project / "out").unlink()
    assert cli("report", run_id).exit_code == 0
    assert (project / "out" / "q.md").is_file()


def test_dot_orch_that_is_a_file_fails_every_command_that_needs_it(project):
    (project / ".orch").write_text("not a folder")
    for args in (["run", "q"], ["history"], ["show", "x"]):
        one_error_line(cli(*args), "cannot write .orch: .orch is a file, not a folder")


@pytest.fixture(params=["tmpfs", "simulated"])
def full_out(request, project: Path, monkeypatch: pytest.MonkeyPatch):
    """``out/`` with no space left: a 64 KiB tmpfs filled up, or ENOSPC from fsync.

    Mounting needs root (skipped without it); the simulated full disk fails at the OS boundary:
    ``os.fsync`` of any file under out/ fails as it does on a full disk.
    """
    out = project / "out"
    out.mkdir()
    mounted = False
    if request.param == "tmpfs":
        mount = ["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(out)]
        mounted = os.geteuid() == 0 and subprocess.run(mount, capture_output=True).returncode == 0
        if not mounted:
            pytest.skip("mounting a tmpfs needs root")
    try:
        (out / "q.md").write_text("the previous report\n")
        if mounted:
            with (out / "filler").open("wb", buffering=0) as fh, pytest.raises(OSError):
                while True:
                    fh.write(b"x" * 4096)
        else:
            monkeypatch.setattr(os, "fsync", _fsync_failing_under(out))
        yield out
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(out)], check=True)


def _fsync_failing_under(folder: Path):
    """``os.fsync`` that fails with ENOSPC for files under ``folder``."""
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        if os.readlink(f"/proc/self/fd/{fd}").startswith(str(folder)):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        real_fsync(fd)

    return fsync


def test_a_full_disk_leaves_the_previous_report_whole(project, full_out):
    result = cli("run", "q")

    one_error_line(result, "cannot write out/q.md: No space left on device")
    assert (full_out / "q.md").read_text() == "the previous report\n"
    assert not [p for p in full_out.iterdir() if p.name.endswith(".tmp")]


def test_a_damaged_history_database_is_one_line(project):
    (project / ".orch").mkdir()
    (project / ".orch" / "history.db").write_bytes(b"this is not a database " * 100)
    for args in (["history"], ["run", "q"]):
        one_error_line(
            cli(*args), "run history .orch/history.db: cannot open: file is not a database"
        )


# -- inputs -------------------------------------------------------------------------------------


def test_a_csv_that_is_not_utf8_names_its_line(project):
    (project / "data").mkdir()
    (project / "data" / "items.csv").write_bytes(b"q\nfine\n\xff\xfe broken\n")
    write_pipeline(project, "{csv: data/items.csv}")

    result = cli("run", "q")

    assert result.exit_code == 2 and "Traceback" not in result.output
    assert result.stderr.splitlines() == [
        "pipelines/q.yml:4: items.csv: data/items.csv:3: not UTF-8",
        "✗ 1 problem found",
    ]


def test_a_dataset_with_no_items_is_an_error_not_a_pass(project):
    (project / "data").mkdir()
    (project / "data" / "items.jsonl").write_text("\n\n")
    write_pipeline(project, "{jsonl: data/items.jsonl}")

    result = cli("run", "q")

    assert result.exit_code == 2, result.output
    assert result.stderr.splitlines()[0].endswith("items.jsonl: data/items.jsonl: no items")
    assert not (project / ".orch" / "runs").exists()  # no run was started


def test_importing_a_server_file_named_dot_dot_stays_inside_its_folder(project, tmp_path):
    from openai import OpenAI

    from orch.engine.server import start_engine

    with start_engine(tmp_path / "engine" / "engine.db", poll_after_ms=10) as engine:
        sdk = OpenAI(base_url=engine.base_url, api_key="test", max_retries=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            evil = sdk.files.create(file=("..", b"data"), purpose="assistants")
            sdk.beta.assistants.create(
                model="m",
                name="Evil",
                tools=[{"type": "code_interpreter"}],
                tool_resources={"code_interpreter": {"file_ids": [evil.id]}},
            )
        sdk.close()
        result = cli("import", "--target", engine.base_url, "Evil")

    # the server chose the name: it may not climb out of the folder; the file id names it
    assert result.exit_code == 0, result.output
    assert (project / "assistants/files/evil" / evil.id).read_bytes() == b"data"
    assert not (project / "assistants/files/data").exists()


def test_serve_refuses_a_port_out_of_range_before_the_engine_starts():
    result = CliRunner().invoke(main, ["serve", "--port", "80000"])
    assert result.exit_code == 2
    assert "Traceback" not in result.output and result.exception is not None  # SystemExit
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert errors == ["Error: Invalid value for '--port': 80000 is not in the range 0<=x<=65535."]


# -- interruptions ------------------------------------------------------------------------------


def test_ctrl_c_during_a_run_exits_130_and_leaves_it_resumable(project, monkeypatch):
    def interrupt(self, record):
        if not hasattr(self, "interrupted"):  # Ctrl-C arrives once, between two items
            self.interrupted = True
            raise KeyboardInterrupt

    monkeypatch.setattr(LineReporter, "item", interrupt)
    result = cli("run", "q")

    assert result.exit_code == 130, result.output
    run_id = history()["run_id"]
    assert f"Interrupted: finish it with `orch run --resume {run_id}`." in result.stdout
    assert history(run_id)["status"] == "interrupted"


def test_a_closed_pipe_interrupts_the_run_quietly_and_it_resumes(project):
    (project / "script.yml").write_text("rules: []\ndelay_ms: 40\ndefault: {reply: ok}\n")
    items = ", ".join(f"{{q: q{i}}}" for i in range(30))
    write_pipeline(project, f"[{items}]", "concurrency: 2\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    # like `orch run q 2>&1 | head`: progress and output share one pipe, closed early
    proc = subprocess.Popen(
        [sys.executable, "-m", "orch", "run", "q"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    for line in proc.stdout:
        if line.startswith(b"[1/30]"):
            break
    proc.stdout.close()

    assert proc.wait(60) == 2  # not 1 (a traceback), not 120 (a failed flush at exit)
    record = history()
    assert record["status"] == "interrupted"
    assert 0 < record["total"] < 30

    resumed = cli("run", "--resume", record["run_id"], "--json")
    assert resumed.exit_code == 0, resumed.output
    assert json.loads(resumed.stdout)["counts"]["total"] == 30


def test_a_closed_stdout_ends_a_read_only_command_quietly(project):
    read_end, write_end = os.pipe()
    os.close(read_end)  # the reader is gone before orch writes: `orch history | true`
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    done = subprocess.run(
        [sys.executable, "-m", "orch", "history"],
        cwd=project,
        env=env,
        stdout=write_end,
        stderr=subprocess.PIPE,
        text=True,
    )
    os.close(write_end)
    assert (done.returncode, done.stderr) == (2, "")
