"""A run's variants side by side: the report context's ``variants`` and the summary's lines.

A pipeline with ``variants:`` runs every item once per variant (:mod:`orch.project.variants`);
each item record then names its ``variant``. :func:`variants_context` compares them: per
variant its pass rate, mean score, tokens, cost and latency; per item (and repeat) which
variants passed. A run without variants has an empty ``variants`` (no names, no rows).
"""

from __future__ import annotations

import difflib
import json
import statistics
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from orch.errors import UsageError
from orch.project.items import VARIANT_MARK
from orch.project.model import Pipeline
from orch.results.history import read_results
from orch.results.statistics import report_statistics


def variants_context(items: list[dict], declared: Pipeline | None, meta: dict) -> dict[str, Any]:
    """The report context's ``variants``: ``names``, ``table`` and ``by_item``.

    ``table`` has one row per variant (in order), ``by_item`` one per item and repeat with
    each variant's outcome.

    ``items`` are the context's items (with ``variant``, ``score``, ``cost``); ``meta`` is the
    run's record, whose ``variants`` says which ran (``--variant`` may have chosen some).
    """
    names = variant_names(items, meta)
    if not names:
        return {"names": [], "table": [], "by_item": []}
    overrides = {v.name: v for v in declared.variants} if declared else {}
    table = variant_table(items, names)
    for row in table:
        variant = overrides.get(row["name"])
        row["overrides"] = dict(variant.overrides) if variant else {}
        row["assistant"] = variant.assistant if variant else row["assistant"]
    return {"names": names, "table": table, "by_item": _item_rows(items, names)}


def variant_names(records: Iterable[Mapping[str, Any]], meta: Mapping[str, Any]) -> list[str]:
    """The variants of a run: as its record lists them, then any other its items name."""
    names = list(meta.get("variants") or [])
    for record in records:
        variant = record.get("variant")
        if variant and variant not in names:
            names.append(variant)
    return names


def variant_table(records: Iterable[Mapping[str, Any]], names: list[str]) -> list[dict[str, Any]]:
    """One row per variant in ``names``: its runs' outcomes, score, tokens, cost, latency.

    Runs, passed/failed/errors, pass rate, mean score, tokens, cost (None unless every run of
    the variant is priced), mean and median latency.

    ``records`` are item records (raw from results.jsonl, or the report context's items); an
    item's score is the mean of its steps' scores, its latency its ``duration_s``.
    """
    groups: dict[str, list[Mapping[str, Any]]] = {name: [] for name in names}
    for record in records:
        if record.get("variant") in groups:
            groups[record["variant"]].append(record)
    rows = [_row(name, group) for name, group in groups.items()]
    rates = [r["pass_rate"] for r in rows if r["runs"]]
    best = max(rates) if rates and rates.count(max(rates)) == 1 else None  # a tie has none
    for row in rows:
        row["best"] = bool(row["runs"]) and row["pass_rate"] == best
    return rows


def _row(name: str, group: list[Mapping[str, Any]]) -> dict[str, Any]:
    """The table row of one variant's item runs."""
    statuses = [r.get("status") for r in group]
    scores = [_score(r) for r in group]
    latencies = [float(r["duration_s"]) for r in group if r.get("duration_s") is not None]
    usage = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    for record in group:
        for key in usage:
            usage[key] += int((record.get("usage") or {}).get(key) or 0)
    costs = [r.get("cost") for r in group]
    steps = [s for r in group for s in r.get("steps") or []]
    passed = statuses.count("passed")
    return {
        "name": name,
        "assistant": next((s.get("assistant") for s in steps if s.get("assistant")), None),
        "model": next((s.get("model") for s in steps if s.get("model")), None),
        "runs": len(group),
        "passed": passed,
        "failed": statuses.count("failed"),
        "errors": statuses.count("error"),
        "pass_rate": passed / len(group) if group else 0.0,
        "mean_score": round(sum(scores) / len(scores), 4) if scores else None,
        **usage,
        "tokens": usage["total_tokens"],
        "cost": sum(costs) if costs and all(c is not None for c in costs) else None,
        "mean_latency_s": round(statistics.fmean(latencies), 3) if latencies else None,
        "p50_latency_s": round(statistics.median(latencies), 3) if latencies else None,
    }


def _score(record: Mapping[str, Any]) -> float:
    """An item run's score: the report's own, else the mean of its steps' scores."""
    if record.get("score") is not None:
        return float(record["score"])
    scores = [float(s.get("score") or 0.0) for s in record.get("steps") or []]
    return sum(scores) / len(scores) if scores else 0.0


def _item_rows(items: list[dict], names: list[str]) -> list[dict[str, Any]]:
    """One row per item and repeat: each variant's status and score, and which passed."""
    rows: dict[tuple[int, int], dict[str, Any]] = {}
    for item in items:
        variant = item.get("variant")
        if variant not in names:
            continue
        row = rows.setdefault(
            (item["index"], item.get("repeat", 0)),
            {
                "index": item["index"],
                "repeat": item.get("repeat", 0),
                "key": item["key"].partition(VARIANT_MARK)[0],
                "label": item["label"],
                "by_variant": {},
            },
        )
        row["by_variant"][variant] = {
            "status": item["status"],
            "score": item["score"],
            "key": item["key"],
        }
    out = []
    for _, row in sorted(rows.items()):
        cells = [{"variant": n, **row["by_variant"].get(n, {"status": "not run"})} for n in names]
        row["results"] = cells
        row["passed"] = [c["variant"] for c in cells if c["status"] == "passed"]
        row["differs"] = len({c["status"] for c in cells}) > 1
        out.append(row)
    return out


def variant_lines(records: Iterable[Mapping[str, Any]], meta: Mapping[str, Any]) -> list[str]:
    """The terminal summary's lines for a run's variants (none without variants)."""
    records = list(records)
    names = variant_names(records, meta)
    if not names:
        return []
    width = max(len(n) for n in names)
    lines = []
    for i, row in enumerate(variant_table(records, names)):
        rate = f"{row['pass_rate'] * 100:.0f} %" if row["runs"] else "-"
        p50 = "-" if row["p50_latency_s"] is None else f"{row['p50_latency_s']:.1f}s"
        score = "-" if row["mean_score"] is None else f"{row['mean_score']:.2f}"
        lines.append(
            f"  {'variants' if i == 0 else '':<9} {row['name']:<{width}}  {rate:>5} passed "
            f"({row['passed']}/{row['runs']})  score {score}  tokens {row['tokens']}  "
            f"p50 {p50}{'  ← best' if row['best'] and len(names) > 1 else ''}"
        )
    return lines


def run_variant_lines(run_dir: Path) -> list[str]:
    """:func:`variant_lines` for the run in ``run_dir`` (its run.json and results.jsonl).

    The last record of each item run counts (a retry appends); what cannot be read is left
    out, so the summary never fails a finished run.
    """
    try:
        meta = json.loads((run_dir / "run.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        meta = {}
    if not isinstance(meta, dict) or not meta.get("variants"):
        return []
    try:
        latest = read_results(run_dir / "results.jsonl")
    except OSError:
        return []
    return variant_lines(latest.values(), meta)


def variant_context(context: dict[str, Any], variant: str) -> dict[str, Any]:
    """``context`` (a whole run's) narrowed to one variant's item runs, as if a run of its own.

    Item keys lose the variant (``3@mini`` → ``3``), so two variants' contexts match item by
    item in ``orch compare RUN --variants A B``; the run's id becomes ``RUN@variant`` and its
    counts, pass rate, statistics and usage are the variant's. UsageError when the run has no
    such variant.
    """
    names = context["variants"]["names"]
    if variant not in names:
        run = context["run"]["id"]
        close = difflib.get_close_matches(variant, names, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        have = f"{hint}its variants: {', '.join(names)}" if names else "it has no variants"
        raise UsageError(f"--variants: run {run} has no variant {variant!r} ({have})")
    items = [
        {**item, "key": item["key"].partition(VARIANT_MARK)[0]}
        for item in context["items"]
        if item.get("variant") == variant
    ]
    counts = {"total": len(items), "passed": 0, "failed": 0, "errors": 0}
    for item in items:
        counts[{"passed": "passed", "failed": "failed", "error": "errors"}[item["status"]]] += 1
    (row,) = variant_table(context["items"], [variant])
    run = context["run"]
    rate = counts["passed"] / counts["total"] if counts["total"] else 1.0
    failed = rate + 1e-9 < run["required_pass_rate"]
    code = 2 if counts["errors"] or run["status"] == "interrupted" else 1 if failed else 0
    return {
        **context,
        "run": {
            **run,
            "id": f"{run['id']}{VARIANT_MARK}{variant}",
            "counts": counts,
            "pass_rate": rate,
            "exit_code": code,
            "passed": code == 0,
            "outcome": ("passed", "failed", "error")[code],
        },
        "items": items,
        "failures": [i for i in items if i["status"] != "passed"],
        "passed_items": [i for i in items if i["status"] == "passed"],
        "statistics": report_statistics(items),
        "usage": {
            **context["usage"],
            **{k: row[k] for k in ("prompt_tokens", "completion_tokens", "total_tokens")},
            "cost": row["cost"],
        },
    }
