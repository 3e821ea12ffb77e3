"""A plan as terraform-style lines for humans (``orch plan`` / ``orch sync``)."""

from __future__ import annotations

import difflib
from typing import Any

from orch.project.model import canonical_json
from orch.sync.planning import Plan

SYMBOLS = {"create": "+", "update": "~", "delete": "-", "unchanged": "="}


def _show(value: Any) -> str:
    text = value if isinstance(value, str) else canonical_json(value)
    return text if len(text) <= 80 else text[:77] + "..."


def render(plan_: Plan, verbose: bool = False) -> list[str]:
    """Human-readable lines for ``orch plan`` / ``orch sync``."""
    lines = [f"Plan for project {plan_.project!r} on {plan_.target}:"]
    for change in plan_.assistants:
        if change.action == "unchanged" and not (verbose or change.reason):
            continue
        note = f"  ({change.reason})" if change.reason else ""
        lines.append(f"  {SYMBOLS[change.action]} {change.action:<9} assistant {change.name}{note}")
        for d in change.diffs:
            if d.field == "instructions":
                lines.append("      instructions:")
                for line in difflib.unified_diff(
                    (d.old or "").splitlines(),
                    (d.new or "").splitlines(),
                    "remote",
                    "local",
                    lineterm="",
                    n=1,
                ):
                    lines.append(f"        {line}")
            elif d.field == "metadata":
                keys = sorted(set(d.old or {}) | set(d.new or {}))
                for k in keys:
                    old, new = (d.old or {}).get(k), (d.new or {}).get(k)
                    if old != new:
                        lines.append(f"      metadata.{k}: {_show(old)} → {_show(new)}")
            else:
                lines.append(f"      {d.field}: {_show(d.old)} → {_show(d.new)}")
    for change in [*plan_.stores, *plan_.files]:
        if change.action == "unchanged" and not verbose:
            continue
        note = f"  ({change.reason})" if change.reason else ""
        label = "vector store" if change.kind == "vector_store" else "file"
        lines.append(f"  {SYMBOLS[change.action]} {change.action:<9} {label} {change.name}{note}")
    if plan_.unmanaged:
        names = ", ".join(sorted(a.name or a.id for a in plan_.unmanaged)[:8])
        more = "…" if len(plan_.unmanaged) > 8 else ""
        lines.append(
            f"  unmanaged: {len(plan_.unmanaged)} assistant(s) not tagged with project "
            f"{plan_.project!r}, left alone: {names}{more}"
        )
    a = plan_
    lines.append(
        f"Plan: {a.count('create')} to create, {a.count('update')} to update, "
        f"{a.count('delete')} to delete, {a.count('unchanged')} unchanged"
        f" (files: {a.count('create', 'file')} to upload, {a.count('delete', 'file')} to delete;"
        f" vector stores: {a.count('create', 'vector_store') + a.count('update', 'vector_store')}"
        f" to write, {a.count('delete', 'vector_store')} to delete)."
    )
    if not plan_.changes:
        lines.append("No changes: the target matches the YAML.")
    return lines
