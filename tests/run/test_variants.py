"""Variants: every item runs once per variant; reports and the summary show them side by side.

A two-variant pipeline on the embedded engine's scripted model: the rules answer ``pong`` to
``ping`` only for the ``sharp`` variant's derived assistant (``helper--sharp``), and to
``easy`` for anyone, so ``sharp`` passes 3 of 3 items and ``plain`` 1 of 3.
"""

from __future__ import annotations

import json
import re
import sqlite3
import xml.etree.ElementTree as ET
from pathlib import Path

from click.testing import CliRunner

from orch.cli import main
from orch.run.shards import shard_of

SCRIPT = """
rules:
  - when: {assistant: helper--sharp, contains: ping}
    reply: "pong, sharply"
  - when: {contains: easy}
    reply: "pong, easily"
default:
  reply: "[scripted] default"
"""

PIPELINE = """
name: ab
assistant: helper
items: [{q: easy one}, {q: ping a}, {q: ping b}]
variants:
  - name: plain
    temperature: 0.2
  - name: sharp
    model: gpt-4o-mini
    instructions: "Answer sharply, {{ tone }}."
    max_tokens: 64
steps:
  - id: ask
    prompt: "{{ item.q }} ({{ orch.variant }})"
    expect: [{contains: pong}]
report:
  - {template: "builtin:markdown", output: "reports/ab.md"}
  - {template: "builtin:html", output: "reports/ab.html"}
  - {template: "builtin:junit", output: "reports/ab.xml"}
  - {template: "builtin:json", output: "reports/ab.json"}
"""

FILES = {
    "orch.yml": """
        project: runtest
        vars: {tone: briefly}
        targets:
          embedded: {kind: engine, model: scripted, script: script.yml}
        prices:
          gpt-4o: {input: 2.5, output: 10}
          gpt-4o-mini: {input: 0.15, output: 0.6}
    """,
    "script.yml": SCRIPT,
    "pipelines/ab.yml": PIPELINE,
}

KEYS = {f"{i}@{v}" for i in range(3) for v in ("plain", "sharp")}


def _records(root: Path, run_id: str) -> list[dict]:
    lines = (root / ".orch" / "runs" / run_id / "results.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


def _run_json(root: Path, run_id: str) -> dict:
    return json.loads((root / ".orch" / "runs" / run_id / "run.json").read_text())


def test_a_two_variant_run_and_its_reports(project, invoke):
    root = project(FILES)

    result = invoke("run", "ab")

    assert result.exit_code == 1, result.output  # plain fails two items
    run_id = re.search(r"Run (\S+) — pipeline ab", result.output).group(1)
    records = _records(root, run_id)
    assert {r["key"] for r in records} == KEYS and len(records) == 6
    by_key = {r["key"]: r for r in records}
    assert all(r["variant"] == r["key"].split("@")[1] for r in records)
    assert by_key["1@sharp"]["steps"][0]["assistant"] == "helper--sharp"
    assert by_key["1@plain"]["steps"][0]["assistant"] == "helper--plain"
    assert by_key["1@sharp"]["steps"][0]["prompt"] == "ping a (sharp)"  # orch.variant
    assert {k for k, r in by_key.items() if r["status"] == "passed"} == {
        "0@plain",
        "0@sharp",
        "1@sharp",
        "2@sharp",
    }
    meta = _run_json(root, run_id)
    assert meta["variants"] == ["plain", "sharp"]
    assert meta["models"]["helper--sharp"] == "gpt-4o-mini"
    assert meta["models"]["helper--plain"] == "gpt-4o"

    # the terminal summary: one line per variant, the better one marked
    assert re.search(r"variants\s+plain\s+33 % passed \(1/3\)\s+score 0\.33", result.output)
    assert re.search(r"sharp\s+100 % passed \(3/3\)\s+score 1\.00 .*← best", result.output)

    markdown = (root / "reports/ab.md").read_text()
    assert "## Variants" in markdown
    assert re.search(
        r"\| `plain` \| helper--plain \| `gpt-4o` \| 3 \| 1 \| 33\.3% \| 0\.33 \| \d+ \| \$",
        markdown,
    )
    assert re.search(
        r"\| `sharp` ★ \| helper--sharp \| `gpt-4o-mini` \| 3 \| 3 \| 100% \| 1\.00 \|", markdown
    )
    assert "| item | `plain` | `sharp` |" in markdown
    assert "| 1 ping a | ❌ fail | ✅ pass |" in markdown
    assert "| 0 easy one | ✅ pass | ✅ pass |" in markdown

    report = json.loads((root / "reports/ab.json").read_text())
    table = {row["name"]: row for row in report["variants"]["table"]}
    assert (table["plain"]["passed"], table["plain"]["runs"]) == (1, 3)
    assert (table["sharp"]["pass_rate"], table["sharp"]["best"]) == (1.0, True)
    assert table["sharp"]["model"] == "gpt-4o-mini"
    assert table["sharp"]["overrides"]["max_tokens"] == 64
    for row in table.values():
        assert row["tokens"] > 0 and row["cost"] > 0
        assert row["p50_latency_s"] > 0 and row["mean_latency_s"] > 0
    # the same replies cost less on the cheaper model
    assert table["sharp"]["cost"] / table["sharp"]["tokens"] < (
        table["plain"]["cost"] / table["plain"]["tokens"]
    )
    assert [row["passed"] for row in report["variants"]["by_item"]] == [
        ["plain", "sharp"],
        ["sharp"],
        ["sharp"],
    ]
    assert {i["key"]: i["variant"] for i in report["items"]} == {k: k.split("@")[1] for k in KEYS}

    suite = ET.parse(root / "reports/ab.xml").getroot()
    cases = suite.findall(".//testcase")
    assert len(cases) == 6
    assert {c.get("name") for c in cases} >= {"ask [plain]: ping a", "ask [sharp]: ping a"}
    failed = {c.get("name") for c in cases if c.find("failure") is not None}
    assert failed == {"ask [plain]: ping a", "ask [plain]: ping b"}

    html = (root / "reports/ab.html").read_text()
    assert '<h2 id="variants">Variants</h2>' in html
    assert re.search(r"<td><code>sharp</code> ★</td><td>helper--sharp</td>", html)
    assert '<a href="#item-1@sharp">' in html


def test_variant_option_runs_a_subset_and_names_unknown_ones(project, invoke):
    root = project(FILES)

    result = invoke("run", "ab", "--variant", "sharp", "--json")

    assert result.exit_code == 0, result.output
    run_id = json.loads(result.stdout)["run_id"]
    assert {r["key"] for r in _records(root, run_id)} == {"0@sharp", "1@sharp", "2@sharp"}
    assert _run_json(root, run_id)["variants"] == ["sharp"]

    typo = invoke("run", "ab", "--variant", "sharpe")
    assert typo.exit_code == 2
    assert "--variant 'sharpe'" in typo.output and "did you mean 'sharp'?" in typo.output

    project({"pipelines/one.yml": "name: one\nassistant: helper\nsteps: [{prompt: hi}]\n"})
    none = invoke("run", "one", "--variant", "sharp")
    assert none.exit_code == 2 and "declares no variants" in none.output


def test_a_resume_runs_only_the_missing_item_variant_units(project, invoke):
    root = project(FILES)
    result = invoke("run", "ab", "--json")
    run_id = json.loads(result.stdout)["run_id"]
    path = root / ".orch" / "runs" / run_id / "results.jsonl"
    kept = path.read_text().splitlines()[:3]  # as if killed after three units finished
    path.write_text("\n".join(kept) + "\n")
    with sqlite3.connect(root / ".orch" / "history.db") as db:
        db.execute("DELETE FROM items WHERE run_id = ?", (run_id,))
        db.execute("UPDATE runs SET status = 'interrupted' WHERE run_id = ?", (run_id,))

    resumed = invoke("run", "--resume", run_id, "--json")

    assert resumed.exit_code == 1, resumed.output
    records = _records(root, run_id)
    assert [json.dumps(r) for r in records[:3]] == [
        json.dumps(json.loads(line)) for line in kept
    ]  # the finished units were not run again
    assert sorted(r["key"] for r in records) == sorted(KEYS)  # each unit exactly once
    summary = json.loads(resumed.stdout)
    assert summary["counts"] == {"total": 6, "passed": 4, "failed": 2, "errors": 0}
    assert invoke("run", "--resume", run_id, "--variant", "plain").exit_code == 2


def test_without_variants_keys_and_records_are_unchanged(project, invoke):
    root = project(
        {
            "pipelines/plain.yml": """
                name: plain
                assistant: helper
                repeat: 2
                items: [{q: ping}]
                steps: [{prompt: "{{ item.q }} {{ orch.variant }}"}]
            """
        }
    )
    result = invoke("run", "plain")
    run_id = re.search(r"Run (\S+) — pipeline plain", result.output).group(1)
    records = _records(root, run_id)
    assert sorted(r["key"] for r in records) == ["0.r0", "0.r1"]
    assert all("variant" not in r for r in records)
    assert records[0]["steps"][0]["prompt"] == "ping None"
    assert "variants" not in _run_json(root, run_id)
    assert "  variants" not in result.output


def test_on_a_responses_target_the_overrides_go_with_each_request(make_project, tmp_path):
    """The Responses kind keeps no assistants: each request carries the variant's settings."""
    from openai import OpenAI

    from orch.engine.server import start_engine

    with start_engine(tmp_path / "engine.db") as engine:
        root = make_project(
            {
                "orch.yml": f"""
                    project: resp
                    target: local
                    targets:
                      local: {{kind: responses, base_url: "{engine.base_url}",
                               api_key_env: RESPONSES_TEST_KEY}}
                """,
                "assistants/helper.yml": "name: helper\nmodel: gpt-4o\ninstructions: You help.\n",
                "pipelines/ab.yml": """
                    name: ab
                    assistant: helper
                    variants:
                      - {name: plain, temperature: 0.2}
                      - {name: sharp, model: gpt-4o-mini, instructions: Be sharp., max_tokens: 64}
                    steps: [{prompt: hi}]
                """,
            }
        )
        result = CliRunner().invoke(
            main, ["run", "ab", "--json"], env={"RESPONSES_TEST_KEY": "unused"}
        )
        assert result.exit_code == 0, result.output
        run_id = json.loads(result.stdout)["run_id"]
        client = OpenAI(base_url=engine.base_url, api_key="unused", max_retries=0)
        sent = {}
        for record in _records(root, run_id):
            response = client.responses.retrieve(record["steps"][0]["run_id"])
            sent[record["variant"]] = (
                response.model,
                response.temperature,
                response.instructions,
                response.max_output_tokens,
            )
        client.close()
    assert sent == {
        "plain": ("gpt-4o", 0.2, "You help.", None),
        "sharp": ("gpt-4o-mini", 1.0, "Be sharp.", 64),  # the default temperature
    }


def test_an_items_variants_share_its_shard_and_merge_whole(project, invoke):
    items = ", ".join(f"{{q: ping {i}}}" for i in range(8))
    root = project(
        {
            **FILES,
            "pipelines/ab.yml": PIPELINE.replace(
                "items: [{q: easy one}, {q: ping a}, {q: ping b}]", f"items: [{items}]"
            ),
        }
    )
    parts = []
    for index in (1, 2):
        result = invoke("run", "ab", "--shard", f"{index}/2", "--json")
        run_id = json.loads(result.stdout)["run_id"]
        keys = {r["key"] for r in _records(root, run_id)}
        # each item's two variants are on its shard, together
        assert keys == {
            f"{i}@{v}" for i in range(8) if shard_of(str(i), 2) == index for v in ("plain", "sharp")
        }
        parts.append(run_id)

    merged = invoke("merge", *parts, "--json")

    summary = json.loads(merged.stdout)
    assert _run_json(root, summary["run_id"])["merge"]["gaps"] == []
    assert {r["key"] for r in _records(root, summary["run_id"])} == {
        f"{i}@{v}" for i in range(8) for v in ("plain", "sharp")
    }
    dropped = invoke("merge", parts[0], "--json")  # one shard: the other's units are gaps
    gaps = _run_json(root, json.loads(dropped.stdout)["run_id"])["merge"]["gaps"]
    assert sorted(gaps) == sorted(
        f"{i}@{v}" for i in range(8) if shard_of(str(i), 2) == 2 for v in ("plain", "sharp")
    )


def test_retry_reruns_only_the_failed_item_variant_units(project, invoke):
    root = project(FILES)
    run_id = json.loads(invoke("run", "ab", "--json").stdout)["run_id"]

    retried = invoke("retry", run_id, "--json")

    assert retried.exit_code == 1, retried.output  # the script still fails plain on ping
    keys = [r["key"] for r in _records(root, run_id)]
    assert sorted(keys[6:]) == ["1@plain", "2@plain"]  # appended: only the failed units ran
