"""Allow ``python -m orch``."""

from orch.cli import main

main()
