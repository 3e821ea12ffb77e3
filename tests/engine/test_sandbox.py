"""The code interpreter's sandbox: real Python, one stateful kernel per key (issue 12).

One sandbox serves the module (one kernel: they take about a second to start); the rlimits
test starts one more. The confinement tests skip, saying why, where the isolation in use
cannot confine (no bubblewrap, no network namespace).
"""

from __future__ import annotations

import asyncio
import os
import socket
from pathlib import Path

import pytest

from orch.engine.sandbox import InputFile, Sandbox, summary
from orch.engine.sandbox.isolation import detect
from orch.engine.sandbox.workspace import Workspace

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SALES = b"month,revenue\n2026-01,2400\n2026-02,2600\n2026-03,3000\n"
ISOLATION = detect("auto")


@pytest.fixture(scope="module")
def runner():
    with asyncio.Runner() as runner:
        yield runner


@pytest.fixture(scope="module")
def sandbox(runner, tmp_path_factory):
    box = Sandbox(tmp_path_factory.mktemp("sandbox"))
    yield box
    runner.run(box.close())


def run(runner, sandbox, code, key="thread_a", **options):
    return runner.run(sandbox.run(key, code, **options))


def test_state_is_kept_across_calls(runner, sandbox):
    assert run(runner, sandbox, "x = 41").logs == ""
    result = run(runner, sandbox, "import sys\nprint('out')\nprint('err', file=sys.stderr)\nx + 1")
    assert result.logs == "out\nerr\n42" and not result.error
    failed = run(runner, sandbox, "1 / 0")
    assert failed.error and "ZeroDivisionError: division by zero" in failed.logs
    assert "\x1b[" not in failed.logs  # no terminal colours in the logs
    assert run(runner, sandbox, "x").logs == "41"


def test_files_go_in_figures_and_written_files_come_out(runner, sandbox):
    code = (
        "import csv\nimport matplotlib.pyplot as plt\n"
        "rows = list(csv.DictReader(open('sales.csv')))\n"
        "plt.plot([r['month'] for r in rows], [int(r['revenue']) for r in rows])\n"
        "open('total.txt', 'w').write(str(sum(int(r['revenue']) for r in rows)))\n"
        "print(len(rows), 'rows')"
    )
    files = [InputFile("data/sales.csv", "file-sales", lambda: SALES)]
    result = run(runner, sandbox, code, files=files)
    assert result.logs == "3 rows" and not result.error
    assert len(result.images) == 1 and result.images[0].startswith(PNG_MAGIC)
    # Only what the code wrote comes back; the input file it did not change does not.
    assert [(f.name, f.content) for f in result.files] == [("total.txt", b"8000")]
    assert result.files[0].path == f"{sandbox.data_path('thread_a')}/total.txt"
    # A figure is shown once: the next call draws nothing.
    assert run(runner, sandbox, "1 + 1").images == []


def test_a_call_past_its_timeout_is_stopped_and_the_kernel_lives_on(runner, sandbox):
    run(runner, sandbox, "y = 'kept'")
    result = run(runner, sandbox, "while True:\n    pass", timeout=1.0)
    assert result.timed_out and result.error
    assert "KeyboardInterrupt" in result.logs and "ran longer than 1 s" in result.logs
    assert run(runner, sandbox, "y").logs == "'kept'"


def test_a_2gb_allocation_is_refused(runner, sandbox):
    result = run(runner, sandbox, "block = bytearray(2 * 1024**3)")
    assert result.error and "MemoryError" in result.logs
    assert run(runner, sandbox, "small = bytearray(50 * 1024**2); len(small)").logs == "52428800"


@pytest.mark.skipif(
    not (ISOLATION.confined or ISOLATION.leave_network),
    reason=f"the sandbox cannot take the network away here: {ISOLATION.note}",
)
def test_a_socket_connect_fails(runner, sandbox):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        code = f"import socket\nsocket.create_connection(('127.0.0.1', {port}), timeout=3)"
        result = run(runner, sandbox, code)
        assert result.error
        assert "ConnectionRefusedError" in result.logs or "unreachable" in result.logs
        listener.settimeout(0.2)
        with pytest.raises(TimeoutError):
            listener.accept()


@pytest.mark.skipif(not ISOLATION.confined, reason=f"bubblewrap is not in use: {ISOLATION.note}")
def test_reading_and_writing_outside_the_directory_fails(runner, sandbox, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("engine data")
    result = run(runner, sandbox, f"open({str(secret)!r}).read()")
    assert result.error and "FileNotFoundError" in result.logs
    assert "engine data" not in result.logs
    assert "Read-only file system" in run(runner, sandbox, "open('/usr/x', 'w')").logs
    assert run(runner, sandbox, "import os; os.getcwd()").logs == "'/mnt/data'"
    assert summary("auto").startswith("bubblewrap")


def test_rlimits_sandbox_limits_and_expires_idle_sessions(runner, tmp_path):
    box = Sandbox(tmp_path / "rl", isolation="rlimits", idle_seconds=0.5)
    assert box.describe().startswith("rlimits only") and "FILESYSTEM NOT CONFINED" in box.describe()
    try:
        where = run(runner, box, "import os; print(os.getcwd())", key="c1")
        assert where.logs == box.data_path("c1") and not where.error
        assert "MemoryError" in run(runner, box, "bytearray(2 * 1024**3)", key="c1").logs
        directory = Path(box.data_path("c1"))
        assert directory.is_dir()
        runner.run(asyncio.sleep(1.0))
        assert "c1" not in box.sessions and not directory.exists()
        assert "NameError" in run(runner, box, "where", key="c1").logs  # a fresh kernel
    finally:
        runner.run(box.close())


def test_placing_files_never_writes_through_a_planted_link(tmp_path):
    outside = tmp_path / "outside.txt"
    outside.write_text("host file")
    workspace = Workspace(tmp_path / "w")
    (workspace.data / "sales.csv").symlink_to(outside)
    (workspace.data / "peek.txt").symlink_to(outside)
    before = workspace.snapshot()
    workspace.place([InputFile("sales.csv", "file-1", lambda: b"a,b\n")])
    assert outside.read_text() == "host file"
    assert (workspace.data / "sales.csv").read_bytes() == b"a,b\n"
    assert not (workspace.data / "sales.csv").is_symlink()
    os.remove(workspace.data / "peek.txt")
    (workspace.data / "peek.txt").symlink_to(outside)
    files, _ = workspace.changes(before, lambda name: name)
    assert [f.name for f in files] == ["sales.csv"]  # the link is not followed out
