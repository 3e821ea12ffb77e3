"""``/v1/batches`` driven by the official SDK: each line runs through the engine's /v1/responses.

Every batch the engine answers is validated against the SDK's ``Batch`` type, and every output
line's body against ``Response``: the engine serves what OpenAI's clients parse.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from openai import BadRequestError, NotFoundError, OpenAI
from openai.types import Batch
from openai.types.responses import Response

from orch.engine.server import start_engine

SCRIPT = {
    "rules": [
        {"when": {"contains": "slow"}, "delay_ms": 400, "reply": "finally"},
        {"when": {"contains": "ping"}, "reply": "pong {{ message }}"},
    ],
    "default": {"reply": "[scripted] default"},
}


@pytest.fixture(scope="module")
def engine(tmp_path_factory):
    db = tmp_path_factory.mktemp("batches") / "engine.db"
    with start_engine(db, script=SCRIPT, poll_after_ms=20) as handle:
        yield handle


@pytest.fixture(scope="module")
def client(engine) -> OpenAI:
    return OpenAI(base_url=engine.base_url, api_key="test", max_retries=0)


def line(custom_id: str, text: str, **body) -> dict:
    """One /v1/responses request of an input file."""
    return {
        "custom_id": custom_id,
        "method": "POST",
        "url": "/v1/responses",
        "body": {"model": "gpt-4o", "input": text, **body},
    }


def upload(client: OpenAI, rows: list, tmp_path: Path, raw: str | None = None) -> str:
    path = tmp_path / "input.jsonl"
    path.write_text(raw if raw is not None else "".join(json.dumps(r) + "\n" for r in rows))
    with path.open("rb") as fh:
        return client.files.create(file=fh, purpose="batch").id


def checked(client: OpenAI, batch_id: str) -> Batch:
    """The batch as served, validated strictly against the SDK's type."""
    raw = client.batches.with_raw_response.retrieve(batch_id).http_response.json()
    return Batch.model_validate(raw, strict=True)


def wait(client: OpenAI, batch_id: str, until=("completed", "failed", "cancelled", "expired")):
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        batch = checked(client, batch_id)
        if batch.status in until:
            return batch
        time.sleep(0.05)
    raise AssertionError(f"batch {batch_id} still {batch.status}")


def jsonl(client: OpenAI, file_id: str | None) -> list[dict]:
    if file_id is None:
        return []
    text = client.files.content(file_id).text
    return [json.loads(row) for row in text.splitlines()]


def test_a_batch_runs_every_line_through_responses_and_files_the_failures(client, tmp_path):
    rows = [
        line("a", "ping one"),
        line("b", "ping two", metadata={"k": "v"}),
        line("bad", "ping three", temperature=9),  # out of range: the route's own 400
    ]
    file_id = upload(client, rows, tmp_path)
    created = client.batches.create(
        input_file_id=file_id,
        endpoint="/v1/responses",
        completion_window="24h",
        metadata={"orch_run": "r1"},
        output_expires_after={"anchor": "created_at", "seconds": 7200},
    )
    assert created.status == "validating"
    assert created.expires_at == created.created_at + 24 * 3600
    batch = wait(client, created.id)
    assert batch.status == "completed"
    assert batch.request_counts.model_dump() == {"total": 3, "completed": 2, "failed": 1}
    assert batch.in_progress_at and batch.finalizing_at and batch.completed_at
    assert batch.model == "gpt-4o" and batch.metadata == {"orch_run": "r1"}
    assert batch.usage is not None and batch.usage.total_tokens > 0
    outputs = jsonl(client, batch.output_file_id)
    assert [o["custom_id"] for o in outputs] == ["a", "b"]
    for out in outputs:
        assert out["response"]["status_code"] == 200 and out["response"]["request_id"]
        body = Response.model_validate(out["response"]["body"])
        assert body.status == "completed"
    first = Response.model_validate(outputs[0]["response"]["body"])
    assert first.output_text == "pong ping one"
    # the line's response is a stored response like any other
    assert client.responses.retrieve(first.id).output_text == "pong ping one"
    errors = jsonl(client, batch.error_file_id)
    assert [e["custom_id"] for e in errors] == ["bad"]
    assert errors[0]["response"]["status_code"] == 400
    assert errors[0]["response"]["body"]["error"]["param"] == "temperature"
    output_file = client.files.retrieve(batch.output_file_id)
    assert output_file.purpose == "batch_output"
    assert output_file.expires_at == output_file.created_at + 7200
    assert created.id in [b.id for b in client.batches.list(limit=100)]
    with pytest.raises(BadRequestError):
        client.batches.cancel(created.id)


def test_an_unreadable_input_file_fails_the_batch_naming_its_lines(client, tmp_path):
    good = json.dumps(line("a", "ping"))
    wrong_url = json.dumps({**line("b", "ping"), "url": "/v1/chat/completions"})
    raw = f"{good}\nnot json\n{wrong_url}\n{good}\n"
    file_id = upload(client, [], tmp_path, raw=raw)
    created = client.batches.create(
        input_file_id=file_id, endpoint="/v1/responses", completion_window="24h"
    )
    batch = wait(client, created.id)
    assert batch.status == "failed" and batch.failed_at
    assert [(e.line, e.code) for e in batch.errors.data] == [
        (2, "invalid_json_line"),
        (3, "mismatched_endpoint"),
        (4, "duplicate_custom_id"),
    ]
    assert batch.output_file_id is None and batch.error_file_id is None


def test_create_refuses_what_it_cannot_run(client, tmp_path):
    file_id = upload(client, [line("a", "ping")], tmp_path)
    with pytest.raises(BadRequestError, match="/v1/responses only"):
        client.batches.create(
            input_file_id=file_id, endpoint="/v1/embeddings", completion_window="24h"
        )
    with pytest.raises(NotFoundError):
        client.batches.create(
            input_file_id="file-missing", endpoint="/v1/responses", completion_window="24h"
        )
    path = tmp_path / "a.jsonl"
    path.write_text(json.dumps(line("a", "ping")))
    with path.open("rb") as fh:
        other = client.files.create(file=fh, purpose="assistants").id
    with pytest.raises(BadRequestError, match="purpose 'batch'"):
        client.batches.create(
            input_file_id=other, endpoint="/v1/responses", completion_window="24h"
        )
    with pytest.raises(BadRequestError, match="output_expires_after.seconds"):
        client.batches.create(
            input_file_id=file_id,
            endpoint="/v1/responses",
            completion_window="24h",
            output_expires_after={"anchor": "created_at", "seconds": 60},
        )
    with pytest.raises(NotFoundError):
        client.batches.retrieve("batch_missing")


def test_a_cancelled_batch_keeps_what_was_answered_and_files_the_rest(client, tmp_path):
    rows = [line(f"s{i}", f"slow {i}") for i in range(24)]
    created = client.batches.create(
        input_file_id=upload(client, rows, tmp_path),
        endpoint="/v1/responses",
        completion_window="24h",
    )
    wait(client, created.id, until=("in_progress",))
    cancelling = client.batches.cancel(created.id)
    assert cancelling.status == "cancelling" and cancelling.cancelling_at
    batch = wait(client, created.id)
    assert batch.status == "cancelled" and batch.cancelled_at
    outputs, errors = jsonl(client, batch.output_file_id), jsonl(client, batch.error_file_id)
    assert 0 < len(outputs) < 24 and len(outputs) + len(errors) == 24
    assert batch.request_counts.completed == len(outputs)
    unsent = [e for e in errors if e["response"] is None]
    assert unsent and all(e["error"]["code"] == "batch_cancelled" for e in unsent)


def test_a_restarted_engine_finishes_a_batch_sending_only_unanswered_lines(tmp_path):
    db = tmp_path / "engine.db"
    rows = [line(f"s{i}", f"slow {i}") for i in range(24)]
    with start_engine(db, script=SCRIPT, poll_after_ms=20) as first:
        client = OpenAI(base_url=first.base_url, api_key="test", max_retries=0)
        created = client.batches.create(
            input_file_id=upload(client, rows, tmp_path),
            endpoint="/v1/responses",
            completion_window="24h",
        )
        deadline = time.monotonic() + 10
        while checked(client, created.id).request_counts.completed < 8:
            assert time.monotonic() < deadline
            time.sleep(0.05)
    with start_engine(db, script=SCRIPT, poll_after_ms=20) as second:
        client = OpenAI(base_url=second.base_url, api_key="test", max_retries=0)
        batch = wait(client, created.id)
        assert batch.status == "completed"
        outputs = jsonl(client, batch.output_file_id)
        assert sorted(o["custom_id"] for o in outputs) == sorted(r["custom_id"] for r in rows)
        assert batch.request_counts.model_dump() == {"total": 24, "completed": 24, "failed": 0}
