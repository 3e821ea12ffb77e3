"""``orch plan/sync/prune/import`` end to end: the CLI against a real engine on 127.0.0.1.

The engine counts the requests it serves, so "a re-sync makes no writes" is asserted on what
the server saw (no POST or DELETE), not on what orch says it did.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import openai
import pytest
from openai import OpenAI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse

from orch import sync
from orch.engine.server import EngineHandle, start_engine
from orch.targets import retry

from .conftest import Orch, free_port, serve_app, writes

ORCH_YML = "project: demo\n"

TUTOR = """\
    name: tutor
    model: gpt-4o
    instructions: |
      You are a patient tutor.
      Explain step by step.
      Never give away the final answer.
    temperature: 0.3
    tools: [code_interpreter]
    metadata: {owner: team-a}
"""

GRADER = """\
    name: grader
    model: gpt-4o-mini
    instructions: Grade the answer from 0 to 10.
    response_format: json_object
"""

ANALYST = """\
    name: analyst
    model: gpt-4o
    tools: [code_interpreter, file_search]
    files:
      code_interpreter: [data/sales.csv]
      file_search: [docs/a.md, docs/b.md]
"""

#: the three list calls a no-op sync needs (one page each here)
READS = {"GET /v1/assistants": 1, "GET /v1/files": 1, "GET /v1/vector_stores": 1}


def managed(sdk: OpenAI, project: str = "demo") -> list:
    return [
        a
        for a in sdk.beta.assistants.list(limit=100).data
        if (a.metadata or {}).get("orch_project") == project
    ]


def by_name(sdk: OpenAI, name: str):
    (found,) = [a for a in managed(sdk) if a.metadata["orch_name"] == name]
    return found


def assert_one_clear_line(ran, *needles: str) -> None:
    """Exit 2, one ``error:`` line on stderr, no traceback."""
    assert ran.exit_code == 2, (ran.stdout, ran.stderr)
    assert isinstance(ran.exception, SystemExit)
    lines = ran.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), ran.stderr
    assert "Traceback" not in ran.stderr + ran.stdout
    for needle in needles:
        assert needle in lines[0], lines[0]


# -- the acceptance chain --------------------------------------------------------------------


def test_create_noop_update_drift_prune(
    make_project, engine: EngineHandle, sdk: OpenAI, orch: Orch
):
    root = make_project(
        {"orch.yml": ORCH_YML, "assistants/tutor.yml": TUTOR, "assistants/grader.yml": GRADER}
    )
    t = ("--target", engine.base_url)

    ran = orch("plan", *t)
    assert ran.exit_code == 0
    assert "  + create    assistant tutor" in ran.lines
    assert "  + create    assistant grader" in ran.lines
    assert writes(engine.stats()) == {}

    ran = orch("sync", *t)
    assert ran.exit_code == 0, ran.stderr
    assert "  + created assistant tutor" in ran.lines
    assert ran.lines[-1] == f"Done: 2 changes applied to {engine.base_url}."
    tutor = by_name(sdk, "tutor")
    assert (tutor.name, tutor.model, tutor.temperature) == ("tutor", "gpt-4o", 0.3)
    assert tutor.metadata["owner"] == "team-a" and tutor.metadata["orch_project"] == "demo"
    assert len(tutor.metadata["orch_hash"]) == 64
    assert by_name(sdk, "grader").response_format.type == "json_object"

    # a re-sync with nothing changed: three list requests, zero writes
    engine.reset_stats()
    ran = orch("sync", *t)
    assert ran.exit_code == 0
    assert ran.lines[-1] == "No changes: the target matches the YAML."
    assert engine.stats() == READS
    assert orch("sync", "--check", *t).exit_code == 0

    # edit the instructions: plan shows a unified diff, sync makes one write
    make_project(
        {"assistants/tutor.yml": TUTOR.replace("Explain step by step.", "Explain it in two steps.")}
    )
    ran = orch("plan", *t)
    assert "  ~ update    assistant tutor" in ran.lines
    assert ["        --- remote", "        +++ local"] == [
        line for line in ran.lines if line.startswith(("        ---", "        +++"))
    ]
    assert "        -Explain step by step." in ran.lines
    assert "        +Explain it in two steps." in ran.lines
    assert "         Never give away the final answer." in ran.lines
    engine.reset_stats()
    ran = orch("sync", "--check", *t)
    assert ran.exit_code == 1
    assert writes(engine.stats()) == {}
    ran = orch("sync", *t)
    assert ran.exit_code == 0
    assert "  ~ updated assistant tutor" in ran.lines
    assert writes(engine.stats()) == {"POST /v1/assistants/{assistant_id}": 1}
    updated = sdk.beta.assistants.retrieve(tutor.id)
    assert "Explain it in two steps." in updated.instructions
    assert updated.metadata["orch_hash"] != tutor.metadata["orch_hash"]

    # drift: someone changes the temperature with the SDK directly
    sdk.beta.assistants.update(tutor.id, temperature=1.5)
    ran = orch("sync", "--check", *t)
    assert ran.exit_code == 1
    assert "  ~ update    assistant tutor  (changed outside orch)" in ran.lines
    assert "      temperature: 1.5 → 0.3" in ran.lines
    data = json.loads(orch("plan", "--json", *t).stdout)
    (change,) = [c for c in data["assistants"] if c["name"] == "tutor"]
    assert change["drift"] is True
    assert change["diff"] == [{"field": "temperature", "remote": 1.5, "local": 0.3}]
    assert orch("sync", *t).exit_code == 0
    assert sdk.beta.assistants.retrieve(tutor.id).temperature == 0.3
    assert orch("sync", "--check", *t).exit_code == 0

    # an assistant made by hand is listed as unmanaged and never touched
    hand = sdk.beta.assistants.create(model="gpt-4o", name="hand-made", instructions="mine")
    (root / "assistants/grader.yml").unlink()
    ran = orch("plan", *t)
    assert "  = unchanged assistant grader  (no longer declared; --prune deletes it)" in ran.lines
    assert any(
        line.startswith("  unmanaged: 1 assistant(s)") and "hand-made" in line for line in ran.lines
    )
    assert orch("sync", "--check", *t).exit_code == 0  # keeping it is no change
    ran = orch("plan", "--prune", *t)
    assert "  - delete    assistant grader  (no longer declared)" in ran.lines
    engine.reset_stats()
    ran = orch("sync", "--prune", "--yes", *t)
    assert ran.exit_code == 0
    assert "  - deleted assistant grader" in ran.lines
    assert writes(engine.stats()) == {"DELETE /v1/assistants/{assistant_id}": 1}
    assert [a.metadata["orch_name"] for a in managed(sdk)] == ["tutor"]
    again = sdk.beta.assistants.retrieve(hand.id)
    assert (again.instructions, again.metadata) == ("mine", {})
    engine.reset_stats()
    assert orch("sync", "--prune", "--yes", *t).exit_code == 0
    assert writes(engine.stats()) == {}


def test_prune_only_deletes(make_project, engine: EngineHandle, sdk: OpenAI, orch: Orch):
    root = make_project(
        {"orch.yml": ORCH_YML, "assistants/tutor.yml": TUTOR, "assistants/grader.yml": GRADER}
    )
    t = ("--target", engine.base_url)
    assert orch("sync", *t).exit_code == 0
    hand = sdk.beta.assistants.create(model="gpt-4o", name="grader")  # same name, unmanaged
    (root / "assistants/grader.yml").unlink()
    make_project({"assistants/tutor.yml": TUTOR.replace("patient", "strict")})
    engine.reset_stats()
    ran = orch("prune", "--yes", *t)
    assert ran.exit_code == 0
    assert "  - deleted assistant grader" in ran.lines
    assert writes(engine.stats()) == {"DELETE /v1/assistants/{assistant_id}": 1}
    assert "patient" in by_name(sdk, "tutor").instructions  # prune does not update
    assert sdk.beta.assistants.retrieve(hand.id).name == "grader"


def test_files_and_vector_stores(
    make_project, engine: EngineHandle, sdk: OpenAI, orch: Orch, tmp_path: Path
):
    root = make_project(
        {
            "orch.yml": ORCH_YML,
            "assistants/analyst.yml": ANALYST,
            "data/sales.csv": "region,total\nnorth,10\nsouth,20\n",
            "docs/a.md": "# Alpha\nThe alpha scale has eleven items.\n",
            "docs/b.md": "# Beta\nBeta trials are randomised.\n",
        }
    )
    t = ("--target", engine.base_url)
    ran = orch("sync", *t)
    assert ran.exit_code == 0, ran.stderr
    assert "  + uploaded file data/sales.csv" in ran.lines
    assert "  + created vector store orch-demo-analyst" in ran.lines
    files = {f.filename: f for f in sdk.files.list(purpose="assistants").data}
    assert len(files) == 3 and all(n.startswith("orch-demo-") for n in files)
    csv = next(f for n, f in files.items() if n.endswith("-sales.csv"))
    (store,) = sdk.vector_stores.list().data
    assert store.name == "orch-demo-analyst"
    assert store.metadata["orch_project"] == "demo" and store.metadata["orch_name"] == "analyst"
    assert (store.file_counts.total, store.file_counts.completed) == (2, 2)
    analyst = by_name(sdk, "analyst")
    assert analyst.tool_resources.code_interpreter.file_ids == [csv.id]
    assert analyst.tool_resources.file_search.vector_store_ids == [store.id]

    engine.reset_stats()
    assert orch("sync", *t).exit_code == 0
    assert engine.stats() == READS

    # a fresh checkout (no local state at all) also syncs to zero writes
    assert not (root / ".orch").exists()
    fresh = tmp_path / "fresh-checkout"
    shutil.copytree(root, fresh)
    engine.reset_stats()
    ran = orch("sync", "-C", str(fresh), *t)
    assert ran.lines[-1] == "No changes: the target matches the YAML."
    assert writes(engine.stats()) == {}

    # changed csv content: re-uploaded, assistant repointed, the stale upload deleted
    make_project({"data/sales.csv": "region,total\nnorth,11\nsouth,20\n"})
    ran = orch("plan", *t)
    assert "  + create    file data/sales.csv" in "\n".join(ran.lines)
    assert f"  - delete    file {csv.filename}  (content no longer declared)" in ran.lines
    engine.reset_stats()
    assert orch("sync", *t).exit_code == 0
    assert writes(engine.stats()) == {
        "POST /v1/files": 1,
        "POST /v1/assistants/{assistant_id}": 1,
        "DELETE /v1/files/{file_id}": 1,
    }
    with pytest.raises(openai.NotFoundError):
        sdk.files.retrieve(csv.id)
    new_ids = sdk.beta.assistants.retrieve(analyst.id).tool_resources.code_interpreter.file_ids
    (new_csv,) = new_ids
    assert new_csv != csv.id
    assert sdk.files.content(new_csv).read() == b"region,total\nnorth,11\nsouth,20\n"

    # changed file_search content: the store swaps the file and is re-indexed
    old_b = next(f for n, f in files.items() if n.endswith("-b.md"))
    make_project({"docs/b.md": "# Beta\nBeta trials are blinded.\n"})
    ran = orch("plan", *t)
    assert "  ~ update    vector store orch-demo-analyst  (declared files changed)" in ran.lines
    assert orch("sync", *t).exit_code == 0
    store = sdk.vector_stores.retrieve(store.id)
    assert (store.file_counts.total, store.file_counts.completed) == (2, 2)
    in_store = {f.id for f in sdk.vector_stores.files.list(store.id).data}
    assert old_b.id not in in_store and len(in_store) == 2
    with pytest.raises(openai.NotFoundError):
        sdk.files.retrieve(old_b.id)
    engine.reset_stats()
    assert orch("sync", "--check", *t).exit_code == 0
    assert writes(engine.stats()) == {}

    # the store's files removed behind orch's back: drift, repaired
    some = next(iter(in_store))
    sdk.vector_stores.files.delete(some, vector_store_id=store.id)
    ran = orch("sync", "--check", *t)
    assert ran.exit_code == 1
    assert "  ~ update    vector store orch-demo-analyst  (files changed outside orch)" in ran.lines
    assert orch("sync", *t).exit_code == 0
    assert sdk.vector_stores.retrieve(store.id).file_counts.completed == 2
    assert orch("sync", "--check", *t).exit_code == 0

    # no file_search files any more: the store and its uploads go
    make_project(
        {
            "assistants/analyst.yml": ANALYST.replace(
                "      file_search: [docs/a.md, docs/b.md]\n", ""
            ).replace(", file_search", "")
        }
    )
    ran = orch("sync", *t)
    assert "  - deleted vector store orch-demo-analyst" in ran.lines
    assert sdk.vector_stores.list().data == []
    remaining = [f.filename for f in sdk.files.list(purpose="assistants").data]
    assert len(remaining) == 1 and remaining[0].endswith("-sales.csv")
    assert orch("sync", "--check", *t).exit_code == 0


def test_indexing_failure_is_reported_on_every_sync(
    make_project, engine: EngineHandle, sdk: OpenAI, orch: Orch
):
    make_project(
        {
            "orch.yml": ORCH_YML,
            "docs/ok.md": "fine\n",
            "docs/broken.pdf": b"%PDF-1.4 this is no PDF",
            "assistants/reader.yml": """\
                      name: reader
                      model: gpt-4o
                      tools: [file_search]
                      files: {file_search: [docs/ok.md, docs/broken.pdf]}
                  """,
        }
    )
    t = ("--target", engine.base_url)
    for _ in range(2):  # not hidden behind an "updated" the second time
        ran = orch("sync", *t)
        assert_one_clear_line(
            ran,
            "indexing files into vector store orch-demo-reader failed for 1 file(s)",
            "could not read PDF",
        )
    (store,) = sdk.vector_stores.list().data
    assert (store.file_counts.completed, store.file_counts.failed) == (1, 1)
    root = make_project({})
    (root / "docs/broken.pdf").unlink()
    make_project(
        {
            "assistants/reader.yml": """\
        name: reader
        model: gpt-4o
        tools: [file_search]
        files: {file_search: [docs/ok.md]}
    """
        }
    )
    assert orch("sync", *t).exit_code == 0
    store = sdk.vector_stores.retrieve(store.id)
    assert (store.file_counts.total, store.file_counts.failed) == (1, 0)
    assert orch("sync", "--check", *t).exit_code == 0


def test_duplicates_converge(make_project, engine: EngineHandle, sdk: OpenAI, orch: Orch):
    make_project(
        {
            "orch.yml": ORCH_YML,
            "assistants/tutor.yml": TUTOR,
            "assistants/analyst.yml": ANALYST,
            "data/sales.csv": "a,b\n1,2\n",
            "docs/a.md": "alpha\n",
            "docs/b.md": "beta\n",
        }
    )
    t = ("--target", engine.base_url)
    assert orch("sync", *t).exit_code == 0
    original = by_name(sdk, "tutor")
    # a raced second sync left a twin behind: same fields, same tags
    twin = sdk.beta.assistants.create(
        model=original.model,
        name=original.name,
        instructions=original.instructions,
        temperature=original.temperature,
        tools=[{"type": "code_interpreter"}],
        metadata=original.metadata,
    )
    (csv,) = [
        f for f in sdk.files.list(purpose="assistants").data if f.filename.endswith("-sales.csv")
    ]
    csv_twin = sdk.files.create(file=(csv.filename, b"a,b\n1,2\n"), purpose="assistants")

    ran = orch("plan", *t)
    deletes = [line for line in ran.lines if line.startswith("  - delete")]
    assert len(deletes) == 2
    assert "two managed objects claimed one name" in deletes[0]
    assert "duplicate upload" in deletes[1]
    ran = orch("sync", *t)
    assert ran.exit_code == 0
    assert "  - deleted assistant tutor" in ran.lines
    survivors = [a.id for a in managed(sdk) if a.metadata["orch_name"] == "tutor"]
    assert len(survivors) == 1 and survivors[0] in (original.id, twin.id)
    assert f"duplicate of {survivors[0]}" in "\n".join(deletes)
    names = [f.filename for f in sdk.files.list(purpose="assistants").data]
    assert names.count(csv.filename) == 1
    kept_csv = next(
        f.id for f in sdk.files.list(purpose="assistants").data if f.filename == csv.filename
    )
    assert kept_csv in (csv.id, csv_twin.id)
    assert by_name(sdk, "analyst").tool_resources.code_interpreter.file_ids == [kept_csv]
    engine.reset_stats()
    assert orch("sync", *t).exit_code == 0
    assert writes(engine.stats()) == {}


def test_import_round_trip(make_project, engine: EngineHandle, sdk: OpenAI, orch: Orch):
    root = make_project({"orch.yml": ORCH_YML})
    t = ("--target", engine.base_url)
    notes = sdk.files.create(file=("notes.csv", b"x,y\n1,2\n"), purpose="assistants")
    guide = sdk.files.create(
        file=("guide.md", b"# Guide\nAlways cite the source.\n"), purpose="assistants"
    )
    store = sdk.vector_stores.create(name="research docs", file_ids=[guide.id])
    deadline = time.monotonic() + 10
    while sdk.vector_stores.retrieve(store.id).file_counts.in_progress:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    instructions = "\n".join(f"Rule {i}: be careful with claim number {i}." for i in range(12))
    research = sdk.beta.assistants.create(
        model="gpt-4o",
        name="Research Helper",
        description="Finds sources.",
        instructions=instructions,
        temperature=0.2,
        top_p=0.9,
        tools=[
            {"type": "code_interpreter"},
            {"type": "file_search"},
            {
                "type": "function",
                "function": {
                    "name": "get_weather",
                    "description": "Weather for a city.",
                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}},
                },
            },
        ],
        tool_resources={
            "code_interpreter": {"file_ids": [notes.id]},
            "file_search": {"vector_store_ids": [store.id]},
        },
        metadata={"owner": "research"},
    )
    short = sdk.beta.assistants.create(
        model="gpt-4o-mini",
        name="Short One",
        instructions="Answer in JSON.",
        response_format={"type": "json_object"},
    )

    ran = orch("import", *t)
    assert ran.exit_code == 0, ran.stderr
    assert "note: function get_weather has no handler" in ran.stdout
    assert ran.lines[-1].startswith("Imported 2 assistants and adopted them")
    yml = (root / "assistants/research-helper.yml").read_text()
    assert "instructions: !file 'prompts/research-helper.md'" in yml
    assert (root / "assistants/prompts/research-helper.md").read_text() == instructions
    assert (root / "assistants/files/research-helper/notes.csv").read_bytes() == b"x,y\n1,2\n"
    assert (root / "assistants/files/research-helper/guide.md").exists()
    assert "instructions: Answer in JSON." in (root / "assistants/short-one.yml").read_text()
    assert "name: Research Helper\n" in yml  # the file name is slugged, the name is not

    validated = orch("validate")
    assert validated.exit_code == 0, validated.stdout + validated.stderr
    ran = orch("plan", *t)
    assert ran.exit_code == 0
    assert ran.lines[-1] == "No changes: the target matches the YAML.", ran.stdout
    assert not any("unmanaged" in line for line in ran.lines)
    engine.reset_stats()
    assert orch("sync", "--check", *t).exit_code == 0
    assert orch("sync", *t).exit_code == 0
    assert writes(engine.stats()) == {}
    # the adopted assistants are the same objects, now tagged; the originals' files are kept
    adopted = sdk.beta.assistants.retrieve(research.id)
    assert adopted.metadata["orch_name"] == "Research Helper"
    assert adopted.name == "Research Helper"  # import never renames what it adopts
    assert adopted.metadata["owner"] == "research"
    assert adopted.instructions == instructions
    assert sdk.beta.assistants.retrieve(short.id).metadata["orch_name"] == "Short One"
    assert sdk.beta.assistants.retrieve(short.id).name == "Short One"
    assert sdk.files.retrieve(notes.id).id == notes.id
    assert sdk.vector_stores.retrieve(store.id).id == store.id
    assert orch("import", *t).lines == [
        "Nothing to import: every assistant on the target is already declared."
    ]


# -- targets ---------------------------------------------------------------------------------


def _subprocess_orch(root: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ORCH_", "OPENAI_"))}
    return subprocess.run(
        [sys.executable, "-m", "orch", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_default_target_is_the_embedded_engine(make_project):
    root = make_project(
        {"orch.yml": "project: demo\ntarget: embedded\n", "assistants/tutor.yml": TUTOR}
    )
    first = _subprocess_orch(root, "sync")
    assert first.returncode == 0, first.stderr
    assert first.stderr.startswith("Started the embedded engine at http://127.0.0.1:")
    assert "state: .orch/engine.db" in first.stderr
    assert "  + created assistant tutor" in first.stdout
    assert (root / ".orch/engine.db").is_file()
    second = _subprocess_orch(root, "sync")  # a fresh process: state persisted on disk
    assert second.returncode == 0, second.stderr
    assert "No changes: the target matches the YAML." in second.stdout
    assert "Applying" not in second.stdout


def test_embedded_engine_without_orch_yml_makes_no_writes_on_resync(
    make_project, orch: Orch, monkeypatch: pytest.MonkeyPatch
):
    import orch.engine.server as server

    handles: list[EngineHandle] = []
    real = server.start_engine

    def spy(*args, **kwargs):
        handles.append(real(*args, **kwargs))
        return handles[-1]

    monkeypatch.setattr(server, "start_engine", spy)
    root = make_project({"assistants/tutor.yml": TUTOR})
    ran = orch("sync")
    assert ran.exit_code == 0, ran.stderr
    assert "Started the embedded engine" in ran.stderr
    assert "Plan for project 'project'" in ran.stdout  # named after its directory
    ran = orch("sync")
    assert ran.exit_code == 0
    assert writes(handles[-1].stats()) == {}
    assert handles[-1].db_path == root / ".orch/engine.db"
    assert orch("plan", "--json").stderr == ""  # --json keeps stdout and stderr clean


def test_targets_from_orch_yml_env_and_dotenv(
    make_project, tmp_path: Path, orch: Orch, monkeypatch: pytest.MonkeyPatch
):
    with start_engine(tmp_path / "secure.db", api_key="s3cret-key-123") as secure:
        make_project(
            {
                "orch.yml": f"""\
                project: demo
                target: secure
                targets:
                  secure: {{kind: assistants, base_url: "{secure.base_url}",
                            api_key_env: SECURE_KEY}}
                  implicit: {{kind: assistants}}
            """,
                "assistants/tutor.yml": TUTOR,
            }
        )
        # wrong key in the environment: one clear line, exit 2
        ran = orch("plan", env={"SECURE_KEY": "wrong-key-456"})
        assert_one_clear_line(ran, "refused the credentials (401)", "Incorrect API key")

        # the right key from .env (the real environment would win over it)
        make_project({".env": "SECURE_KEY=s3cret-key-123\n"})
        ran = orch("sync")
        assert ran.exit_code == 0, ran.stderr
        assert f"target 'secure' ({secure.base_url})" in ran.stdout

        # kind assistants without base_url: OPENAI_BASE_URL / OPENAI_API_KEY conventions
        make_project({".env": "OPENAI_API_KEY=s3cret-key-123\n"})
        secure.reset_stats()
        ran = orch("plan", "--target", "implicit", env={"OPENAI_BASE_URL": secure.base_url})
        assert ran.exit_code == 0, ran.stderr
        assert ran.lines[-1] == "No changes: the target matches the YAML."
        assert secure.stats() == READS

        # ORCH_TARGET picks a URL target
        ran = orch("plan", env={"ORCH_TARGET": secure.base_url, "OPENAI_API_KEY": "s3cret-key-123"})
        assert ran.exit_code == 0, ran.stderr
        assert ran.stdout.startswith(f"Plan for project 'demo' on {secure.base_url}:")

        ran = orch("plan", "--target", "nowhere")
        assert_one_clear_line(ran, "unknown target 'nowhere'")


# -- errors ----------------------------------------------------------------------------------


def test_server_without_assistants_api(make_project, orch: Orch):
    make_project({"orch.yml": ORCH_YML, "assistants/tutor.yml": TUTOR})
    with serve_app(Starlette()) as url:  # answers 404 to everything
        for command in ("plan", "sync"):
            ran = orch(command, "--target", url)
            assert_one_clear_line(
                ran, "answered 404 for /assistants", "kind: responses", "2026-08-26"
            )


def test_connection_refused(make_project, orch: Orch, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(retry, "retry_delay", lambda exc, attempt: 0.0)
    make_project({"orch.yml": ORCH_YML, "assistants/tutor.yml": TUTOR})
    ran = orch("sync", "--target", f"http://127.0.0.1:{free_port()}/v1")
    assert_one_clear_line(ran, "list assistants: cannot connect to the server")


def _rate_limited_app(failures: int | None):
    """429 (retry-after-ms: 30) for the first ``failures`` requests (None: always), then
    empty list pages."""
    seen: list[str] = []

    async def endpoint(request: Request):
        seen.append(f"{request.method} {request.url.path}")
        if failures is None or len(seen) <= failures:
            return JSONResponse(
                {
                    "error": {
                        "message": "Rate limit reached for requests",
                        "type": "requests",
                        "param": None,
                        "code": "rate_limit_exceeded",
                    }
                },
                status_code=429,
                headers={"retry-after-ms": "30"},
            )
        return JSONResponse(
            {"object": "list", "data": [], "first_id": None, "last_id": None, "has_more": False}
        )

    from starlette.routing import Route

    paths = ("/v1/assistants", "/v1/files", "/v1/vector_stores")
    return Starlette(routes=[Route(p, endpoint) for p in paths]), seen


def test_rate_limits_are_retried_honouring_retry_after_ms(
    make_project, orch: Orch, monkeypatch: pytest.MonkeyPatch
):
    delays: list[float] = []
    real = retry.retry_delay

    def spy(exc, attempt):
        delays.append(real(exc, attempt))
        return delays[-1]

    monkeypatch.setattr(retry, "retry_delay", spy)
    make_project({"orch.yml": ORCH_YML, "assistants/tutor.yml": TUTOR})
    app, seen = _rate_limited_app(failures=2)
    with serve_app(app) as url:
        ran = orch("plan", "--target", url)
    assert ran.exit_code == 0, ran.stderr
    assert "  + create    assistant tutor" in ran.lines
    assert delays == [0.03, 0.03]
    assert seen == ["GET /v1/assistants"] * 3 + ["GET /v1/files", "GET /v1/vector_stores"]

    delays.clear()
    app, seen = _rate_limited_app(failures=None)
    with serve_app(app) as url:
        ran = orch("sync", "--target", url)
    assert_one_clear_line(
        ran, "list assistants: rate limited (429) after retries", "Rate limit reached"
    )
    assert len(seen) == 4 and delays == [0.03] * 3


@pytest.mark.parametrize("seed", [3, 7])
def test_sync_converges_on_a_flaky_engine(
    make_project, tmp_path: Path, orch: Orch, seed: int, monkeypatch: pytest.MonkeyPatch
):
    """Injected 429s, 500s and dropped connections: retried, creates never duplicated."""
    real = retry.retry_delay
    monkeypatch.setattr(retry, "retry_delay", lambda exc, attempt: min(real(exc, attempt), 0.02))
    make_project(
        {
            "orch.yml": ORCH_YML,
            "assistants/tutor.yml": TUTOR,
            "assistants/grader.yml": GRADER,
            "assistants/analyst.yml": ANALYST,
            "data/sales.csv": "a,b\n1,2\n",
            "docs/a.md": "alpha\n",
            "docs/b.md": "beta\n",
        }
    )
    with start_engine(tmp_path / "flaky.db", fault_rate=0.2, fault_seed=seed) as flaky:
        ran = orch("sync", "--target", flaky.base_url)
        assert ran.exit_code == 0, ran.stderr
        assert "Done: 7 changes applied" in ran.stdout
    with start_engine(tmp_path / "flaky.db") as steady:
        client = OpenAI(base_url=steady.base_url, api_key="x", max_retries=0)
        names = sorted(a.metadata.get("orch_name") for a in client.beta.assistants.list().data)
        stores = client.vector_stores.list().data
        files = client.files.list(purpose="assistants").data
        client.close()
        assert names == ["analyst", "grader", "tutor"]
        assert len(stores) == 1 and len(files) == 3
        steady.reset_stats()
        assert (
            orch("sync", "--target", steady.base_url).lines[-1]
            == "No changes: the target matches the YAML."
        )
        assert writes(steady.stats()) == {}


def test_two_syncs_at_once_leave_one_assistant_per_name(make_project, engine: EngineHandle):
    from orch.project.loading import load_project
    from orch.sync.workflow import plan_project
    from orch.targets.connection import connect

    root = make_project({"orch.yml": ORCH_YML, "assistants/tutor.yml": TUTOR})
    project = load_project(root)
    with connect(project, engine.base_url) as first, connect(project, engine.base_url) as second:
        # both plan before either creates: the race `orch sync` twice in CI runs into
        plans = [(c, plan_project(project, c)) for c in (first, second)]
        assert [p.count("create") for _, p in plans] == [1, 1]
        deleted = []
        for conn, plan in plans:
            sync.apply(plan, conn.backend(), root, lambda c: deleted.append(c))
    with OpenAI(base_url=engine.base_url, api_key="x", max_retries=0) as sdk:
        tutors = [a for a in managed(sdk) if a.metadata["orch_name"] == "tutor"]
    assert len(tutors) == 1
    removed = [c for c in deleted if c.action == "delete"]
    assert len(removed) == 1 and removed[0].remote_id != tutors[0].id
    assert "concurrent sync" in removed[0].reason
