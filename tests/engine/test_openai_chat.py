"""The openai-chat model against the strict upstream double (tests/engine/upstream.py)."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

import httpx2
import pytest
from openai import OpenAI

from orch.engine.server import start_engine
from tests.engine.upstream import StrictUpstream, tokens_of

pytestmark = pytest.mark.usefixtures("strict_double")

WEATHER = {
    "type": "function",
    "function": {"name": "get_weather", "parameters": {"type": "object"}},
}
STEP = {"type": "function", "function": {"name": "step", "parameters": {"type": "object"}}}


def run_once(client: OpenAI, text: str, **assistant):
    asst = client.beta.assistants.create(model=assistant.pop("model", "llama3"), **assistant)
    thread = client.beta.threads.create(messages=[{"role": "user", "content": text}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=asst.id, poll_interval_ms=20
    )
    return thread, run


def reply_of(client: OpenAI, thread_id: str):
    return client.beta.threads.messages.list(thread_id=thread_id).data[0]


def test_the_double_rejects_what_llama_cpp_rejects(double: StrictUpstream):
    base = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
    call = {"id": "c1", "type": "function", "function": {"name": "f", "arguments": "{}"}}
    bad = [
        {**base, "messages": [{"role": "assistant", "content": None, "tool_calls": [call]}]},
        {**base, "messages": [{"role": "user", "content": "x"}, {"role": "tool", "content": "1"}]},
        {**base, "messages": [{"role": "assistant", "content": "", "tool_calls": [call]}]},
        {**base, "messages": ["role", "content", "tool_calls"]},
        {**base, "max_completion_tokens": "five"},
        {**base, "tool_choice": "auto"},
        {**base, "invented": True},
    ]
    with httpx2.Client() as http:
        for body in bad:
            res = http.post(double.url + "/chat/completions", json=body)
            assert res.status_code == 400, body
            assert res.json()["error"]["message"]
        assert http.post(double.url + "/chat/completions", json=base).status_code == 200
    assert len(double.rejected) >= len(bad)
    del double.rejected[-len(bad) :]


def test_thread_becomes_chat_messages(double: StrictUpstream, chat_client: OpenAI):
    thread, run = run_once(chat_client, "hello", instructions="Be brief.", temperature=0.3)
    assert run.status == "completed"
    exchange = double.exchanges[-1]
    assert (run.usage.prompt_tokens, run.usage.completion_tokens) == exchange.usage
    reply = reply_of(chat_client, thread.id)
    assert reply.content[0].text.value == "echo: hello"
    assert reply.metadata == {}
    sent = exchange.body
    assert sent["model"] == "llama3" and sent["temperature"] == 0.3
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello"},
    ]


def test_function_tools_round_trip(double: StrictUpstream, chat_client: OpenAI):
    thread, run = run_once(chat_client, "weather in two cities?", tools=[WEATHER])
    assert run.status == "requires_action"
    assert double.requests[-1]["tools"][0]["function"]["name"] == "get_weather"
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert [json.loads(c.function.arguments)["city"] for c in calls] == ["Rome", "Oslo"]
    run = chat_client.beta.threads.runs.submit_tool_outputs_and_poll(
        thread_id=thread.id,
        run_id=run.id,
        tool_outputs=[{"tool_call_id": c.id, "output": f"sun in {i}"} for i, c in enumerate(calls)],
        poll_interval_ms=20,
    )
    assert run.status == "completed"
    sent = double.requests[-1]["messages"]
    assert sent[-3]["role"] == "assistant" and len(sent[-3]["tool_calls"]) == 2
    assert sent[-3]["content"] == ""  # never null: llama.cpp rejects it
    assert [m["role"] for m in sent[-2:]] == ["tool", "tool"]
    assert (
        reply_of(chat_client, thread.id).content[0].text.value == "tools said: sun in 0, sun in 1"
    )


@pytest.mark.parametrize("llama_cpp_python", [False, True])
def test_function_calls_over_many_rounds(
    double: StrictUpstream, chat_client: OpenAI, llama_cpp_python: bool
):
    double.llama_cpp_python_chunks = llama_cpp_python  # names repeated in every delta
    thread, run = run_once(chat_client, "chain 4 please", tools=[STEP, WEATHER])
    for n in range(1, 5):
        assert run.status == "requires_action", run.last_error
        [call] = run.required_action.submit_tool_outputs.tool_calls
        assert json.loads(call.function.arguments) == {"n": n}
        run = chat_client.beta.threads.runs.submit_tool_outputs_and_poll(
            thread_id=thread.id,
            run_id=run.id,
            tool_outputs=[{"tool_call_id": call.id, "output": f"done {n}"}],
            poll_interval_ms=20,
        )
    assert run.status == "completed"
    messages = double.requests[-1]["messages"]
    assert [m["role"] for m in messages] == ["user"] + ["assistant", "tool"] * 4
    answered = [m["tool_call_id"] for m in messages if m["role"] == "tool"]
    made = [m["tool_calls"][0]["id"] for m in messages if m["role"] == "assistant"]
    assert answered == made and len(set(made)) == 4
    text = reply_of(chat_client, thread.id).content[0].text.value
    assert text == "tools said: done 1, done 2, done 3, done 4"


def test_a_server_that_cannot_stream_tool_calls_is_asked_unstreamed(
    double: StrictUpstream, tmp_path: Path
):
    # llama-cpp-python answers stream + tools with an empty 200: seen with SmolLM2 in e2e-llm
    double.empty_streams_with_tools = True
    with start_engine(
        tmp_path / "e.db",
        model="openai-chat",
        upstream_base_url=double.url,
        upstream_api_key_env="ORCH_TEST_NO_KEY",
        poll_after_ms=20,
    ) as engine:
        client = OpenAI(base_url=engine.base_url, api_key="x", max_retries=0)
        seen = len(double.requests)
        thread, run = run_once(client, "chain 2 please", tools=[STEP, WEATHER])
        for n in (1, 2):
            assert run.status == "requires_action", run.last_error
            [call] = run.required_action.submit_tool_outputs.tool_calls
            assert json.loads(call.function.arguments) == {"n": n}
            run = client.beta.threads.runs.submit_tool_outputs_and_poll(
                thread_id=thread.id,
                run_id=run.id,
                tool_outputs=[{"tool_call_id": call.id, "output": f"done {n}"}],
                poll_interval_ms=20,
            )
        assert run.status == "completed", run.last_error
        assert reply_of(client, thread.id).content[0].text.value == "tools said: done 1, done 2"
    streamed = [bool(body.get("stream")) for body in double.requests[seen:]]
    assert streamed == [True, False, False, False]  # asked whole from the empty stream on


def test_run_settings_go_upstream(double: StrictUpstream, chat_client: OpenAI):
    asst = chat_client.beta.assistants.create(
        model="llama3", tools=[WEATHER, STEP], top_p=0.5, metadata={"seed": "42"}
    )
    thread = chat_client.beta.threads.create(messages=[{"role": "user", "content": "weather?"}])
    run = chat_client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=asst.id,
        max_completion_tokens=50,
        tool_choice={"type": "function", "function": {"name": "get_weather"}},
        parallel_tool_calls=False,
        response_format={"type": "json_object"},
        temperature=0.1,
        poll_interval_ms=20,
    )
    assert run.status == "requires_action"
    sent = double.requests[-1]
    assert sent["max_completion_tokens"] == 50
    assert sent["tool_choice"] == {"type": "function", "function": {"name": "get_weather"}}
    assert sent["parallel_tool_calls"] is False
    assert sent["response_format"] == {"type": "json_object"}
    assert (sent["temperature"], sent["top_p"], sent["seed"]) == (0.1, 0.5, 42)
    [call] = run.required_action.submit_tool_outputs.tool_calls
    run = chat_client.beta.threads.runs.submit_tool_outputs_and_poll(
        thread_id=thread.id,
        run_id=run.id,
        tool_outputs=[{"tool_call_id": call.id, "output": "{}"}],
        poll_interval_ms=20,
    )
    # the forced call is made once; then the model chooses (here: Oslo, one call at a time)
    assert double.requests[-1]["tool_choice"] == "auto"
    [call] = run.required_action.submit_tool_outputs.tool_calls
    assert json.loads(call.function.arguments) == {"city": "Oslo"}
    chat_client.beta.threads.runs.cancel(thread_id=thread.id, run_id=run.id)


def test_max_completion_tokens_cuts_the_reply(double: StrictUpstream, chat_client: OpenAI):
    asst = chat_client.beta.assistants.create(model="llama3")
    thread = chat_client.beta.threads.create(messages=[{"role": "user", "content": "an essay"}])
    run = chat_client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=asst.id, max_completion_tokens=7, poll_interval_ms=20
    )
    assert run.status == "incomplete"
    assert run.incomplete_details.reason == "max_completion_tokens"
    sent = double.requests[-1]
    assert sent["max_completion_tokens"] == sent["max_tokens"] == 7
    reply = reply_of(chat_client, thread.id)
    assert reply.status == "incomplete" and reply.incomplete_details.reason == "max_tokens"
    assert len(tokens_of(reply.content[0].text.value)) == 7


@pytest.mark.parametrize("honours", [{"max_tokens"}, {"max_completion_tokens"}, set()])
def test_the_limit_holds_whichever_name_the_server_takes(
    double: StrictUpstream, chat_client: OpenAI, honours: set[str]
):
    double.honours = frozenset(honours)
    double.token_delay = 0.005  # slow enough for the cut-off to close the stream early
    asst = chat_client.beta.assistants.create(model="llama3")
    thread = chat_client.beta.threads.create(messages=[{"role": "user", "content": "an essay"}])
    run = chat_client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=asst.id, max_completion_tokens=5, poll_interval_ms=20
    )
    assert run.status == "incomplete"
    text = reply_of(chat_client, thread.id).content[0].text.value
    # a server that obeys neither is cut off at twice the limit (deltas are about tokens)
    assert len(tokens_of(text)) == (5 if honours else 10)
    if not honours:
        exchange = double.exchanges[-1]
        deadline = time.monotonic() + 3
        while not exchange.aborted and time.monotonic() < deadline:
            time.sleep(0.02)
        assert exchange.aborted


def test_a_server_refusing_max_tokens_gets_max_completion_tokens(
    double: StrictUpstream, tmp_path: Path
):
    double.refuses_max_tokens = True
    with start_engine(tmp_path / "e.db", model="openai-chat", upstream_base_url=double.url) as e:
        client = OpenAI(base_url=e.base_url, api_key="x", max_retries=0)
        asst = client.beta.assistants.create(model="o4")
        before = len(double.exchanges)
        for _ in range(2):
            thread = client.beta.threads.create(messages=[{"role": "user", "content": "essay"}])
            run = client.beta.threads.runs.create_and_poll(
                thread_id=thread.id, assistant_id=asst.id, max_completion_tokens=4
            )
            assert run.status == "incomplete"
    sent = [(x.status, "max_tokens" in x.body) for x in double.exchanges[before:]]
    assert sent == [(400, True), (200, False), (200, False)]  # asked once, remembered


def test_text_streams_token_by_token(double: StrictUpstream, chat_client: OpenAI):
    double.token_delay = 0.02
    asst = chat_client.beta.assistants.create(model="llama3")
    thread = chat_client.beta.threads.create(messages=[{"role": "user", "content": "essay"}])
    start = time.monotonic()
    arrivals, text = [], []
    with chat_client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=asst.id, max_completion_tokens=40
    ) as stream:
        for event in stream:
            if event.event == "thread.message.delta":
                arrivals.append(time.monotonic() - start)
                text.append(event.data.delta.content[0].text.value)
    assert len(arrivals) == 40  # one delta per upstream token
    assert arrivals[0] < arrivals[-1] / 4  # the first came long before the last
    assert "".join(text) == reply_of(chat_client, thread.id).content[0].text.value


def test_cancel_closes_the_upstream_request(double: StrictUpstream, chat_client: OpenAI):
    double.token_delay = 0.05  # 300 tokens: 15 s if nothing stops it
    asst = chat_client.beta.assistants.create(model="llama3")
    thread = chat_client.beta.threads.create(messages=[{"role": "user", "content": "essay"}])
    with chat_client.beta.threads.runs.stream(thread_id=thread.id, assistant_id=asst.id) as stream:
        for event in stream:
            if event.event == "thread.message.delta":
                run_id = stream.current_run.id
                first = event.data.delta.content[0].text.value
                break
    exchange = double.exchanges[-1]
    chat_client.beta.threads.runs.cancel(thread_id=thread.id, run_id=run_id)
    deadline = time.monotonic() + 3
    while not exchange.aborted and time.monotonic() < deadline:
        time.sleep(0.02)
    assert exchange.aborted and exchange.tokens < 100
    run = chat_client.beta.threads.runs.retrieve(thread_id=thread.id, run_id=run_id)
    assert run.status == "cancelled"
    kept = reply_of(chat_client, thread.id)  # what the client saw stays in the message
    assert kept.status == "incomplete" and kept.incomplete_details.reason == "run_cancelled"
    assert kept.content[0].text.value.startswith(first)


def test_expiry_closes_the_upstream_request(double: StrictUpstream, tmp_path: Path):
    double.token_delay = 0.05
    with start_engine(
        tmp_path / "e.db", model="openai-chat", upstream_base_url=double.url, run_expiry_seconds=1
    ) as engine:
        client = OpenAI(base_url=engine.base_url, api_key="x", max_retries=0)
        thread, run = run_once(client, "essay")
        assert run.status == "expired"
    exchange = double.exchanges[-1]
    assert exchange.aborted and exchange.tokens < 60


def test_upstream_4xx_fails_the_run_at_once(double: StrictUpstream, chat_client: OpenAI):
    before = len(double.exchanges)
    _, run = run_once(chat_client, "please fail 422")
    assert run.status == "failed" and run.last_error.code == "invalid_prompt"
    assert "the upstream refuses (422)" in run.last_error.message
    assert len(double.exchanges) - before == 1


def test_deterministic_5xx_fails_after_one_retry(double: StrictUpstream, chat_client: OpenAI):
    double.unsupported = frozenset({"json_schema"})
    before = len(double.exchanges)
    fmt = {"type": "json_schema", "json_schema": {"name": "a", "schema": {"type": "object"}}}
    _, run = run_once(chat_client, "hi", response_format=fmt)
    assert run.status == "failed" and run.last_error.code == "invalid_prompt"
    assert "response_format json_schema is not supported" in run.last_error.message
    assert len(double.exchanges) - before == 2


def test_a_passing_5xx_is_retried(double: StrictUpstream, chat_client: OpenAI):
    before = len(double.exchanges)
    thread, run = run_once(chat_client, "flaky hello")
    assert run.status == "completed"
    assert [e.status for e in double.exchanges[before:]] == [500, 200]


def test_unreachable_upstream_fails_the_run(tmp_path: Path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    with start_engine(
        tmp_path / "e.db", model="openai-chat", upstream_base_url=f"http://127.0.0.1:{port}/v1"
    ) as engine:
        client = OpenAI(base_url=engine.base_url, api_key="x", max_retries=0)
        _, run = run_once(client, "hi", model="m")
        assert run.status == "failed"
        assert run.last_error.code == "server_error" and "upstream" in run.last_error.message
