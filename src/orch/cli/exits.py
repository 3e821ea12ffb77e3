"""Where exceptions become exit codes: the one place, for every ``orch`` command.

Commands return an exit code (or ``None`` when there is nothing to say) and raise
:class:`~orch.errors.OrchError` for anything a user caused or met; :class:`ExitCodeGroup` turns
both into the process exit, so no command calls ``sys.exit`` or prints its own error. Set
``ORCH_RAISE_ERRORS=1`` to let errors propagate with their tracebacks (useful when debugging
orch itself).
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

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

    def invoke(self, ctx: click.Context) -> Any:
        """Run the chosen command; exit with its code, or report what it raised and exit."""
        try:
            code = super().invoke(ctx)
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
    return isinstance(exc, OrchError | KeyboardInterrupt) or (
        setup_error is not None and isinstance(exc, setup_error)
    )


def report_error(exc: BaseException) -> int:
    """Print ``exc`` for the user (one line per config problem) and return its exit code."""
    if isinstance(exc, KeyboardInterrupt):
        click.secho("interrupted", fg="yellow", err=True)
        return INTERRUPTED
    if isinstance(exc, ConfigError):
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        n = len(exc.problems)
        click.secho(f"✗ {n} problem{'s' if n != 1 else ''} found", fg="red", err=True)
        return exc.exit_code
    click.secho(f"error: {exc}", fg="red", err=True)
    return exc.exit_code if isinstance(exc, OrchError) else ExitCode.ERROR
