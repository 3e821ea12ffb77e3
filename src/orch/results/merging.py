"""``orch merge``: the runs of a pipeline's shards joined into one run, as if it had run whole.

Each part is a run of this project's history (by id or unique prefix) or a run folder holding
``run.json`` and ``results.jsonl`` (as CI uploads them as artifacts). The parts must be runs of
the same pipeline version (``pipeline_hash``), with the same vars, item limit and models, and
shards of one count. The merged run gets a new id; its items are the parts' records (each
item's last one), its counts and usage are summed the way a run sums its own, its files are
copied along, so its history row, results, reports and ``orch compare`` read the same as those
of an unsharded run of the same items.

Nothing is hidden: an item key found in several parts is an *overlap* (the most recently
finished record is kept, the others are named), an item the pipeline has but no part ran is a
*gap* (a shard missing, or interrupted). Gaps leave the merged run ``interrupted``, and
``orch run --resume MERGED_ID`` runs exactly them. Both are recorded in run.json (``merge``).
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orch.errors import UsageError
from orch.project.items import item_key, iter_items
from orch.project.model import Project
from orch.results.history import History, read_results
from orch.run.preparation import pipeline_hash
from orch.run.shards import Shard
from orch.run.summary import new_run_id, now

#: what every part must agree on, with the words to say it when they do not
AGREED = {
    "pipeline": "pipeline",
    "pipeline_hash": "pipeline version (pipeline_hash)",
    "vars": "vars",
    "items_limit": "--items-limit",
    "models": "models",
}
KEYS_SHOWN = 20  # item keys named per overlap or gap line


@dataclass
class Part:
    """One run to merge: where it came from, its run.json and its items' last records."""

    source: str
    meta: dict[str, Any]
    items: dict[str, dict[str, Any]]
    run_dir: Path

    @property
    def shard(self) -> Shard | None:
        """The shard the part ran, if it was one."""
        return Shard.from_json(self.meta.get("shard"))


@dataclass
class Merge:
    """The merged run: its id and run.json, and what did not fit together."""

    run_id: str
    meta: dict[str, Any]
    overlaps: dict[str, list[str]] = field(default_factory=dict)  # key → parts that ran it
    gaps: list[str] = field(default_factory=list)  # keys no part ran
    missing_shards: list[str] = field(default_factory=list)  # "3/4"
    notes: list[str] = field(default_factory=list)

    def report_lines(self) -> list[str]:
        """Overlaps, gaps and notes for people (nothing when the parts fit exactly)."""
        lines = list(self.notes)
        if self.missing_shards:
            lines.append(f"missing shards: {', '.join(self.missing_shards)}")
        if self.overlaps:
            shown = [f"{k} ({' & '.join(p)})" for k, p in list(self.overlaps.items())[:KEYS_SHOWN]]
            more = len(self.overlaps) - len(shown)
            lines.append(
                f"overlaps: {len(self.overlaps)} item(s) in several parts, the last finished "
                f"kept: {', '.join(shown)}{f' and {more} more' if more > 0 else ''}"
            )
        if self.gaps:
            shown = self.gaps[:KEYS_SHOWN]
            more = len(self.gaps) - len(shown)
            lines.append(
                f"gaps: {len(self.gaps)} item(s) no part ran: {', '.join(shown)}"
                f"{f' and {more} more' if more > 0 else ''}; run them with "
                f"`orch run --resume {self.run_id}`"
            )
        return lines


def read_part(history: History, spec: str) -> Part:
    """A run folder (with run.json) when ``spec`` is one, else a run of the history."""
    folder = Path(spec)
    if (folder / "run.json").is_file():
        try:
            meta = json.loads((folder / "run.json").read_text(encoding="utf-8"))
        except ValueError as exc:
            raise UsageError(f"{folder / 'run.json'}: not JSON: {exc}") from exc
        return Part(spec, meta, read_results(folder / "results.jsonl"), folder)
    if folder.is_dir():
        raise UsageError(f"{spec}: a folder without run.json (expected a run's folder)")
    record = history.get(spec)
    items = {r["key"]: r for r in history.items(record.run_id)}
    return Part(record.run_id, record.meta, items, history.run_dir(record.run_id))


def merge_runs(project: Project, history: History, specs: list[str]) -> Merge:
    """Join the runs ``specs`` into a new run of ``history``; returns it with what did not fit.

    Raises UsageError when the parts are not of one pipeline version (see :data:`AGREED`).
    """
    parts = [read_part(history, spec) for spec in specs]
    _check_agreement(parts)
    parts.sort(key=lambda p: (p.shard.index if p.shard else 0, p.meta.get("started_at") or ""))
    merge = Merge(new_run_id(), {})
    chosen = _choose(parts, merge)
    _find_gaps(project, parts, chosen, merge)
    merge.meta = _meta(merge, parts, "interrupted" if merge.gaps else "completed")
    history.start_run(merge.meta)
    records = sorted(chosen.values(), key=lambda pr: _order(pr[1]))
    history.import_items(merge.run_id, [record for _, record in records])
    for part, record in records:
        _copy_files(part.run_dir, history.run_dir(merge.run_id), record["key"])
    statuses = history.item_status(merge.run_id)
    counts = {"total": len(statuses), "passed": 0, "failed": 0, "errors": 0}
    for status in statuses.values():
        counts[{"passed": "passed", "failed": "failed", "error": "errors"}[status]] += 1
    merge.meta.update(counts=counts, usage=history.usage(merge.run_id), generated_at=now())
    history.finish_run(merge.meta)
    return merge


def _check_agreement(parts: list[Part]) -> None:
    """Refuse parts that are not shards of one run (each difference named)."""
    seen: dict[str, str] = {}
    for part in parts:
        run_id = part.meta.get("run_id", part.source)
        if run_id in seen:
            raise UsageError(f"run {run_id} is given twice ({seen[run_id]} and {part.source})")
        seen[run_id] = part.source
    first = parts[0]
    for part in parts[1:]:
        for key, words in AGREED.items():
            if part.meta.get(key) != first.meta.get(key):
                raise UsageError(
                    f"{part.source} and {first.source} differ in {words} "
                    f"({part.meta.get(key)!r} vs {first.meta.get(key)!r}); only shards of one "
                    "run can be merged"
                )
    counts = {p.shard.count for p in parts if p.shard}
    if len(counts) > 1:
        raise UsageError(f"the parts are shards of different counts: {sorted(counts)}")


def _choose(parts: list[Part], merge: Merge) -> dict[str, tuple[Part, dict]]:
    """Item key → (part, record) to keep: the last finished; overlaps noted in ``merge``."""
    chosen: dict[str, tuple[Part, dict]] = {}
    for part in parts:
        for key, record in part.items.items():
            if key in chosen:
                merge.overlaps.setdefault(key, [chosen[key][0].source]).append(part.source)
                if record.get("finished_at", "") <= chosen[key][1].get("finished_at", ""):
                    continue
            chosen[key] = (part, record)
    return chosen


def _find_gaps(project: Project, parts: list[Part], chosen: dict, merge: Merge) -> None:
    """The items the pipeline has that no part ran, and the shards nobody gave."""
    count = next((p.shard.count for p in parts if p.shard), None)
    given = {p.shard.index for p in parts if p.shard}
    if count and not any(p.shard is None for p in parts):
        merge.missing_shards = [f"{i}/{count}" for i in range(1, count + 1) if i not in given]
    meta = parts[0].meta
    pipeline = project.pipeline(meta["pipeline"])
    if pipeline is None or pipeline_hash(project, pipeline) != meta["pipeline_hash"]:
        merge.notes.append(
            f"pipeline {meta['pipeline']!r} changed since the parts ran (or is gone): the "
            "items were not checked against it, only the shards"
        )
        return
    limit = meta.get("items_limit")
    for index, _ in enumerate(iter_items(pipeline.items, project.root)):
        if limit is not None and index >= limit:
            break
        for rep in range(pipeline.repeat):
            for variant in meta.get("variants") or (None,):  # the variants the parts ran
                key = item_key(index, rep, pipeline.repeat, variant)
                if key not in chosen:
                    merge.gaps.append(key)


def _meta(merge: Merge, parts: list[Part], status: str) -> dict[str, Any]:
    """run.json of the merged run: the parts' shared fields, their span, where it came from."""
    first = parts[0].meta
    # one named target is one target, although an embedded engine's URL changes per process
    names = list(dict.fromkeys(p.meta.get("target_name") for p in parts))
    targets = list(dict.fromkeys(p.meta.get("target") for p in parts))
    target = targets[0] if len(names) == 1 else " + ".join(map(str, targets))
    started = min(p.meta["started_at"] for p in parts)
    finished = max((p.meta.get("finished_at") or p.meta["started_at"]) for p in parts)
    return {
        **{k: v for k, v in first.items() if k not in ("counts", "usage", "target_history")},
        "run_id": merge.run_id,
        "target": target,
        "target_history": [],
        "scripted": any(p.meta.get("scripted") for p in parts),
        "shard": None,
        "max_cost": None,
        "max_tokens_total": None,
        "started_at": started,
        "finished_at": finished,
        "duration_s": round(_seconds(started, finished), 3),
        "status": status,
        "stop_reason": None,
        "message": "; ".join(merge.report_lines()) or None,
        "merged_from": [
            {
                "run_id": p.meta.get("run_id"),
                "source": p.source,
                "shard": p.meta.get("shard"),
                "status": p.meta.get("status"),
                "target": p.meta.get("target"),
            }
            for p in parts
        ],
        "merge": {
            "overlaps": merge.overlaps,
            "gaps": merge.gaps,
            "missing_shards": merge.missing_shards,
        },
        "generated_at": now(),
    }


def _seconds(started: str, finished: str) -> float:
    """Wall-clock seconds from the first part's start to the last one's end."""
    try:
        return (
            dt.datetime.fromisoformat(finished) - dt.datetime.fromisoformat(started)
        ).total_seconds()
    except ValueError:
        return 0.0


def _order(record: dict[str, Any]) -> tuple:
    """A record's place in a run: by position, then repeat (as the history lists items)."""
    return (record.get("index", 0), record.get("repeat", 0), record["key"])


def _copy_files(source_dir: Path, target_dir: Path, key: str) -> None:
    """Copy an item's downloaded files, which its record names relative to the run folder."""
    folder = source_dir / "files" / key.replace("/", "_")
    if folder.is_dir():
        shutil.copytree(folder, target_dir / "files" / folder.name, dirs_exist_ok=True)
