"""Where exceptions become exit codes: the one place, for every ``orch`` command.

Commands return an exit code (or ``None`` when there is nothing to say) and raise
:class:`~orch.errors.OrchError` for anything a user caused or met; :class:`ExitCodeGroup` turns
both into the process exit, so no command calls ``sys.exit`` or prints its own error. Set
``ORCH_RAISE_ERRORS=1`` to let errors propagate with their tracebacks (useful when debugging
orch itself).

What the environment does to a command is reported the same way, as one line and exit 2, even
where no code wrapped it in an OrchError: an ``OSError`` (a folder that is a file, no space, no
permission) and a SQLite error. A closed output (``orch history | head``) exits 2 quietly: no
message, and no "Exception ignored" from the interpreter's last flush. Ctrl-C exits 130.
Anything else is a bug in orch and keeps its traceback.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from orch.cli.shutdown import COMMANDS as FAST_EXIT_COMMANDS
from orch.cli.shutdown import end_process
from orch.errors import ConfigError, ExitCode, OrchError

RAISE_ERRORS_ENV = "ORCH_RAISE_ERRORS"
INTERRUPTED = 130  # what shells report for a process ended by Ctrl-C (128 + SIGINT)

# The embedded engine does not depend on orch.errors, so its start-up failures (bad port,
# script, bind address, missing upstream) arrive as its own exception class, found by name in
# whichever of these modules defines it.
ENGINE_MODULES = ("orch.engine.errors", "orch.engine.server")
ENGINE_SETUP_ERROR = "EngineSetupError"


class ExitCodeGroup(click.Group):
    """A click group whose commands' return values and errors become the process exit."""

    invoked: str | None = None  # the command the last invocation ran

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """The process's entry (``orch``, ``python -m orch``); tests call :meth:`main` instead.

        After ``run`` and ``retry`` the process ends without the interpreter's slow teardown
        when that is safe (:mod:`orch.cli.shutdown`).
        """
        try:
            return self.main(*args, **kwargs)
        except SystemExit as exit_:
            if self.invoked in FAST_EXIT_COMMANDS:
                end_process(exit_.code)  # returns when it is not safe
            raise

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        """The command ``args`` name (remembered for :meth:`__call__`)."""
        name, command, rest = super().resolve_command(ctx, args)
        self.invoked = command.name if command is not None else None
        return name, command, rest

    def invoke(self, ctx: click.Context) -> Any:
        """Run the chosen command; exit with its code, or report what it raised and exit."""
        try:
            code = super().invoke(ctx)
            sys.stdout.flush()  # a reader that went away shows here when stdout is a pipe
        except (Exception, KeyboardInterrupt) as exc:
            if os.environ.get(RAISE_ERRORS_ENV) or not is_reportable(exc):
                raise
            code = report_error(exc)
        if code is not None:
            sys.exit(code)
        return None


def find_engine_setup_error() -> type[BaseException] | None:
    """The engine's start-up error class, if the engine was loaded at all.

    Looked up rather than imported: a command that never started the engine cannot have raised
    it, and importing the engine package would slow every command down.
    """
    for name in ENGINE_MODULES:
        found = getattr(sys.modules.get(name), ENGINE_SETUP_ERROR, None)
        if isinstance(found, type) and issubclass(found, BaseException):
            return found
    return None


def is_reportable(exc: BaseException) -> bool:
    """Whether ``exc`` is meant for the user as a message rather than as a traceback."""
    setup_error = find_engine_setup_error()
    sqlite = sys.modules.get("sqlite3")  # only loaded modules can have raised
    return (
        isinstance(exc, OrchError | KeyboardInterrupt | OSError)
        or (setup_error is not None and isinstance(exc, setup_error))
        or (sqlite is not None and isinstance(exc, sqlite.Error))
    )


def report_error(exc: BaseException) -> int:
    """Print ``exc`` for the user (one line per config problem) and return its exit code."""
    if isinstance(exc, KeyboardInterrupt):
        click.secho("interrupted", fg="yellow", err=True)
        return INTERRUPTED
    if isinstance(exc, BrokenPipeError):
        return output_closed()  # like `git log | head`: the reader has all it wanted
    if isinstance(exc, OSError):
        click.secho(f"error: {describe_os_error(exc)}", fg="red", err=True)
        return ExitCode.ERROR
    if isinstance(exc, ConfigError):
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        n = len(exc.problems)
        click.secho(f"✗ {n} problem{'s' if n != 1 else ''} found", fg="red", err=True)
        return exc.exit_code
    if not isinstance(exc, OrchError) and type(exc).__module__ == "sqlite3":
        click.secho(f"error: SQLite: {exc}", fg="red", err=True)
        return ExitCode.ERROR
    click.secho(f"error: {strip_userinfo(str(exc))}", fg="red", err=True)
    return exc.exit_code if isinstance(exc, OrchError) else ExitCode.ERROR


def strip_userinfo(text: str) -> str:
    """``text`` without the userinfo of its URLs: an error may quote a base_url with a key."""
    if "@" not in text:  # nearly always: the history module (and sqlite3) need not load
        return text
    from orch.results.history import strip_userinfo as strip

    return strip(text)


def describe_os_error(exc: OSError) -> str:
    """``out/report.md: Not a directory``: the file(s) an OSError names, then why.

    Names are shown as given, relative to the working directory when under it, but not
    normalized: ``files/x/..`` must stay what was asked for, not become ``files``.
    """
    why = exc.strerror or str(exc) or type(exc).__name__
    here = os.getcwd() + os.sep
    names = [os.fsdecode(n) for n in (exc.filename, exc.filename2) if n not in (None, "")]
    shown = [n[len(here) :] if n.startswith(here) else n for n in names]
    return f"{' → '.join(shown)}: {why}" if shown else why


def output_closed(message: str | None = None) -> int:
    """Whoever read orch's output went away (``orch history | head``): leave quietly, exit 2.

    What stdout still buffers is flushed if it can be; a stream that is closed is pointed at
    /dev/null (:func:`orch.run.progress.silence`), so the interpreter's own last flush does not
    fail again with "Exception ignored". ``message``, if any, goes to stderr if that is open.
    """
    from orch.run.progress import silence

    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is sys.stderr and message:
                click.echo(message, err=True)
            stream.flush()
        except (BrokenPipeError, ValueError):  # ValueError: the stream is closed already
            silence(stream)
    return ExitCode.ERROR
