"""The openai-chat model's hosted tools (file_search, python) against the strict double."""

from __future__ import annotations

import pytest
from openai import OpenAI

from orch.engine.server import start_engine
from tests.engine.upstream import StrictUpstream

pytestmark = pytest.mark.usefixtures("strict_double")


@pytest.fixture(scope="module")
def client(chat_client):
    """This module's tests call it ``client``."""
    return chat_client


WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object"}},
}
OTTERS = b"Otters hold hands while sleeping so they do not drift apart."
INCLUDE = ["step_details.tool_calls[*].file_search.results[*].content"]


def store_of(client: OpenAI, *docs: tuple[str, bytes]) -> str:
    ids = [client.files.create(file=doc, purpose="assistants").id for doc in docs]
    return client.vector_stores.create(name="docs", file_ids=ids).id


def searcher(client: OpenAI, store_id: str, *tools, **file_search):
    return client.beta.assistants.create(
        model="llama3",
        tools=[{"type": "file_search", "file_search": file_search}, *tools],
        tool_resources={"file_search": {"vector_store_ids": [store_id]}},
    )


def ask(client: OpenAI, assistant, text: str):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": text}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20
    )
    return thread, run


def test_file_search_runs_in_the_engine_and_is_cited(double: StrictUpstream, client: OpenAI):
    store = store_of(client, ("facts.txt", OTTERS), ("tea.txt", b"Green tea is brewed cool."))
    thread, run = ask(client, searcher(client, store), "search: why do otters hold hands?")
    assert run.status == "completed", run.last_error
    offered = [t["function"]["name"] for t in double.requests[-2]["tools"]]
    assert offered == ["file_search"]
    steps = client.beta.threads.runs.steps.list(
        thread_id=thread.id, run_id=run.id, order="asc", include=INCLUDE
    ).data
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    call = steps[0].step_details.tool_calls[0]
    assert call.type == "file_search"
    assert call.file_search.ranking_options.ranker == "default_2024_08_21"
    [hit] = call.file_search.results
    assert hit.file_name == "facts.txt" and 0 < hit.score <= 1
    assert hit.content[0].text == OTTERS.decode()
    told = double.requests[-1]["messages"][-1]
    assert told["role"] == "tool" and "【0:0†facts.txt】 Otters hold hands" in told["content"]
    text = client.beta.threads.messages.list(thread_id=thread.id).data[0].content[0].text
    assert text.value.startswith("According to the files, Otters hold hands")
    [note] = text.annotations
    assert text.value[note.start_index : note.end_index] == note.text == "【0:0†facts.txt】"
    assert note.file_citation.file_id == hit.file_id


def test_search_then_client_functions_then_reply(double: StrictUpstream, client: OpenAI):
    store = store_of(client, ("facts.txt", OTTERS))
    helper = searcher(client, store, WEATHER)
    thread, run = ask(client, helper, "search otters, then the weather")
    assert run.status == "requires_action", run.last_error
    calls = run.required_action.submit_tool_outputs.tool_calls
    run = client.beta.threads.runs.submit_tool_outputs_and_poll(
        thread_id=thread.id,
        run_id=run.id,
        tool_outputs=[{"tool_call_id": c.id, "output": "sunny"} for c in calls],
        poll_interval_ms=20,
    )
    assert run.status == "completed", run.last_error
    roles = [m["role"] for m in double.requests[-1]["messages"]]
    assert roles == ["user", "assistant", "tool", "assistant", "tool", "tool"]
    text = client.beta.threads.messages.list(thread_id=thread.id).data[0].content[0].text
    assert text.value.endswith("【0:0†facts.txt】 tools said: sunny, sunny")
    steps = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id, order="asc")
    kinds = [s.step_details.tool_calls[0].type if s.type == "tool_calls" else s.type for s in steps]
    assert kinds == ["file_search", "function", "message_creation"]


def test_ranking_options_and_max_num_results(client: OpenAI):
    docs = [(f"otter{i}.txt", b"otters " * (i + 1) + b"and rivers") for i in range(4)]
    store = store_of(client, *docs)
    thread, run = ask(client, searcher(client, store, max_num_results=2), "search otters")
    steps = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id, order="asc")
    assert len(steps.data[0].step_details.tool_calls[0].file_search.results) == 2
    ranking = {"ranker": "auto", "score_threshold": 0.99}
    thread, run = ask(client, searcher(client, store, ranking_options=ranking), "search otters")
    call = client.beta.threads.runs.steps.list(
        thread_id=thread.id, run_id=run.id, order="asc"
    ).data[0]
    results = call.step_details.tool_calls[0].file_search.results
    assert [r.score for r in results] == [1.0]
    assert call.step_details.tool_calls[0].file_search.ranking_options.score_threshold == 0.99


def test_file_search_in_responses(double: StrictUpstream, client: OpenAI):
    store = store_of(client, ("facts.txt", OTTERS))
    response = client.responses.create(
        model="llama3",
        input="search: otters?",
        tools=[{"type": "file_search", "vector_store_ids": [store]}],
        include=["file_search_call.results"],
    )
    assert response.status == "completed"
    search, message = response.output
    assert search.type == "file_search_call" and search.queries == ["search: otters?"]
    assert search.results[0].filename == "facts.txt" and search.results[0].score > 0
    text = message.content[0]
    assert "【" not in text.text and text.text.startswith("According to the files, Otters")
    [note] = text.annotations
    assert note.type == "file_citation" and note.filename == "facts.txt"
    assert note.index == len(text.text)


def test_hybrid_search_finds_what_keywords_miss(
    double: StrictUpstream, tmp_path, monkeypatch: pytest.MonkeyPatch
):
    docs = [("car.txt", b"The car needs new tyres before winter."), ("tea.txt", b"Brew tea cool.")]
    question = "search: automobile"
    with start_engine(tmp_path / "k.db", model="openai-chat", upstream_base_url=double.url) as e:
        plain = OpenAI(base_url=e.base_url, api_key="x", max_retries=0)
        thread, run = ask(plain, searcher(plain, store_of(plain, *docs)), question)
        steps = plain.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id).data
        assert steps[-1].step_details.tool_calls[0].file_search.results == []
    monkeypatch.setenv("ORCH_EMBEDDINGS_MODEL", "embedder")
    embedded = len(double.embedded)
    with start_engine(tmp_path / "h.db", model="openai-chat", upstream_base_url=double.url) as e:
        hybrid = OpenAI(base_url=e.base_url, api_key="x", max_retries=0)
        thread, run = ask(hybrid, searcher(hybrid, store_of(hybrid, *docs)), question)
        steps = hybrid.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id).data
        results = steps[-1].step_details.tool_calls[0].file_search.results
        assert results[0].file_name == "car.txt" and results[0].score > 0
    chunks, query = double.embedded[embedded:]
    assert sorted(chunks) == sorted(d.decode() for _, d in docs) and query == [question]
