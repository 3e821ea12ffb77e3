"""``/v1/containers`` and their files (content download included)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from orch.engine import params as p
from orch.engine.errors import ApiError, bad_request, not_found
from orch.engine.routes.common import deleted, engine_of, json_response, object_response, route
from orch.engine.routes.files import download, parse_multipart
from orch.engine.store import child_key

CONTAINER_FIELDS = frozenset(
    {"name", "file_ids", "expires_after", "memory_limit", "network_policy"}
)


def _container(request: Request) -> dict[str, Any]:
    cid = request.path_params["container_id"]
    container = engine_of(request).store.get("container", cid)
    if container is None:
        raise not_found("container", cid)
    return container


def _container_file(request: Request) -> dict[str, Any]:
    container = _container(request)
    fid = request.path_params["file_id"]
    cfile = engine_of(request).store.get("container_file", child_key(container["id"], fid))
    if cfile is None:
        raise not_found("container file", fid)
    return cfile


async def create(request: Request) -> Response:
    """POST /v1/containers."""
    engine = engine_of(request)
    body = await p.read_json(request)
    p.check_keys(body, CONTAINER_FIELDS)
    name = p.field(body, "name", str, required=True)
    file_ids = p.field(body, "file_ids", list) or []
    for fid in file_ids:
        if engine.store.get("file", fid) is None:
            raise ApiError(404, f"No file found with id '{fid}'.", param="file_ids")
    memory = p.field(body, "memory_limit", str, choices=("1g", "4g", "16g", "64g"))
    expires = p.field(body, "expires_after", dict)
    return object_response(engine.containers.create(name, file_ids, expires, memory))


async def list_containers(request: Request) -> Response:
    """GET /v1/containers."""
    items = engine_of(request).store.all("container")
    name = request.query_params.get("name")
    if name:
        items = [c for c in items if c["name"] == name]
    return json_response(p.page_list(items, **p.page_params(request)))


async def retrieve(request: Request) -> Response:
    """GET /v1/containers/{container_id}."""
    return object_response(_container(request))


async def delete(request: Request) -> Response:
    """DELETE /v1/containers/{container_id}."""
    container = _container(request)
    engine_of(request).containers.delete(container["id"])
    return deleted(container["id"], "container")


async def create_file(request: Request) -> Response:
    """POST /v1/containers/{container_id}/files (multipart ``file`` or JSON ``file_id``)."""
    engine = engine_of(request)
    container = _container(request)
    content_type = request.headers.get("content-type", "")
    if content_type.startswith("multipart/form-data"):
        fields = parse_multipart(content_type, await request.body())
        if "file" not in fields:
            raise bad_request(
                "Missing required parameter: 'file'.", "file", "missing_required_parameter"
            )
        filename, content = fields["file"]
        name = filename or "upload"
    else:
        body = await p.read_json(request)
        p.check_keys(body, frozenset({"file_id"}))
        fid = p.field(body, "file_id", str, required=True)
        file = engine.store.get("file", fid)
        if file is None:
            raise ApiError(404, f"No file found with id '{fid}'.", param="file_id")
        content, name = engine.store.get_blob(fid) or b"", file["filename"]
    cfile = engine.containers.add_file(container["id"], content, f"/mnt/data/{name}", "user")
    return object_response(cfile)


async def list_files(request: Request) -> Response:
    """GET /v1/containers/{container_id}/files."""
    container = _container(request)
    items = engine_of(request).store.all("container_file", container["id"])
    return json_response(p.page_list(items, **p.page_params(request)))


async def retrieve_file(request: Request) -> Response:
    """GET /v1/containers/{container_id}/files/{file_id}."""
    return object_response(_container_file(request))


async def delete_file(request: Request) -> Response:
    """DELETE /v1/containers/{container_id}/files/{file_id}."""
    store = engine_of(request).store
    cfile = _container_file(request)
    key = child_key(cfile["container_id"], cfile["id"])
    store.delete(key)
    store.delete_blob(key)
    return deleted(cfile["id"], "container.file")


async def file_content(request: Request) -> Response:
    """GET /v1/containers/{container_id}/files/{file_id}/content."""
    cfile = _container_file(request)
    key = child_key(cfile["container_id"], cfile["id"])
    data = engine_of(request).store.get_blob(key) or b""
    return download(data, cfile["path"].rsplit("/", 1)[-1])


ROUTES = [
    route("/containers", create, ["POST"]),
    route("/containers", list_containers, ["GET"]),
    route("/containers/{container_id}", retrieve, ["GET"]),
    route("/containers/{container_id}", delete, ["DELETE"]),
    route("/containers/{container_id}/files", create_file, ["POST"]),
    route("/containers/{container_id}/files", list_files, ["GET"]),
    route("/containers/{container_id}/files/{file_id}", retrieve_file, ["GET"]),
    route("/containers/{container_id}/files/{file_id}", delete_file, ["DELETE"]),
    route("/containers/{container_id}/files/{file_id}/content", file_content, ["GET"]),
]
