"""Errors in OpenAI's shape and status codes, as the SDK raises them."""

from __future__ import annotations

import httpx2
import openai
import pytest
from openai import OpenAI


def test_unknown_ids_are_404(client: OpenAI, assistant):
    with pytest.raises(openai.NotFoundError) as err:
        client.beta.assistants.retrieve("asst_nope")
    assert err.value.body == {
        "message": "No assistant found with id 'asst_nope'.",
        "type": "invalid_request_error",
        "param": None,
        "code": None,
    }
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.retrieve("thread_nope")
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.retrieve(run_id="run_nope", thread_id="thread_nope")
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve("file-nope")
    with pytest.raises(openai.NotFoundError):
        client.vector_stores.retrieve("vs_nope")
    thread = client.beta.threads.create()
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id="asst_nope")
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.retrieve(message_id="msg_nope", thread_id=thread.id)
    with pytest.raises(openai.NotFoundError):
        client.beta.threads.messages.create(
            thread_id=thread.id,
            role="user",
            content="x",
            attachments=[{"file_id": "file-nope", "tools": []}],
        )


def test_bad_params_are_400(client: OpenAI, assistant):
    with pytest.raises(openai.BadRequestError) as err:
        client.beta.assistants.create(model="m", temperature=3)
    assert err.value.body["param"] == "temperature"
    assert err.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as err:
        client.beta.assistants.create(model="m", extra_body={"colour": "blue"})
    assert err.value.body["code"] == "unknown_parameter"
    with pytest.raises(openai.BadRequestError) as err:
        client.beta.assistants.create(model="m", tools=[{"type": "browser"}])
    assert err.value.body["param"] == "tools[0].type"
    with pytest.raises(openai.BadRequestError):
        client.beta.assistants.create(
            model="m", tools=[{"type": "function", "function": {"name": "bad name!"}}]
        )
    with pytest.raises(openai.BadRequestError):
        client.beta.assistants.list(limit=101)
    with pytest.raises(openai.BadRequestError):
        client.files.create(file=("a.txt", b"x"), purpose="nonsense")
    thread = client.beta.threads.create()
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.messages.create(thread_id=thread.id, role="system", content="x")
    with pytest.raises(openai.BadRequestError) as err:
        client.beta.threads.messages.create(
            thread_id=thread.id, role="user", content=[{"type": "audio"}]
        )
    assert err.value.body["param"] == "content[0].type"


def test_missing_required_and_bad_json(engine):
    with httpx2.Client(headers={"OpenAI-Beta": "assistants=v2"}) as http:
        res = http.post(engine.base_url + "/assistants", json={})
        assert res.status_code == 400
        assert res.json()["error"]["param"] == "model"
        res = http.post(
            engine.base_url + "/assistants",
            content=b"{not json",
            headers={"content-type": "application/json"},
        )
        assert res.status_code == 400 and res.json()["error"]["type"] == "invalid_request_error"
        res = http.get(engine.base_url + "/nowhere")
        assert (
            res.status_code == 404
            and res.json()["error"]["message"] == "Invalid URL (GET /v1/nowhere)"
        )


def test_metadata_limits(client: OpenAI):
    client.beta.assistants.create(model="m", metadata={f"k{i}": "v" for i in range(16)})
    with pytest.raises(openai.BadRequestError) as err:
        client.beta.assistants.create(model="m", metadata={f"k{i}": "v" for i in range(17)})
    assert "at most 16" in err.value.body["message"]
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.create(metadata={"k" * 65: "v"})
    client.beta.threads.create(metadata={"k" * 64: "v" * 512})
    with pytest.raises(openai.BadRequestError) as err:
        client.beta.threads.create(metadata={"k": "v" * 513})
    assert err.value.body["param"] == "metadata.k"
    with pytest.raises(openai.BadRequestError):
        client.vector_stores.create(metadata={"k": 1})


def test_second_active_run_is_rejected(client: OpenAI, assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "slow please"}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    with pytest.raises(openai.BadRequestError) as err:
        client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    assert err.value.body["message"] == f"Thread {thread.id} already has an active run {run.id}."
    with pytest.raises(openai.BadRequestError) as err:
        client.beta.threads.messages.create(thread_id=thread.id, role="user", content="more")
    assert "while a run" in err.value.body["message"]
    client.beta.threads.runs.cancel(run_id=run.id, thread_id=thread.id)
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.submit_tool_outputs(
            run_id=run.id, thread_id=thread.id, tool_outputs=[]
        )


def test_submit_tool_outputs_checks_call_ids(client: OpenAI, assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "weather in Rome"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20
    )
    calls = run.required_action.submit_tool_outputs.tool_calls
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.submit_tool_outputs(
            run_id=run.id,
            thread_id=thread.id,
            tool_outputs=[{"tool_call_id": calls[0].id, "output": "x"}],
        )
    with pytest.raises(openai.BadRequestError):
        client.beta.threads.runs.submit_tool_outputs(
            run_id=run.id,
            thread_id=thread.id,
            tool_outputs=[{"tool_call_id": "call_other", "output": "x"}],
        )
    run = client.beta.threads.runs.cancel(run_id=run.id, thread_id=thread.id)
    assert run.status == "cancelling"
