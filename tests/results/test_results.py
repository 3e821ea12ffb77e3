"""Results helpers on their own: Markdown cells, the history, filters, atomic writes, redaction."""

from __future__ import annotations

import errno
import os
from pathlib import Path

import jinja2
import pytest

from orch import templating
from orch.errors import UsageError
from orch.results import reports
from orch.results.files import cannot_write, write_atomic
from orch.results.history import History, HistoryError, strip_userinfo
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


def test_write_atomic_replaces_whole_or_leaves_the_old_file(tmp_path: Path, monkeypatch):
    target = tmp_path / "out" / "report.md"
    write_atomic(target, "first\n")
    assert target.read_text() == "first\n"

    def full(*_args):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "replace", full)
    with pytest.raises(OSError):
        write_atomic(target, "second, never seen half-written\n")
    assert target.read_text() == "first\n"
    assert [p.name for p in target.parent.iterdir()] == ["report.md"]  # no temporary file left


def test_cannot_write_names_the_folder_that_is_a_file(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "out").write_text("a file")
    with pytest.raises(OSError) as caught:
        write_atomic(tmp_path / "out" / "sub" / "x.md", "text")
    assert cannot_write(tmp_path / "out" / "sub" / "x.md", caught.value) == (
        "cannot write out/sub/x.md: out is a file, not a folder"
    )
    no_space = OSError(errno.ENOSPC, "No space left on device", str(tmp_path / ".x.md.tmp"))
    assert cannot_write(tmp_path / "x.md", no_space) == "cannot write x.md: No space left on device"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("http://user:KEY@host:8000/v1", "http://host:8000/v1"),
        ("on https://sk-abc@api.example.com/v1.", "on https://api.example.com/v1."),
        ('{"target": "http://u:p%40ss@h/v1", "x": "a@b"}', '{"target": "http://h/v1", "x": "a@b"}'),
        (
            "mail me: ada@example.com, git@github.com:o/r",
            "mail me: ada@example.com, git@github.com:o/r",
        ),
        ("http://host/v1?who=a@b", "http://host/v1?who=a@b"),
    ],
)
def test_strip_userinfo(text: str, expected: str):
    assert strip_userinfo(text) == expected


def test_history_errors_are_one_line_naming_the_file(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".orch").mkdir()
    (tmp_path / ".orch" / "history.db").write_bytes(b"not a database" * 100)
    with pytest.raises(HistoryError, match=r"^run history .orch/history.db: cannot open: file is"):
        History(tmp_path)
