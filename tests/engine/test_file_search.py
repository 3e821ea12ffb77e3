"""file_search over vector stores (txt + PDF), citations, file batches and file_counts."""

from __future__ import annotations

import time

from fpdf import FPDF
from openai import OpenAI
from openai.types import VectorStore
from openai.types.vector_stores import VectorStoreFile, VectorStoreFileBatch

from orch.engine.outputs import MarkerFilter
from orch.engine.retrieval import Ranking, SearchIndex, chunk_sizes, count_tokens, split_chunks


def make_pdf(text: str) -> bytes:
    pdf = FPDF()
    pdf.add_page()
    pdf.set_font("Helvetica", size=12)
    pdf.multi_cell(0, 8, text)
    return bytes(pdf.output())


def upload(client: OpenAI, name: str, content: bytes):
    return client.files.create(file=(name, content), purpose="assistants")


def test_file_search_cites_pdf_and_txt(client: OpenAI, assistant):
    pdf = upload(
        client,
        "trial.pdf",
        make_pdf("PEDro trial report. Random allocation was used. Blinding of assessors."),
    )
    txt = upload(client, "notes.txt", b"Unrelated notes about gardening and tomatoes.")
    store = client.vector_stores.create(name="papers", file_ids=[pdf.id, txt.id])
    VectorStore.model_validate(store.model_dump())
    store = client.vector_stores.retrieve(store.id)
    assert store.file_counts.total == 2

    helper = client.beta.assistants.create(
        model="gpt-4o",
        name="pedro",
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}},
    )
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "Rate this PEDro paper: random allocation?"}]
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=helper.id, poll_interval_ms=20
    )
    assert run.status == "completed"
    reply = client.beta.threads.messages.list(thread_id=thread.id).data[0]
    text = reply.content[0].text
    assert text.value.startswith("According to the paper 【0:0†trial.pdf】")
    [note] = text.annotations
    assert note.type == "file_citation" and note.file_citation.file_id == pdf.id
    assert text.value[note.start_index : note.end_index] == note.text == "【0:0†trial.pdf】"

    steps = client.beta.threads.runs.steps.list(
        thread_id=thread.id,
        run_id=run.id,
        order="asc",
        include=["step_details.tool_calls[*].file_search.results[*].content"],
    ).data
    call = steps[0].step_details.tool_calls[0]
    assert call.type == "file_search"
    assert call.file_search.results[0].file_name == "trial.pdf"
    assert "Random allocation" in call.file_search.results[0].content[0].text
    plain = client.beta.threads.runs.steps.list(
        thread_id=thread.id, run_id=run.id, order="asc"
    ).data
    assert plain[0].step_details.tool_calls[0].file_search.results[0].content is None


def test_attachment_file_search_appends_citations(client: OpenAI, assistant):
    doc = upload(
        client, "manual.md", b"# Manual\nTo search the archive, press the blue button twice."
    )
    thread = client.beta.threads.create(
        messages=[
            {
                "role": "user",
                "content": "search: how do I use the blue button?",
                "attachments": [{"file_id": doc.id, "tools": [{"type": "file_search"}]}],
            }
        ]
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20
    )
    assert run.status == "completed"
    text = client.beta.threads.messages.list(thread_id=thread.id).data[0].content[0].text
    assert text.value.startswith("[scripted] Found 1 result(s).")
    assert [a.file_citation.file_id for a in text.annotations] == [doc.id]


def test_vector_store_search_endpoint(client: OpenAI):
    doc = upload(
        client, "facts.txt", b"Otters hold hands while sleeping so they do not drift apart."
    )
    store = client.vector_stores.create(name="facts", file_ids=[doc.id])
    page = client.vector_stores.search(store.id, query="why do otters hold hands")
    assert page.data[0].file_id == doc.id and page.data[0].filename == "facts.txt"


def test_file_batches_with_counts_and_statuses(client: OpenAI):
    good = [upload(client, f"doc{i}.txt", f"document number {i}".encode()) for i in range(3)]
    bad = upload(client, "blob.bin", b"\x00\x01\x02binary")
    store = client.vector_stores.create(name="batch")
    batch = client.vector_stores.file_batches.create_and_poll(
        vector_store_id=store.id, file_ids=[f.id for f in good] + [bad.id], poll_interval_ms=20
    )
    VectorStoreFileBatch.model_validate(batch.model_dump())
    assert batch.status == "completed"
    counts = batch.file_counts
    assert (counts.total, counts.completed, counts.failed, counts.in_progress) == (4, 3, 1, 0)
    files = client.vector_stores.file_batches.list_files(
        batch_id=batch.id, vector_store_id=store.id
    )
    for f in files.data:
        VectorStoreFile.model_validate(f.model_dump())
    failed = client.vector_stores.file_batches.list_files(
        batch_id=batch.id, vector_store_id=store.id, filter="failed"
    )
    assert [f.id for f in failed.data] == [bad.id]
    assert failed.data[0].last_error.code == "unsupported_file"
    store = client.vector_stores.retrieve(store.id)
    assert (
        store.file_counts.completed == 3 and store.status == "completed" and store.usage_bytes > 0
    )


def test_vector_store_crud_and_files(client: OpenAI):
    doc = upload(client, "a.txt", b"alpha beta gamma")
    store = client.vector_stores.create(name="crud", metadata={"team": "a"})
    vsf = client.vector_stores.files.create_and_poll(
        vector_store_id=store.id, file_id=doc.id, poll_interval_ms=20
    )
    assert vsf.status == "completed" and vsf.vector_store_id == store.id and vsf.id == doc.id
    listed = client.vector_stores.files.list(vector_store_id=store.id)
    assert [f.id for f in listed.data] == [doc.id]
    content = client.vector_stores.files.content(file_id=doc.id, vector_store_id=store.id)
    assert [c.text for c in content] == ["alpha beta gamma"]
    store = client.vector_stores.update(store.id, name="renamed", metadata={"team": "b"})
    assert store.name == "renamed" and store.metadata == {"team": "b"}
    assert any(s.id == store.id for s in client.vector_stores.list())
    assert client.vector_stores.files.delete(file_id=doc.id, vector_store_id=store.id).deleted
    assert client.vector_stores.retrieve(store.id).file_counts.total == 0
    assert client.vector_stores.delete(store.id).deleted


def test_files_list_delete_and_content(client: OpenAI):
    f = upload(client, "x.csv", b"a,b\n1,2\n")
    assert client.files.content(f.id).read() == b"a,b\n1,2\n"
    assert f.id in [x.id for x in client.files.list(purpose="assistants")]
    assert f.id not in [x.id for x in client.files.list(purpose="vision")]
    assert client.files.delete(f.id).deleted
    time.sleep(0)
    assert f.id not in [x.id for x in client.files.list()]


def test_static_chunking_by_tokens():
    words = " ".join(f"w{i:03d}" for i in range(1000))  # "w" and 3 digits: 2 tokens a word
    chunks = split_chunks(words)
    assert [count_tokens(c) for c in chunks] == [800, 800, 800, 800]
    # each window starts 400 tokens (200 words) after the one before; the last ends the text
    assert [c.split()[0] for c in chunks] == ["w000", "w200", "w400", "w600"]
    assert chunks[-1].endswith("w999")
    small = split_chunks(words, 100, 0)
    assert len(small) == 20 and small[1].startswith("w050 ")
    assert chunk_sizes(
        {"type": "static", "static": {"max_chunk_size_tokens": 100, "chunk_overlap_tokens": 0}}
    ) == (100, 0)
    assert chunk_sizes(None) == (800, 400)
    assert split_chunks("   ") == []


def test_token_count_heuristic_is_close_to_four_characters_a_token():
    text = "The quick brown fox jumps over the lazy dog, twice in 2024. " * 20
    assert 0.8 < count_tokens(text) / (len(text) / 4.3) < 1.2


def test_marker_filter_streams_what_the_whole_text_gives():
    text = "Otters hold hands 【0:0†facts.txt】 while asleep 【0:1†b.md】 ."
    whole = MarkerFilter()
    clean = whole.feed(text) + whole.finish()
    assert clean == "Otters hold hands while asleep ."
    assert whole.positions == [(17, "【0:0†facts.txt】"), (30, "【0:1†b.md】")]
    for size in (1, 2, 3, 7):
        pieces = [text[i : i + size] for i in range(0, len(text), size)]
        streamed = MarkerFilter()
        sent = [streamed.feed(p) for p in pieces] + [streamed.finish()]
        assert "".join(sent) == clean and streamed.positions == whole.positions
        assert all("【" not in s for s in sent)
    ending = MarkerFilter()
    assert ending.feed("See 【1:0†a.txt】 ") + ending.finish() == "See"
    assert ending.positions == [(3, "【1:0†a.txt】")]
    odd = MarkerFilter()
    assert odd.feed("a 【 b") + odd.finish() == "a 【 b"


def test_ranking_reads_both_api_shapes():
    assert Ranking.from_options(None).recorded() == {
        "ranker": "default_2024_08_21",
        "score_threshold": 0.0,
    }
    hybrid = Ranking.from_options(
        {
            "ranker": "auto",
            "score_threshold": 0.2,
            "hybrid_search": {"embedding_weight": 3, "text_weight": 1},
        }
    )
    assert (hybrid.embedding_weight, hybrid.text_weight, hybrid.score_threshold) == (3, 1, 0.2)
    index = SearchIndex([("vs", "f1", 0, "red apples"), ("vs", "f2", 0, "green pears")])
    hits = index.search("apples", 5, {}, hybrid, similarities=[0.0, 1.0])
    assert [(h.file_id, h.score) for h in hits] == [("f2", 0.75), ("f1", 0.25)]
    assert index.search("apples", 5, {}) == index.search("apples", 5, {}, Ranking())
    assert [h.file_id for h in index.search("apples", 5, {})] == ["f1"]
