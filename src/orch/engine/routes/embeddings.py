"""``/v1/embeddings``: vectors for texts, as OpenAI's endpoint answers them.

The openai-chat model passes the request to its upstream's ``/v1/embeddings`` (the upstream's
model, numbers and usage, re-encoded as the client asked); the scripted model answers with
:func:`orch.engine.embeddings.local_embedding`, deterministic and offline.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from orch.engine import params as p
from orch.engine.embeddings import default_dimensions, encode, local_embedding
from orch.engine.errors import ApiError, bad_request
from orch.engine.models.base import ModelError, estimate_tokens
from orch.engine.routes.bodies import read_json
from orch.engine.routes.common import engine_of, json_response, routes

FIELDS = frozenset({"input", "model", "dimensions", "encoding_format", "user"})
#: inputs one request may embed (OpenAI's limit)
MAX_INPUTS = 2048


def _inputs(body: dict[str, Any]) -> list[str | list[int]]:
    """``input`` as a list: strings, or token arrays (both as OpenAI accepts them)."""
    value = p.field(body, "input", (str, list), required=True, nullable=False)
    if isinstance(value, str) or (value and all(_is_int(t) for t in value)):
        value = [value]
    if not value:
        raise bad_request("'$.input' is invalid. Please check the API reference.", "input")
    if len(value) > MAX_INPUTS:
        raise bad_request(
            f"Invalid 'input': array too long. Expected an array with maximum length "
            f"{MAX_INPUTS}, but got an array with length {len(value)} instead.",
            "input",
            "array_above_max_length",
        )
    for i, entry in enumerate(value):
        tokens = isinstance(entry, list) and entry and all(_is_int(t) for t in entry)
        if not (isinstance(entry, str) and entry) and not tokens:
            raise bad_request(
                f"'$.input[{i}]' is invalid: expected a non-empty string or array of tokens.",
                "input",
            )
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


async def create(request: Request) -> Response:
    """``POST /v1/embeddings``."""
    body = await read_json(request)
    p.check_keys(body, FIELDS)
    model = p.field(body, "model", str, required=True)
    inputs = _inputs(body)
    dimensions = p.field(body, "dimensions", int, minimum=1)
    encoding = p.field(body, "encoding_format", str, default="float", choices=("float", "base64"))
    p.field(body, "user", str)
    upstream = getattr(engine_of(request).model, "embeddings", None)
    if upstream is not None:
        params = {"model": model, "input": inputs, "encoding_format": "float"}
        params.update({"dimensions": dimensions} if dimensions else {})
        try:
            vectors, used, model = await upstream(params)
        except ModelError as exc:  # the upstream's refusal is the client's; its failure a 502
            status, kind = (
                (400, "invalid_request_error")
                if exc.code == "invalid_prompt"
                else (502, "server_error")
            )
            raise ApiError(status, exc.message, type=kind, code=exc.code) from exc
    else:
        size = dimensions or default_dimensions(model)
        texts = [e if isinstance(e, str) else " ".join(map(str, e)) for e in inputs]
        vectors = [local_embedding(t, size) for t in texts]
        used = sum(
            estimate_tokens(t) if isinstance(e, str) else len(e)
            for t, e in zip(texts, inputs, strict=True)
        )
    data = [
        {"object": "embedding", "index": i, "embedding": encode(v, encoding)}
        for i, v in enumerate(vectors)
    ]
    usage = {"prompt_tokens": used, "total_tokens": used}
    return json_response({"object": "list", "data": data, "model": model, "usage": usage})


ROUTES = routes({"/embeddings": {"POST": create}})
