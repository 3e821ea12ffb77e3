"""The Responses API against the engine, through the unchanged SDK over real HTTP."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx2
import openai
import pytest
import yaml
from openai import OpenAI
from openai.types.responses import Response, ResponseItem, ResponseStreamEvent
from pydantic import BaseModel, TypeAdapter

from orch.engine.png import PNG_MAGIC
from orch.engine.server import start_engine

from .conftest import SCRIPT
from .test_file_search import make_pdf, upload

EVENTS = TypeAdapter(ResponseStreamEvent)
ITEMS = TypeAdapter(ResponseItem)
FUNCTIONS = [
    {"type": "function", "name": "get_weather", "parameters": {"type": "object"}},
    {"type": "function", "name": "get_time", "parameters": {"type": "object"}},
]
CODE = [{"type": "code_interpreter", "container": {"type": "auto"}}]
EXTRA_RULES = [
    {"when": {"contains": "who are you", "assistant": "pedro-rater"}, "reply": "I rate trials."},
]


@pytest.fixture(scope="module")
def script_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    script = yaml.safe_load(SCRIPT)
    script["rules"] += EXTRA_RULES
    path = tmp_path_factory.mktemp("script") / "script.yml"
    path.write_text(yaml.safe_dump(script), encoding="utf-8")
    return path


def raw_create(client: OpenAI, **params) -> dict:
    """POST /v1/responses through the SDK; the JSON body exactly as the engine sent it."""
    raw = client.responses.with_raw_response.create(**params)
    body = raw.http_response.json()
    Response.model_validate(body)
    return body


def sse_events(engine, body: dict) -> list[tuple[str, dict]]:
    """(event line, data) of every frame of a streamed create, each checked against the SDK."""
    frames = []
    with httpx2.Client() as http:
        with http.stream("POST", engine.base_url + "/responses", json=body, timeout=30) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].startswith("text/event-stream")
            text = "".join(r.iter_text())
    for block in text.strip().split("\n\n"):
        event, data = block.split("\n", 1)
        assert event.startswith("event: ") and data.startswith("data: ")
        payload = json.loads(data[len("data: ") :])
        assert payload["type"] == event[len("event: ") :]
        EVENTS.validate_python(payload)
        frames.append((payload["type"], payload))
    assert [d["sequence_number"] for _, d in frames] == list(range(len(frames)))
    return frames


def test_create_returns_a_completed_response(client: OpenAI):
    body = raw_create(
        client, model="gpt-4o", input="hello there", instructions="Be brief.", metadata={"k": "v"}
    )
    assert "output_text" not in body  # an SDK property, computed from output
    assert body["status"] == "completed" and body["object"] == "response"
    assert body["instructions"] == "Be brief." and body["metadata"] == {"k": "v"}
    [message] = body["output"]
    assert message["type"] == "message" and message["role"] == "assistant"
    assert message["content"][0]["text"] == '[scripted] You said: "hello there"'
    usage = body["usage"]
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"] > 0

    response = client.responses.retrieve(body["id"])
    assert response.output_text == '[scripted] You said: "hello there"'
    assert response.completed_at is not None and response.store is True
    items = client.responses.input_items.list(body["id"])
    assert [i.type for i in items.data] == ["message"]
    assert items.data[0].content[0].text == "hello there"


def test_stream_events_validate_and_end_with_completed(engine):
    frames = sse_events(engine, {"model": "gpt-4o", "input": "essay please", "stream": True})
    kinds = [k for k, _ in frames]
    assert kinds[:5] == [
        "response.created",
        "response.in_progress",
        "response.output_item.added",
        "response.content_part.added",
        "response.output_text.delta",
    ]
    assert kinds[-4:] == [
        "response.output_text.done",
        "response.content_part.done",
        "response.output_item.done",
        "response.completed",
    ]
    deltas = "".join(d["delta"] for k, d in frames if k == "response.output_text.delta")
    final = frames[-1][1]["response"]
    assert deltas == final["output"][0]["content"][0]["text"]
    assert frames[0][1]["response"]["status"] == "in_progress"


def test_create_stream_true_and_stream_helper(client: OpenAI):
    events = list(client.responses.create(model="gpt-4o", input="essay now", stream=True))
    assert events[-1].type == "response.completed"
    assert sum(e.type == "response.output_text.delta" for e in events) > 1

    deltas = []
    with client.responses.stream(model="gpt-4o", input="essay again") as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
                assert event.snapshot == "".join(deltas)
        final = stream.get_final_response()
    assert final.status == "completed" and final.output_text == "".join(deltas)
    assert final.output_text.startswith("word0 word1")


def test_multi_turn_by_previous_response_id(client: OpenAI):
    first = client.responses.create(model="gpt-4o", input="first question")
    second = client.responses.create(
        model="gpt-4o", input="second question", previous_response_id=first.id
    )
    assert second.previous_response_id == first.id
    assert second.output_text == '[scripted] You said: "second question"'
    # The model saw the first turn too: more input tokens than the first turn alone.
    assert second.usage.input_tokens > first.usage.input_tokens
    assert [i.content[0].text for i in client.responses.input_items.list(second.id).data] == [
        "second question"
    ]


def test_parallel_function_calls_round_trip(client: OpenAI):
    first = client.responses.create(model="gpt-4o", input="weather in Oslo", tools=FUNCTIONS)
    assert first.status == "completed"
    calls = [o for o in first.output if o.type == "function_call"]
    assert [(c.name, json.loads(c.arguments)) for c in calls] == [
        ("get_weather", {"city": "Oslo"}),
        ("get_time", {"city": "Oslo"}),
    ]
    assert all(c.status == "completed" and c.call_id.startswith("call_") for c in calls)
    outputs = [
        {"type": "function_call_output", "call_id": c.call_id, "output": out}
        for c, out in zip(calls, ["rain", "noon"], strict=True)
    ]
    second = client.responses.create(
        model="gpt-4o", input=outputs, tools=FUNCTIONS, previous_response_id=first.id
    )
    assert second.output_text == "Report: get_weather=rain, get_time=noon"

    # Without a previous response, the client echoes the calls itself.
    echoed = client.responses.create(
        model="gpt-4o",
        input=[{"role": "user", "content": "weather in Oslo"}, *calls, *outputs],
        tools=FUNCTIONS,
    )
    assert echoed.output_text == "Report: get_weather=rain, get_time=noon"


def test_function_calls_stream(engine):
    body = {"model": "gpt-4o", "input": "weather in Rome", "tools": FUNCTIONS, "stream": True}
    frames = sse_events(engine, body)
    kinds = [k for k, _ in frames]
    assert kinds.count("response.function_call_arguments.delta") == 2
    done = [d for k, d in frames if k == "response.function_call_arguments.done"]
    assert [json.loads(d["arguments"]) for d in done] == [{"city": "Rome"}] * 2
    assert kinds[-1] == "response.completed"


def test_file_search_with_file_citations(client: OpenAI, engine):
    pdf = upload(client, "trial.pdf", make_pdf("PEDro trial report. Random allocation was used."))
    txt = upload(client, "garden.txt", b"Unrelated notes about gardening and tomatoes.")
    store = client.vector_stores.create(name="papers", file_ids=[pdf.id, txt.id])
    tools = [{"type": "file_search", "vector_store_ids": [store.id], "max_num_results": 4}]
    body = raw_create(
        client,
        model="gpt-4o",
        input="Rate this PEDro paper: random allocation?",
        tools=tools,
        include=["file_search_call.results"],
    )
    search, message = body["output"]
    assert search["type"] == "file_search_call" and search["status"] == "completed"
    assert search["queries"] == ["Rate this PEDro paper: random allocation?"]
    assert search["results"][0]["file_id"] == pdf.id
    assert search["results"][0]["filename"] == "trial.pdf"
    text = message["content"][0]["text"]
    assert "【" not in text and text.startswith("According to the paper")
    [note] = message["content"][0]["annotations"]
    assert note == {
        "type": "file_citation",
        "file_id": pdf.id,
        "filename": "trial.pdf",
        "index": 22,
    }

    plain = client.responses.create(model="gpt-4o", input="search tomatoes", tools=tools)
    assert plain.output[0].results is None  # results only when included, as OpenAI does
    assert {a.file_id for a in plain.output[1].content[0].annotations} == {txt.id}

    frames = sse_events(
        engine, {"model": "gpt-4o", "input": "pedro?", "tools": tools, "stream": True}
    )
    kinds = [k for k, _ in frames]
    assert kinds[3:6] == [
        "response.file_search_call.in_progress",
        "response.file_search_call.searching",
        "response.file_search_call.completed",
    ]
    assert "response.output_text.annotation.added" in kinds


def test_code_interpreter_image_downloads_from_container(client: OpenAI, engine):
    data = upload(client, "sales.csv", b"month,total\njan,3\n")
    tools = [{"type": "code_interpreter", "container": {"type": "auto", "file_ids": [data.id]}}]
    response = client.responses.create(
        model="gpt-4o", input="plot sales", tools=tools, include=["code_interpreter_call.outputs"]
    )
    call, message = response.output
    assert call.type == "code_interpreter_call" and call.code.startswith("import matplotlib")
    logs, image = call.outputs
    assert logs.logs == "<BarContainer object of 3 artists>"
    assert image.url.startswith("data:image/png;base64,")
    [cite] = message.content[0].annotations
    assert cite.type == "container_file_citation" and cite.container_id == call.container_id
    content = client.containers.files.content.retrieve(cite.file_id, container_id=cite.container_id)
    assert content.read().startswith(PNG_MAGIC)

    files = client.containers.files.list(call.container_id, order="asc")
    assert [(f.source, f.path) for f in files.data] == [
        ("user", "/mnt/data/sales.csv"),
        ("assistant", f"/mnt/data/{cite.filename}"),
    ]
    assert client.containers.retrieve(call.container_id).status == "running"

    # Without include, outputs stay null (OpenAI's default); the file is still cited.
    again = client.responses.create(
        model="gpt-4o",
        input="plot",
        tools=[{"type": "code_interpreter", "container": call.container_id}],
    )
    assert again.output[0].outputs is None and again.output[0].container_id == call.container_id

    frames = sse_events(engine, {"model": "gpt-4o", "input": "plot", "tools": CODE, "stream": True})
    kinds = [k for k, _ in frames]
    for kind in (
        "response.code_interpreter_call.in_progress",
        "response.code_interpreter_call_code.delta",
        "response.code_interpreter_call_code.done",
        "response.code_interpreter_call.interpreting",
        "response.code_interpreter_call.completed",
    ):
        assert kind in kinds


class Answer(BaseModel):
    answer: str
    ok: bool


def test_json_schema_text_format(client: OpenAI):
    fmt = {
        "type": "json_schema",
        "name": "answer",
        "schema": Answer.model_json_schema(),
        "strict": True,
    }
    response = client.responses.create(model="gpt-4o", input="json please", text={"format": fmt})
    assert response.text.format.type == "json_schema" and response.text.format.name == "answer"
    assert json.loads(response.output_text) == {"answer": "11", "ok": True}
    parsed = client.responses.parse(model="gpt-4o", input="json please", text_format=Answer)
    assert parsed.output_parsed == Answer(answer="11", ok=True)


def test_failed_and_incomplete(client: OpenAI, engine):
    failed = client.responses.create(model="gpt-4o", input="explode")
    assert failed.status == "failed"
    assert failed.error.code == "rate_limit_exceeded" and failed.error.message == "scripted failure"
    frames = sse_events(engine, {"model": "gpt-4o", "input": "explode", "stream": True})
    assert frames[-1][0] == "response.failed"

    cut = client.responses.create(model="gpt-4o", input="essay", max_output_tokens=16)
    assert cut.status == "incomplete" and cut.incomplete_details.reason == "max_output_tokens"
    assert cut.output[0].status == "incomplete" and len(cut.output_text) == 64


def test_assistant_rules_match_metadata_orch_assistant(client: OpenAI):
    meta = {"orch_assistant": "pedro-rater"}
    assert client.responses.create(model="m", input="who are you", metadata=meta).output_text == (
        "I rate trials."
    )
    other = client.responses.create(model="m", input="who are you")
    assert other.output_text.startswith("[scripted]")


def test_background_polls_to_completion(client: OpenAI):
    response = client.responses.create(model="gpt-4o", input="hi there", background=True)
    deadline = time.monotonic() + 10
    while response.status in ("queued", "in_progress"):
        assert time.monotonic() < deadline
        time.sleep(0.02)
        response = client.responses.retrieve(response.id)
    assert response.status == "completed" and response.output_text.startswith("[scripted]")


def test_image_and_file_parts_are_kept_as_items(client: OpenAI):
    image = upload(client, "chart.png", PNG_MAGIC + b"rest")
    response = client.responses.create(
        model="gpt-4o",
        input=[
            {
                "role": "user",
                "content": [
                    {"type": "input_text", "text": "what is this"},
                    {"type": "input_image", "file_id": image.id},
                    {"type": "input_image", "image_url": "https://example.invalid/a.png"},
                    {"type": "input_file", "file_id": image.id},
                ],
            }
        ],
    )
    assert response.output_text == '[scripted] You said: "what is this"'
    [item] = client.responses.input_items.list(response.id).data
    ITEMS.validate_python(item.model_dump(exclude_none=True))
    kinds = [(c.type, getattr(c, "detail", None)) for c in item.content]
    assert kinds == [
        ("input_text", None),
        ("input_image", "auto"),
        ("input_image", "auto"),
        ("input_file", None),
    ]
    assert item.content[3].filename == "chart.png"


def test_background_cancel_and_delete(client: OpenAI):
    response = client.responses.create(model="gpt-4o", input="slow down", background=True)
    assert response.status in ("queued", "in_progress") and response.background
    cancelled = client.responses.cancel(response.id)
    assert cancelled.status == "cancelled"
    assert client.responses.retrieve(response.id).status == "cancelled"

    done = client.responses.create(model="gpt-4o", input="hi")
    with pytest.raises(openai.BadRequestError):
        client.responses.cancel(done.id)
    client.responses.delete(done.id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(done.id)


def test_store_false_is_not_retrievable(client: OpenAI):
    response = client.responses.create(model="gpt-4o", input="hi", store=False)
    assert response.status == "completed"
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(response.id)


@pytest.mark.parametrize(
    ("params", "status", "param"),
    [
        ({"model": "m", "input": "x", "temperature_x": 1}, 400, "temperature_x"),
        ({"input": "x"}, 400, "model"),
        ({"model": "m"}, 400, "input"),
        ({"model": "m", "input": 3}, 400, "input"),
        ({"model": "m", "input": [{"role": "robot", "content": "x"}]}, 400, "input[0].role"),
        (
            {"model": "m", "input": "x", "previous_response_id": "resp_nope"},
            404,
            "previous_response_id",
        ),
        ({"model": "m", "input": "x", "conversation": "conv_nope"}, 404, "conversation"),
        (
            {"model": "m", "input": "x", "conversation": "c", "previous_response_id": "r"},
            400,
            "conversation",
        ),
        (
            {
                "model": "m",
                "input": [{"type": "function_call_output", "call_id": "call_x", "output": "1"}],
            },
            400,
            "input",
        ),
        ({"model": "m", "input": "x", "tools": [{"type": "web_search"}]}, 400, "tools[0].type"),
        (
            {
                "model": "m",
                "input": "x",
                "tools": [{"type": "file_search", "vector_store_ids": ["vs_nope"]}],
            },
            404,
            "tools[0].vector_store_ids",
        ),
        (
            {"model": "m", "input": "x", "metadata": {str(i): "v" for i in range(17)}},
            400,
            "metadata",
        ),
        (
            {"model": "m", "input": "x", "text": {"format": {"type": "json_schema"}}},
            400,
            "text.format.name",
        ),
        ({"model": "m", "input": "x", "include": ["nope"]}, 400, "include"),
        ({"model": "m", "input": "x", "max_output_tokens": 2}, 400, "max_output_tokens"),
    ],
)
def test_bad_requests(engine, params, status, param):
    r = httpx2.post(engine.base_url + "/responses", json=params, timeout=10)
    assert r.status_code == status
    error = r.json()["error"]
    assert error["param"] == param and error["message"]


def test_unknown_response_is_404(client: OpenAI):
    for call in (
        lambda: client.responses.retrieve("resp_nope"),
        lambda: client.responses.delete("resp_nope"),
        lambda: client.responses.input_items.list("resp_nope"),
    ):
        with pytest.raises(openai.NotFoundError):
            call()


def test_request_stats_count_responses(engine, client: OpenAI):
    engine.reset_stats()
    response = client.responses.create(model="gpt-4o", input="hi")
    client.responses.retrieve(response.id)
    stats = engine.stats()
    assert stats["POST /v1/responses"] == 1 and stats["GET /v1/responses/{response_id}"] == 1


def test_state_survives_restart(tmp_path: Path, script_path: Path):
    db = tmp_path / "engine.db"
    with start_engine(db, script=script_path) as first:
        client = OpenAI(base_url=first.base_url, api_key="x", max_retries=0)
        conv = client.conversations.create(metadata={"k": "v"})
        earlier = client.responses.create(
            model="gpt-4o", input="weather in Lima", tools=FUNCTIONS, conversation=conv.id
        )
        calls = [o for o in earlier.output if o.type == "function_call"]
    with start_engine(db, script=script_path) as second:
        client = OpenAI(base_url=second.base_url, api_key="x", max_retries=0)
        assert client.responses.retrieve(earlier.id).output[0].name == "get_weather"
        assert client.conversations.retrieve(conv.id).metadata == {"k": "v"}
        outputs = [
            {"type": "function_call_output", "call_id": c.call_id, "output": "ok"} for c in calls
        ]
        later = client.responses.create(
            model="gpt-4o", input=outputs, tools=FUNCTIONS, conversation=conv.id
        )
        assert later.output_text == "Report: get_weather=ok, get_time=ok"
        items = client.conversations.items.list(conv.id, order="asc")
        assert [i.type for i in items.data] == [
            "message",
            "function_call",
            "function_call",
            "function_call_output",
            "function_call_output",
            "message",
        ]
        for item in items.data:
            ITEMS.validate_python(item.model_dump(exclude_none=True))
