"""How orch recognises its own objects on a server, with no local state file.

* assistants (and vector stores) carry metadata ``orch_project``, ``orch_name``, ``orch_hash``
  (the fingerprint of the YAML, file contents included);
* uploaded files are named ``orch-<project>-<sha256[:16]>-<basename>``, so content identity
  survives a fresh checkout and stale uploads can be found;
* each assistant with ``file_search`` files owns one vector store named
  ``orch-<project>-<assistant>``, whose ``orch_hash`` is the hash of its files' contents.
"""

from __future__ import annotations

import re
from pathlib import Path

from orch.project.model import LocalFile, canonical_json, sha256_text
from orch.targets.base import (
    META_NAME,
    RemoteFile,
    RemoteVectorStore,
)

SHA_LEN = 16


def managed_filename(project: str, sha256: str, path: str) -> str:
    """The name a file is uploaded under: content-addressed and tagged with the project."""
    return f"orch-{project}-{sha256[:SHA_LEN]}-{Path(path).name}"


def parse_managed_filename(project: str, filename: str) -> str | None:
    """The content hash prefix in ``filename`` when it is one of ``project``'s uploads."""
    prefix = f"orch-{project}-"
    if not filename.startswith(prefix):
        return None
    rest = filename[len(prefix) :]
    if re.fullmatch(rf"[0-9a-f]{{{SHA_LEN}}}-.+", rest, flags=re.S):
        return rest[:SHA_LEN]
    return None


def store_name(project: str, assistant: str) -> str:
    """Name of the vector store holding an assistant's file_search files."""
    return f"orch-{project}-{assistant}"


def files_hash(files: tuple[LocalFile, ...]) -> str:
    """Identity of a set of files by content."""
    return sha256_text(canonical_json(sorted(f.sha256 for f in files)))


def kept_files(project: str, files: list[RemoteFile]) -> dict[str, RemoteFile]:
    """The upload kept per content hash: the oldest (ties by id); the others are duplicates.

    Plan and apply must agree on it, or apply could point an assistant at a copy that the same
    sync deletes.
    """
    kept: dict[str, RemoteFile] = {}
    for remote in sorted(files, key=lambda r: (r.created_at, r.id)):
        sha = parse_managed_filename(project, remote.filename)
        if sha:
            kept.setdefault(sha, remote)
    return kept


def kept_stores(stores: list[RemoteVectorStore]) -> dict[str, RemoteVectorStore]:
    """The vector store kept per owning assistant: the oldest (ties by id)."""
    kept: dict[str, RemoteVectorStore] = {}
    for store in sorted(stores, key=lambda s: (s.created_at, s.id)):
        owner = store.metadata.get(META_NAME)
        if owner:
            kept.setdefault(owner, store)
    return kept
