"""The environment a project sees: the process's variables, completed by the project's ``.env``."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from dotenv import dotenv_values

DOTENV = ".env"


def read_environment(root: Path, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """A copy of ``base`` (default: ``os.environ``) with ``root/.env`` filling in unset names.

    A variable already in ``base`` always wins over the file, so a shell or CI setting overrides
    a checked-in ``.env``. Names the file lists without a value (``NAME`` alone) are skipped.
    Without a ``.env`` file the result is just the copy.
    """
    env = dict(os.environ if base is None else base)
    dotenv = root / DOTENV
    if dotenv.is_file():
        for key, value in dotenv_values(dotenv).items():
            if value is not None:
                env.setdefault(key, value)
    return env
