"""The code interpreter through the engine's APIs: the scripted model's code really runs.

A rule without pinned outputs gives the code; the engine runs it in the thread's (Assistants)
or the container's (Responses) sandbox session, and the run steps, messages, output items and
container files carry what it really printed, drew and wrote. Wire shapes are checked against
the SDK's types.
"""

from __future__ import annotations

import textwrap
import warnings

import pytest
from openai import OpenAI
from openai.types.beta.threads import Message
from openai.types.beta.threads.runs import RunStep
from openai.types.responses import ResponseOutputItem
from pydantic import TypeAdapter

from orch.engine.server import start_engine

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
SALES = b"month,revenue\n2026-01,2400\n2026-02,2600\n2026-03,3000\n"
OUTPUT_ITEM = TypeAdapter(ResponseOutputItem)
SCRIPT = {
    "name": "sandbox-tests",
    "rules": [
        {
            "when": {"contains": "total"},
            "code_interpreter": {
                "input": textwrap.dedent(
                    """\
                    import csv
                    import matplotlib.pyplot as plt
                    rows = list(csv.DictReader(open("{{ files[0] }}")))
                    total = sum(int(r["revenue"]) for r in rows)
                    plt.bar([r["month"] for r in rows], [int(r["revenue"]) for r in rows])
                    open("total.txt", "w").write(str(total))
                    print(total)"""
                )
            },
            "reply": "The total is {{ code.logs }}; see [total.txt](sandbox:{{ code.files[0] }}).",
        },
        {
            "when": {"contains": "again"},
            "code_interpreter": {"input": "print(total * 2)"},
            "reply": "Twice: {{ code.logs }}",
        },
    ],
}


@pytest.fixture(autouse=True)
def _quiet_deprecations():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        yield


@pytest.fixture(scope="module")
def client(tmp_path_factory):
    db = tmp_path_factory.mktemp("engine") / "engine.db"
    with start_engine(db, script=SCRIPT, poll_after_ms=20) as handle:
        yield OpenAI(base_url=handle.base_url, api_key="test", max_retries=0)


@pytest.fixture(scope="module")
def sales(client):
    return client.files.create(file=("sales.csv", SALES), purpose="assistants")


def test_a_run_runs_the_code_and_the_thread_keeps_its_state(client, sales):
    assistant = client.beta.assistants.create(model="gpt-4o", tools=[{"type": "code_interpreter"}])
    attachment = {"file_id": sales.id, "tools": [{"type": "code_interpreter"}]}
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "the total, please", "attachments": [attachment]}]
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20
    )
    assert run.status == "completed", run.last_error
    step = client.beta.threads.runs.steps.list(thread_id=thread.id, run_id=run.id).data[-1]
    RunStep.model_validate(step.model_dump())
    call = step.step_details.tool_calls[0].code_interpreter
    assert 'open("/' in call.input and "sales.csv" in call.input  # the path it was told
    assert [o.type for o in call.outputs] == ["logs", "image"]
    assert call.outputs[0].logs == "8000"
    image_id = call.outputs[1].image.file_id
    assert client.files.content(image_id).read().startswith(PNG_MAGIC)

    reply = client.beta.threads.messages.list(thread_id=thread.id).data[0]
    Message.model_validate(reply.model_dump())
    assert reply.content[0].image_file.file_id == image_id
    text = reply.content[1].text
    assert text.value.startswith("The total is 8000; see [total.txt](sandbox:/")
    link = text.annotations[0]
    assert link.type == "file_path" and text.value[link.start_index : link.end_index] == link.text
    assert client.files.content(link.file_path.file_id).read() == b"8000"
    assert [a.file_id for a in reply.attachments] == [link.file_path.file_id]

    client.beta.threads.messages.create(thread.id, role="user", content="and again")
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20
    )
    assert run.status == "completed", run.last_error
    last = client.beta.threads.messages.list(thread_id=thread.id).data[0]
    assert last.content[0].text.value == "Twice: 16000"


def test_code_without_the_tool_fails_the_run(client):
    assistant = client.beta.assistants.create(model="gpt-4o")
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "total"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20
    )
    assert run.status == "failed"
    assert "does not offer the code_interpreter tool" in run.last_error.message


def test_a_response_runs_the_code_in_its_container(client, sales):
    tools = [{"type": "code_interpreter", "container": {"type": "auto", "file_ids": [sales.id]}}]
    first = client.responses.create(
        model="gpt-4o",
        input="the total, please",
        tools=tools,
        include=["code_interpreter_call.outputs"],
    )
    assert first.status == "completed", first.error
    for item in first.output:
        OUTPUT_ITEM.validate_python(item.model_dump(exclude_none=True))
    call = first.output[0]
    assert call.type == "code_interpreter_call" and "/sales.csv" in call.code
    assert [o.type for o in call.outputs] == ["logs", "image"]
    assert call.outputs[0].logs == "8000" and call.outputs[1].url.startswith("data:image/png")
    files = client.containers.files.list(call.container_id).data
    written = next(f for f in files if f.path == "/mnt/data/total.txt")
    assert written.source == "assistant"
    content = client.containers.files.content.retrieve(written.id, container_id=call.container_id)
    assert content.read() == b"8000"

    follow = client.responses.create(
        model="gpt-4o",
        input="again",
        tools=[{"type": "code_interpreter", "container": {"type": "auto"}}],
        previous_response_id=first.id,
        include=["code_interpreter_call.outputs"],
    )
    again = follow.output[0]
    assert again.container_id == call.container_id  # the context's container, reused
    assert again.outputs[0].logs == "16000"
