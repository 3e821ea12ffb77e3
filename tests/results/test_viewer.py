"""`orch view`'s pages over recorded runs, through Starlette's TestClient (no socket).

Runs are made end to end on the embedded engine (tests/evals' project); the viewer then reads
them back. A reply that is HTML (``<script>``) must show as text, and nothing under ``.orch``
may change while the pages are served.
"""

from __future__ import annotations

import html
import re
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from orch.project.loading import load_project
from orch.results.history import History
from orch.results.viewer.app import create_app
from orch.results.viewer.pages import Row, chart

from .conftest import invoke

XSS_REPLY = "<script>alert('pwned')</script><img src=x onerror=alert(1)>"
XSS_RULE = f"""
  - when: {{contains: "xss please"}}
    reply: "{XSS_REPLY}"
"""
XSS_PIPELINE = """
name: xss
assistant: bot
items: [{q: "xss please <b>bold</b>"}]
steps:
  - {id: talk, prompt: "{{ item.q }}", expect: [{contains: Bonjour}]}
"""


@pytest.fixture(scope="module")
def recorded(project, runs) -> dict[str, str]:
    """Run ids by name: mood passing then failing (a chart of two points), mixed, xss."""
    script = project / "script.yml"
    script.write_text(script.read_text().replace("\nrules:\n", "\nrules:\n" + XSS_RULE, 1))
    (project / "pipelines" / "xss.yml").write_text(XSS_PIPELINE)
    ids = {
        "mood-pass": runs("mood").summary["run_id"],
        "mood-fail": runs("mood", "--var", "mood=be rude").summary["run_id"],
        "mixed": runs("mixed").summary["run_id"],
        "xss": runs("xss").summary["run_id"],
    }
    assert runs("mood").exit_code == 0 and runs("mood", "--var", "mood=be rude").exit_code == 1
    return ids


@pytest.fixture(scope="module")
def client(project, recorded) -> TestClient:
    """The viewer of the project, asked for as http://127.0.0.1 (a loopback host)."""
    app = create_app(load_project(project, import_handlers=False))
    return TestClient(app, base_url="http://127.0.0.1")


def orch_files(root: Path) -> dict[str, bytes]:
    """Every file under .orch but SQLite's shared-memory and WAL files, with its bytes."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted((root / ".orch").rglob("*"))
        if p.is_file() and not p.name.endswith(("-shm", "-wal"))
    }


def assert_no_remote_loads(response) -> None:
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "img-src 'self' data:" in policy
    assert "'unsafe-inline'" not in policy.split("script-src")[1].split(";")[0]
    page = response.text
    assert not re.search(r"""(src|href|action)\s*=\s*["']?(https?:)?//""", page), page[:500]
    assert "@import" not in page and "url(http" not in page


def test_runs_page_lists_every_run_with_a_chart_per_pipeline(client, recorded):
    page = client.get("/")
    assert page.status_code == 200
    assert_no_remote_loads(page)
    assert "script-src 'none'" in page.headers["content-security-policy"]
    for run_id in recorded.values():
        assert f'href="/runs/{run_id}"' in page.text
    figures = re.findall(r'<figure class="chart">(.*?)</figure>', page.text, re.DOTALL)
    mood = next(f for f in figures if ">mood</a>" in f)
    points = re.findall(r'<circle class="(\w+)" cx="([\d.]+)" cy="([\d.]+)"', mood)
    assert [(cls, float(cy)) for cls, _, cy in points] == [("passed", 10.0), ("failed", 144.0)]
    assert float(points[0][1]) < float(points[1][1])  # oldest on the left
    assert re.search(r'<td class="failed">failed</td><td class="num">0\.0%</td>', page.text)
    assert '<form class="compare" method="get" action="/compare">' in page.text
    # proposed: the latest run (xss) and the one before it (no earlier xss run: mixed)
    selected = re.findall(r"<option selected>([^<]+)</option>", page.text)
    assert selected == [recorded["mixed"], recorded["xss"]]


def test_runs_page_of_one_pipeline(client, recorded):
    page = client.get("/", params={"pipeline": "mood"})
    assert page.status_code == 200
    assert recorded["mood-pass"] in page.text and recorded["mood-fail"] in page.text
    assert recorded["mixed"] not in page.text
    assert '<a href="/?pipeline=mood" aria-current="page">mood</a>' in page.text
    selected = re.findall(r"<option selected>([^<]+)</option>", page.text)
    assert selected == [recorded["mood-pass"], recorded["mood-fail"]]
    none = client.get("/", params={"pipeline": "<nope>"})
    assert none.status_code == 200 and "No runs of &lt;nope&gt;." in none.text


def test_run_page_is_the_html_report(client, recorded):
    run_id = recorded["mixed"]
    page = client.get(f"/runs/{run_id[:-2]}")  # a unique prefix works, as on the command line
    assert page.status_code == 200
    assert_no_remote_loads(page)
    report = invoke("report", run_id, "-T", "builtin:html")
    assert report.exit_code == 0, report.stderr
    shown = re.sub(r'\n<nav class="orch-view"[^>]*>.*?</nav>', "", page.text, count=1)
    assert shown.rstrip("\n") == report.stdout.rstrip("\n")  # the same renderer, plus the nav
    assert f'<a href="/runs/{run_id}/variants">variants</a>' in page.text
    # the report's filter script runs: the policy allows it by hash, and nothing else
    assert "script-src 'sha256-" in page.headers["content-security-policy"]


def test_a_reply_with_html_shows_as_text(client, recorded):
    run_id = recorded["xss"]
    for path in (f"/runs/{run_id}", f"/runs/{run_id}/variants"):
        page = client.get(path)
        assert page.status_code == 200
        assert "alert('pwned')" not in page.text.replace("&#39;", "'").split("&lt;script&gt;")[0]
        assert "<script>alert" not in page.text and "<img src=x" not in page.text
        assert "<b>bold</b>" not in page.text
    report = client.get(f"/runs/{run_id}").text
    assert html.escape(XSS_REPLY, quote=False) in report.replace("&#39;", "'")
    compared = client.get("/compare", params={"a": recorded["mixed"], "b": run_id})
    assert compared.status_code == 200
    assert "<script>" not in compared.text and "&lt;b&gt;bold&lt;/b&gt;" in compared.text


def test_compare_page_shows_what_changed(client, recorded):
    page = client.get("/compare", params={"a": recorded["mood-pass"], "b": recorded["mood-fail"]})
    assert page.status_code == 200
    assert_no_remote_loads(page)
    rows = re.findall(r'<tr class="(\w+)">', page.text)
    assert rows == ["regression", "regression"]
    assert "Changed cases: 2" in page.text
    assert "<th>pass rate</th><td>100.0%</td><td>0.0%</td>" in page.text
    assert "<h2>significance</h2>" in page.text  # what compare adds is shown too


def test_compare_needs_two_known_runs(client, recorded):
    page = client.get("/compare", params={"a": recorded["mood-pass"]})
    assert page.status_code == 400 and "/compare?a=RUN_ID&amp;b=RUN_ID" in page.text
    page = client.get("/compare", params={"a": recorded["mood-pass"], "b": "nope"})
    assert page.status_code == 404 and "No run &#39;nope&#39; is recorded." in page.text


def test_variants_page_without_variants_says_so(client, recorded):
    page = client.get(f"/runs/{recorded['mood-pass']}/variants")
    assert page.status_code == 200
    assert "This run has no variants" in page.text


def test_variants_page_puts_variants_side_by_side(project, client, recorded):
    """A run whose items record a variant (as `variants:` pipelines write them)."""
    source = recorded["mood-pass"]
    run_id = source + "-variants"
    with History(project) as history:
        record = history.get(source)
        items = list(history.items(source))
        meta = {**record.meta, "run_id": run_id, "variants": ["terse", "chatty"]}
        history.start_run(meta)
        copies = []
        for variant, status in (("terse", "passed"), ("chatty", "failed")):
            for item in items:
                copies.append({**item, "key": f"{variant}.{item['key']}", "variant": variant})
                copies[-1]["status"] = status
        history.import_items(run_id, copies)
        history.finish_run({**meta, "counts": {"total": 4, "passed": 2, "failed": 2, "errors": 0}})
    page = client.get(f"/runs/{run_id}/variants")
    assert page.status_code == 200
    per_variant, side_by_side = page.text.split("<h2>Items side by side</h2>")
    assert re.findall(r"<tr><td>(terse|chatty)</td>", per_variant) == ["terse", "chatty"]
    assert re.search(r"<td>terse</td>(<td>.*?</td>)*?<td>100.0%</td>", per_variant)
    assert "<thead><tr><th>item</th><th>terse</th><th>chatty</th></tr></thead>" in side_by_side
    rows = re.findall(r"<tr><td>(item \d)</td>(.*?)</tr>", side_by_side)
    assert [label for label, _ in rows] == ["item 0", "item 1"]  # a row per item, both variants
    for _, cells in rows:
        statuses = re.findall(r'<span class="(\w+)">', cells)
        assert statuses == ["passed", "failed"]
        assert cells.count("<pre>Bonjour! Paris is lovely today.</pre>") == 2
    assert f'<a href="/runs/{run_id}/variants">variants</a>' in client.get("/").text


def test_unknown_run_or_page_is_a_404_page(client, recorded):
    for path in ("/runs/19990101-nope", "/runs/19990101-nope/variants", "/nowhere"):
        page = client.get(path)
        assert page.status_code == 404, path
        assert page.headers["content-type"].startswith("text/html")
        assert '<a href="/">← all runs</a>' in page.text
    assert "No run &#39;19990101-nope&#39; is recorded." in client.get("/runs/19990101-nope").text


def test_only_reads_and_only_for_loopback_hosts(project, client, recorded):
    before = orch_files(project)
    assert client.post("/").status_code == 405
    evil = client.get("/", headers={"host": "evil.example"})
    assert evil.status_code == 400  # DNS rebinding: a page elsewhere cannot read the runs
    for path in ("/", f"/runs/{recorded['mixed']}", f"/runs/{recorded['mixed']}/variants"):
        assert client.get(path).status_code == 200
    assert orch_files(project) == before


def test_an_empty_project_says_how_to_start(tmp_path):
    (tmp_path / "orch.yml").write_text("project: empty\n")
    app = create_app(load_project(tmp_path, import_handlers=False))
    page = TestClient(app, base_url="http://localhost").get("/")
    assert page.status_code == 200
    assert "No runs yet" in page.text and "orch run pipelines/&lt;name&gt;.yml" in page.text
    assert not (tmp_path / ".orch").exists()  # viewing never creates the history


def test_a_corrupt_history_is_a_500_page_naming_the_file(tmp_path):
    (tmp_path / "orch.yml").write_text("project: broken\n")
    (tmp_path / ".orch").mkdir()
    (tmp_path / ".orch" / "history.db").write_text("not a database")
    app = create_app(load_project(tmp_path, import_handlers=False))
    page = TestClient(app, base_url="http://localhost").get("/")
    assert page.status_code == 500
    assert "/.orch/history.db: cannot list runs: file is not a database" in page.text
    assert (tmp_path / ".orch/history.db").read_text() == "not a database"  # left as it was


def row(started: str, pass_rate: float, required: float = 1.0) -> Row:
    return Row(
        id=started,
        pipeline="p",
        target="t",
        outcome="passed" if pass_rate >= required else "failed",
        pass_rate=pass_rate,
        required=required,
        counts="-",
        duration="-",
        started=started,
        variants=False,
    )


def test_the_chart_places_runs_by_start_time_and_pass_rate():
    drawn = chart(
        [
            row("2026-11-01 10:00:00", 1.0),
            row("2026-11-01 10:00:10", 0.5),
            row("2026-11-01 10:00:40", 0.0, required=0.5),
        ]
    )
    xs = [p["x"] for p in drawn["points"]]
    ys = [p["y"] for p in drawn["points"]]
    assert xs[0] < xs[1] < xs[2] and (xs[1] - xs[0]) * 3 == pytest.approx(xs[2] - xs[1], abs=0.2)
    assert ys == [drawn["top"], (drawn["top"] + drawn["bottom"]) / 2, drawn["bottom"]]
    assert drawn["required_y"] == ys[1]  # the latest run's required rate: 50 %
    assert drawn["path"].startswith(f"M{xs[0]},{ys[0]} L")
    # times that cannot be read, or one run: spread evenly / in the middle
    even = chart([row("yesterday", 1.0), row("today", 1.0), row("now", 1.0)])["points"]
    assert even[1]["x"] - even[0]["x"] == pytest.approx(even[2]["x"] - even[1]["x"])
    (alone,) = chart([row("2026-11-01 10:00:00", 1.0)])["points"]
    assert alone["x"] == pytest.approx((drawn["left"] + drawn["right"]) / 2)
