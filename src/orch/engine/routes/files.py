"""``/v1/files``: multipart upload, retrieve, list, delete, content download."""

from __future__ import annotations

import mimetypes
import re

from starlette.requests import Request
from starlette.responses import Response

from orch.engine.errors import ApiError, bad_request, invalid_choice, missing_parameter
from orch.engine.params import list_body
from orch.engine.routes.common import engine_of, json_response, object_response, routes
from orch.engine.routes.resources import deleter, finder, retriever

UPLOAD_PURPOSES = ("assistants", "batch", "fine-tune", "vision", "user_data", "evals")
_DISPOSITION = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def parse_multipart(content_type: str, body: bytes) -> dict[str, tuple[str | None, bytes]]:
    """``{field: (filename or None, bytes)}`` from a multipart/form-data body."""
    match = re.search(r'boundary="?([^";]+)"?', content_type)
    if not match:
        raise bad_request("Expected a multipart/form-data body with a boundary.")
    boundary = b"--" + match.group(1).encode()
    fields: dict[str, tuple[str | None, bytes]] = {}
    for part in body.split(boundary)[1:]:
        if part.startswith(b"--"):
            break
        head, _, data = part.partition(b"\r\n\r\n")
        if data.endswith(b"\r\n"):
            data = data[:-2]
        params = {}
        for line in head.decode("utf-8", "replace").split("\r\n"):
            if line.lower().startswith("content-disposition:"):
                params = dict(_DISPOSITION.findall(line))
        if "name" in params:
            fields[params["name"]] = (params.get("filename"), data)
    return fields


async def upload(request: Request) -> Response:
    """POST /v1/files."""
    engine = engine_of(request)
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise bad_request("Uploads must be multipart/form-data with 'file' and 'purpose'.")
    fields = parse_multipart(content_type, await request.body())
    if "purpose" not in fields:
        raise missing_parameter("purpose")
    if "file" not in fields:
        raise missing_parameter("file")
    purpose = fields["purpose"][1].decode()
    if purpose not in UPLOAD_PURPOSES:
        raise invalid_choice(purpose, UPLOAD_PURPOSES, "purpose")
    filename, content = fields["file"]
    file = engine.files.create(content, filename or "upload", purpose)
    return object_response(file)


find_file = finder(
    "file",
    "file_id",
    missing=lambda file_id: ApiError(404, f"No such File object: {file_id}", param="id"),
)
retrieve = retriever(find_file)
delete = deleter(find_file, "file", lambda engine, file: engine.files.delete(file["id"]))


async def content(request: Request) -> Response:
    """GET /v1/files/{file_id}/content."""
    file = find_file(request)
    return download(engine_of(request).store.get_blob(file["id"]) or b"", file["filename"])


def download(data: bytes, filename: str) -> Response:
    """File content as an attachment, typed by the file name."""
    media = mimetypes.guess_type(filename)[0] or "application/octet-stream"
    return Response(
        data,
        media_type=media,
        headers={"content-disposition": f'attachment; filename="{filename}"'},
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
