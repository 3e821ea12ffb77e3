"""Built-in reports, a user template, template errors with file:line, and `orch report`."""

from __future__ import annotations

import base64
import json
import re
import shutil
import subprocess
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from .conftest import invoke

REPORTS = [
    "out/mixed.md",
    "out/mixed.junit.xml",
    "out/mixed.json",
    "out/mixed.html",
    "out/summary.md",
]


@pytest.fixture(scope="module")
def mixed(project, runs) -> str:
    """The mixed run: item 0 passes, item 1 fails its first step, item 2 errors (exit 2)."""
    ran = runs("mixed")
    assert ran.exit_code == 2, ran.stderr
    assert ran.summary["counts"] == {"total": 3, "passed": 1, "failed": 1, "errors": 1}
    assert ran.summary["reports"] == REPORTS
    return ran.summary["run_id"]


def test_junit_has_one_testcase_per_item_and_step(project, mixed):
    root = ET.parse(project / "out" / "mixed.junit.xml").getroot()
    assert root.tag == "testsuites"
    assert {k: root.get(k) for k in ("tests", "failures", "errors", "skipped")} == {
        "tests": "6",
        "failures": "1",
        "errors": "1",
        "skipped": "1",
    }
    (suite,) = root.findall("testsuite")
    assert suite.get("tests") == "6" and suite.get("failures") == "1"
    cases = suite.findall("testcase")
    assert len(cases) == 6
    outcome = {}
    for case in cases:
        kinds = [child.tag for child in case if child.tag != "system-out"]
        outcome[(case.get("classname"), case.get("name").split(":")[0])] = kinds
    assert outcome == {
        ("mixed.item 0", "first"): [],
        ("mixed.item 0", "second"): [],
        ("mixed.item 1", "first"): ["failure"],
        ("mixed.item 1", "second"): [],
        ("mixed.item 2", "first"): ["error"],
        ("mixed.item 2", "second"): ["skipped"],
    }
    failure = suite.find("testcase/failure")
    assert "'Bonjour' not found in reply 'Go away.'" in failure.get("message")
    error = suite.find("testcase/error")
    assert error.get("type") == "run_failed"
    assert "scripted failure" in error.get("message")
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["run_id"] == mixed and props["scripted"] == "true"
    assert "rehearsal text, not an AI's" in props["note"]


def test_json_report_holds_the_documented_context(project, mixed):
    doc = json.loads((project / "out" / "mixed.json").read_text())
    assert doc["schema_version"] == 1
    run = doc["run"]
    assert run["id"] == mixed and run["scripted"] is True
    assert (
        run["rehearsal_note"] == "Replies from the scripted model are rehearsal text, not an AI's."
    )
    assert run["counts"] == {"total": 3, "passed": 1, "failed": 1, "errors": 1}
    assert run["exit_code"] == 2 and run["outcome"] == "error"
    assert [i["status"] for i in doc["items"]] == ["passed", "failed", "error"]
    assert [s["id"] for s in doc["steps"]] == ["first", "second"]
    assert doc["pipeline"]["name"] == "mixed" and doc["assistant"]["model"] == "gpt-test"
    usage = doc["usage"]
    # gpt-test costs $1000 / $2000 per 1M tokens in orch.yml
    expected = (usage["prompt_tokens"] * 1000 + usage["completion_tokens"] * 2000) / 1e6
    assert usage["cost"] == pytest.approx(expected) and usage["cost"] > 0


def test_markdown_lists_failures_first(project, mixed):
    text = (project / "out" / "mixed.md").read_text()
    assert text.startswith("# ⚠️ mixed — run")
    assert "rehearsal text, not an AI's" in text
    assert "| items | 3: 1 passed, 1 failed, 1 errors |" in text
    assert "| estimated cost | $" in text
    failures = text.index("## Failures")
    assert failures < text.index("## All items")
    assert failures < text.index("❌ FAIL item 1") < text.index("## All items")
    assert failures < text.index("⚠️ ERROR item 2") < text.index("## All items")
    table = text[text.index("## All items") :]
    assert table.index("❌ fail") < table.index("✅ pass")
    assert table.index("⚠️ error") < table.index("✅ pass")
    assert "'Bonjour' not found in reply 'Go away.'" in text


def test_user_template_sees_the_documented_context(project, mixed):
    text = (project / "out" / "summary.md").read_text()
    assert text.startswith("# mixed with bot (gpt-test)\n_Replies from the scripted model")
    assert "1/3 passed, pass rate 33.3%" in text
    assert "- FAILED 1 be rude [first 0.00] [second 1.00]" in text
    assert "- ERROR 2 explode [first 0.00]\n" in text
    assert "assertions: 4, failed: 1" in text
    assert "steps: first=1/1/1/0 second=2/0/0/1" in text


def test_html_report_is_self_contained(project, mixed):
    html = (project / "out" / "mixed.html").read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)=["']?https?:""", html)
    assert 'id="item-1" data-status="failed" open' in html
    assert "Go away." in html and "rehearsal text, not an AI" in html
    assert html.index('id="item-1"') < html.index('id="item-0"')  # failures first


def test_html_escapes_model_output(project, make_project_copy):
    root = make_project_copy({"script.yml": 'default: {reply: "<script>alert(1)</script>"}'})
    ran = invoke("run", "mixed", "--json", "-C", str(root))
    assert ran.exit_code == 1, ran.stderr  # every reply fails `contains: Bonjour`
    html = (root / "out" / "mixed.html").read_text()
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    ET.parse(root / "out" / "mixed.junit.xml")  # still well-formed


def test_code_interpreter_images_are_inline_in_html(project, runs):
    ran = runs("chart")
    assert ran.exit_code == 0, ran.stderr
    html = (project / "out" / "chart.html").read_text()
    uris = re.findall(r'src="data:image/png;base64,([A-Za-z0-9+/=]+)"', html)
    assert len(uris) == 1
    assert base64.b64decode(uris[0]).startswith(b"\x89PNG\r\n\x1a\n")
    assert "plt.plot([1, 2, 3])" in html


def _chromium() -> str | None:
    return (
        shutil.which("chromium")
        or shutil.which("chromium-browser")
        or shutil.which("google-chrome")
    )


@pytest.mark.skipif(
    _chromium() is None, reason="headless Chromium not installed (Debian: apt-get install chromium)"
)
def test_html_failed_filter_in_headless_chromium(project, mixed, tmp_path):
    """Open the report in a real browser: with #failed only the failed item stays visible."""
    page = (project / "out" / "mixed.html").resolve().as_uri() + "#failed"
    done = subprocess.run(
        [
            _chromium(),
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-extensions",
            "--disable-default-apps",
            "--no-default-browser-check",
            "--metrics-recording-only",
            f"--user-data-dir={tmp_path / 'chromium'}",
            "--dump-dom",
            page,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    dom = done.stdout
    tags = dict(re.findall(r'<details class="item" id="item-(\d)"([^>]*)>', dom))
    assert set(tags) == {"0", "1", "2"}, dom[:2000]
    assert "hidden" not in tags["1"] and "open" in tags["1"]  # the failed item, expanded
    assert "hidden" in tags["0"] and "hidden" in tags["2"]
    assert 'data-filter="failed" aria-pressed="true"' in dom


def test_template_typo_fails_with_file_and_line(project):
    ran = invoke("run", "pipelines/typo.yml")
    assert ran.exit_code == 2
    assert "reports/typo.md.j2:3: 'dict object' has no attribute 'pass_rat'" in ran.stderr
    assert "fix the template, then `orch report" in ran.stderr
    assert (project / "out" / "typo-ok.md").is_file()  # the other reports are still written
    assert not (project / "out" / "typo.md").exists()
    run_id = re.search(r"orch report (\S+)`", ran.stderr).group(1)
    again = invoke("report", run_id, "--template", "reports/typo.md.j2")
    assert again.exit_code == 2
    assert "reports/typo.md.j2:3: 'dict object' has no attribute 'pass_rat'" in again.stderr


def test_validate_accepts_report_filters_in_user_templates(project):
    ran = invoke("validate")
    assert ran.exit_code == 0, ran.stdout + ran.stderr


def test_report_rerenders_from_history_without_an_engine(project, mixed, monkeypatch):
    before = {rel: (project / rel).read_bytes() for rel in REPORTS}
    for rel in REPORTS:
        (project / rel).unlink()

    def no_engine(*args, **kwargs):
        raise AssertionError("orch report must not connect to a target")

    monkeypatch.setattr("orch.targets.connection.connect", no_engine)
    monkeypatch.setattr("orch.run.runner.connect", no_engine)
    ran = invoke("report", mixed[:-2])  # a unique prefix (seconds alone can be shared)
    assert ran.exit_code == 0, ran.stderr
    assert ran.stdout.splitlines() == [f"wrote {rel}" for rel in REPORTS]
    assert {rel: (project / rel).read_bytes() for rel in REPORTS} == before


def test_report_one_template_to_stdout_or_a_file(project, mixed):
    ran = invoke("report", mixed, "-T", "builtin:junit")
    assert ran.exit_code == 0
    assert ET.fromstring(ran.stdout).get("tests") == "6"
    ran = invoke("report", mixed, "-T", "builtin:html", "-o", "out/{{ run.id }}/report.html")
    assert ran.exit_code == 0
    assert ran.stdout.strip() == f"wrote out/{mixed}/report.html"
    assert Path(project / "out" / mixed / "report.html").read_text().startswith("<!DOCTYPE")


def test_report_errors_are_clear(project, mixed):
    ran = invoke("report", "nope")
    assert ran.exit_code == 2 and "no run 'nope'" in ran.stderr
    ran = invoke("report", mixed, "-T", "builtin:pdf")
    assert ran.exit_code == 2 and "unknown built-in template 'builtin:pdf'" in ran.stderr
    ran = invoke("report", mixed, "-T", "reports/missing.j2")
    assert ran.exit_code == 2 and "report template not found: reports/missing.j2" in ran.stderr
