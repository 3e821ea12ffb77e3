"""Issue 11.8: bodies have limits, refused in OpenAI's shape; uploads stream to disk."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx2
import openai
import pytest
from openai import OpenAI

from orch.engine.routes import bodies, uploads
from orch.engine.server import EngineHandle

BETA = {"OpenAI-Beta": "assistants=v2"}


def _multipart(parts: list[bytes]) -> tuple[bytes, dict[str, str]]:
    body = b"".join(b"--B\r\n" + p + b"\r\n" for p in parts) + b"--B--\r\n"
    return body, {"content-type": "multipart/form-data; boundary=B"}


def _field(name: bytes, value: bytes) -> bytes:
    return b'Content-Disposition: form-data; name="' + name + b'"\r\n\r\n' + value


def _file(filename: bytes, content: bytes) -> bytes:
    return (
        b'Content-Disposition: form-data; name="file"; filename="' + filename + b'"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n" + content
    )


def _leftovers(engine: EngineHandle) -> list[str]:
    blob_dir = engine.db_path.with_name(engine.db_path.name + ".files")
    return sorted(p.name for p in blob_dir.iterdir() if p.name.startswith("tmp-"))


def test_an_upload_streams_to_disk_and_comes_back_whole(client: OpenAI, engine: EngineHandle):
    content = bytes(range(256)) * 4096  # 1 MiB, every byte value
    file = client.files.create(file=("data.bin", content), purpose="assistants")
    assert file.bytes == len(content) and file.filename == "data.bin"
    assert engine.db_path.with_name(engine.db_path.name + ".files").joinpath(file.id).is_file()
    assert client.files.content(file.id).content == content
    client.files.delete(file.id)


def test_a_file_over_the_limit_is_a_413(
    client: OpenAI, engine: EngineHandle, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(uploads, "FILE_LIMIT", 1024 * 1024)
    before = {f.id for f in client.files.list()}
    # Counted as it arrives (the declared length is within the form's overhead) ...
    with pytest.raises(openai.APIStatusError) as err:
        client.files.create(file=("big.bin", b"x" * (1024 * 1024 + 1)), purpose="assistants")
    assert err.value.status_code == 413
    assert err.value.body["code"] == "file_too_large" and err.value.body["param"] == "file"
    # ... or refused from Content-Length alone, and the client still reads the answer.
    with pytest.raises(openai.APIStatusError) as err:
        client.files.create(file=("bigger.bin", b"x" * (3 * 1024 * 1024)), purpose="assistants")
    assert err.value.status_code == 413
    assert {f.id for f in client.files.list()} == before
    assert _leftovers(engine) == []


def test_a_chunked_upload_over_the_limit_is_a_413(
    engine: EngineHandle, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(uploads, "FILE_LIMIT", 64 * 1024)
    body, headers = _multipart([_field(b"purpose", b"assistants"), _file(b"a.bin", b"y" * 100_000)])

    def chunks() -> Iterator[bytes]:  # no Content-Length: Transfer-Encoding: chunked
        for i in range(0, len(body), 8192):
            yield body[i : i + 8192]

    res = httpx2.post(engine.base_url + "/files", content=chunks(), headers=headers)
    assert res.status_code == 413 and res.json()["error"]["code"] == "file_too_large"
    assert _leftovers(engine) == []


def test_form_fields_must_be_utf8(engine: EngineHandle):
    for parts in (
        [_field(b"purpose", b"assist\xffants"), _file(b"a.txt", b"x")],
        [_field(b"purpose", b"assistants"), _file(b"\xff\xfe.txt", b"x")],
    ):
        body, headers = _multipart(parts)
        res = httpx2.post(engine.base_url + "/files", content=body, headers=headers)
        assert res.status_code == 400, res.text
        assert res.json()["error"]["type"] == "invalid_request_error"
    body, headers = _multipart([_field(b"purpose", b"assistants"), b"garbage"])
    res = httpx2.post(engine.base_url + "/files", content=body[:-4], headers=headers)
    assert res.status_code == 400 and "error" in res.json()
    assert _leftovers(engine) == []


def test_a_json_body_over_the_limit_is_a_413(
    client: OpenAI, engine: EngineHandle, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(bodies, "JSON_LIMIT", 64 * 1024)
    with pytest.raises(openai.APIStatusError) as err:
        client.beta.assistants.create(model="m", instructions="x" * 100_000)
    assert err.value.status_code == 413 and err.value.body["code"] == "request_too_large"

    def chunks() -> Iterator[bytes]:
        yield b'{"model": "m", "instructions": "'
        for _ in range(20):
            yield b"x" * 8192
        yield b'"}'

    res = httpx2.post(engine.base_url + "/assistants", content=chunks(), headers=BETA)
    assert res.status_code == 413 and res.json()["error"]["code"] == "request_too_large"


def test_deep_nesting_is_a_400_never_a_plain_500(client: OpenAI, engine: EngineHandle):
    for depth in (65, 100_000):
        body = b'{"model": "m", "metadata": ' + b"[" * depth + b"]" * depth + b"}"
        res = httpx2.post(engine.base_url + "/responses", content=body)
        assert res.status_code == 400, res.text[:200]
        assert res.headers["content-type"] == "application/json"
        assert "nested too deeply" in res.json()["error"]["message"]
    schema: dict = {"type": "string"}
    for _ in range(25):  # a deep but legitimate tool schema
        schema = {"type": "object", "properties": {"x": schema}}
    tool = {"type": "function", "function": {"name": "deep", "parameters": schema}}
    assert bodies.nesting_depth(json.dumps({"tools": [tool]}).encode()) == 55
    assert client.beta.assistants.create(model="m", tools=[tool]).tools[0].function.name == "deep"


def test_an_unexpected_failure_is_a_json_500(engine: EngineHandle, monkeypatch: pytest.MonkeyPatch):
    from orch.engine.routes import assistants

    def broken(*args, **kwargs):
        raise RuntimeError("a bug")

    monkeypatch.setattr(assistants, "page_response", broken)
    res = httpx2.get(engine.base_url + "/assistants", headers=BETA)
    assert res.status_code == 500 and res.headers["content-type"] == "application/json"
    assert res.json()["error"]["type"] == "server_error"
    assert res.headers["x-request-id"].startswith("req_")
