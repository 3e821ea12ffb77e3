"""``/v1/files``: multipart upload (streamed to disk), retrieve, list, delete, content download."""

from __future__ import annotations

import asyncio
import mimetypes
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from orch.engine.errors import ApiError, bad_request, invalid_choice, missing_parameter
from orch.engine.params import list_body
from orch.engine.routes.common import engine_of, json_response, object_response, routes
from orch.engine.routes.resources import deleter, finder, retriever
from orch.engine.routes.uploads import read_upload

UPLOAD_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
#: What a file name may keep in the plain ``filename="..."`` of a download's header.
_HEADER_SAFE = frozenset(chr(c) for c in range(0x20, 0x7F)) - {'"', "\\"}
_CHUNK = 256 * 1024


async def upload(request: Request) -> Response:
    """POST /v1/files (the file streams to disk: see :mod:`orch.engine.routes.uploads`)."""
    engine = engine_of(request)
    form = await read_upload(request, engine.store)
    try:
        if "purpose" not in form.fields:
            raise missing_parameter("purpose")
        if "file" not in form.files:
            raise missing_parameter("file")
        purpose = form.fields["purpose"]
        if purpose not in UPLOAD_PURPOSES:
            raise invalid_choice(purpose, UPLOAD_PURPOSES, "purpose")
        part = form.files.pop("file")
        file = engine.files.adopt(part.path, part.size, part.filename or "upload", purpose)
    finally:
        form.discard()
    return object_response(file)


find_file = finder(
    "file",
    "file_id",
    missing=lambda file_id: ApiError(404, f"No such File object: {file_id}", param="id"),
)
retrieve = retriever(find_file)
delete = deleter(find_file, "file", lambda engine, file: engine.files.delete(file["id"]))


async def content(request: Request) -> Response:
    """GET /v1/files/{file_id}/content (streamed from disk for uploads)."""
    file = find_file(request)
    store = engine_of(request).store
    path = store.blob_file(file["id"])
    if path is None:
        return download(store.get_blob(file["id"]) or b"", file["filename"])
    headers = {
        "content-disposition": content_disposition(file["filename"]),
        "content-length": str(path.stat().st_size),
    }
    return StreamingResponse(
        _read_chunks(path), media_type=media_type(file["filename"]), headers=headers
    )


async def _read_chunks(path: Path) -> AsyncIterator[bytes]:
    with open(path, "rb") as source:
        while chunk := await asyncio.to_thread(source.read, _CHUNK):
            yield chunk


def media_type(filename: str) -> str:
    """The content type a download of ``filename`` is sent with (by its extension)."""
    return mimetypes.guess_type(filename)[0] or "application/octet-stream"


def content_disposition(filename: str) -> str:
    """``attachment`` with the name as RFC 6266 wants it, whatever characters it holds.

    HTTP headers are Latin-1 and may not hold control characters, so the plain ``filename``
    gets an ASCII stand-in (others replaced by ``_``) and, when that differs, the exact name
    follows as RFC 5987 ``filename*=UTF-8''<percent-encoded>``, which clients prefer.
    """
    fallback = "".join(c if c in _HEADER_SAFE else "_" for c in filename)
    value = f'attachment; filename="{fallback}"'
    if fallback != filename:
        value += "; filename*=UTF-8''" + quote(filename, safe="!#$&+^`|~")
    return value


def download(data: bytes, filename: str) -> Response:
    """File content held in memory as an attachment, typed by the file name."""
    return Response(
        data,
        media_type=media_type(filename),
        headers={"content-disposition": content_disposition(filename)},
    )


async def list_files(request: Request) -> Response:
    """GET /v1/files."""
    q = request.query_params
    try:
        limit = int(q.get("limit", "10000"))
    except ValueError:
        raise bad_request("Invalid 'limit': expected an integer.", "limit") from None
    if not 1 <= limit <= 10000:
        raise bad_request(
            "Invalid 'limit': integer out of range. Expected a value between 1 and 10000, but "
            f"got {limit} instead.",
            "limit",
        )
    order = q.get("order", "desc")
    if order not in ("asc", "desc"):
        raise bad_request(
            f"Invalid value: '{order}'. Supported values are: 'asc' and 'desc'.", "order"
        )
    where = {"purpose": q["purpose"]} if q.get("purpose") else None
    items, more = engine_of(request).store.page(
        "file", None, limit=limit, order=order, after=q.get("after"), where=where
    )
    return json_response(list_body(items, more))


ROUTES = routes(
    {
        "/files": {"POST": upload, "GET": list_files},
        "/files/{file_id}": {"GET": retrieve, "DELETE": delete},
        "/files/{file_id}/content": {"GET": content},
    }
)
