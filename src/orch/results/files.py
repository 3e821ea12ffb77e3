"""Files orch writes for people and tools to read (reports, run.json, comparisons): whole or not.

:func:`write_atomic` writes to a temporary file beside the target, flushes it to disk and renames
it over the target, so a reader, a crash or a full disk finds the old file or the new one, never
a truncated one. :func:`cannot_write` words an ``OSError`` as the one line a user sees.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from orch.project.documents import display_path


def write_atomic(path: Path, text: str) -> None:
    """Replace ``path`` with ``text`` (UTF-8), creating its folders; all or nothing.

    Raises the ``OSError`` that stopped it (a folder that is a file, no permission, no space);
    the temporary file is removed then, and whatever ``path`` held before is left as it was.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())  # the rename must not land before the bytes do
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def cannot_write(path: Path | str, exc: OSError) -> str:
    """``cannot write out/x.md: No space left on device``: one line, in the user's terms.

    When a folder on the way is a file, it is named (``out is a file, not a folder``);
    otherwise the path shown is the one the error names when that is ``path`` or one of its
    folders, else ``path``: never the temporary file.
    """
    path = Path(path)
    on_the_way = [*reversed(path.parents), *([path] if isinstance(exc, FileExistsError) else [])]
    blocker = next((p for p in on_the_way if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        return f"cannot write {display_path(path)}: {display_path(blocker)} is a file, not a folder"
    named = Path(exc.filename) if isinstance(exc.filename, str) else None
    where = named if named is not None and (named == path or named in path.parents) else path
    return f"cannot write {display_path(where)}: {exc.strerror or exc}"
