"""The openai-chat model against a fake Chat Completions server on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import pytest
import uvicorn
from openai import OpenAI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from orch.engine.server import start_engine


class FakeChat:
    """A Chat Completions server: echoes, calls tools on 'weather', reports tool outputs."""

    def __init__(self):
        self.requests: list[dict] = []

    async def completions(self, request: Request) -> JSONResponse:
        body = await request.json()
        self.requests.append(body)
        last = body["messages"][-1]
        message: dict = {"role": "assistant", "content": None}
        finish = "stop"
        if last["role"] == "tool":
            outputs = [m["content"] for m in body["messages"] if m["role"] == "tool"]
            message["content"] = "tools said: " + ", ".join(outputs)
        elif body.get("tools") and "weather" in str(last["content"]):
            message["tool_calls"] = [
                {
                    "id": "up_1",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Rome"}'},
                },
                {
                    "id": "up_2",
                    "type": "function",
                    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
                },
            ]
            finish = "tool_calls"
        else:
            text = (
                last["content"] if isinstance(last["content"], str) else json.dumps(last["content"])
            )
            message["content"] = f"echo: {text}"
        return JSONResponse(
            {
                "id": "chatcmpl-1",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": body["model"],
                "choices": [{"index": 0, "message": message, "finish_reason": finish}],
                "usage": {"prompt_tokens": 11, "completion_tokens": 5, "total_tokens": 16},
            }
        )


@pytest.fixture(scope="module")
def upstream():
    fake = FakeChat()
    app = Starlette(routes=[Route("/v1/chat/completions", fake.completions, methods=["POST"])])
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, log_level="warning"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield fake, f"http://127.0.0.1:{sock.getsockname()[1]}/v1"
    server.should_exit = True
    thread.join(5)


@pytest.fixture(scope="module")
def chat_client(upstream, tmp_path_factory: pytest.TempPathFactory):
    _, url = upstream
    db = tmp_path_factory.mktemp("chat") / "e.db"
    with start_engine(
        db, model="openai-chat", upstream_base_url=url, upstream_api_key_env="ORCH_TEST_NO_KEY"
    ) as engine:
        yield OpenAI(base_url=engine.base_url, api_key="x", max_retries=0)


def test_thread_becomes_chat_messages(upstream, chat_client: OpenAI):
    fake, _ = upstream
    asst = chat_client.beta.assistants.create(
        model="llama3", instructions="Be brief.", temperature=0.3
    )
    thread = chat_client.beta.threads.create(messages=[{"role": "user", "content": "hello"}])
    run = chat_client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=asst.id, poll_interval_ms=20
    )
    assert run.status == "completed"
    assert (run.usage.prompt_tokens, run.usage.completion_tokens) == (11, 5)
    reply = chat_client.beta.threads.messages.list(thread_id=thread.id).data[0]
    assert reply.content[0].text.value == "echo: hello"
    assert reply.metadata == {"orch_model": "openai-chat"}
    sent = fake.requests[-1]
    assert sent["model"] == "llama3" and sent["temperature"] == 0.3
    assert sent["messages"] == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "hello"},
    ]


def test_function_tools_round_trip(upstream, chat_client: OpenAI):
    fake, _ = upstream
    asst = chat_client.beta.assistants.create(
        model="llama3",
        tools=[
            {
                "type": "function",
                "function": {"name": "get_weather", "parameters": {"type": "object"}},
            }
        ],
    )
    thread = chat_client.beta.threads.create(
        messages=[{"role": "user", "content": "weather in two cities?"}]
    )
    run = chat_client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=asst.id, poll_interval_ms=20
    )
    assert run.status == "requires_action"
    assert fake.requests[-1]["tools"][0]["function"]["name"] == "get_weather"
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert [json.loads(c.function.arguments)["city"] for c in calls] == ["Rome", "Oslo"]
    run = chat_client.beta.threads.runs.submit_tool_outputs_and_poll(
        thread_id=thread.id,
        run_id=run.id,
        tool_outputs=[{"tool_call_id": c.id, "output": f"sun in {i}"} for i, c in enumerate(calls)],
        poll_interval_ms=20,
    )
    assert run.status == "completed"
    sent = fake.requests[-1]["messages"]
    assert sent[-3]["role"] == "assistant" and len(sent[-3]["tool_calls"]) == 2
    assert [m["role"] for m in sent[-2:]] == ["tool", "tool"]
    reply = chat_client.beta.threads.messages.list(thread_id=thread.id).data[0]
    assert reply.content[0].text.value == "tools said: sun in 0, sun in 1"


def test_unreachable_upstream_fails_the_run(tmp_path: Path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()  # nothing listens there now
    with start_engine(
        tmp_path / "e.db", model="openai-chat", upstream_base_url=f"http://127.0.0.1:{port}/v1"
    ) as engine:
        client = OpenAI(base_url=engine.base_url, api_key="x", max_retries=0)
        asst = client.beta.assistants.create(model="m")
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
        run = client.beta.threads.runs.create_and_poll(
            thread_id=thread.id, assistant_id=asst.id, poll_interval_ms=50
        )
        assert run.status == "failed"
        assert run.last_error.code == "server_error" and "upstream" in run.last_error.message


def test_responses_become_chat_requests(upstream, chat_client: OpenAI):
    fake, _ = upstream
    tools = [{"type": "function", "name": "get_weather", "parameters": {"type": "object"}}]
    first = chat_client.responses.create(
        model="llama3", instructions="Be brief.", input="weather twice?", tools=tools
    )
    calls = [o for o in first.output if o.type == "function_call"]
    assert [json.loads(c.arguments)["city"] for c in calls] == ["Rome", "Oslo"]
    assert first.usage.input_tokens == 11 and first.usage.output_tokens == 5
    outputs = [
        {"type": "function_call_output", "call_id": c.call_id, "output": f"sun {i}"}
        for i, c in enumerate(calls)
    ]
    second = chat_client.responses.create(
        model="llama3", input=outputs, tools=tools, previous_response_id=first.id
    )
    assert second.output_text == "tools said: sun 0, sun 1"
    notes = chat_client.files.create(file=("notes.txt", b"Tomatoes need sun."), purpose="user_data")
    fmt = {"type": "json_schema", "name": "a", "schema": {"type": "object"}}
    third = chat_client.responses.create(
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
    sent = fake.requests[-1]
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
    assert messages[4]["content"] == "tools said: sun 0, sun 1"
    assert messages[5]["content"] == [
        {"type": "text", "text": "and now?"},
        {"type": "text", "text": "[file notes.txt]\nTomatoes need sun."},
    ]
