"""orch.templating: orch's Jinja settings, the compiled-template cache, report-template checks."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest

from orch import templating
from orch.project.documents import relative_to


def test_strict_undefined_and_the_trailing_newline_kept():
    assert templating.render("{{ a }}\n", {"a": 1}) == "1\n"
    with pytest.raises(jinja2.UndefinedError):
        templating.render("{{ typo }}", {})


def test_overrides_and_environments_of_their_own():
    env = templating.environment(keep_trailing_newline=False)
    assert env.undefined is jinja2.StrictUndefined
    assert templating.render("{{ a }}\n", {"a": 1}, env) == "1"


def test_each_text_compiles_once():
    text = "{{ n }} compiled once"
    assert templating.compile_text(text) is templating.compile_text(text)
    assert templating.render(text, {"n": 2}) == "2 compiled once"


def test_report_templates_are_checked_with_the_report_filters(tmp_path: Path):
    (tmp_path / "ok.j2").write_text("{{ 0.5 | percent }} {{ x | md(3) }} {{ 'f' | data_uri }}")
    (tmp_path / "bad.j2").write_text("line one\n{{ x | nofilter }}\n")
    assert templating.check_report_template(tmp_path, "ok.j2") is None
    assert templating.check_report_template(tmp_path, "bad.j2") == (
        "template error in bad.j2:2: No filter named 'nofilter'."
    )
    assert templating.check_report_template(tmp_path, "nope.j2") == "template not found: nope.j2"


def test_relative_to(tmp_path: Path):
    assert relative_to(str(tmp_path / "a" / "b.png"), tmp_path) == "a/b.png"
    assert relative_to("/elsewhere/b.png", tmp_path) == "/elsewhere/b.png"
