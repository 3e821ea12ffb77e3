"""A pipeline's items, produced lazily so memory stays flat however many there are.

Each item is a dict the templates see as ``item``, holding the user's data only (a field named
``index`` stays the user's; orch's position is the item's place in this sequence, which runs
show as ``orch.index``):

* ``files`` globs: ``{"path", "name", "stem", "suffix"}`` (path relative to the root);
* ``csv``: the row as a dict (header names as keys);
* ``jsonl``: the object on the line;
* inline list: a dict entry as is, any other value as ``{"value": v}``;
* default: ``{}``.

Every item also has a stable key, ``"<position>"`` (with ``".r<n>"`` appended for ``repeat``), so
an interrupted run can be resumed item by item.
"""

from __future__ import annotations

import csv
import glob
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from orch.errors import ConfigError
from orch.project.model import ItemSource


def iter_items(source: ItemSource, root: Path) -> Iterator[dict[str, Any]]:
    """Yield the items of ``source`` (paths relative to ``root``), one dict at a time."""
    if source.kind == "default":
        yield {}
    elif source.kind == "inline":
        for value in source.value:
            yield dict(value) if isinstance(value, dict) else {"value": value}
    elif source.kind == "files":
        paths: list[str] = []
        for pattern in source.value:
            for match in sorted(glob.glob(str(root / pattern), recursive=True)):
                rel = Path(match).resolve().relative_to(root.resolve()).as_posix()
                if Path(match).is_file() and rel not in paths:
                    paths.append(rel)
        for rel in paths:
            p = Path(rel)
            yield {"path": rel, "name": p.name, "stem": p.stem, "suffix": p.suffix}
    elif source.kind == "csv":
        yield from csv.DictReader(read_lines(root, source.value))
    elif source.kind == "jsonl":
        for n, line in enumerate(read_lines(root, source.value), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except ValueError as exc:
                raise ConfigError(f"{source.value}:{n}: not JSON: {exc}") from exc
            yield row if isinstance(row, dict) else {"value": row}
    else:  # pragma: no cover - the schema allows nothing else
        raise ConfigError(f"unknown items source {source.kind!r}")


def read_lines(root: Path, rel: str) -> Iterator[str]:
    """The lines of the UTF-8 file ``rel`` (under ``root``), endings kept, one at a time.

    Raises ConfigError ``rel:N: not UTF-8`` at the first line that does not decode, so a bad
    byte is reported where it is rather than as a decoding traceback. Lines end at ``\\n``
    only, as the csv module expects of a file opened with ``newline=""``.
    """
    with (root / rel).open("rb") as fh:
        for number, raw in enumerate(fh, 1):
            try:
                yield raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ConfigError(f"{rel}:{number}: not UTF-8") from None


#: between an item run's key and its variant's name: ``"3@fast"``, ``"3.r1@fast"``
VARIANT_MARK = "@"


def item_key(index: int, repeat: int, repeats: int, variant: str | None = None) -> str:
    """The resume key of item run ``index`` (its position): ``"3"``, or ``"3.r1"`` with repeat.

    A pipeline's variant adds its name (``"3@fast"``): every unit of work a resume, a retry or
    a merge tells apart has its own key; without variants keys are what they always were.
    """
    key = f"{index}.r{repeat}" if repeats > 1 else str(index)
    return f"{key}{VARIANT_MARK}{variant}" if variant else key


def key_variant(key: str) -> str | None:
    """The variant an item run's key names (None: the pipeline has no variants)."""
    _, mark, variant = key.partition(VARIANT_MARK)
    return variant if mark else None


def item_fields(source: ItemSource, root: Path) -> frozenset[str] | None:
    """The fields every item of ``source`` has (what ``item.<field>`` may name everywhere).

    None when there are no items. Reads the whole source once, as counting its items does;
    raises as :func:`iter_items` does.
    """
    common: set[str] | None = None
    for item in iter_items(source, root):
        keys = {k for k in item if isinstance(k, str)}  # a CSV row's extra cells are under None
        common = keys if common is None else common & keys
    return None if common is None else frozenset(common)
