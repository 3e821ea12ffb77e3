"""The seeds' Assistants-API workflows, unchanged, against the engine over real HTTP."""

from __future__ import annotations

import json

import httpx2
from openai import AssistantEventHandler, OpenAI
from openai.types import FileObject
from openai.types.beta import Assistant, Thread
from openai.types.beta.threads import Message, Run
from openai.types.beta.threads.runs import RunStep

from orch.engine.png import PNG_MAGIC

from .conftest import wait_on_run


def test_seed_workflow_with_attachment_and_polling(client: OpenAI, assistant, engine):
    Assistant.model_validate(assistant.model_dump())
    upload = client.files.create(
        file=("notes.txt", b"The USA was founded in 1776."), purpose="assistants"
    )
    FileObject.model_validate(upload.model_dump())
    assert upload.bytes == 28 and upload.purpose == "assistants" and upload.filename == "notes.txt"

    thread = client.beta.threads.create()
    Thread.model_validate(thread.model_dump())
    message = client.beta.threads.messages.create(
        thread_id=thread.id,
        role="user",
        content="What year was the USA founded?",
        attachments=[{"file_id": upload.id, "tools": [{"type": "file_search"}]}],
    )
    Message.model_validate(message.model_dump())
    assert message.attachments[0].file_id == upload.id
    # The attachment put a vector store on the thread, as OpenAI does.
    thread = client.beta.threads.retrieve(thread.id)
    assert thread.tool_resources.file_search.vector_store_ids

    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    assert run.status == "queued" and run.expires_at is not None
    assert run.instructions == "You answer tests."
    run = wait_on_run(client, run)
    Run.model_validate(run.model_dump())
    assert run.status == "completed"
    assert run.usage.total_tokens == run.usage.prompt_tokens + run.usage.completion_tokens > 0
    assert run.completed_at and run.started_at and run.expires_at is None

    messages = client.beta.threads.messages.list(thread_id=thread.id)
    roles = [m.role for m in messages.data]
    assert roles == ["assistant", "user"]
    reply = messages.data[0]
    Message.model_validate(reply.model_dump())
    assert reply.content[0].text.value.startswith("[scripted]")
    assert reply.run_id == run.id and reply.assistant_id == assistant.id
    assert reply.metadata == {}  # OpenAI returns only what the client set

    asc = client.beta.threads.messages.list(thread_id=thread.id, order="asc")
    assert [m.role for m in asc.data] == ["user", "assistant"]
    only_run = client.beta.threads.messages.list(thread_id=thread.id, run_id=run.id)
    assert [m.id for m in only_run.data] == [reply.id]


def test_create_and_poll_uses_poll_header(client: OpenAI, assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "hi"}])
    raw = client.beta.threads.runs.with_raw_response.create(
        thread_id=thread.id, assistant_id=assistant.id
    )
    assert raw.headers["openai-poll-after-ms"] == "20"
    run = client.beta.threads.runs.poll(raw.parse().id, thread_id=thread.id)
    assert run.status == "completed"


class Recorder(AssistantEventHandler):
    def __init__(self):
        super().__init__()
        self.events: list[str] = []
        self.text = ""
        self.tool_calls = []
        self.tool_deltas = []

    def on_event(self, event):
        self.events.append(event.event)

    def on_text_delta(self, delta, snapshot):
        self.text += delta.value

    def on_tool_call_created(self, tool_call):
        self.tool_calls.append(tool_call)

    def on_tool_call_delta(self, delta, snapshot):
        self.tool_deltas.append(delta)


def test_streaming_event_handler(client: OpenAI, assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "Tell me a story"}])
    handler = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=handler
    ) as stream:
        stream.until_done()
        final = stream.get_final_run()
        messages = stream.get_final_messages()
    assert handler.text == '[scripted] You said: "Tell me a story"'
    assert messages[0].content[0].text.value == handler.text
    assert final.status == "completed"
    assert handler.events[:3] == [
        "thread.run.created",
        "thread.run.queued",
        "thread.run.in_progress",
    ]
    for name in (
        "thread.run.step.created",
        "thread.run.step.in_progress",
        "thread.message.created",
        "thread.message.in_progress",
        "thread.message.delta",
        "thread.message.completed",
        "thread.run.step.completed",
    ):
        assert name in handler.events
    assert handler.events[-1] == "thread.run.completed"


def test_raw_sse_lines_and_create_and_run_stream(engine, assistant):
    body = {
        "assistant_id": assistant.id,
        "stream": True,
        "thread": {"messages": [{"role": "user", "content": "yo"}]},
    }
    with httpx2.Client(headers={"OpenAI-Beta": "assistants=v2"}) as http:
        res = http.post(engine.base_url + "/threads/runs", json=body)
    assert res.headers["content-type"].startswith("text/event-stream")
    frames = [f for f in res.text.split("\n\n") if f]
    events = [f.split("\n")[0] for f in frames]
    assert events[0] == "event: thread.created"
    assert events[1] == "event: thread.run.created"
    assert "event: thread.run.completed" in events
    assert frames[-1] == "event: done\ndata: [DONE]"
    json.loads(frames[1].split("\n", 1)[1][len("data: ") :])


def test_function_calling_polling_two_parallel_calls(client: OpenAI, assistant):
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "What is the weather in Paris?"}]
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20
    )
    assert run.status == "requires_action"
    assert run.required_action.type == "submit_tool_outputs"
    calls = run.required_action.submit_tool_outputs.tool_calls
    assert [c.function.name for c in calls] == ["get_weather", "get_time"]
    assert json.loads(calls[0].function.arguments) == {"city": "Paris"}
    outputs = [{"tool_call_id": c.id, "output": f"{c.function.name} ok"} for c in calls]
    run = client.beta.threads.runs.submit_tool_outputs(
        thread_id=thread.id, run_id=run.id, tool_outputs=outputs
    )
    assert run.status == "queued"
    run = wait_on_run(client, run)
    assert run.status == "completed"
    reply = client.beta.threads.messages.list(thread_id=thread.id).data[0]
    assert reply.content[0].text.value == "Report: get_weather=get_weather ok, get_time=get_time ok"

    steps = client.beta.threads.runs.steps.list(
        thread_id=thread.id, run_id=run.id, order="asc"
    ).data
    for step in steps:
        RunStep.model_validate(step.model_dump())
    assert [s.type for s in steps] == ["tool_calls", "message_creation"]
    tool_calls = steps[0].step_details.tool_calls
    assert [c.function.output for c in tool_calls] == ["get_weather ok", "get_time ok"]
    assert steps[1].step_details.message_creation.message_id == reply.id
    one = client.beta.threads.runs.steps.retrieve(
        thread_id=thread.id, run_id=run.id, step_id=steps[0].id
    )
    assert one.id == steps[0].id and one.status == "completed"


def test_function_calling_streaming(client: OpenAI, assistant):
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "weather in Oslo please"}]
    )
    handler = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=handler
    ) as stream:
        stream.until_done()
        run = stream.current_run
    assert run.status == "requires_action"
    assert [c.function.name for c in handler.tool_calls] == ["get_weather", "get_time"]
    assert any(d.function.arguments for d in handler.tool_deltas)
    calls = run.required_action.submit_tool_outputs.tool_calls
    after = Recorder()
    with client.beta.threads.runs.submit_tool_outputs_stream(
        thread_id=thread.id,
        run_id=run.id,
        tool_outputs=[{"tool_call_id": c.id, "output": "7"} for c in calls],
        event_handler=after,
    ) as stream:
        stream.until_done()
    assert after.text == "Report: get_weather=7, get_time=7"
    assert after.events[0] == "thread.run.step.completed"
    assert after.events[-1] == "thread.run.completed"


def test_code_interpreter_image_downloaded(client: OpenAI, assistant):
    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "Please plot the sales"}]
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20
    )
    assert run.status == "completed"
    reply = client.beta.threads.messages.list(thread_id=thread.id).data[0]
    assert reply.content[0].type == "image_file"
    assert reply.content[1].text.value == "Here is your chart."
    file_id = reply.content[0].image_file.file_id
    meta = client.files.retrieve(file_id)
    assert meta.purpose == "assistants_output"
    content = client.files.content(file_id).read()
    assert content.startswith(PNG_MAGIC) and meta.bytes == len(content)

    steps = client.beta.threads.runs.steps.list(
        thread_id=thread.id, run_id=run.id, order="asc"
    ).data
    call = steps[0].step_details.tool_calls[0]
    assert call.type == "code_interpreter"
    assert call.code_interpreter.input.startswith("import matplotlib")
    kinds = [o.type for o in call.code_interpreter.outputs]
    assert kinds == ["logs", "image"]
    assert call.code_interpreter.outputs[1].image.file_id == file_id


def test_code_interpreter_streaming_deltas(client: OpenAI, assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "plot it"}])
    handler = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=handler
    ) as stream:
        stream.until_done()
        messages = stream.get_final_messages()
    assert handler.tool_calls[0].type == "code_interpreter"
    code = "".join(
        d.code_interpreter.input or "" for d in handler.tool_deltas if d.code_interpreter
    )
    assert code.startswith("import matplotlib")
    assert messages[0].content[0].type == "image_file"


def test_cancel_a_slow_run(client: OpenAI, assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "be slow"}])
    run = client.beta.threads.runs.create(thread_id=thread.id, assistant_id=assistant.id)
    cancelled = client.beta.threads.runs.cancel(thread_id=thread.id, run_id=run.id)
    assert cancelled.status == "cancelling"
    run = wait_on_run(client, cancelled)
    assert run.status == "cancelled" and run.cancelled_at is not None
    assert run.usage is not None
    # The thread is free again.
    client.beta.threads.messages.create(thread_id=thread.id, role="user", content="hello again")


def test_failed_and_incomplete_runs(client: OpenAI, assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "explode now"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20
    )
    assert run.status == "failed" and run.failed_at is not None
    assert (
        run.last_error.code == "rate_limit_exceeded"
        and run.last_error.message == "scripted failure"
    )

    thread = client.beta.threads.create(messages=[{"role": "user", "content": "write an essay"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        max_completion_tokens=20,
        poll_interval_ms=20,
    )
    assert run.status == "incomplete"
    assert run.incomplete_details.reason == "max_completion_tokens"
    reply = client.beta.threads.messages.list(thread_id=thread.id).data[0]
    assert reply.status == "incomplete" and reply.incomplete_details.reason == "max_tokens"

    thread = client.beta.threads.create(
        messages=[{"role": "user", "content": "long question " * 200}]
    )
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, max_prompt_tokens=50, poll_interval_ms=20
    )
    assert run.status == "incomplete" and run.incomplete_details.reason == "max_prompt_tokens"


def test_tool_choice_none_skips_function_calls(client: OpenAI, assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "weather in Kyiv"}])
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, tool_choice="none", poll_interval_ms=20
    )
    assert run.status == "completed"


def test_failed_run_streams_failed_event(client: OpenAI, assistant):
    thread = client.beta.threads.create(messages=[{"role": "user", "content": "explode"}])
    handler = Recorder()
    with client.beta.threads.runs.stream(
        thread_id=thread.id, assistant_id=assistant.id, event_handler=handler
    ) as stream:
        stream.until_done()
    assert handler.events[-1] == "thread.run.failed"


def test_object_reply_is_json_and_run_overrides(client: OpenAI, assistant):
    thread = client.beta.threads.create()
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id,
        assistant_id=assistant.id,
        model="gpt-4o-mini",
        instructions="Be terse.",
        additional_instructions="Answer in JSON.",
        additional_messages=[{"role": "user", "content": "json please"}],
        temperature=0.2,
        top_p=0.9,
        metadata={"case": "overrides"},
        tools=[{"type": "code_interpreter"}],
        response_format={"type": "json_object"},
        tool_choice="auto",
        parallel_tool_calls=False,
        truncation_strategy={"type": "last_messages", "last_messages": 3},
        max_prompt_tokens=1000,
        poll_interval_ms=20,
    )
    assert run.status == "completed"
    assert run.model == "gpt-4o-mini"
    assert run.instructions == "Be terse.\n\nAnswer in JSON."
    assert run.temperature == 0.2 and run.top_p == 0.9
    assert run.metadata == {"case": "overrides"}
    assert [t.type for t in run.tools] == ["code_interpreter"]
    assert run.parallel_tool_calls is False
    assert run.truncation_strategy.last_messages == 3
    reply = client.beta.threads.messages.list(thread_id=thread.id).data[0]
    assert json.loads(reply.content[0].text.value) == {"answer": "11", "ok": True}


def test_image_parts_and_message_update_delete(client: OpenAI):
    image = client.files.create(file=("dot.png", PNG_MAGIC + b"rest"), purpose="vision")
    thread = client.beta.threads.create()
    msg = client.beta.threads.messages.create(
        thread_id=thread.id,
        role="user",
        content=[
            {"type": "text", "text": "What is in these images?"},
            {"type": "image_file", "image_file": {"file_id": image.id}},
            {
                "type": "image_url",
                "image_url": {"url": "https://example.invalid/x.png", "detail": "low"},
            },
        ],
    )
    assert [c.type for c in msg.content] == ["text", "image_file", "image_url"]
    msg = client.beta.threads.messages.update(
        message_id=msg.id, thread_id=thread.id, metadata={"k": "v"}
    )
    assert msg.metadata == {"k": "v"}
    assert client.beta.threads.messages.retrieve(
        message_id=msg.id, thread_id=thread.id
    ).metadata == {"k": "v"}
    assert client.beta.threads.messages.delete(message_id=msg.id, thread_id=thread.id).deleted
    assert client.beta.threads.messages.list(thread_id=thread.id).data == []


def test_assistant_crud_and_pagination(client: OpenAI):
    made = [
        client.beta.assistants.create(model="m", name=f"page-{i}", metadata={"suite": "pages"})
        for i in range(5)
    ]
    updated = client.beta.assistants.update(made[0].id, name="renamed", temperature=0.5)
    assert updated.name == "renamed" and updated.temperature == 0.5 and updated.model == "m"
    first = client.beta.assistants.list(limit=2, order="asc", after=made[0].id)
    assert [a.id for a in first.data] == [made[1].id, made[2].id] and first.has_more
    before = client.beta.assistants.list(limit=2, order="asc", before=made[3].id)
    assert [a.id for a in before.data] == [made[1].id, made[2].id]
    desc = client.beta.assistants.list(limit=3)
    assert desc.data[0].created_at >= desc.data[-1].created_at
    seen = [a.id for a in client.beta.assistants.list(limit=2, order="asc")]  # auto-paginates
    assert [m.id for m in made] == [i for i in seen if i in {m.id for m in made}]
    assert client.beta.assistants.delete(made[4].id).deleted


def test_threads_update_delete_and_runs_list_update(client: OpenAI, assistant):
    thread = client.beta.threads.create(
        metadata={"a": "1"}, messages=[{"role": "user", "content": "x"}]
    )
    thread = client.beta.threads.update(thread.id, metadata={"a": "2"})
    assert thread.metadata == {"a": "2"}
    run = client.beta.threads.runs.create_and_poll(
        thread_id=thread.id, assistant_id=assistant.id, poll_interval_ms=20
    )
    runs = client.beta.threads.runs.list(thread_id=thread.id)
    assert [r.id for r in runs.data] == [run.id]
    run = client.beta.threads.runs.update(run_id=run.id, thread_id=thread.id, metadata={"tag": "x"})
    assert run.metadata == {"tag": "x"}
    assert client.beta.threads.delete(thread.id).deleted


def test_every_stream_event_validates(engine, assistant):
    from openai.types.beta import AssistantStreamEvent
    from pydantic import TypeAdapter

    adapter = TypeAdapter(AssistantStreamEvent)
    seen = set()
    with httpx2.Client(headers={"OpenAI-Beta": "assistants=v2"}) as http:
        for text in ("plot it", "weather in Riga", "hello"):
            body = {
                "assistant_id": assistant.id,
                "stream": True,
                "thread": {"messages": [{"role": "user", "content": text}]},
            }
            res = http.post(engine.base_url + "/threads/runs", json=body)
            for frame in res.text.split("\n\n"):
                if not frame or frame.startswith("event: done"):
                    continue
                event_line, data_line = frame.split("\n", 1)
                event = event_line[len("event: ") :]
                adapter.validate_python(
                    {"event": event, "data": json.loads(data_line[len("data: ") :])}
                )
                seen.add(event)
    assert {"thread.run.step.delta", "thread.message.delta", "thread.run.requires_action"} <= seen
