"""``/v1/containers`` and their files (content download included)."""

from __future__ import annotations

import asyncio

from starlette.requests import Request
from starlette.responses import Response

from orch.engine import params as p
from orch.engine.errors import missing_parameter, not_found
from orch.engine.routes.bodies import read_json
from orch.engine.routes.common import engine_of, object_response, routes
from orch.engine.routes.files import download
from orch.engine.routes.resources import check_stored, deleter, finder, list_response, retriever
from orch.engine.routes.uploads import read_upload
from orch.engine.store import child_key

CONTAINER_FIELDS = frozenset(
    {"name", "file_ids", "expires_after", "memory_limit", "network_policy"}
)

find_container = finder("container", "container_id")
find_file = finder("container_file", "file_id", within=find_container, keyed=True)
retrieve = retriever(find_container)
delete = deleter(find_container, "container", lambda engine, c: engine.containers.delete(c["id"]))
retrieve_file = retriever(find_file)
delete_file = deleter(
    find_file, "container.file", lambda engine, f: engine.containers.delete_file(f)
)


async def create(request: Request) -> Response:
    """POST /v1/containers."""
    engine = engine_of(request)
    body = await read_json(request)
    p.check_keys(body, CONTAINER_FIELDS)
    name = p.field(body, "name", str, required=True)
    file_ids = p.field(body, "file_ids", list) or []
    check_stored(engine.store, "file", file_ids, "file_ids")
    memory = p.field(body, "memory_limit", str, choices=("1g", "4g", "16g", "64g"))
    expires = p.field(body, "expires_after", dict)
    return object_response(engine.containers.create(name, file_ids, expires, memory))


async def list_containers(request: Request) -> Response:
    """GET /v1/containers."""
    items = engine_of(request).store.all("container")
    name = request.query_params.get("name")
    if name:
        items = [c for c in items if c["name"] == name]
    return list_response(request, items)


async def create_file(request: Request) -> Response:
    """POST /v1/containers/{container_id}/files (multipart ``file`` or JSON ``file_id``)."""
    engine = engine_of(request)
    container = find_container(request)
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        form = await read_upload(request, engine.store)
        try:
            if "file" not in form.files:
                raise missing_parameter("file")
            # Container files are held in memory by the sandbox that runs code on them.
            content = await asyncio.to_thread(form.files["file"].path.read_bytes)
            name = form.files["file"].filename or "upload"
        finally:
            form.discard()
    else:
        body = await read_json(request)
        p.check_keys(body, frozenset({"file_id"}))
        fid = p.field(body, "file_id", str, required=True)
        file = engine.store.get("file", fid)
        if file is None:
            raise not_found("file", fid, "file_id")
        content, name = engine.store.get_blob(fid) or b"", file["filename"]
    cfile = engine.containers.add_file(container["id"], content, f"/mnt/data/{name}", "user")
    return object_response(cfile)


async def list_files(request: Request) -> Response:
    """GET /v1/containers/{container_id}/files."""
    container = find_container(request)
    return list_response(request, engine_of(request).store.all("container_file", container["id"]))


async def file_content(request: Request) -> Response:
    """GET /v1/containers/{container_id}/files/{file_id}/content."""
    cfile = find_file(request)
    key = child_key(cfile["container_id"], cfile["id"])
    data = engine_of(request).store.get_blob(key) or b""
    return download(data, cfile["path"].rsplit("/", 1)[-1])


ROUTES = routes(
    {
        "/containers": {"POST": create, "GET": list_containers},
        "/containers/{container_id}": {"GET": retrieve, "DELETE": delete},
        "/containers/{container_id}/files": {"POST": create_file, "GET": list_files},
        "/containers/{container_id}/files/{file_id}": {"GET": retrieve_file, "DELETE": delete_file},
        "/containers/{container_id}/files/{file_id}/content": {"GET": file_content},
    }
)
