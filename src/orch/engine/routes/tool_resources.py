"""``tool_resources`` shared by assistants and threads: check ids, create inline vector stores."""

from __future__ import annotations

from typing import Any

from orch.engine.core import Engine
from orch.engine.errors import bad_request
from orch.engine.routes.resources import check_stored


def resolve_tool_resources(
    engine: Engine, resources: dict[str, Any] | None, param: str = "tool_resources"
) -> dict[str, Any] | None:
    """Validated tool_resources; ``file_search.vector_stores`` helpers become new vector stores."""
    if resources is None:
        return None
    ci = resources.get("code_interpreter")
    if ci is not None:
        check_stored(engine.store, "file", ci["file_ids"], f"{param}.code_interpreter.file_ids")
    fs = resources.get("file_search")
    if fs is not None:
        helpers = fs.pop("_new_vector_stores", None) or []
        if helpers and fs["vector_store_ids"]:
            raise bad_request(
                "Only one of 'vector_store_ids' or 'vector_stores' may be given.",
                f"{param}.file_search",
            )
        where = f"{param}.file_search"
        check_stored(
            engine.store, "vector_store", fs["vector_store_ids"], where + ".vector_store_ids"
        )
        for helper in helpers[:1]:
            file_ids = list((helper or {}).get("file_ids") or [])
            check_stored(engine.store, "file", file_ids, where + ".vector_stores.file_ids")
            vs = engine.vectors.create(None, (helper or {}).get("metadata"), None)
            for fid in file_ids:
                engine.vectors.add_file(vs["id"], fid)
            fs["vector_store_ids"] = [vs["id"]]
    return resources
