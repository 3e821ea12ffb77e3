"""``/v1/vector_stores`` with files, file batches and search."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from orch.engine import params as p
from orch.engine.core import Engine
from orch.engine.errors import (
    bad_request,
    invalid_choice,
    invalid_type,
    missing_parameter,
    not_found,
)
from orch.engine.routes.bodies import read_json
from orch.engine.routes.common import engine_of, json_response, object_response, routes
from orch.engine.routes.resources import deleter, finder, page_response, retriever
from orch.engine.store import child_key, new_object, public

STATUSES = ("in_progress", "completed", "failed", "cancelled")


find_store = finder("vector_store", "vector_store_id")
find_file = finder("vector_store_file", "file_id", noun="file", within=find_store, keyed=True)
find_batch = finder("vector_store_file_batch", "batch_id", noun="file batch", within=find_store)
retrieve = retriever(find_store, lambda engine, vs: engine.vectors.view(vs))
delete = deleter(find_store, "vector_store", lambda engine, vs: engine.vectors.delete(vs["id"]))
retrieve_file = retriever(find_file)
delete_file = deleter(
    find_file,
    "vector_store.file",
    lambda engine, vsf: engine.vectors.remove_file(vsf["vector_store_id"], vsf["id"]),
)
retrieve_batch = retriever(find_batch, lambda engine, batch: engine.vectors.view_batch(batch))


def _expires_after(body: dict[str, Any]) -> dict[str, Any] | None:
    value = p.field(body, "expires_after", dict)
    if value is None:
        return None
    p.field(
        value,
        "anchor",
        str,
        required=True,
        choices=("last_active_at",),
        param="expires_after.anchor",
    )
    days = p.field(
        value, "days", int, required=True, minimum=1, maximum=365, param="expires_after.days"
    )
    return {"anchor": "last_active_at", "days": days}


def _check_files(engine: Engine, file_ids: list[Any], param: str) -> None:
    for fid in file_ids:
        # An id that is not a string names no file either.
        if not isinstance(fid, str) or engine.store.get("file", fid) is None:
            raise not_found("file", fid, param)


async def create(request: Request) -> Response:
    """POST /v1/vector_stores."""
    engine = engine_of(request)
    body = await read_json(request)
    p.check_keys(
        body,
        frozenset(
            {"name", "file_ids", "expires_after", "chunking_strategy", "metadata", "description"}
        ),
    )
    name = p.field(body, "name", str, max_length=256)
    file_ids = p.field(body, "file_ids", list, max_length=500) or []
    _check_files(engine, file_ids, "file_ids")
    vs = engine.vectors.create(name, p.metadata(body), _expires_after(body))
    strategy = p.field(body, "chunking_strategy", dict)
    for fid in file_ids:
        engine.vectors.add_file(vs["id"], fid, chunking_strategy=strategy)
    return object_response(engine.vectors.view(vs))


async def update(request: Request) -> Response:
    """POST /v1/vector_stores/{vector_store_id}."""
    engine = engine_of(request)
    vs = find_store(request)
    body = await read_json(request)
    p.check_keys(body, frozenset({"name", "expires_after", "metadata"}))
    if "name" in body:
        vs["name"] = p.field(body, "name", str, max_length=256) or ""
    if "metadata" in body:
        vs["metadata"] = p.metadata(body) or {}
    if "expires_after" in body:
        vs["expires_after"] = _expires_after(body)
        vs["expires_at"] = (
            int(time.time()) + vs["expires_after"]["days"] * 86400 if vs["expires_after"] else None
        )
    engine.store.put(vs)
    return object_response(engine.vectors.view(vs))


async def list_stores(request: Request) -> Response:
    """GET /v1/vector_stores."""
    vectors = engine_of(request).vectors
    return page_response(request, "vector_store", view=lambda vs: public(vectors.view(vs)))


async def search(request: Request) -> Response:
    """POST /v1/vector_stores/{vector_store_id}/search."""
    engine = engine_of(request)
    vs = find_store(request)
    body = await read_json(request)
    p.check_keys(
        body, frozenset({"query", "max_num_results", "filters", "ranking_options", "rewrite_query"})
    )
    query = body.get("query")
    if isinstance(query, list):
        query = " ".join(str(q) for q in query)
    if not isinstance(query, str):
        raise missing_parameter("query")
    limit = p.field(body, "max_num_results", int, minimum=1, maximum=50, default=10)
    hits = await engine.vectors.search([vs["id"]], query, limit)
    data = []
    for h in hits:
        vsf = engine.store.get("vector_store_file", child_key(vs["id"], h.file_id)) or {}
        data.append(
            {
                "file_id": h.file_id,
                "filename": h.filename,
                "score": h.score,
                "attributes": vsf.get("attributes") or {},
                "content": [{"type": "text", "text": h.text}],
            }
        )
    return json_response(
        {
            "object": "vector_store.search_results.page",
            "search_query": [query],
            "data": data,
            "has_more": False,
            "next_page": None,
        }
    )


# -- files ---------------------------------------------------------------------------------------


def _files_page(
    request: Request, vector_store_id: str, where: Callable[[], dict[str, Any] | None]
) -> Response:
    """A page of a vector store's files; ``where`` filters them (after the page is checked)."""
    return page_response(
        request, "vector_store_file", vector_store_id, where=where, view=public, keyed=True
    )


def _status_filter(request: Request) -> dict[str, Any] | None:
    status = request.query_params.get("filter")
    if status is None:
        return None
    if status not in STATUSES:
        raise invalid_choice(status, STATUSES, "filter")
    return {"status": status}


async def create_file(request: Request) -> Response:
    """POST /v1/vector_stores/{vector_store_id}/files."""
    engine = engine_of(request)
    vs = find_store(request)
    body = await read_json(request)
    p.check_keys(body, frozenset({"file_id", "attributes", "chunking_strategy"}))
    fid = p.field(body, "file_id", str, required=True)
    _check_files(engine, [fid], "file_id")
    vsf = engine.vectors.add_file(
        vs["id"],
        fid,
        attributes=p.field(body, "attributes", dict),
        chunking_strategy=p.field(body, "chunking_strategy", dict),
    )
    return object_response(vsf)


async def update_file(request: Request) -> Response:
    """POST /v1/vector_stores/{vector_store_id}/files/{file_id}."""
    vsf = find_file(request)
    body = await read_json(request)
    p.check_keys(body, frozenset({"attributes"}))
    vsf["attributes"] = p.field(body, "attributes", dict, required=True, nullable=True) or {}
    engine_of(request).store.put(vsf, key=child_key(vsf["vector_store_id"], vsf["id"]))
    return object_response(vsf)


async def file_content(request: Request) -> Response:
    """GET /v1/vector_stores/{vector_store_id}/files/{file_id}/content."""
    vsf = find_file(request)
    chunks = engine_of(request).store.chunks([vsf["vector_store_id"]])
    rows = [r for r in chunks if r[1] == vsf["id"]]
    data = [{"type": "text", "text": r[3]} for r in rows]
    return json_response(
        {
            "object": "vector_store.file_content.page",
            "data": data,
            "has_more": False,
            "next_page": None,
        }
    )


async def list_files(request: Request) -> Response:
    """GET /v1/vector_stores/{vector_store_id}/files."""
    vs = find_store(request)
    return _files_page(request, vs["id"], lambda: _status_filter(request))


# -- file batches --------------------------------------------------------------------------------


async def create_batch(request: Request) -> Response:
    """POST /v1/vector_stores/{vector_store_id}/file_batches."""
    engine = engine_of(request)
    vs = find_store(request)
    body = await read_json(request)
    p.check_keys(body, frozenset({"file_ids", "files", "attributes", "chunking_strategy"}))
    entries: list[tuple[str, dict[str, Any] | None]] = []
    if "file_ids" in body and "files" in body:
        raise bad_request("Only one of 'file_ids' or 'files' may be given.", "file_ids")
    attributes = p.field(body, "attributes", dict)
    for fid in p.field(body, "file_ids", list, max_length=500) or []:
        entries.append((fid, attributes))
    for i, f in enumerate(p.field(body, "files", list, max_length=500) or []):
        if not isinstance(f, dict):
            raise invalid_type(f"files[{i}]")
        entries.append(
            (
                p.field(f, "file_id", str, required=True, param=f"files[{i}].file_id"),
                f.get("attributes") or attributes,
            )
        )
    if not entries:
        raise missing_parameter("file_ids")
    _check_files(engine, [e[0] for e in entries], "file_ids")
    batch = new_object(
        "vector_store.files_batch",
        vector_store_id=vs["id"],
        status="in_progress",
        file_counts={},
        _file_ids=[e[0] for e in entries],
    )
    engine.store.insert("vector_store_file_batch", batch, parent=vs["id"])
    strategy = p.field(body, "chunking_strategy", dict)
    for fid, attrs in entries:
        engine.vectors.add_file(
            vs["id"], fid, batch_id=batch["id"], attributes=attrs, chunking_strategy=strategy
        )
    return object_response(engine.vectors.view_batch(batch))


async def cancel_batch(request: Request) -> Response:
    """POST /v1/vector_stores/{vector_store_id}/file_batches/{batch_id}/cancel."""
    engine = engine_of(request)
    batch = find_batch(request)
    engine.vectors.cancel_batch(batch)
    return object_response(engine.vectors.view_batch(batch))


async def list_batch_files(request: Request) -> Response:
    """GET /v1/vector_stores/{vector_store_id}/file_batches/{batch_id}/files."""
    batch = find_batch(request)
    where = {"_batch_id": batch["id"]}
    return _files_page(
        request, batch["vector_store_id"], lambda: {**where, **(_status_filter(request) or {})}
    )


ROUTES = routes(
    {
        "/vector_stores": {"POST": create, "GET": list_stores},
        "/vector_stores/{vector_store_id}": {"GET": retrieve, "POST": update, "DELETE": delete},
        "/vector_stores/{vector_store_id}/search": {"POST": search},
        "/vector_stores/{vector_store_id}/files": {"POST": create_file, "GET": list_files},
        "/vector_stores/{vector_store_id}/files/{file_id}": {
            "GET": retrieve_file,
            "POST": update_file,
            "DELETE": delete_file,
        },
        "/vector_stores/{vector_store_id}/files/{file_id}/content": {"GET": file_content},
        "/vector_stores/{vector_store_id}/file_batches": {"POST": create_batch},
        "/vector_stores/{vector_store_id}/file_batches/{batch_id}": {"GET": retrieve_batch},
        "/vector_stores/{vector_store_id}/file_batches/{batch_id}/cancel": {"POST": cancel_batch},
        "/vector_stores/{vector_store_id}/file_batches/{batch_id}/files": {"GET": list_batch_files},
    }
)
