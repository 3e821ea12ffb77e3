"""Shards: a deterministic share of a pipeline's items, so N processes split one run.

``--shard i/N`` (1 ≤ i ≤ N) keeps the items whose key hashes to shard ``i``: sha256 of the
item's key (its position, ``"3"``) modulo N. A hash rather than contiguous ranges, so that
adding items at the end moves none of the others, and shards stay balanced whatever the order
of the items. Every repeat of an item (``3.r0``, ``3.r1``) goes to the item's shard, so each
shard's repeat statistics are whole. ``--shard auto/N`` takes ``i`` from a Kubernetes indexed
job's ``JOB_COMPLETION_INDEX`` (0-based, so shard ``index + 1``).

A shard is recorded in its run (``run.json``: ``"shard": {"index": i, "count": N}``); ``orch
merge`` (:mod:`orch.results.merging`) joins the shards' runs into one. :func:`selected_items`
is the one place that says which item runs a run does (limit, shard, repeats, variants): the
runner and ``--dry-run`` both ask it.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orch.errors import UsageError
from orch.project.items import item_key, iter_items
from orch.project.model import Pipeline

INDEX_ENV = "JOB_COMPLETION_INDEX"


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` of ``count`` (1-based, as written on the command line)."""

    index: int
    count: int

    def holds(self, item_key: str) -> bool:
        """Whether the item with key ``item_key`` (no repeat suffix) belongs to this shard."""
        return shard_of(item_key, self.count) == self.index

    def to_json(self) -> dict[str, int]:
        """What run.json records."""
        return {"index": self.index, "count": self.count}

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> Shard | None:
        """The shard a run.json recorded (None: the run is not a shard)."""
        return cls(int(data["index"]), int(data["count"])) if data else None

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def shard_of(item_key: str, count: int) -> int:
    """The shard (1..count) of the item whose key is ``item_key``; stable across processes.

    sha256 rather than ``hash()``: Python salts string hashes per process.
    """
    digest = hashlib.sha256(item_key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % count + 1


def parse_shard(spec: str, environ: dict[str, str] | None = None) -> Shard:
    """``"2/4"`` → Shard(2, 4); ``"auto/4"`` reads ``JOB_COMPLETION_INDEX`` (0-based).

    Raises UsageError for anything else, naming what was expected.
    """
    env = os.environ if environ is None else environ
    index_text, sep, count_text = spec.partition("/")
    if not sep or not count_text.strip().isdigit() or int(count_text) < 1:
        raise UsageError(f"--shard {spec!r}: expected i/N (e.g. 1/4) or auto/N, with N ≥ 1")
    count = int(count_text)
    if index_text.strip() == "auto":
        raw = env.get(INDEX_ENV)
        if raw is None or not raw.strip().isdigit():
            raise UsageError(
                f"--shard auto/{count}: {INDEX_ENV} is {'unset' if raw is None else repr(raw)}; "
                "it is set by a Kubernetes indexed job (0-based). Outside one, give i/N."
            )
        index = int(raw) + 1
    elif index_text.strip().isdigit():
        index = int(index_text)
    else:
        raise UsageError(f"--shard {spec!r}: expected i/N (e.g. 1/4) or auto/N")
    if not 1 <= index <= count:
        raise UsageError(f"--shard {spec!r}: shard {index} is not between 1 and {count}")
    return Shard(index, count)


def selected_items(
    pipeline: Pipeline,
    root: Path,
    limit: int | None,
    shard: Shard | None,
    variants: tuple[str, ...] = (),
) -> Iterator[tuple[str, dict, int, int, str | None]]:
    """(key, item, index, repeat, variant) of every item run a new run would do, in order."""
    repeats = pipeline.repeat
    for index, item in enumerate(iter_items(pipeline.items, root)):
        if limit is not None and index >= limit:
            return
        if shard is not None and not shard.holds(item_key(index, 0, 1)):
            continue
        for rep in range(repeats):
            for variant in variants or (None,):
                yield item_key(index, rep, repeats, variant), item, index, rep, variant
