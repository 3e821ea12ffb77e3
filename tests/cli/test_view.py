"""`orch view` as a user starts it: a subprocess on a free port, its pages in headless Chromium.

Every page must load with no console message at all (a script error, a resource the policy
blocked, a failed load); screenshots are kept under the test's tmp_path. The browser tests are
skipped when Chromium is not installed (Debian: ``apt-get install chromium``; `.ci/run` tries).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.evals.conftest import invoke, project, runs  # noqa: F401 - fixtures are found by name

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("chrome")
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not installed (Debian: apt-get install chromium)"
)
#: how Chromium logs a page's console message (and a blocked load, an uncaught error) on stderr
CONSOLE = re.compile(r":CONSOLE[:(]\d+\)?\] (.*)")


def chromium(url: str, profile: Path, *args: str) -> subprocess.CompletedProcess:
    """Headless Chromium on ``url`` (offline: no sync, no updates, no extensions)."""
    return subprocess.run(
        [
            CHROMIUM,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-default-apps",
            "--no-default-browser-check",
            "--metrics-recording-only",
            "--enable-logging=stderr",
            "--v=0",
            f"--user-data-dir={profile}",
            *args,
            url,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def console_messages(stderr: str) -> list[str]:
    """What the page wrote to (or the browser reported on) its console."""
    return [m.group(1) for m in map(CONSOLE.search, stderr.splitlines()) if m]


def load(url: str, profile: Path) -> str:
    """The DOM of ``url`` once loaded (scripts run); fails on any console message."""
    done = chromium(url, profile, "--dump-dom")
    assert done.returncode == 0, done.stderr[-2000:]
    assert console_messages(done.stderr) == [], url
    return done.stdout


@pytest.fixture(scope="module")
def recorded(project, runs) -> dict[str, str]:  # noqa: F811 - the fixture of that name
    """Run ids: mood passing, then failing; mixed (pass, fail, error); chart (an image)."""
    ids = {
        "mood-pass": runs("mood").summary["run_id"],
        "mood-fail": runs("mood", "--var", "mood=be rude").summary["run_id"],
        "mixed": runs("mixed").summary["run_id"],
        "chart": runs("chart").summary["run_id"],
    }
    assert runs("chart").exit_code == 0, runs("chart").stderr
    return ids


def sigint_default() -> None:
    # a shell that starts a job in the background may leave SIGINT ignored for its children
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="module")
def viewer(project, recorded) -> Iterator[tuple[str, subprocess.Popen]]:  # noqa: F811
    """``orch view --port 0`` running in the project; its URL and process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "orch", "view", "--port", "0"],
        cwd=project,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=sigint_default,
    )
    line = proc.stdout.readline()
    match = re.match(r"orch view: (http://127\.0\.0\.1:\d+/) ", line)
    if not match:
        proc.kill()
        pytest.fail(f"no URL from orch view: {line!r} {proc.communicate()[1]}")
    yield match.group(1), proc
    if proc.poll() is None:
        proc.kill()
        proc.wait(10)


@needs_chromium
def test_the_console_check_sees_errors(tmp_path):
    """The check below would notice: a script error and a blocked remote image are reported."""
    page = tmp_path / "broken.html"
    page.write_text(
        '<!DOCTYPE html><meta http-equiv="Content-Security-Policy" content="img-src data:">'
        '<img src="http://192.0.2.1/x.png"><script>notDefined();</script>'
    )
    done = chromium(page.as_uri(), tmp_path / "profile", "--dump-dom")
    messages = console_messages(done.stderr)
    assert any("notDefined is not defined" in m for m in messages), done.stderr[-2000:]
    assert any("Content Security Policy" in m for m in messages), messages


@needs_chromium
def test_every_page_loads_in_headless_chromium_without_console_errors(viewer, recorded, tmp_path):
    url, _ = viewer
    profile = tmp_path / "profile"
    runs_page = load(url, profile)
    assert runs_page.count('<figure class="chart">') == 3  # mood, mixed, chart
    assert load(url + "?pipeline=mood", profile).count("<circle ") == 2
    mixed = load(f"{url}runs/{recorded['mixed']}#failed", profile)
    # the report's own filter script ran (the policy allows it by hash): #failed is pressed
    assert 'data-filter="failed" aria-pressed="true"' in mixed
    chart = load(f"{url}runs/{recorded['chart']}", profile)
    assert re.search(r'<img class="output" alt="[^"]+" src="data:image/png;base64,', chart)
    assert "This run has no variants" in load(f"{url}runs/{recorded['mixed']}/variants", profile)
    compared = load(f"{url}compare?a={recorded['mood-pass']}&b={recorded['mood-fail']}", profile)
    assert compared.count('<tr class="regression">') == 2
    assert "No such run" in load(f"{url}runs/nope", profile)


@needs_chromium
def test_screenshots_of_the_runs_list_and_a_run(viewer, recorded, tmp_path):
    """Screenshots kept as the test's artifacts (tmp_path), e.g. to look at the charts."""
    url, _ = viewer
    for name, page in (("runs", url), ("run", f"{url}runs/{recorded['mixed']}")):
        shot = tmp_path / f"orch-view-{name}.png"
        size = "--window-size=1280,1400"
        done = chromium(page, tmp_path / "profile", f"--screenshot={shot}", size)
        assert done.returncode == 0, done.stderr[-2000:]
        assert console_messages(done.stderr) == []
        assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")


def test_ctrl_c_stops_the_viewer_cleanly(viewer):
    """Last in the module: the viewer is stopped here."""
    _, proc = viewer
    assert proc.poll() is None
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    assert "Traceback" not in err and "interrupted" not in err


def test_open_starts_the_browser_on_the_printed_url(project, tmp_path):  # noqa: F811
    """--open hands the URL to the browser Python finds ($BROWSER here: a script noting it)."""
    seen = tmp_path / "opened.txt"
    browser = tmp_path / "browser.sh"
    browser.write_text(f'#!/bin/sh\necho "$1" > {seen}\n')
    browser.chmod(0o755)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCH_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "orch", "view", "--port", "0", "--open"],
        cwd=project,
        env={**env, "BROWSER": str(browser)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=sigint_default,
    )
    try:
        url = proc.stdout.readline().split()[2]
        for _ in range(200):
            if seen.exists() and seen.read_text().strip():
                break
            time.sleep(0.05)
        assert seen.read_text().strip() == url
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    assert proc.returncode == 0


def test_a_port_in_use_is_one_line_and_exit_2(project):  # noqa: F811
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        ran = invoke("view", "--port", str(port), "--no-open")
    assert ran.exit_code == 2
    assert ran.stderr.strip().startswith(f"error: cannot listen on 127.0.0.1:{port}: ")
    assert len(ran.stderr.strip().splitlines()) == 1
