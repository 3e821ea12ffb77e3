"""Variants on a target that holds assistants: one remote assistant per variant, kept exact.

A variant with overrides runs a derived assistant (``<assistant>--<variant>``): `orch sync`
creates it like a declared one (tagged as orch's, with ``orch_variant``), `orch plan` after the
sync has nothing to do, a changed override updates only that variant's assistant, and a
variant removed from the pipeline is what `orch prune` deletes — nothing else.
"""

from __future__ import annotations

import json

from openai import OpenAI

from orch.engine.server import EngineHandle

from .conftest import Orch, writes

HELPER = "name: helper\nmodel: gpt-4o\ninstructions: You help.\n"
OTHER = "name: other\nmodel: gpt-4o\ninstructions: You are another.\n"


def pipeline(plain_temperature: float = 0.2, with_sharp: bool = True) -> str:
    sharp = (
        """
  - name: sharp
    model: gpt-4o-mini
    instructions: Answer sharply.
"""
        if with_sharp
        else ""
    )
    return f"""
name: ab
assistant: helper
variants:
  - name: plain
    temperature: {plain_temperature}{sharp}
  - name: swap
    assistant: other
steps:
  - prompt: hi
"""


def remote(sdk: OpenAI) -> dict:
    return {a.name: a for a in sdk.beta.assistants.list(limit=100).data}


def plan(orch: Orch, url: str) -> dict:
    ran = orch("plan", "--target", url, "--json")
    assert ran.exit_code in (0, 1), ran.stderr  # plan exits 1 when there are changes
    return json.loads(ran.stdout)


def test_sync_creates_one_assistant_per_variant_and_plan_is_clean(
    make_project, engine: EngineHandle, sdk: OpenAI, orch: Orch
):
    make_project(
        {
            "orch.yml": "project: demo\n",
            "assistants/helper.yml": HELPER,
            "assistants/other.yml": OTHER,
            "pipelines/ab.yml": pipeline(),
        }
    )

    ran = orch("sync", "--target", engine.base_url)

    assert ran.exit_code == 0, ran.stderr
    found = remote(sdk)
    # the swap variant only switches assistants: it derives none
    assert sorted(found) == ["helper", "helper--plain", "helper--sharp", "other"]
    sharp = found["helper--sharp"]
    assert (sharp.model, sharp.instructions) == ("gpt-4o-mini", "Answer sharply.")
    assert sharp.metadata["orch_variant"] == "sharp"
    assert sharp.metadata["orch_name"] == "helper--sharp"
    assert sharp.metadata["orch_project"] == "demo"
    plain = found["helper--plain"]
    assert (plain.model, plain.temperature, plain.instructions) == ("gpt-4o", 0.2, "You help.")

    assert plan(orch, engine.base_url)["changes"] == 0
    engine.reset_stats()
    assert orch("sync", "--target", engine.base_url).exit_code == 0
    assert writes(engine.stats()) == {}  # a second sync writes nothing


def test_a_changed_or_removed_variant_is_exactly_what_changes(
    make_project, engine: EngineHandle, sdk: OpenAI, orch: Orch
):
    files = {
        "orch.yml": "project: demo\n",
        "assistants/helper.yml": HELPER,
        "assistants/other.yml": OTHER,
        "pipelines/ab.yml": pipeline(),
    }
    make_project(files)
    assert orch("sync", "--target", engine.base_url).exit_code == 0
    ids = {name: a.id for name, a in remote(sdk).items()}

    make_project({"pipelines/ab.yml": pipeline(plain_temperature=0.7)})
    changes = [c for c in plan(orch, engine.base_url)["assistants"] if c["action"] != "unchanged"]
    assert [(c["action"], c["name"]) for c in changes] == [("update", "helper--plain")]
    assert {d["field"] for d in changes[0]["diff"]} == {"temperature", "metadata"}

    make_project({"pipelines/ab.yml": pipeline(plain_temperature=0.7, with_sharp=False)})
    assert orch("sync", "--target", engine.base_url).exit_code == 0
    stale = [c for c in plan(orch, engine.base_url)["assistants"] if c["reason"]]
    assert [(c["name"], c["reason"]) for c in stale] == [
        ("helper--sharp", "no longer declared; --prune deletes it")
    ]

    ran = orch("prune", "-y", "--target", engine.base_url)

    assert ran.exit_code == 0, ran.stderr
    assert "  - deleted assistant helper--sharp" in ran.stdout.splitlines()
    left = remote(sdk)
    assert sorted(left) == ["helper", "helper--plain", "other"]
    assert {n: a.id for n, a in left.items()} == {n: ids[n] for n in left}  # kept, not recreated
    assert left["helper--plain"].temperature == 0.7
    assert plan(orch, engine.base_url)["changes"] == 0


def test_a_run_talks_to_each_variants_remote_assistant(
    make_project, engine: EngineHandle, sdk: OpenAI, orch: Orch
):
    root = make_project(
        {
            "orch.yml": "project: demo\n",
            "assistants/helper.yml": HELPER,
            "assistants/other.yml": OTHER,
            "pipelines/ab.yml": pipeline(),
        }
    )

    ran = orch("run", "ab", "--target", engine.base_url, "--json")

    assert ran.exit_code == 0, ran.stderr
    run_id = json.loads(ran.stdout)["run_id"]
    meta = json.loads((root / ".orch" / "runs" / run_id / "run.json").read_text())
    found = remote(sdk)
    lines = (root / ".orch" / "runs" / run_id / "results.jsonl").read_text().splitlines()
    used = {}
    for record in map(json.loads, lines):
        step = record["steps"][0]
        run = sdk.beta.threads.runs.retrieve(step["run_id"], thread_id=step["thread_id"])
        used[record["variant"]] = run.assistant_id
    assert used == {
        "plain": found["helper--plain"].id,
        "sharp": found["helper--sharp"].id,
        "swap": found["other"].id,
    }
    assert meta["assistants"]["helper--sharp"] == found["helper--sharp"].id
