"""One exception tree for everything a user can cause or meet.

::

    OrchError                    exit 2 unless a subclass says otherwise
    ├── ConfigError              bad YAML / schema / cross-file problem; carries Problems
    ├── UsageError               bad command-line usage (unknown run id, bad --var, ...)
    └── BackendError             a server said no or could not be reached
        ├── AuthError            401/403
        ├── NotFoundError        404 (e.g. /assistants on a Responses-only server)
        ├── RateLimitError       429 after orch's own retries
        └── TransportError       connection refused/reset, timeouts

The CLI is the only place these become messages and exit codes (see ``cli.py``). Code never
prints a traceback for an ``OrchError``; set ``ORCH_RAISE_ERRORS=1`` to see one anyway.
"""

from __future__ import annotations

from dataclasses import dataclass


class ExitCode:
    """Named process exit codes (design.md: 0 passed, 1 assertions failed, 2 error)."""

    OK = 0
    FAILED = 1
    ERROR = 2


@dataclass(frozen=True, order=True)
class Problem:
    """One located problem in a config file: ``file:line: field.path: message``."""

    file: str
    line: int
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        if self.field:
            return f"{where}: {self.field}: {self.message}"
        return f"{where}: {self.message}"


class OrchError(Exception):
    """Base of every error orch reports to a user; ``exit_code`` is what the CLI returns."""

    exit_code = ExitCode.ERROR


class ConfigError(OrchError):
    """Configuration is invalid. ``problems`` lists every problem found, all at once."""

    def __init__(self, problems: list[Problem] | Problem | str):
        if isinstance(problems, str):
            problems = [Problem("", 0, "", problems)]
        elif isinstance(problems, Problem):
            problems = [problems]
        self.problems = sorted(set(problems), key=lambda p: (p.file, p.line, p.field, p.message))
        super().__init__("\n".join(str(p) for p in self.problems))


class UsageError(OrchError):
    """The command line asks for something that cannot be done as asked."""


class BackendError(OrchError):
    """A target server refused a request or could not be reached."""


class AuthError(BackendError):
    """The target rejected the credentials (HTTP 401/403)."""


class NotFoundError(BackendError):
    """The target does not have the requested object or endpoint (HTTP 404)."""


class RateLimitError(BackendError):
    """The target kept answering 429 after orch's retries."""


class TransportError(BackendError):
    """The target could not be reached (connection refused/reset, timeout)."""
