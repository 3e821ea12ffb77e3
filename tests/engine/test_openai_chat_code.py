"""The openai-chat model's code interpreter: the upstream calls ``python``, the sandbox runs it."""

from __future__ import annotations

import pytest
from openai import OpenAI

from tests.engine.upstream import StrictUpstream
from tests.engine.upstream_policy import PYTHON_CODE

pytestmark = pytest.mark.usefixtures("strict_double")


@pytest.fixture(scope="module")
def client(chat_client):
    """This module's tests call it ``client``."""
    return chat_client


def test_code_runs_in_the_sandbox_and_becomes_a_step(double: StrictUpstream, client: OpenAI):
    coder = client.beta.assistants.create(model="llama3", tools=[{"type": "code_interpreter"}])
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "compute 6 * 7, then plot it"}]
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=coder.id, poll_interval_ms=20
    )
    assert run.status == "completed", run.last_error
    [offered] = double.requests[-3]["tools"]
    assert offered["function"]["name"] == "python"
    steps = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id, order="asc")
    computed, plotted, written = steps.data
    call = computed.step_details.tool_calls[0]
    assert call.type == "code_interpreter" and call.code_interpreter.input == PYTHON_CODE
    assert [(o.type, o.logs) for o in call.code_interpreter.outputs] == [("logs", "42")]
    drawn = plotted.step_details.tool_calls[0].code_interpreter.outputs
    assert [o.type for o in drawn] == ["logs", "image"]
    assert written.type == "message_creation"
    told = [m for m in double.requests[-1]["messages"] if m["role"] == "tool"]
    assert told[0]["content"].startswith("42") and "image(s) shown" in told[1]["content"]
    reply = client.beta.threads.messages.list(thread_id=thread.id).data[0]
    assert reply.content[0].type == "image_file"
    assert reply.content[0].image_file.file_id == drawn[1].image.file_id
    assert reply.content[-1].text.value.startswith("tools said: 42")


def test_code_in_responses_runs_in_the_container(double: StrictUpstream, client: OpenAI):
    response = client.responses.create(
        model="llama3",
        input="compute it",
        tools=[{"type": "code_interpreter", "container": {"type": "auto"}}],
        include=["code_interpreter_call.outputs"],
    )
    assert response.status == "completed", response.error
    call, message = response.output
    assert call.type == "code_interpreter_call" and call.code == PYTHON_CODE
    assert [(o.type, o.logs) for o in call.outputs] == [("logs", "42")]
    assert message.content[0].text.startswith("tools said: 42")
