"""A small context window (llama.cpp's n_ctx): tool results are cut to fit, not the run failed.

In `make e2e-llm` (SmolLM2, n_ctx 4096) file_search results overflowed the context and the
upstream's 400 failed the step. The double refuses an overflowing request as llama-cpp-python's
server does; the engine cuts this turn's tool results (oldest first, the last one halved) and
asks again.
"""

from __future__ import annotations

import pytest
from openai import OpenAI

from tests.engine.upstream import StrictUpstream, serving

pytestmark = pytest.mark.usefixtures("strict_double")


@pytest.fixture(scope="module")
def client(chat_client):
    """This module's tests call it ``client``."""
    return chat_client


WINDOW = 600  # the double's tokens: words
DOCUMENT = " ".join(
    f"Pedro fact number {n} says the llama herd grazed field {n}." for n in range(400)
)


@pytest.fixture(scope="module")
def double():
    upstream = StrictUpstream()
    upstream.context_window = WINDOW
    with serving(upstream) as url:
        upstream.url = url
        yield upstream


def run_of(client: OpenAI, text: str, **assistant):
    created = client.beta.assistants.create(model="smollm2", **assistant)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": text}])
    return client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=created.id, poll_interval_ms=20
    )


def test_search_results_that_overflow_the_context_are_cut_until_they_fit(
    double: StrictUpstream, client: OpenAI
):
    doc = client.files.create(file=("pedro.txt", DOCUMENT.encode()), purpose="assistants")
    store = client.vector_stores.create(name="pedro", file_ids=[doc.id])
    seen = len(double.exchanges)
    run = run_of(
        client,
        "search what pedro knows about the herd",
        tools=[{"type": "file_search"}],
        tool_resources={"file_search": {"vector_store_ids": [store.id]}},
    )
    assert run.status == "completed", run.last_error
    exchanges = double.exchanges[seen:]
    refused = [e for e in exchanges if e.status == 400]
    assert refused, "the results should have overflowed the window at first"
    final = exchanges[-1]
    assert final.status == 200
    [result] = [m for m in final.body["messages"] if m["role"] == "tool"]
    assert result["content"].endswith("[… the rest cut to fit the context window]")
    assert "Pedro fact number" in result["content"]  # what fits is kept
    assert double.prompt_tokens(final.body) <= WINDOW


def test_an_overflow_with_nothing_to_cut_fails_the_run_saying_why(client: OpenAI):
    run = run_of(client, "echo " + "word " * (WINDOW + 50))
    assert run.status == "failed"
    assert run.last_error.code == "invalid_prompt"
    assert "does not fit the upstream's context window" in run.last_error.message
    assert "maximum context length is 600 tokens" in run.last_error.message
