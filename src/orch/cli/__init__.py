"""The ``orch`` command line (see :mod:`orch.cli.main`)."""

from orch.cli.main import main

__all__ = ["main"]
