"""``/v1/embeddings`` through the SDK: local vectors (scripted), the upstream's (openai-chat)."""

from __future__ import annotations

import base64
import math
import struct

import httpx2
import pytest
from openai import BadRequestError, OpenAI

from orch.engine.server import start_engine
from tests.engine.upstream import StrictUpstream, embed, serving


def _cos(a: list[float], b: list[float]) -> float:
    return sum(x * y for x, y in zip(a, b, strict=True)) / (
        math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    )


def test_scripted_engine_embeds_deterministically(client: OpenAI):
    texts = ["The capital of France is Paris.", "Paris is the capital of France.", "Bananas"]
    res = client.embeddings.create(model="text-embedding-3-large", input=texts)
    again = client.embeddings.create(model="text-embedding-3-large", input=texts)
    assert res.object == "list" and res.model == "text-embedding-3-large"
    assert [d.index for d in res.data] == [0, 1, 2]
    vectors = [d.embedding for d in res.data]
    assert vectors == [d.embedding for d in again.data]  # the same numbers every time
    assert all(len(v) == 3072 for v in vectors)
    assert all(
        abs(math.sqrt(sum(x * x for x in v)) - 1) < 1e-6 for v in vectors
    )  # float32 on the wire
    # same words in another order: one direction; another text: nearly orthogonal
    assert _cos(vectors[0], vectors[1]) > 0.99
    assert abs(_cos(vectors[0], vectors[2])) < 0.2
    assert res.usage.prompt_tokens == res.usage.total_tokens > 0


def test_dimensions_base64_and_token_inputs(client: OpenAI):
    small = client.embeddings.create(model="text-embedding-3-small", input="hello world")
    assert len(small.data[0].embedding) == 1536
    short = client.embeddings.create(model="m", input=["hello world"], dimensions=8)
    assert len(short.data[0].embedding) == 8
    # base64 asked explicitly: the SDK hands back the string; it decodes to the same floats
    raw = client.embeddings.create(
        model="m", input="hello world", dimensions=8, encoding_format="base64"
    )
    packed = base64.b64decode(raw.data[0].embedding)
    floats = struct.unpack("<8f", packed)
    assert all(abs(a - b) < 1e-6 for a, b in zip(floats, short.data[0].embedding, strict=True))
    tokens = client.embeddings.create(model="m", input=[[1, 2, 3], [4]], dimensions=4)
    assert len(tokens.data) == 2 and tokens.usage.prompt_tokens == 4


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"input": "x"}, "model", "Missing required parameter"),
        ({"model": "m"}, "input", "Missing required parameter"),
        ({"model": "m", "input": ""}, "input", "is invalid"),
        ({"model": "m", "input": []}, "input", "is invalid"),
        ({"model": "m", "input": "x", "dimensions": 0}, "dimensions", "dimensions"),
        ({"model": "m", "input": "x", "encoding_format": "hex"}, "encoding_format", "'hex'"),
        ({"model": "m", "input": "x", "colour": 1}, "colour", "Unknown parameter"),
    ],
)
def test_bad_requests_get_openai_400s(engine, body, param, words):
    res = httpx2.post(f"{engine.base_url}/embeddings", json=body, headers={"authorization": "x"})
    assert res.status_code == 400, res.text
    error = res.json()["error"]
    assert error["param"] == param and words in error["message"]


def test_openai_chat_engine_forwards_to_the_upstream(tmp_path):
    upstream = StrictUpstream()
    with (
        serving(upstream) as url,
        start_engine(
            tmp_path / "e.db",
            model="openai-chat",
            upstream_base_url=url,
            upstream_api_key_env="ORCH_TEST_NO_KEY",
        ) as engine,
    ):
        client = OpenAI(base_url=engine.base_url, api_key="x", max_retries=0)
        res = client.embeddings.create(model="nomic-embed", input=["a car", "an automobile"])
        raw = client.embeddings.create(model="nomic-embed", input="a car", encoding_format="base64")
        client.embeddings.create(model="nomic-embed", input="a car", dimensions=64)
        with pytest.raises(BadRequestError) as refused:
            client.embeddings.create(model="nomic-embed", input=[[1, 2]])  # the double: text only
    assert upstream.rejected[-1][1] == "This double embeds text inputs only."
    assert refused.value.status_code == 400
    assert upstream.embedded == [["a car", "an automobile"], ["a car"], ["a car"]]
    for got, text in zip(res.data, ["a car", "an automobile"], strict=True):
        assert got.embedding == pytest.approx(embed(text), abs=1e-6)  # float32 on the wire
    assert res.model == "nomic-embed" and res.usage.prompt_tokens == 4
    decoded = struct.unpack(f"<{len(embed('a car'))}f", base64.b64decode(raw.data[0].embedding))
    assert decoded == pytest.approx(embed("a car"), abs=1e-6)
