"""An ``openai_hosted`` environment's ``files``: copied in at session create, placed for the code.

A file comes from the Files API (``{type: file_id, file_id, path}``, copied when the session
is created, so deleting the upload later leaves the session its copy) or inline
(``{type: inline, data, path}``, standard base64). ``path`` is OpenAI's destination inside
``/workspace``; the engine's environment is a sandbox session whose directory holds plain
file names, so a path must be ``/workspace/<name>`` (a folder below it is refused with a
400). The session's environment records each file as the SDK's ``HostedEnvironmentFile``
with the path where the code finds it: the sandbox session's directory (``/mnt/data`` under
bubblewrap), the working directory of the code and the path the model is told. Contents are
stored as blobs under ``<environment id>/<file id>`` and placed before the code runs.
"""

from __future__ import annotations

import base64
import binascii
import posixpath
from collections.abc import Callable
from typing import Any

from orch.engine import params as p
from orch.engine.errors import bad_request, invalid_choice, invalid_type, not_found
from orch.engine.sandbox import InputFile, Sandbox
from orch.engine.sandbox.workspace import safe_name
from orch.engine.store import Store, child_key, new_id

WORKSPACE = "/workspace"
_KEYS = {
    "file_id": frozenset({"type", "file_id", "path"}),
    "inline": frozenset({"type", "data", "path"}),
}


def read_files(environment: dict[str, Any], value: Any, store: Store, sandbox: Sandbox) -> None:
    """Store the contents of ``environment.files`` (``value``) and record them in ``environment``.

    Called once the rest of the request is valid: a refused request stores nothing.
    """
    if value is None:
        return
    if not isinstance(value, list):
        raise invalid_type("environment.files", "an array")
    contents: list[tuple[dict[str, Any], bytes]] = []
    names: set[str] = set()
    for index, entry in enumerate(value):
        param = f"environment.files[{index}]"
        name, record, content = _read_file(entry, param, store)
        if name in names:
            raise bad_request(
                f"Two environment files have the path {WORKSPACE}/{name}; give each its own.",
                f"{param}.path",
            )
        names.add(name)
        record.update(
            id=new_id("envfile"),
            path=f"{sandbox.data_path(environment['id'])}/{name}",
            size_bytes=len(content),
        )
        contents.append((record, content))
    for record, content in contents:  # stored only once every entry is valid
        store.put_blob(child_key(environment["id"], record["id"]), content)
    environment["files"] = [_ordered(record) for record, _ in contents]


def _read_file(entry: Any, param: str, store: Store) -> tuple[str, dict[str, Any], bytes]:
    """One entry: its file name, the record's type-specific fields, its bytes."""
    if not isinstance(entry, dict):
        raise invalid_type(param)
    kind = p.field(entry, "type", str, required=True, param=f"{param}.type")
    if kind not in _KEYS:
        raise invalid_choice(kind, tuple(_KEYS), f"{param}.type")
    p.check_keys(entry, _KEYS[kind], param)
    path = p.field(entry, "path", str, required=True, nullable=False, param=f"{param}.path")
    name = _name(path, f"{param}.path")
    if kind == "inline":
        data = p.field(entry, "data", str, required=True, nullable=False, param=f"{param}.data")
        try:
            content = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise bad_request(
                f"Invalid '{param}.data': expected standard base64.", f"{param}.data"
            ) from None
        return name, {"type": "inline"}, content
    file_id = p.field(
        entry, "file_id", str, required=True, nullable=False, param=f"{param}.file_id"
    )
    content = store.get_blob(file_id) if store.get("file", file_id) is not None else None
    if content is None:
        raise not_found("file", file_id, f"{param}.file_id")
    return name, {"type": "file_id", "file_id": file_id}, content


def _name(path: str, param: str) -> str:
    """The file name of ``/workspace/<name>`` (400 for any other path)."""
    folder, name = posixpath.split(path)
    if folder != WORKSPACE or not name or safe_name(name, "") != name:
        raise bad_request(
            f"Invalid '{param}': {path!r}. The orch engine's environment places files at the "
            f"top of {WORKSPACE}: give an absolute path {WORKSPACE}/<file name> (no folders, "
            "no name starting with a dot).",
            param,
        )
    return name


def _ordered(record: dict[str, Any]) -> dict[str, Any]:
    """The record with its keys in the SDK's order."""
    keys = ("id", "file_id", "path", "size_bytes", "type")
    return {key: record[key] for key in keys if key in record}


def input_files(store: Store, environment: dict[str, Any]) -> list[InputFile]:
    """The environment's files as the sandbox places them (read only when placed)."""
    env_id = environment["id"]

    def reader(key: str) -> Callable[[], bytes | None]:
        return lambda: store.get_blob(key)

    return [
        InputFile(posixpath.basename(f["path"]), f["id"], reader(child_key(env_id, f["id"])))
        for f in environment.get("files") or []
    ]


def discard_files(store: Store, environment: dict[str, Any]) -> None:
    """Forget the stored contents of the environment's files."""
    for file in environment.get("files") or []:
        store.delete_blob(child_key(environment["id"], file["id"]))
