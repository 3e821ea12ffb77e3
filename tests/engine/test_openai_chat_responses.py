"""The openai-chat model answering the Responses API, against the strict upstream double."""

from __future__ import annotations

import json
import time

import pytest
from openai import OpenAI

from tests.engine.upstream import StrictUpstream, tokens_of

pytestmark = pytest.mark.usefixtures("strict_double")


@pytest.fixture(scope="module")
def client(chat_client):
    """This module's tests call it ``client``."""
    return chat_client


WEATHER = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]


def test_responses_become_chat_requests(double: StrictUpstream, client: OpenAI):
    first = client.responses.create(
        model="llama3", instructions="Be brief.", input="weather twice?", tools=WEATHER
    )
    calls = [o for o in first.output if o.type == "function_call"]
    assert [json.loads(c.arguments)["city"] for c in calls] == ["Rome", "Oslo"]
    usage = double.exchanges[-1].usage
    assert (first.usage.input_tokens, first.usage.output_tokens) == usage
    outputs = [
        {"type": "function_call_output", "call_id": c.call_id, "output": f"sun {i}"}
        for i, c in enumerate(calls)
    ]
    second = client.responses.create(
        model="llama3", input=outputs, tools=WEATHER, previous_response_id=first.id
    )
    assert second.output_text == "tools said: sun 0, sun 1"
    notes = client.files.create(file=("notes.txt", b"Tomatoes need sun."), purpose="user_data")
    fmt = {"type": "json_schema", "name": "a", "schema": {"type": "object"}}
    third = client.responses.create(
        model="llama3",
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "and now?"},
                    {"type": "input_file", "file_id": notes.id},
                ],
            }
        ],
        previous_response_id=second.id,
        text={"format": fmt},
    )
    assert third.status == "completed"
    sent = double.requests[-1]
    assert sent["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "a", "schema": {"type": "object"}},
    }
    messages = sent["messages"]
    assert [m["role"] for m in messages] == [
        "user",
        "assistant",
        "tool",
        "tool",
        "assistant",
        "user",
    ]
    assert messages[1]["tool_calls"][0]["id"] == calls[0].call_id
    assert messages[1]["content"] == ""
    assert messages[4]["content"] == "tools said: sun 0, sun 1"
    assert messages[5]["content"] == [
        {"type": "text", "text": "and now?"},
        {"type": "text", "text": "[file notes.txt]\nTomatoes need sun."},
    ]


def test_output_text_streams_token_by_token(double: StrictUpstream, client: OpenAI):
    double.token_delay = 0.01
    deltas, final = [], None
    stream = client.responses.create(
        model="llama3", input="an essay", max_output_tokens=25, stream=True
    )
    for event in stream:
        if event.type == "response.output_text.delta":
            deltas.append(event.delta)
        elif event.type == "response.incomplete":
            final = event.response
    assert len(deltas) == 25
    assert final.incomplete_details.reason == "max_output_tokens"
    assert double.requests[-1]["max_completion_tokens"] == 25
    assert "".join(deltas) == final.output_text and len(tokens_of(final.output_text)) == 25


def test_cancelling_a_background_response_closes_the_upstream(
    double: StrictUpstream, client: OpenAI
):
    double.token_delay = 0.05
    before = len(double.exchanges)
    response = client.responses.create(model="llama3", input="essay", background=True)
    deadline = time.monotonic() + 5
    while not (len(double.exchanges) > before and double.exchanges[before].tokens >= 3):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    exchange = double.exchanges[before]
    assert client.responses.cancel(response.id).status == "cancelled"
    deadline = time.monotonic() + 3
    while not exchange.aborted and time.monotonic() < deadline:
        time.sleep(0.02)
    assert exchange.aborted and exchange.tokens < 100
    [kept] = client.responses.retrieve(response.id).output  # the text so far stays
    assert kept.status == "incomplete" and kept.content[0].text.startswith("word0 word1")
