"""Issue 11.9-10: what real clients see on the wire — names, headers, errors, limits, choices."""

from __future__ import annotations

import re
from urllib.parse import unquote

import httpx2
import openai
import pytest
from openai import OpenAI

from orch.engine.server import EngineHandle
from tests.engine.conftest import wait_on_run

BETA_MISSING = {
    "message": "You must provide the 'OpenAI-Beta' header to access the Assistants API. Please "
    "try again by setting the header 'OpenAI-Beta: assistants=v2'.",
    "type": "invalid_request_error",
    "param": None,
    "code": "invalid_beta",
}


def _download_name(disposition: str) -> str:
    """The name a client reads (RFC 6266: ``filename*`` when present, else ``filename``)."""
    extended = re.search(r"filename\*=UTF-8''([^;\s]+)", disposition, re.IGNORECASE)
    if extended:
        return unquote(extended.group(1), errors="strict")
    return re.search(r'filename="([^"]*)"', disposition).group(1)


# -- 9: file names ------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["報告.pdf", "Q3 — summary.pdf", "plain.pdf"])
def test_any_file_name_uploads_and_downloads(client: OpenAI, name: str):
    content = b"%PDF-1.4 " + name.encode()
    file = client.files.create(file=(name, content), purpose="assistants")
    assert file.filename == name and file.id.startswith("file-")
    downloaded = client.files.content(file.id)
    assert downloaded.content == content
    disposition = downloaded.response.headers["content-disposition"]
    assert disposition.isascii() and disposition.startswith("attachment;")
    assert _download_name(disposition) == name
    assert client.files.retrieve(file.id).filename == name


def test_a_newline_in_a_name_keeps_the_connection(engine: EngineHandle, client: OpenAI):
    body = (
        b'--B\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nassistants\r\n'
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="two\nlines.txt"\r\n'
        b"\r\nhello\r\n--B--\r\n"
    )
    headers = {"content-type": "multipart/form-data; boundary=B"}
    created = httpx2.post(engine.base_url + "/files", content=body, headers=headers)
    assert created.status_code == 200, created.text
    file = client.files.retrieve(created.json()["id"])
    assert file.filename == "two\nlines.txt"
    downloaded = client.files.content(file.id)
    assert downloaded.content == b"hello"
    assert _download_name(downloaded.response.headers["content-disposition"]) == file.filename


# -- 10: OpenAI-Beta ------------------------------------------------------------------------


def test_the_assistants_api_requires_openai_beta_v2(engine: EngineHandle, client: OpenAI):
    url = engine.base_url
    for method, path in (("GET", "/assistants"), ("POST", "/threads"), ("GET", "/threads/x")):
        res = httpx2.request(method, url + path, json={} if method == "POST" else None)
        assert res.status_code == 400 and res.json() == {"error": BETA_MISSING}
    old = httpx2.get(url + "/assistants", headers={"OpenAI-Beta": "assistants=v1"})
    assert old.status_code == 400 and old.json()["error"]["code"] == "invalid_beta"
    assert old.json()["error"]["message"].startswith("The v1 Assistants API has been deprecated.")
    assert httpx2.get(url + "/vector_stores", headers={"OpenAI-Beta": "assistants=v1"}).is_error
    # What the SDK sends no header for needs none (vector stores: sent, not required).
    for path in ("/files", "/vector_stores", "/containers", "/responses/resp_nope"):
        assert httpx2.get(url + path).status_code in (200, 404), path
    assert httpx2.post(url + "/conversations", json={}).status_code == 200
    assert client.beta.assistants.list() is not None  # the SDK sends assistants=v2


# -- 10: unknown parameters -----------------------------------------------------------------


def test_unknown_parameters_are_named_by_their_path(client: OpenAI, assistant):
    with pytest.raises(openai.BadRequestError) as err:
        client.beta.threads.create_and_run(
            assistant_id=assistant.id,
            thread={"messages": [{"role": "user", "content": "hi", "file_ids": ["file-x"]}]},
        )
    assert err.value.body == {
        "message": "Unknown parameter: 'thread.messages[0].file_ids'.",
        "type": "invalid_request_error",
        "param": "thread.messages[0].file_ids",
        "code": "unknown_parameter",
    }
    with pytest.raises(openai.BadRequestError) as err:
        client.beta.assistants.create(
            model="m", tools=[{"type": "function", "function": {"name": "f", "paramters": {}}}]
        )
    assert err.value.body["param"] == "tools[0].function.paramters"
    assert err.value.body["message"] == "Unknown parameter: 'tools[0].function.paramters'."
    with pytest.raises(openai.BadRequestError) as err:
        client.responses.create(
            model="m", input="hi", tools=[{"type": "function", "name": "f", "paramters": {}}]
        )
    assert err.value.body["param"] == "tools[0].paramters"


# -- 10: ids, request ids, expiry, usage ----------------------------------------------------


def test_request_ids_and_run_fields_as_openai_sends_them(client: OpenAI, assistant):
    created = client.beta.threads.create(messages=[{"role": "user", "content": "weather in Oslo"}])
    assert created._request_id.startswith("req_") and len(created._request_id) == 36
    with pytest.raises(openai.NotFoundError) as err:
        client.beta.threads.retrieve("thread_nope")
    assert err.value.request_id.startswith("req_")
    run = client.beta.threads.runs.create(thread_id=created.id, assistant_id=assistant.id)
    assert run.expires_at == run.created_at + 600
    run = wait_on_run(client, run)
    assert run.status == "requires_action" and run.expires_at == run.created_at + 600
    client.beta.threads.runs.cancel(run_id=run.id, thread_id=created.id)


def test_an_incomplete_run_counts_no_more_than_its_limit(client: OpenAI, assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "an essay"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, max_completion_tokens=10
    )
    assert run.status == "incomplete"
    assert run.incomplete_details.reason == "max_completion_tokens"
    assert run.usage.completion_tokens == 10
    assert run.usage.total_tokens == run.usage.prompt_tokens + 10
    steps = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id).data
    assert sum(s.usage.completion_tokens for s in steps if s.usage) <= 10


# -- 10: tool_choice ------------------------------------------------------------------------


def _calls(client: OpenAI, assistant, text: str, choice) -> tuple[object, list[str]]:
    thread = client.beta.threads.create(messages=[{"role": "user", "content": text}])
    run = client.beta.threads.runs.create(
        thread_id=thread.id, assistant_id=assistant.id, tool_choice=choice
    )
    run = wait_on_run(client, run)
    if run.status != "requires_action":
        return run, []
    return run, [c.function.name for c in run.required_action.submit_tool_outputs.tool_calls]


def test_tool_choice_forces_and_limits_function_calls(client: OpenAI, assistant):
    named = {"type": "function", "function": {"name": "get_time"}}
    # A rule with no calls is made to call the named function ...
    run, names = _calls(client, assistant, "hello there", named)
    assert names == ["get_time"]
    outputs = [{"tool_call_id": run.required_action.submit_tool_outputs.tool_calls[0].id}]
    run = client.beta.threads.runs.submit_tool_outputs_and_poll(
        run_id=run.id, thread_id=run.thread_id, tool_outputs=[{**outputs[0], "output": "noon"}]
    )
    assert run.status == "completed"  # ... once: the turn after the output replies
    # ... a rule calling two keeps only the named one; "required" forces a call, "none" stops.
    assert _calls(client, assistant, "weather in Rome", named)[1] == ["get_time"]
    assert _calls(client, assistant, "hello there", "required")[1] == ["get_weather"]
    run, names = _calls(client, assistant, "weather in Rome", "none")
    assert run.status == "completed" and names == []
    missing = {"type": "function", "function": {"name": "get_nothing"}}
    run, _ = _calls(client, assistant, "hello there", missing)
    assert run.status == "failed" and "get_nothing" in run.last_error.message


def test_tool_choice_on_responses(client: OpenAI):
    tools = [
        {"type": "function", "name": "get_weather", "parameters": {"type": "object"}},
        {"type": "function", "name": "get_time", "parameters": {"type": "object"}},
    ]
    response = client.responses.create(
        model="m", input="hello", tools=tools, tool_choice={"type": "function", "name": "get_time"}
    )
    calls = [item for item in response.output if item.type == "function_call"]
    assert [c.name for c in calls] == ["get_time"]
