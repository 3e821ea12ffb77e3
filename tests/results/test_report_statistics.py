"""Pass-rate intervals and pass@k / pass^k in every report and the terminal summary; HTML looks."""

from __future__ import annotations

import json
import re
import textwrap
import xml.etree.ElementTree as ET

import pytest

from .conftest import invoke

# 3 items × 3 tries: item 0 always passes, item 1 fails its first try, item 2 never passes
FILES = {
    "pipelines/flaky.yml": """
        name: flaky
        assistant: bot
        repeat: 3
        items: [{fails: 0}, {fails: 1}, {fails: 3}]
        steps:
          - id: talk
            prompt: "{{ 'be rude' if orch.repeat < item.fails else 'greet me' }}"
            expect: [{contains: Bonjour}]
        report:
          - {template: builtin:markdown, output: out/flaky.md}
          - {template: builtin:html, output: out/flaky.html}
          - {template: builtin:junit, output: out/flaky.junit.xml}
          - {template: builtin:json, output: out/flaky.json}
    """,
    "pipelines/calm.yml": """
        name: calm
        assistant: bot
        items: [{n: 1}, {n: 2}]
        steps:
          - {prompt: "greet me ({{ item.n }})", expect: [{contains: Bonjour}]}
        report:
          - {template: builtin:html, output: out/calm.html}
    """,
    "reports/times.md.j2": """
        {{ 0.25 | duration }} | {{ 2.4 | duration }} | {{ 72 | duration }} | {{ 7500 | duration }}
        {{ "2026-11-29T15:20:31.5+00:00" | timestamp }} | {{ "2026-11-29T16:20+01:00" | timestamp }}
        {{ 1764429600 | timestamp }} | {{ none | timestamp }} | {{ "soon" | timestamp }}
    """,
}


@pytest.fixture(scope="module")
def flaky(project) -> str:
    for rel, text in FILES.items():
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    ran = invoke("run", "pipelines/flaky.yml", "--json")
    assert ran.exit_code == 1, ran.stderr
    summary = json.loads(ran.stdout)
    assert summary["counts"] == {"total": 9, "passed": 5, "failed": 4, "errors": 0}
    low, high = summary["pass_rate_ci95"]  # `orch run --json` carries the interval too
    assert (low, high) == (pytest.approx(0.2667, abs=1e-4), pytest.approx(0.8112, abs=1e-4))
    return summary["run_id"]


def test_markdown_shows_the_interval_and_pass_at_k(project, flaky):
    md = (project / "out" / "flaky.md").read_text()
    # 5 of 9 item runs passed: Wilson 26.7–81.1 %
    assert "| pass rate | 55.6% (95% CI 27–81%; required 100%) |" in md
    # pass@3: items 0 and 1 had a passing try (2 of 3 items); pass^3: only item 0 always passed
    assert "| pass@3 · pass^3 | 66.7% · 33.3% (any · all of 3 tries, mean over 3 items) |" in md
    assert (
        "| item | runs | passed | failed | errors | pass rate | mean score | pass@3 | pass^3 |"
        in md
    )
    assert "| 0 item 0 | 3 | 3 | 0 | 0 | 100% | 1.00 | 100% | 100% |" in md
    assert "| 1 item 1 | 3 | 2 | 1 | 0 | 66.7% | 0.67 | 100% | 0% |" in md
    assert "| 2 item 2 | 3 | 0 | 3 | 0 | 0% | 0.00 | 0% | 0% |" in md
    assert re.search(r"\| started \| \d{4}-\d\d-\d\d \d\d:\d\d UTC \(\d+(\.\d)? m?s\) \|", md)


def test_json_and_junit_carry_the_statistics(project, flaky):
    doc = json.loads((project / "out" / "flaky.json").read_text())
    stats = doc["statistics"]
    assert stats["pass_rate"]["text"] == "55.6% (95% CI 27–81%)"
    assert stats["pass_rate"]["low"] == pytest.approx(0.2667, abs=1e-4)
    assert stats["pass_rate"]["high"] == pytest.approx(0.8112, abs=1e-4)
    assert (stats["repeat"], stats["k_items"]) == (3, 3)
    assert stats["pass_at_k"] == pytest.approx(2 / 3) and stats["pass_hat_k"] == pytest.approx(
        1 / 3
    )
    assert [(r["pass_at_k"], r["pass_hat_k"]) for r in doc["repeats"]] == [
        (1.0, 1.0),
        (1.0, 0.0),
        (0.0, 0.0),
    ]
    root = ET.parse(project / "out" / "flaky.junit.xml").getroot()
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["pass_rate"] == "0.5556"
    assert (props["pass_rate_ci95_low"], props["pass_rate_ci95_high"]) == ("0.2667", "0.8112")
    assert (props["repeat"], props["pass_at_k"], props["pass_hat_k"]) == ("3", "0.6667", "0.3333")


def test_html_shows_statistics_and_colours_only_nonzero_counts(project, flaky):
    html = (project / "out" / "flaky.html").read_text()
    assert "pass rate<b>55.6%</b>" in html and "95% CI 27–81%" in html
    assert "pass@3<b>66.7%</b>" in html and "pass^3<b>33.3%</b>" in html
    assert '<div class="card failed">failed<b>4</b></div>' in html  # red: there are failures
    assert '<div class="card">errors<b>0</b></div>' in html  # no colour for none
    assert re.search(r"started \d{4}-\d\d-\d\d \d\d:\d\d UTC · \d", html)
    assert invoke("run", "pipelines/calm.yml").exit_code == 0
    calm = (project / "out" / "calm.html").read_text()
    assert '<div class="card">failed<b>0</b></div>' in calm
    assert '<div class="card">errors<b>0</b></div>' in calm
    assert 'class="card failed"' not in calm and 'class="card error"' not in calm
    assert "95% CI 34–100%" in calm  # 2 of 2


def test_terminal_summary_shows_the_interval_and_pass_at_k(project, flaky):
    out = invoke("run", "pipelines/flaky.yml").stdout
    assert "pass rate  55.6% (95% CI 27–81%)   required 100%" in out
    assert "pass@3     66.7%   pass^3 33.3%   (any / all of 3 tries, mean over 3 items)" in out
    calm = invoke("run", "pipelines/calm.yml").stdout
    assert "pass rate 100.0% (95% CI 34–100%)" in calm and "pass@" not in calm


def test_times_are_human_readable_in_templates(project, flaky):
    ran = invoke("report", flaky, "-T", "reports/times.md.j2")
    assert ran.exit_code == 0, ran.stderr
    assert ran.stdout.splitlines() == [
        "250 ms | 2.4 s | 1 min 12 s | 2 h 05 min",
        "2026-11-29 15:20 UTC | 2026-11-29 15:20 UTC",
        "2025-11-29 15:20 UTC | - | soon",
    ]
