"""`orch import` never changes a remote assistant's name: the YAML's file name is slugged, the
``name`` it declares is the remote's own ("Legacy Bot" stays "Legacy Bot" on the server).

Only a name orch cannot declare (none, on several lines) or one already taken in the project is
replaced, and the import says so.
"""

from __future__ import annotations

from openai import OpenAI

from orch.engine.server import EngineHandle

from .conftest import Orch


def test_legacy_bot_keeps_its_name_through_import_and_sync(
    make_project, engine: EngineHandle, sdk: OpenAI, orch: Orch
):
    root = make_project({"orch.yml": "project: demo\n"})
    t = ("--target", engine.base_url)
    legacy = sdk.beta.assistants.create(model="gpt-4o", name="Legacy Bot", instructions="Hi.")

    ran = orch("import", *t)

    assert ran.exit_code == 0, ran.stderr
    assert "note:" not in ran.stdout
    text = (root / "assistants/legacy-bot.yml").read_text()
    assert "\nname: Legacy Bot\n" in text
    assert orch("validate").exit_code == 0
    assert orch("sync", *t).exit_code == 0
    again = sdk.beta.assistants.retrieve(legacy.id)
    assert again.name == "Legacy Bot"
    assert again.metadata["orch_name"] == "Legacy Bot"
    assert orch("plan", *t).stdout.splitlines()[-1] == "No changes: the target matches the YAML."


def test_only_a_name_orch_cannot_keep_is_replaced_and_said(
    make_project, engine: EngineHandle, sdk: OpenAI, orch: Orch
):
    root = make_project({"orch.yml": "project: demo\n"})
    sdk.beta.assistants.create(model="gpt-4o", name="Twin")
    sdk.beta.assistants.create(model="gpt-4o", name="Twin")
    nameless = sdk.beta.assistants.create(model="gpt-4o")

    ran = orch("import", "--target", engine.base_url)

    assert ran.exit_code == 0, ran.stderr
    assert sorted(p.name for p in (root / "assistants").glob("*.yml")) == [
        f"{nameless.id.lower()}.yml",
        "twin-2.yml",
        "twin.yml",
    ]
    assert "\nname: Twin-2\n" in (root / "assistants/twin-2.yml").read_text()
    assert "note: named 'Twin-2', not 'Twin': another assistant of the project has it" in (
        ran.stdout
    )
    assert "it has none" in ran.stdout
