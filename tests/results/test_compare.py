"""`orch compare`: pass→fail, fail→pass and score changes between two runs."""

from __future__ import annotations

import json

import pytest

from .conftest import invoke


@pytest.fixture(scope="module")
def pair(runs) -> tuple[str, str]:
    good = runs("mood")
    bad = runs("mood", "--var", "mood=be rude")
    assert (good.exit_code, bad.exit_code) == (0, 1)
    return good.summary["run_id"], bad.summary["run_id"]


def test_compare_text_shows_regressions(pair):
    a, b = pair
    ran = invoke("compare", a, b)
    assert ran.exit_code == 0
    out = ran.stdout
    assert f"A {a} (mood, passed)" in out and f"B {b} (mood, failed)" in out
    assert "pass rate   100.0% →    0.0%  (-100.0 pts)" in out
    assert "Regressions (pass → fail/error): 2" in out
    assert "item 0 step talk: passed → failed (score 1.00 → 0.00, -1.00)" in out
    assert "'Bonjour' not found in reply 'Go away.'" in out


def test_compare_markdown_for_a_pr_comment(pair):
    a, b = pair
    ran = invoke("compare", a, b, "--markdown")
    assert ran.exit_code == 0
    md = ran.stdout
    assert md.startswith("### ❌ orch compare: mood")
    assert f"| | A `{a}` | B `{b}` | Δ |" in md
    assert "| pass rate | 100.0% | 0.0% | -100.0 pts |" in md
    assert "#### Regressions (pass → fail/error): 2" in md
    assert "| 1 item 1 | `talk` | passed | failed | 1.00 → 0.00 |" in md


def test_compare_the_other_way_shows_fixes_and_can_gate(pair, project):
    a, b = pair
    ran = invoke("compare", b, a, "--md", "-o", "out/compare.md", "--fail-on-regression")
    assert ran.exit_code == 0
    assert "#### Fixes (fail/error → pass): 2" in (project / "out" / "compare.md").read_text()
    assert invoke("compare", a, b, "--fail-on-regression").exit_code == 1


def test_compare_json_and_identical_runs(pair):
    a, b = pair
    data = json.loads(invoke("compare", a, b, "--json").stdout)
    assert [c["kind"] for c in data["changes"]] == ["regression", "regression"]
    assert data["changes"][0]["delta"] == -1.0
    same = invoke("compare", a, a)
    assert "No changes (2 cases identical)." in same.stdout
