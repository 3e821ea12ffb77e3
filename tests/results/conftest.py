"""The evaluation project of tests/evals, shared: reports and compare read its recorded runs."""

from tests.evals.conftest import (  # noqa: F401 - fixtures are found by name
    Ran,
    invoke,
    make_project_copy,
    project,
    results,
    runs,
)
