"""``sync.plan`` is pure: a table of declared assistants × hand-made remote states."""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import pytest

from orch import sync
from orch.project.model import Assistant, FunctionTool, LocalFile, Tool
from orch.targets.base import (
    META_HASH,
    META_NAME,
    META_PROJECT,
    RemoteAssistant,
    RemoteFile,
    RemoteState,
    RemoteVectorStore,
)

P = "proj"


def asst(name: str = "tutor", **fields) -> Assistant:
    fields.setdefault("model", "gpt-4o")
    fields.setdefault("instructions", "Be kind.\nBe brief.")
    return Assistant(name=name, source=f"assistants/{name}.yml", **fields)


def local(path: str, content: bytes) -> LocalFile:
    return LocalFile(path, hashlib.sha256(content).hexdigest(), len(content))


def rfile(f: LocalFile, file_id: str, created_at: int = 100, project: str = P) -> RemoteFile:
    name = sync.managed_filename(project, f.sha256, f.path)
    return RemoteFile(file_id, name, f.size, "assistants", created_at)


def rstore(
    owner: str, files: tuple[LocalFile, ...], store_id: str, created_at: int = 100, **overrides
) -> RemoteVectorStore:
    meta = {META_PROJECT: P, META_NAME: owner, META_HASH: sync.files_hash(files)}
    fields = dict(
        id=store_id,
        name=sync.store_name(P, owner),
        metadata=meta,
        files_total=len(files),
        files_failed=0,
        created_at=created_at,
    )
    return RemoteVectorStore(**{**fields, **overrides})


def remote(
    a: Assistant,
    asst_id: str = "asst_1",
    created_at: int = 100,
    file_ids: dict[str, str] | None = None,
    store_ids: dict[str, str] | None = None,
    **overrides,
) -> RemoteAssistant:
    """What a server would hold after orch synced ``a`` (then ``overrides`` applied)."""
    spec = sync.wire_spec(a, P, file_ids or {}, store_ids or {})
    return RemoteAssistant(id=asst_id, created_at=created_at, **{**spec, **overrides})


def unmanaged(asst_id: str = "asst_u", name: str = "hand-made", **meta) -> RemoteAssistant:
    return RemoteAssistant(
        asst_id, name, "gpt-4o", "hi", None, None, None, None, [], {}, dict(meta), 50
    )


def run_plan(desired, state=None, **kw) -> sync.Plan:
    return sync.plan(P, "test target", list(desired), state or RemoteState(), **kw)


def actions(changes) -> list[tuple[str, str, str | None]]:
    return [(c.action, c.name, c.remote_id) for c in changes]


# -- assistants ------------------------------------------------------------------------------


def test_empty_target_creates_everything():
    result = run_plan([asst("a"), asst("b")])
    assert actions(result.assistants) == [("create", "a", None), ("create", "b", None)]
    assert [c.kind for c in result.changes] == ["assistant", "assistant"]
    assert result.files == [] and result.stores == [] and result.unmanaged == []


def test_matching_remote_is_unchanged():
    a = asst(temperature=0.3, metadata=(("owner", "team-a"),))
    result = run_plan([a], RemoteState(assistants=[remote(a)]))
    assert actions(result.assistants) == [("unchanged", "tutor", "asst_1")]
    assert result.changes == []


def test_edited_yaml_is_an_update_with_field_diffs():
    old = asst(temperature=0.3)
    new = replace(
        old,
        model="gpt-4.1",
        instructions="Be kind.\nBe thorough.",
        temperature=0.7,
        tools=(Tool("code_interpreter"),),
    )
    result = run_plan([new], RemoteState(assistants=[remote(old)]))
    (change,) = result.assistants
    assert (change.action, change.remote_id, change.drift, change.reason) == (
        "update",
        "asst_1",
        False,
        "",
    )
    diffs = {d.field: (d.old, d.new) for d in change.diffs}
    assert set(diffs) == {"model", "instructions", "temperature", "tools", "metadata"}
    assert diffs["model"] == ("gpt-4o", "gpt-4.1")
    assert diffs["temperature"] == (0.3, 0.7)
    assert diffs["tools"] == ([], [{"type": "code_interpreter"}])
    assert diffs["metadata"][0][META_HASH] == old.fingerprint()
    assert diffs["metadata"][1][META_HASH] == new.fingerprint()


@pytest.mark.parametrize(
    "edit, field",
    [
        ({"temperature": 1.5}, "temperature"),
        ({"instructions": "Edited in the dashboard."}, "instructions"),
        ({"model": "gpt-3.5-turbo"}, "model"),
        ({"tools": [{"type": "code_interpreter"}]}, "tools"),
        ({"description": "someone wrote this"}, "description"),
        ({"response_format": {"type": "json_object"}}, "response_format"),
    ],
)
def test_remote_edited_behind_orchs_back_is_drift(edit, field):
    a = asst()
    result = run_plan([a], RemoteState(assistants=[remote(a, **edit)]))
    (change,) = result.assistants
    assert change.action == "update" and change.drift
    assert change.reason == "changed outside orch"
    assert [d.field for d in change.diffs] == [field]


def test_edited_user_metadata_is_drift_too():
    a = asst(metadata=(("owner", "team-a"),))
    meta = {**sync.desired_fields(a, P)["metadata"], "owner": "mallory"}
    (change,) = run_plan([a], RemoteState(assistants=[remote(a, metadata=meta)])).assistants
    assert change.action == "update" and change.drift
    assert [d.field for d in change.diffs] == ["metadata"]


@pytest.mark.parametrize(
    "declared, overrides",
    [
        ({}, {"temperature": None, "top_p": None}),  # server leaves defaults unset
        ({}, {"response_format": None}),
        ({}, {"response_format": "auto"}),
        ({"response_format": "auto"}, {"response_format": None}),
        ({"response_format": "text"}, {"response_format": {"type": "text"}}),
        ({"temperature": 1.0, "top_p": 1.0}, {"temperature": None, "top_p": None}),
        ({"instructions": None, "description": None}, {"instructions": "", "description": None}),
        ({"temperature": 1}, {"temperature": 1.0}),
        # servers fill in file_search defaults the YAML does not mention
        (
            {"tools": (Tool("file_search"),)},
            {
                "tools": [
                    {
                        "type": "file_search",
                        "file_search": {
                            "max_num_results": 20,
                            "ranking_options": {"ranker": "auto", "score_threshold": 0},
                        },
                    }
                ]
            },
        ),
        (
            {"tools": (Tool("file_search", options=(("max_num_results", 5),)),)},
            {
                "tools": [
                    {
                        "type": "file_search",
                        "file_search": {
                            "max_num_results": 5,
                            "ranking_options": {"ranker": "auto", "score_threshold": 0},
                        },
                    }
                ]
            },
        ),
        # strict: false and absent mean the same
        (
            {
                "tools": (
                    Tool("function", function=FunctionTool("f", parameters={"type": "object"})),
                )
            },
            {
                "tools": [
                    {
                        "type": "function",
                        "function": {
                            "name": "f",
                            "parameters": {"type": "object"},
                            "strict": False,
                            "description": None,
                        },
                    }
                ]
            },
        ),
    ],
)
def test_server_defaults_are_normalised(declared, overrides):
    a = asst(**declared)
    result = run_plan([a], RemoteState(assistants=[remote(a, **overrides)]))
    assert actions(result.assistants) == [("unchanged", "tutor", "asst_1")]


def test_a_changed_file_search_option_is_a_diff():
    a = asst(tools=(Tool("file_search", options=(("max_num_results", 5),)),))
    served = [{"type": "file_search", "file_search": {"max_num_results": 20}}]
    (change,) = run_plan([a], RemoteState(assistants=[remote(a, tools=served)])).assistants
    assert change.action == "update" and change.drift
    assert change.diffs[0].old == [{"type": "file_search", "file_search": {"max_num_results": 20}}]


def test_duplicates_converge_to_the_oldest_one():
    a = asst()
    first, second = remote(a, "asst_old", 100), remote(a, "asst_new", 200)
    result = run_plan([a], RemoteState(assistants=[second, first]))
    assert actions(result.assistants) == [
        ("delete", "tutor", "asst_new"),
        ("unchanged", "tutor", "asst_old"),
    ]
    assert (
        result.assistants[0].reason
        == "duplicate of asst_old (two managed objects claimed one name)"
    )
    assert len(result.changes) == 1


def test_duplicates_keep_the_one_matching_the_yaml():
    old, new = asst(instructions="v1"), asst(instructions="v2")
    stale, current = remote(old, "asst_a", 100), remote(new, "asst_b", 200)
    result = run_plan([new], RemoteState(assistants=[stale, current]))
    assert actions(result.assistants) == [
        ("delete", "tutor", "asst_a"),
        ("unchanged", "tutor", "asst_b"),
    ]
    assert "duplicate of asst_b" in result.assistants[0].reason


def test_undeclared_managed_assistant_is_only_deleted_with_prune():
    kept, gone = asst("kept"), asst("gone")
    state = RemoteState(assistants=[remote(kept, "asst_k"), remote(gone, "asst_g")])

    without = run_plan([kept], state)
    assert actions(without.assistants) == [
        ("unchanged", "kept", "asst_k"),
        ("unchanged", "gone", "asst_g"),
    ]
    assert without.assistants[1].reason == "no longer declared; --prune deletes it"
    assert without.changes == []

    with_prune = run_plan([kept], state, prune=True)
    assert actions(with_prune.assistants) == [
        ("unchanged", "kept", "asst_k"),
        ("delete", "gone", "asst_g"),
    ]
    assert with_prune.assistants[1].reason == "no longer declared"


@pytest.mark.parametrize("prune", [False, True])
def test_unmanaged_assistants_are_listed_and_never_planned(prune):
    a = asst("tutor")
    state = RemoteState(
        assistants=[
            unmanaged("asst_plain", "tutor"),  # same display name, no tags
            unmanaged("asst_other", "tutor", orch_project="someone-else", orch_name="tutor"),
            unmanaged("asst_nameless", "x", orch_project=P),  # our project but no orch_name
        ]
    )
    result = run_plan([a], state, prune=prune)
    assert actions(result.assistants) == [("create", "tutor", None)]
    assert [u.id for u in result.unmanaged] == ["asst_plain", "asst_other", "asst_nameless"]
    assert all(c.remote_id is None for c in result.changes)


def test_adopt_takes_over_an_unmanaged_assistant():
    a = asst("imported")
    hand_made = remote(a, "asst_u", metadata={"owner": "x"})
    result = run_plan(
        [a], RemoteState(assistants=[hand_made, unmanaged("asst_v")]), adopt={"imported": "asst_u"}
    )
    (change,) = result.assistants
    assert (change.action, change.remote_id, change.drift, change.reason) == (
        "update",
        "asst_u",
        False,
        "adopting an unmanaged assistant",
    )
    assert [d.field for d in change.diffs] == ["metadata"]
    assert [u.id for u in result.unmanaged] == ["asst_v"]


# -- files -----------------------------------------------------------------------------------

CSV = local("data/sales.csv", b"a,b\n1,2\n")
CSV2 = local("data/sales.csv", b"a,b\n1,3\n")
PDF = local("docs/scale.pdf", b"%PDF-1.4 scale")
PDF2 = local("docs/more.pdf", b"%PDF-1.4 more")


def test_new_content_is_uploaded_once():
    a = asst("a", tools=(Tool("code_interpreter"),), files=(("code_interpreter", (CSV,)),))
    b = asst("b", tools=(Tool("code_interpreter"),), files=(("code_interpreter", (CSV,)),))
    result = run_plan([a, b])
    assert actions(result.files) == [("create", "data/sales.csv", None)]
    assert result.files[0].reason == f"sha256 {CSV.sha256[:16]}…, {CSV.size} bytes"
    assert result.uploads == {CSV.sha256[:16]: CSV}


def test_uploaded_content_is_found_by_name_alone():
    a = asst(tools=(Tool("code_interpreter"),), files=(("code_interpreter", (CSV,)),))
    state = RemoteState(
        assistants=[remote(a, file_ids={CSV.sha256[:16]: "file-1"})], files=[rfile(CSV, "file-1")]
    )
    result = run_plan([a], state)
    assert result.changes == []
    assert actions(result.files) == []


def test_changed_content_is_reuploaded_and_the_stale_upload_deleted():
    old = asst(tools=(Tool("code_interpreter"),), files=(("code_interpreter", (CSV,)),))
    new = replace(old, files=(("code_interpreter", (CSV2,)),))
    state = RemoteState(
        assistants=[remote(old, file_ids={CSV.sha256[:16]: "file-1"})], files=[rfile(CSV, "file-1")]
    )
    result = run_plan([new], state)
    assert actions(result.files) == [
        ("create", "data/sales.csv", None),
        ("delete", rfile(CSV, "file-1").filename, "file-1"),
    ]
    assert result.files[1].reason == "content no longer declared"
    (change,) = result.assistants
    assert change.action == "update" and not change.drift
    diffs = {d.field: (d.old, d.new) for d in change.diffs}
    assert diffs["tool_resources"] == (
        {"code_interpreter": [CSV.sha256[:16]]},
        {"code_interpreter": [CSV2.sha256[:16]]},
    )


def test_duplicate_uploads_keep_the_oldest():
    a = asst(tools=(Tool("code_interpreter"),), files=(("code_interpreter", (CSV,)),))
    state = RemoteState(
        assistants=[remote(a, file_ids={CSV.sha256[:16]: "file-a"})],
        files=[rfile(CSV, "file-b", 200), rfile(CSV, "file-a", 100)],
    )
    result = run_plan([a], state)
    assert actions(result.files) == [("delete", rfile(CSV, "file-b").filename, "file-b")]
    assert result.files[0].reason == "duplicate upload"
    assert actions(result.assistants) == [("unchanged", "tutor", "asst_1")]


def test_assistant_pointing_at_a_duplicate_upload_is_repointed():
    """The duplicate is deleted, so an assistant using it must move to the kept copy."""
    a = asst(tools=(Tool("code_interpreter"),), files=(("code_interpreter", (CSV,)),))
    state = RemoteState(
        assistants=[remote(a, file_ids={CSV.sha256[:16]: "file-b"})],
        files=[rfile(CSV, "file-a", 100), rfile(CSV, "file-b", 200)],
    )
    result = run_plan([a], state)
    assert actions(result.files) == [("delete", rfile(CSV, "file-b").filename, "file-b")]
    (change,) = result.assistants
    assert change.action == "update" and [d.field for d in change.diffs] == ["tool_resources"]


def test_foreign_files_are_never_planned():
    a = asst()
    state = RemoteState(
        files=[
            RemoteFile("file-x", "report.pdf", 10, "assistants"),
            rfile(CSV, "file-y", project="other"),
            RemoteFile("file-z", f"orch-{P}-not-a-hash-x.csv", 10, "assistants"),
        ]
    )
    assert run_plan([a], state).files == []


def test_stale_uploads_survive_while_an_undeclared_assistant_may_use_them():
    gone = asst("gone", tools=(Tool("code_interpreter"),), files=(("code_interpreter", (CSV,)),))
    state = RemoteState(
        assistants=[remote(gone, "asst_g", file_ids={CSV.sha256[:16]: "file-1"})],
        files=[rfile(CSV, "file-1")],
    )
    assert run_plan([asst("other")], state).files == []
    pruned = run_plan([asst("other")], state, prune=True)
    assert actions(pruned.files) == [("delete", rfile(CSV, "file-1").filename, "file-1")]


def test_file_id_not_known_to_the_target_is_a_diff():
    a = asst(tools=(Tool("code_interpreter"),), files=(("code_interpreter", (CSV,)),))
    res = {"code_interpreter": {"file_ids": ["file-unknown"]}}
    state = RemoteState(
        assistants=[remote(a, file_ids={CSV.sha256[:16]: "file-1"}, tool_resources=res)],
        files=[rfile(CSV, "file-1")],
    )
    (change,) = run_plan([a], state).assistants
    assert change.action == "update" and change.drift
    assert change.diffs[0].old == {"code_interpreter": ["id:file-unknown"]}


# -- vector stores ---------------------------------------------------------------------------


def searcher(*files: LocalFile, name: str = "tutor") -> Assistant:
    return asst(name, tools=(Tool("file_search"),), files=(("file_search", tuple(files)),))


def synced(a: Assistant, store: RemoteVectorStore, *uploads: RemoteFile) -> RemoteState:
    ids = {sync.parse_managed_filename(P, f.filename): f.id for f in uploads}
    return RemoteState(
        assistants=[remote(a, file_ids=ids, store_ids={a.name: store.id})],
        files=list(uploads),
        vector_stores=[store],
    )


def test_file_search_files_get_a_vector_store():
    result = run_plan([searcher(PDF, PDF2)])
    assert actions(result.stores) == [("create", f"orch-{P}-tutor", None)]
    assert result.stores[0].reason == "2 file(s)"
    assert [c.name for c in result.files] == ["docs/more.pdf", "docs/scale.pdf"]


def test_indexed_store_with_matching_files_is_unchanged():
    a = searcher(PDF, PDF2)
    state = synced(
        a, rstore("tutor", (PDF, PDF2), "vs_1"), rfile(PDF, "file-1"), rfile(PDF2, "file-2")
    )
    result = run_plan([a], state)
    assert actions(result.stores) == [("unchanged", f"orch-{P}-tutor", "vs_1")]
    assert result.changes == []


def test_declared_file_change_updates_the_store():
    old, new = searcher(PDF), searcher(PDF, PDF2)
    state = synced(old, rstore("tutor", (PDF,), "vs_1"), rfile(PDF, "file-1"))
    result = run_plan([new], state)
    (store,) = result.stores
    assert (store.action, store.remote_id, store.drift, store.reason) == (
        "update",
        "vs_1",
        False,
        "declared files changed",
    )
    assert actions(result.files) == [("create", "docs/more.pdf", None)]
    (change,) = result.assistants
    assert change.action == "update"
    assert "tool_resources" in [d.field for d in change.diffs]


@pytest.mark.parametrize("counts", [{"files_total": 1}, {"files_failed": 1}])
def test_store_whose_files_went_missing_or_failed_is_repaired(counts):
    a = searcher(PDF, PDF2)
    state = synced(
        a,
        rstore("tutor", (PDF, PDF2), "vs_1", **counts),
        rfile(PDF, "file-1"),
        rfile(PDF2, "file-2"),
    )
    (store,) = run_plan([a], state).stores
    assert (store.action, store.drift, store.reason) == (
        "update",
        True,
        "files changed outside orch",
    )


def test_store_without_declared_files_is_deleted():
    old, new = searcher(PDF), asst()
    state = synced(old, rstore("tutor", (PDF,), "vs_1"), rfile(PDF, "file-1"))
    result = run_plan([new], state)
    assert actions(result.stores) == [("delete", f"orch-{P}-tutor", "vs_1")]
    assert result.stores[0].reason == "no file_search files declared"
    assert actions(result.files) == [("delete", rfile(PDF, "file-1").filename, "file-1")]


def test_duplicate_stores_keep_the_oldest():
    a = searcher(PDF)
    state = synced(a, rstore("tutor", (PDF,), "vs_a", 100), rfile(PDF, "file-1"))
    state.vector_stores.append(rstore("tutor", (PDF,), "vs_b", 200))
    result = run_plan([a], state)
    assert actions(result.stores) == [
        ("delete", f"orch-{P}-tutor", "vs_b"),
        ("unchanged", f"orch-{P}-tutor", "vs_a"),
    ]
    assert result.stores[0].reason == "duplicate of vs_a"


def test_store_of_an_undeclared_assistant_follows_prune():
    gone = searcher(PDF, name="gone")
    state = synced(gone, rstore("gone", (PDF,), "vs_g"), rfile(PDF, "file-1"))
    assert run_plan([asst("other")], state).stores == []
    pruned = run_plan([asst("other")], state, prune=True)
    assert actions(pruned.stores) == [("delete", f"orch-{P}-gone", "vs_g")]
    assert pruned.stores[0].reason == "its assistant is gone"


def test_orphan_store_without_any_assistant_is_deleted():
    state = RemoteState(vector_stores=[rstore("vanished", (PDF,), "vs_o")])
    result = run_plan([asst()], state)
    assert actions(result.stores) == [("delete", f"orch-{P}-vanished", "vs_o")]


# -- rendering -------------------------------------------------------------------------------


def test_render_shows_a_unified_diff_drift_and_unmanaged():
    old = asst("writer", instructions="line one\nline two\nline three")
    new = replace(old, instructions="line one\nline 2\nline three", temperature=0.5)
    drifted = asst("drifty")
    state = RemoteState(
        assistants=[
            remote(old, "asst_w"),
            remote(drifted, "asst_d", temperature=1.7),
            unmanaged("asst_u", "hand-made"),
        ]
    )
    lines = sync.render(run_plan([new, drifted], state))
    text = "\n".join(lines)
    assert lines[0] == f"Plan for project {P!r} on test target:"
    assert "  ~ update    assistant writer" in lines
    assert "        --- remote" in lines and "        +++ local" in lines
    assert "        -line two" in lines and "        +line 2" in lines
    assert "      temperature: 1.0 → 0.5" in lines
    assert any(line.startswith("      metadata.orch_hash: ") for line in lines)
    assert "  ~ update    assistant drifty  (changed outside orch)" in lines
    assert "      temperature: 1.7 → 1.0" in lines
    assert "unmanaged: 1 assistant(s) not tagged with project 'proj', left alone: hand-made" in text
    assert lines[-1].startswith("Plan: 0 to create, 2 to update, 0 to delete, 0 unchanged")
    assert "No changes" not in text


def test_render_no_changes_and_verbose():
    a = asst()
    state = RemoteState(assistants=[remote(a)])
    quiet = sync.render(run_plan([a], state))
    assert quiet[-1] == "No changes: the target matches the YAML."
    assert not any("assistant tutor" in line for line in quiet)
    verbose = sync.render(run_plan([a], state), verbose=True)
    assert "  = unchanged assistant tutor" in verbose


def test_render_lists_not_declared_and_long_values_are_cut():
    long_model = "m" * 200
    a = asst(model=long_model)
    state = RemoteState(assistants=[remote(asst(), "asst_1"), remote(asst("gone"), "asst_g")])
    lines = sync.render(run_plan([a], state))
    assert "  = unchanged assistant gone  (no longer declared; --prune deletes it)" in lines
    model_line = next(line for line in lines if line.startswith("      model:"))
    assert model_line.endswith("...") and len(model_line) < 200


def test_to_json_shape():
    old = asst()
    new = replace(
        old,
        instructions="new",
        tools=(Tool("code_interpreter"),),
        files=(("code_interpreter", (CSV,)),),
    )
    state = RemoteState(assistants=[remote(old), unmanaged("asst_u", "hand-made")])
    data = sync.plan(P, "t", [new, asst("fresh")], state).to_json()
    assert json.loads(json.dumps(data)) == data
    assert set(data) == {
        "schema_version",
        "project",
        "target",
        "changes",
        "assistants",
        "vector_stores",
        "files",
        "unmanaged",
    }
    assert (data["schema_version"], data["project"], data["target"], data["changes"]) == (
        1,
        P,
        "t",
        3,
    )
    update, create = data["assistants"]
    assert set(update) == {"action", "kind", "name", "id", "drift", "reason", "diff"}
    assert (update["action"], update["id"], update["drift"], update["reason"]) == (
        "update",
        "asst_1",
        False,
        None,
    )
    by_field = {d["field"]: d for d in update["diff"]}
    assert by_field["instructions"] == {
        "field": "instructions",
        "remote": old.instructions,
        "local": "new",
    }
    assert (create["action"], create["id"], create["diff"]) == ("create", None, [])
    assert data["files"] == [
        {
            "action": "create",
            "kind": "file",
            "name": "data/sales.csv",
            "id": None,
            "drift": False,
            "reason": f"sha256 {CSV.sha256[:16]}…, {CSV.size} bytes",
            "diff": [],
        }
    ]
    assert data["vector_stores"] == []
    assert data["unmanaged"] == [{"id": "asst_u", "name": "hand-made"}]


def test_plan_is_pure_and_repeatable():
    a = searcher(PDF)
    state = synced(a, rstore("tutor", (PDF,), "vs_1"), rfile(PDF, "file-1"))
    before = repr(state)
    first, second = run_plan([a], state, prune=True), run_plan([a], state, prune=True)
    assert first.to_json() == second.to_json()
    assert repr(state) == before


def test_assistant_pointing_at_a_duplicate_store_is_repointed():
    a = searcher(PDF)
    state = synced(a, rstore("tutor", (PDF,), "vs_b", 200), rfile(PDF, "file-1"))
    state.vector_stores.append(rstore("tutor", (PDF,), "vs_a", 100))
    result = run_plan([a], state)
    assert actions(result.stores) == [
        ("delete", f"orch-{P}-tutor", "vs_b"),
        ("unchanged", f"orch-{P}-tutor", "vs_a"),
    ]
    (change,) = result.assistants
    assert change.action == "update" and [d.field for d in change.diffs] == ["tool_resources"]


def test_same_content_twice_is_one_upload_and_one_store_file():
    copy = local("docs/copy-of-scale.pdf", b"%PDF-1.4 scale")
    a = searcher(PDF, copy)
    assert [c.name for c in run_plan([a]).files] == ["docs/scale.pdf"]
    state = synced(a, rstore("tutor", (PDF, copy), "vs_1", files_total=1), rfile(PDF, "file-1"))
    assert run_plan([a], state).changes == []
