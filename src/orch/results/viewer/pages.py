"""What each page of ``orch view`` shows, as plain data for its template (no HTML here).

Run data is untrusted text (model replies, item fields): it only ever reaches the page through
the autoescaping templates of ``templates/``. The pass-rate chart is computed here as SVG
coordinates, so the page needs no JavaScript.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from orch.project.model import Project
from orch.results.compare import compare
from orch.results.context import build_context
from orch.results.history import RunRecord
from orch.results.outcomes import duration, outcome, required_rate
from orch.results.viewer.store import ReadOnlyHistory

RUNS_SHOWN = 500  # the runs list and its charts cover this many of the latest runs

# the chart's box, in SVG user units
WIDTH, HEIGHT = 520, 170
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 10, 26
INSET = 8  # the first and last points keep clear of the axis and the edge


@dataclass
class Row:
    """One run in the runs list."""

    id: str
    pipeline: str
    target: str
    outcome: str
    pass_rate: float
    required: float
    counts: str
    duration: str
    started: str
    variants: bool


def _row(project: Project, record: RunRecord, variants: set[str]) -> Row:
    result = outcome(record, required_rate(project, record))
    return Row(
        id=record.run_id,
        pipeline=record.pipeline,
        target=record.meta.get("target_name") or record.target,
        outcome=result["outcome"],
        pass_rate=result["pass_rate"],
        required=result["required_pass_rate"],
        counts=f"{record.passed}/{record.total}",
        duration=duration(record.meta.get("duration_s")),
        started=record.started_at[:19].replace("T", " "),
        variants=record.run_id in variants,
    )


def runs_page(history: ReadOnlyHistory, project: Project, pipeline: str | None) -> dict[str, Any]:
    """The runs list (of one pipeline, or all) and a pass-rate chart per pipeline."""
    records = history.runs(limit=RUNS_SHOWN, pipeline=pipeline)
    variants = history.with_variants([r.run_id for r in records])
    rows = [_row(project, r, variants) for r in records]
    by_pipeline: dict[str, list[Row]] = {}
    for row in rows:
        by_pipeline.setdefault(row.pipeline, []).append(row)
    return {
        "title": f"runs of {pipeline}" if pipeline else "runs",
        "rows": rows,
        "pipeline": pipeline,
        "pipelines": history.pipelines(),
        "charts": [
            {"pipeline": name, **chart(list(reversed(group)))}
            for name, group in sorted(by_pipeline.items())
        ],
        "limit": RUNS_SHOWN,
        "choices": [r.id for r in rows],
        "pair": default_pair(rows),
    }


def default_pair(rows: list[Row]) -> tuple[str, str] | None:
    """The runs the compare form proposes: the latest, and the one before it of its pipeline.

    ``rows`` are newest first; without an earlier run of the same pipeline, the one before.
    """
    if len(rows) < 2:
        return None
    latest = rows[0]
    before = next((r for r in rows[1:] if r.pipeline == latest.pipeline), rows[1])
    return before.id, latest.id


def _moment(text: str) -> float | None:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


def chart(rows: list[Row]) -> dict[str, Any]:
    """SVG coordinates of the pass rate of ``rows`` (oldest first) over their start times.

    Runs are placed by start time; when the times cannot be read, or are all the same, they
    are spread evenly. The dashed line is the pass rate the latest run had to reach.
    """
    inner_w, inner_h = WIDTH - LEFT - RIGHT - 2 * INSET, HEIGHT - TOP - BOTTOM
    moments = [_moment(r.started) for r in rows]
    known = [m for m in moments if m is not None]
    span = (max(known) - min(known)) if len(known) == len(rows) and known else 0.0
    points = []
    for index, (row, moment) in enumerate(zip(rows, moments, strict=True)):
        if span:
            share = (moment - min(known)) / span
        else:
            share = index / (len(rows) - 1) if len(rows) > 1 else 0.5
        x = LEFT + INSET + share * inner_w
        y = TOP + (1.0 - row.pass_rate) * inner_h
        points.append({"x": round(x, 1), "y": round(y, 1), "row": row})
    required = rows[-1].required if rows else 1.0
    return {
        "width": WIDTH,
        "height": HEIGHT,
        "left": LEFT,
        "right": WIDTH - RIGHT,
        "top": TOP,
        "bottom": TOP + inner_h,
        "grid": [
            {"y": round(TOP + (1 - f) * inner_h, 1), "label": f"{f:.0%}"} for f in (0, 0.5, 1)
        ],
        "required_y": round(TOP + (1 - required) * inner_h, 1),
        "required": required,
        "path": " ".join(
            f"{'M' if i == 0 else 'L'}{p['x']},{p['y']}" for i, p in enumerate(points)
        ),
        "points": points,
        "first": rows[0].started if rows else "",
        "last": rows[-1].started if len(rows) > 1 and rows[-1].started != rows[0].started else "",
    }


def variants_page(project: Project, data) -> dict[str, Any]:
    """A run's variants side by side: one row per item, one column per variant.

    Items are matched across variants by their index and repeat; each cell holds the item's
    status, score and replies. The per-variant table is the report context's own
    (``variants.table``) when it has one, else counts made here from the items.
    """
    context = build_context(project, data)
    declared = context.get("variants") if isinstance(context.get("variants"), dict) else {}
    names: list[str] = list(declared.get("names") or [])
    cells: dict[tuple[Any, Any], dict[str, Any]] = {}
    labels: dict[tuple[Any, Any], str] = {}
    for record, item in zip(data.items, context["items"], strict=True):
        variant = record.get("variant")
        if variant is None:
            continue
        name = str(variant)
        if name not in names:
            names.append(name)
        where = (item["index"], item["repeat"])
        repeat = f" · repeat {item['repeat']}" if item["repeat"] else ""
        labels.setdefault(where, f"{item['label']}{repeat}")
        cells.setdefault(where, {})[name] = item
    return {
        "title": f"variants of run {context['run']['id']}",
        "run": context["run"],
        "names": names if cells else [],
        "table": declared.get("table") or _totals(names, cells),
        "rows": [{"label": labels[k], "cells": cells[k]} for k in sorted(cells, key=_order)],
    }


def _totals(names: list[str], cells: dict) -> list[dict[str, Any]]:
    """Per variant: items, passed, pass rate, mean score, tokens (when the context has none)."""
    totals = []
    for name in names:
        mine = [row[name] for row in cells.values() if name in row]
        passed = sum(1 for i in mine if i["status"] == "passed")
        totals.append(
            {
                "name": name,
                "runs": len(mine),
                "passed": passed,
                "pass_rate": passed / len(mine) if mine else None,
                "mean_score": sum(i["score"] for i in mine) / len(mine) if mine else None,
                "tokens": sum((i["usage"] or {}).get("total_tokens", 0) for i in mine),
            }
        )
    return totals


def _order(where: tuple[Any, Any]) -> tuple:
    return tuple((0, v) if isinstance(v, int | float) else (1, str(v)) for v in where)


FIRST_COLUMNS = ("key", "label", "step", "kind", "before", "after", "score_before")
SHOWN_AS = {"score_before": "score A", "score_after": "score B"}


def compare_page(project: Project, data_a, data_b) -> dict[str, Any]:
    """Two runs compared by :func:`orch.results.compare.compare`, shown field by field.

    Whatever ``Comparison.to_json()`` holds is shown: the two summaries side by side, the
    changed cases in a table whose columns are the changes' own keys, and any other entry
    (a statistic, say) as a generic table.
    """
    result = compare(build_context(project, data_a), build_context(project, data_b)).to_json()
    a, b = result.pop("a"), result.pop("b")
    changes = result.pop("changes")
    unchanged = result.pop("unchanged")
    keys = list(dict.fromkeys([*a, *b]))
    columns = [c for c in FIRST_COLUMNS if any(c in ch for ch in changes)]
    columns += [c for ch in changes for c in ch if c not in columns]
    columns = list(dict.fromkeys(columns))
    return {
        "title": f"compare {a['id']} → {b['id']}",
        "a": a,
        "b": b,
        "summary": [{"key": k, "a": a.get(k), "b": b.get(k)} for k in keys],
        "columns": [{"key": c, "title": SHOWN_AS.get(c, c.replace("_", " "))} for c in columns],
        "changes": changes,
        "unchanged": unchanged,
        "extra": result,
    }
