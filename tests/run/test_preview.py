"""`orch run --dry-run`: every prompt a run would send, rendered, and nothing sent or recorded.

The pipelines run against an engine started here and reached by URL, so the tests can check
that a dry run made no request at all; and the project's `.orch/` must not even appear.
"""

from __future__ import annotations

import json

import pytest

from orch.project.items import item_key
from orch.run.preview import PREVIEW, Pending, pending_steps, size_text
from orch.run.shards import Shard
from orch.templating import render

ITEMS = "\n".join(f"  - {{q: question {i}, meta: {{lang: en}}}}" for i in range(6))

PIPELINE = f"""
name: look
assistant: helper
repeat: 2
items:
{ITEMS}
steps:
  - id: first
    prompt: "{{{{ item.q }}}} ({{{{ orch.key }}}})"
    attachments:
      - path: data/notes.txt
  - id: second
    instructions: "Answer in {{{{ item.meta.lang }}}}."
    prompt: |
      You said: {{{{ steps.first.output }}}}
      Its city: {{{{ steps.first.output.city }}}}
"""

NOTES = "twelve bytes"  # 12 bytes


@pytest.fixture
def engine(engines):
    """An engine the dry runs could reach (by URL): it must see no request."""
    handle = engines.start()
    handle.reset_stats()
    return handle


@pytest.fixture
def look(project):
    """The project root, with pipelines/look.yml and its attachment."""
    return project({"pipelines/look.yml": PIPELINE, "data/notes.txt": NOTES})


def test_every_item_and_step_is_rendered_and_nothing_is_sent(look, invoke, engine):
    result = invoke("run", "--dry-run", "look", "--items-limit", "2", "--target", engine.base_url)

    assert result.exit_code == 0, result.output
    out = result.stdout
    for key, n in (("0.r0", 0), ("0.r1", 0), ("1.r0", 1), ("1.r1", 1)):
        assert f"#{key} question {n}\n" in out
        assert f"    │ question {n} ({key})\n" in out
    assert "#2." not in out  # --items-limit 2
    assert out.count("  step first → assistant helper (gpt-4o)") == 4
    assert out.count("    │ You said: <output of step first>\n") == 4
    assert out.count("    │ Its city: <output of step first → city>\n") == 4
    assert out.count("    ┆ Answer in en.\n") == 4
    notes = (look / "data" / "notes.txt").resolve()
    assert f"    attachment data/notes.txt (12 B, file_search) → {notes}\n" in out
    assert "8 prompts rendered; none sent." in out
    assert engine.stats() == {}  # not even a listing
    assert not (look / ".orch").exists()  # no history, no run folder, no engine state


def test_a_shard_previews_the_items_its_run_would_take(look, invoke):
    result = invoke("run", "--dry-run", "look", "--shard", "2/3", "--json")

    assert result.exit_code == 0, result.output
    [document] = json.loads(result.stdout)["pipelines"]
    held = [i for i in range(6) if Shard(2, 3).holds(item_key(i, 0, 1))]
    assert [item["key"] for item in document["items"]] == [
        item_key(i, rep, 2) for i in held for rep in range(2)
    ]


def test_json_holds_prompts_instructions_and_attachments(look, invoke):
    result = invoke("run", "look", "--dry-run", "--items-limit", "1", "--json")

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["valid"] is True and document["dry_run"] is True
    [pipeline] = document["pipelines"]
    assert (pipeline["pipeline"], pipeline["file"], pipeline["problems"]) == (
        "look",
        "pipelines/look.yml",
        [],
    )
    first, second = pipeline["items"][0]["steps"]
    assert first["prompt"] == "question 0 (0.r0)"
    [attachment] = first["attachments"]
    assert attachment["path"] == "data/notes.txt" and attachment["bytes"] == len(NOTES)
    assert attachment["tools"] == ["file_search"]
    assert second["instructions"] == "Answer in en."
    assert second["prompt"].startswith("You said: <output of step first>\n")


def test_a_template_a_run_would_fail_on_exits_2_at_its_line(project, invoke, engine):
    project(
        {
            "pipelines/bad.yml": """name: bad
assistant: helper
items:
  - {q: one, meta: {lang: en}}
  - {q: two, meta: {}}
steps:
  - prompt: |
      {{ item.q }}
      in {{ item.meta.lang }}
"""
        }
    )
    result = invoke("run", "--dry-run", "bad", "--target", engine.base_url)

    assert result.exit_code == 2
    assert "    │ one\n    │ in en\n" in result.stdout  # the item that renders is shown
    assert "ERROR: template error: 'dict object' has no attribute 'lang'" in result.stdout
    assert (
        "pipelines/bad.yml:9: steps[0].prompt: template error: 'dict object' has no attribute "
        "'lang' (item #1)"
    ) in result.stderr
    assert engine.stats() == {}
    assert not (project.root / ".orch").exists()


def test_a_missing_attachment_exits_2_naming_it_and_its_line(look, invoke):
    pipeline = look / "pipelines" / "look.yml"  # a path only items decide: loading cannot tell
    pipeline.write_text(pipeline.read_text().replace("data/notes.txt", "data/{{ item.q }}.txt"))
    (look / "data" / "question 1.txt").write_text("here")

    result = invoke("run", "--dry-run", "look", "--items-limit", "2", "--quiet")

    assert result.exit_code == 2
    assert result.stdout == ""  # --quiet: only the problems
    assert result.stderr.splitlines() == [
        "pipelines/look.yml:16: steps[0].attachments[0].path: attachment not found: "
        "data/question 0.txt (item #0.r0, #0.r1)",
        "✗ 1 problem found",
    ]


def test_a_template_that_needs_a_real_reply_is_shown_as_written(project, invoke):
    project(
        {
            "pipelines/sums.yml": """name: sums
assistant: helper
steps:
  - {id: count, prompt: "how many?"}
  - {id: more, prompt: "one more: {{ steps.count.output.n - 1 }}"}
"""
        }
    )
    result = invoke("run", "--dry-run", "sums")

    assert result.exit_code == 0, result.output
    assert "    │ one more: {{ steps.count.output.n - 1 }}\n" in result.stdout
    assert "    note: steps[1].prompt shown unrendered: it needs an earlier step's reply" in (
        result.stdout
    )


def test_several_pipelines_are_previewed_and_a_resume_is_refused(look, project, invoke):
    project({"pipelines/other.yml": "name: other\nassistant: helper\nsteps: [{prompt: hi}]\n"})

    both = invoke("run", "--dry-run", "look", "other", "--items-limit", "1", "--json")
    assert both.exit_code == 0, both.output
    assert [p["pipeline"] for p in json.loads(both.stdout)["pipelines"]] == ["look", "other"]

    resumed = invoke("run", "--dry-run", "--resume", "20261121-220512-3fa2c1")
    assert resumed.exit_code == 2
    assert "--dry-run shows a new run's prompts: drop --resume" in resumed.output


def test_placeholders_print_reach_into_fields_and_iterate():
    steps = pending_steps(["ask"])
    context = {"steps": steps}

    assert render("{{ steps.ask.output }}", context, PREVIEW) == "<output of step ask>"
    assert render("{{ steps.ask.output.a['b'][0] }}", context, PREVIEW) == (
        "<output of step ask → a.b[0]>"
    )
    assert render("{{ steps.ask.output.title }}", context, PREVIEW) == (
        "<output of step ask → title>"  # a field, not str.title
    )
    assert render("{{ steps.ask.output | tojson }}", context, PREVIEW) == (
        '"\\u003coutput of step ask\\u003e"'
    )
    assert render(
        "{% for call in steps.ask.tool_calls %}{{ call.name }}{% endfor %}", context, PREVIEW
    ) == ("<tool calls of step ask → [0].name>")
    assert isinstance(steps["ask"]["text"], Pending)


@pytest.mark.parametrize(
    ("size", "shown"),
    [(0, "0 B"), (999, "999 B"), (12_300, "12.3 kB"), (4_100_000, "4.1 MB"), (2e12, "2000.0 GB")],
)
def test_sizes_are_shown_as_file_managers_do(size, shown: str):
    assert size_text(int(size)) == shown


def test_the_project_root_is_untouched(look, invoke):
    before = sorted(p.relative_to(look) for p in look.rglob("*"))
    assert invoke("run", "--dry-run", "look").exit_code == 0
    assert sorted(p.relative_to(look) for p in look.rglob("*")) == before


def test_fields_the_targets_kind_has_no_place_for_are_problems_too(project, invoke):
    project(
        {
            "orch.yml": """
                project: runtest
                targets:
                  embedded: {kind: engine, model: scripted, script: script.yml}
                  agents: {kind: agents, base_url: "http://127.0.0.1:9/v1"}
            """,
            "assistants/warm.yml": "name: warm\nmodel: gpt-4o\ntemperature: 0.2\n",
            "pipelines/warm.yml": "name: warm\nassistant: warm\nsteps: [{prompt: hi}]\n",
        }
    )
    assert invoke("run", "--dry-run", "warm").exit_code == 0  # the engine takes a temperature

    result = invoke("run", "--dry-run", "warm", "--target", "agents")

    assert result.exit_code == 2
    assert result.stderr.startswith(
        "assistants/warm.yml:3: temperature: a target of kind agents has no place for it"
    )
    assert "  step step1 → assistant warm (gpt-4o)" in result.stdout  # still shown
