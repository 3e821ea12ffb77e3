"""Results helpers on their own: Markdown cells, the history as a context manager, filters."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest

from orch import templating
from orch.errors import UsageError
from orch.results import reports
from orch.results.history import History
from orch.results.markdown import escape


@pytest.mark.parametrize(
    ("value", "kwargs", "expected"),
    [
        (None, {}, ""),
        ("a|b\\c", {}, "a\\|b\\\\c"),
        ("one\r\ntwo <b>", {}, "one<br>two &lt;b>"),
        ("abcdef", {"limit": 4}, "abc…"),
        ("a|b\\c", {"one_line": True}, "a\\|b\\c"),
        ("one\ntwo <br>", {"one_line": True}, "one two &lt;br>"),
    ],
)
def test_markdown_escape(value, kwargs, expected):
    assert escape(value, **kwargs) == expected


def test_history_closes_when_used_as_a_context_manager(tmp_path: Path):
    with History(tmp_path) as history:
        assert history.runs() == []
        with pytest.raises(UsageError):
            history.get("nope")
    assert (tmp_path / ".orch" / "history.db").is_file()
    with pytest.raises(Exception, match="closed"):
        history.runs()


def test_reports_render_with_exactly_the_filters_validation_checks(tmp_path: Path):
    env = reports.environment(tmp_path, tmp_path / "run")
    added = set(env.filters) - set(jinja2.Environment().filters)
    assert added == set(templating.REPORT_FILTERS)
