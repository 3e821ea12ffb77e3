"""The read-only web viewer over the run history: view."""

from __future__ import annotations

import os
import sys

import click

from orch.cli.options import project_dir_option
from orch.errors import ExitCode


@click.command()
@project_dir_option
@click.option(
    "--port",
    "-p",
    default=8765,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port on 127.0.0.1 (0 picks a free one; the URL is printed either way).",
)
@click.option(
    "--open/--no-open",
    "open_browser",
    default=None,
    help="Open the page in this machine's browser. Default: open when run in a terminal "
    "on a desktop (macOS, Windows, or a DISPLAY/WAYLAND_DISPLAY).",
)
def view(project_dir, port, open_browser) -> int:
    """Browse past runs in a web browser: runs, pass rate over time, reports, comparisons.

    Serves the history under .orch/ on http://127.0.0.1:PORT/ only (never another address)
    until Ctrl-C. It is read-only: it never writes .orch/, never calls a model or a target and
    runs no project code. Pages load nothing remote: no CDN, no fonts, no analytics.

    \b
    Pages:
      /                          every run, newest first, and a pass-rate chart per pipeline
      /?pipeline=NAME            the runs of one pipeline
      /runs/RUN_ID               the run's HTML report (as `orch report -T builtin:html`)
      /runs/RUN_ID/variants      the run's variants side by side
      /compare?a=RUN_A&b=RUN_B   what changed from RUN_A to RUN_B (as `orch compare`)

    \b
    Examples:
      orch view                  then open the printed URL
      orch view --port 0         any free port
      orch view -C ../other      another project's runs

    To look at the runs of another machine, run `orch view` there and forward its port:
    `ssh -L 8765:127.0.0.1:8765 HOST`, then open http://127.0.0.1:8765/ here.
    """
    from orch.project.loading import load_project
    from orch.results.viewer.app import serve

    project = load_project(project_dir, import_handlers=False)  # read-only: no project code
    if open_browser is None:
        open_browser = on_a_desktop()
    serve(project, port, open_browser, lambda line: click.echo(line))
    return ExitCode.OK


def on_a_desktop() -> bool:
    """Whether a browser can be opened without getting in the way: a terminal on a desktop.

    Not in CI or a pipe (no terminal), and not over SSH without a display, where Python's
    webbrowser would start a text browser (lynx, w3m) in the terminal the viewer prints to.
    """
    if not sys.stdout.isatty():
        return False
    graphical = sys.platform in ("darwin", "win32")
    return graphical or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
