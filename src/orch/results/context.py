"""The report context: a recorded run (``run.json`` + item records) as plain template data.

:func:`build_context` is what every report template sees (documented in the README), and what
``builtin:json`` dumps and ``orch compare`` compares. It reads only the history, never a model.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from orch.project.documents import relative_to
from orch.project.model import Pipeline, Project
from orch.results.history import History, RunRecord
from orch.results.statistics import pass_at_k, pass_hat_k, repeat_count, report_statistics
from orch.results.variants import variants_context

REHEARSAL_NOTE = "Replies from the scripted model are rehearsal text, not an AI's."
BATCH_NOTE = (
    "The requests went through the Batch API: costs are estimated at batch prices "
    "(prices: minus each model's batch_discount)."
)
_IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".gif", ".webp", ".svg"}


@dataclass
class RunData:
    """A finished (or interrupted) run read back from the history."""

    record: RunRecord
    items: list[dict[str, Any]]
    run_dir: Path


def load_run(root: Path, run_id: str) -> RunData:
    """Read a run (``run_id`` may be a unique prefix) and its items from ``root/.orch``."""
    with History(root) as history:
        record = history.get(run_id)
        items = list(history.items(record.run_id))
        run_dir = history.run_dir(record.run_id)
    return RunData(record, items, run_dir)


def build_context(project: Project, data: RunData) -> dict[str, Any]:
    """The documented report context: run, pipeline, assistant, steps, items, assertions, usage.

    Everything in it is plain JSON-able data (``builtin:json`` dumps it), so user templates can
    rely on the README's description of each key.
    """
    record, meta = data.record, data.record.meta
    declared = project.pipeline(record.pipeline)
    models = dict(meta.get("models") or {})
    prices = run_prices(project, meta)
    model_of = functools.partial(_model_of, project, models)
    items = [_item(rec, data.run_dir, model_of, prices) for rec in data.items]
    step_ids = _step_ids(declared, items)
    for item in items:
        item["cases"] = _cases(item, step_ids)
    main_assistant = (
        declared.assistant if declared else next(iter(meta.get("assistants") or {}), None)
    )
    return {
        "run": _run(project, data, declared, items),
        "pipeline": _pipeline(declared, record),
        "assistant": _assistant(project, main_assistant, meta, models),
        "steps": _step_stats(step_ids, items, declared),
        "items": items,
        "failures": [i for i in items if i["status"] != "passed"],
        "passed_items": [i for i in items if i["status"] == "passed"],
        "repeats": _repeats(items),
        "variants": variants_context(items, declared, meta),
        "statistics": report_statistics(items),
        "assertions": _assertions(items),
        "usage": _usage(items, prices),
    }


def run_prices(project: Project, meta: dict[str, Any]) -> dict[str, tuple[float, float]]:
    """USD per 1M tokens (input, output) by model as the run paid them.

    A batch run (``batch`` in its record) pays batch prices: ``prices:`` less the model's
    ``batch_discount`` (OpenAI's 50% unless orch.yml says otherwise).
    """
    prices = dict(project.prices)
    if not meta.get("batch"):
        return prices
    discounts = dict(project.batch_discounts)
    return {
        model: (
            price_in * (1 - discounts.get(model, 0.5)),
            price_out * (1 - discounts.get(model, 0.5)),
        )
        for model, (price_in, price_out) in prices.items()
    }


def _model_of(project: Project, models: dict[str, str], name: str | None) -> str | None:
    """The model an assistant ran on: as the run recorded it, else as the project declares it."""
    if name in models:
        return models[name]
    assistant = project.assistant(name) if name else None
    return assistant.model if assistant else None


def _step_ids(declared: Pipeline | None, items: list[dict]) -> list[str]:
    """The declared steps' ids, then any other step the items recorded (in the order seen)."""
    step_ids = [s.id for s in declared.steps] if declared else []
    for item in items:
        for step in item["steps"]:
            if step["id"] not in step_ids:
                step_ids.append(step["id"])
    return step_ids


def _run(
    project: Project, data: RunData, declared: Pipeline | None, items: list[dict]
) -> dict[str, Any]:
    """The context's ``run``: the record, its counts and its outcome (the exit code it earns)."""
    record, meta = data.record, data.record.meta
    counts = {"total": len(items), "passed": 0, "failed": 0, "errors": 0}
    for item in items:
        counts[{"passed": "passed", "failed": "failed", "error": "errors"}[item["status"]]] += 1
    required = declared.pass_rate if declared else meta.get("pass_rate", 1.0)
    pass_rate = counts["passed"] / counts["total"] if counts["total"] else 1.0
    exit_code = (
        2
        if counts["errors"] or record.status == "interrupted"
        else 1
        if pass_rate + 1e-9 < required
        else 0
    )
    return {
        "id": record.run_id,
        "pipeline": record.pipeline,
        "status": record.status,
        "target": record.target,
        "target_name": meta.get("target_name"),
        "project": meta.get("project", project.name),
        "started_at": record.started_at,
        "finished_at": record.finished_at,
        "duration_s": meta.get("duration_s"),
        "scripted": bool(meta.get("scripted")),
        "rehearsal_note": REHEARSAL_NOTE if meta.get("scripted") else None,
        "batch": bool(meta.get("batch")),
        "pricing": "batch" if meta.get("batch") else "standard",
        "batch_note": BATCH_NOTE if meta.get("batch") else None,
        "batches": list((meta.get("batch") or {}).get("batches") or []),
        "counts": counts,
        "pass_rate": pass_rate,
        "required_pass_rate": required,
        "passed": exit_code == 0,
        "exit_code": exit_code,
        "outcome": {0: "passed", 1: "failed", 2: "error"}[exit_code],
        "pipeline_file": meta.get("pipeline_file"),
        "pipeline_hash": record.pipeline_hash,
        "vars": meta.get("vars") or {},
        "orch_version": meta.get("orch_version"),
        "dir": str(data.run_dir),
    }


def _assertions(items: list[dict]) -> list[dict[str, Any]]:
    """Every verdict of the run, each with the item key and step id it belongs to."""
    return [
        {**v, "item": item["key"], "step": step["id"]}
        for item in items
        for step in item["steps"]
        for v in step["assertions"]
    ]


def _cost(usage: dict, model: str | None, prices: dict) -> float | None:
    if model not in prices:
        return None
    price_in, price_out = prices[model]
    return (
        usage.get("prompt_tokens", 0) * price_in + usage.get("completion_tokens", 0) * price_out
    ) / 1_000_000


def _error(raw: dict | None) -> dict[str, Any] | None:
    if not raw:
        return None
    return {"type": None, "message": "", "thread_id": None, "run_id": None, **raw}


def _step(raw: dict, run_dir: Path, model_of, prices) -> dict[str, Any]:
    step = {
        "id": "",
        "assistant": None,
        "prompt": "",
        "output": "",
        "status": None,
        "thread_id": None,
        "run_id": None,
        "latency_s": None,
        "attempts": 1,
        "assertions": [],
        "usage": {},
        "tool_calls": [],
        "citations": [],
        **raw,
    }
    step["output"] = step["output"] or ""
    step["assertions"] = [{"error": False, **v} for v in step["assertions"]]
    step["error"] = _error(raw.get("error"))
    step["status"] = "error" if step["error"] else "passed" if step.get("passed") else "failed"
    step["score"] = step.get("score", 0.0)
    step["model"] = model_of(step.get("assistant"))
    step["cost"] = _cost(step["usage"], step["model"], prices)
    step["failed_assertions"] = [v for v in step["assertions"] if not v["passed"]]
    files = list(step.get("files") or [])
    calls = []
    for call in step["tool_calls"]:
        call = {
            "id": None,
            "type": "function",
            "name": None,
            "arguments": None,
            "output": None,
            "error": None,
            "input": None,
            "outputs": [],
            **call,
        }
        call["files"] = [relative_to(f, run_dir) for f in call.get("files") or []]
        for f in call["files"]:
            if f not in files:
                files.append(f)
        calls.append(call)
    step["tool_calls"] = calls
    step["files"] = files
    step["images"] = [f for f in files if Path(f).suffix.lower() in _IMAGE_SUFFIXES]
    return step


#: fields that name an item, best first; the first four may be numbers
_LABEL_FIELDS = (
    "label",
    "name",
    "title",
    "id",
    "question",
    "prompt",
    "q",
    "input",
    "value",
    "path",
)


def _label(raw_item: dict, index: Any) -> str:
    """A short name for an item: a well-known field, else its first text field.

    ``label`` comes first, as in the terminal's progress lines (``run.progress.item_label``).
    """
    preferred = _LABEL_FIELDS
    fields = [*preferred, *(k for k in raw_item if k not in preferred and k != "index")]
    for field in fields:
        value = raw_item.get(field)
        if (
            isinstance(value, str)
            and value.strip()
            or field in preferred[:4]
            and isinstance(value, int)
            and not isinstance(value, bool)
        ):
            text = str(value).strip().replace("\n", " ")
            return text if len(text) <= 60 else text[:57] + "..."
    return f"item {index}"


def _item(rec: dict, run_dir: Path, model_of, prices) -> dict[str, Any]:
    steps = [_step(s, run_dir, model_of, prices) for s in rec.get("steps") or []]
    costs = [s["cost"] for s in steps]
    scores = [s["score"] for s in steps]
    raw_item = rec.get("item") or {}
    return {
        "key": rec["key"],
        "index": rec.get("index", 0),
        "repeat": rec.get("repeat", 0),
        "variant": rec.get("variant"),
        "label": _label(raw_item, rec.get("index", rec["key"])),
        "input": raw_item,
        "status": rec["status"],
        "error": _error(rec.get("error")),
        "thread_id": rec.get("thread_id"),
        "steps": steps,
        "usage": rec.get("usage") or {},
        "duration_s": rec.get("duration_s"),
        "started_at": rec.get("started_at"),
        "finished_at": rec.get("finished_at"),
        "score": round(sum(scores) / len(scores), 4) if scores else 0.0,
        "cost": sum(costs) if costs and all(c is not None for c in costs) else None,
    }


def _cases(item: dict, step_ids: list[str]) -> list[dict[str, Any]]:
    """One test case per declared step: its record, or why it has none (error / not run)."""
    by_id = {s["id"]: s for s in item["steps"]}
    cases, errored = [], False
    for step_id in step_ids:
        step = by_id.get(step_id)
        if step is not None:
            status = step["status"]
            if status == "error":
                message = step["error"].get("message", "")
            elif status == "failed":
                message = (
                    "; ".join(f"{v['name']}: {v['reason']}" for v in step["failed_assertions"])
                    or f"score {step['score']:.2f} below the step's threshold"
                )
            else:
                message = ""
            errored = errored or status == "error"
        elif item["status"] == "error" and not errored:
            status, errored = "error", True
            message = (item["error"] or {}).get("message", "error")
        else:
            status = "skipped"
            message = "not run: an earlier step errored" if errored else "not run"
        cases.append({"step_id": step_id, "status": status, "message": message, "step": step})
    return cases


def _pipeline(declared: Pipeline | None, record: RunRecord) -> dict[str, Any]:
    if declared is None:
        return {
            "name": record.pipeline,
            "declared": False,
            "description": None,
            "source": record.meta.get("pipeline_file"),
            "assistant": None,
            "pass_rate": 1.0,
            "repeat": 1,
            "concurrency": None,
            "timeout": None,
            "retries": None,
            "steps": [],
            "report": [],
        }
    return {
        "name": declared.name,
        "declared": True,
        "description": declared.description,
        "source": declared.source,
        "assistant": declared.assistant,
        "pass_rate": declared.pass_rate,
        "repeat": declared.repeat,
        "concurrency": declared.concurrency,
        "timeout": declared.timeout,
        "retries": declared.retries,
        "steps": [
            {
                "id": s.id,
                "prompt": s.prompt,
                "assistant": s.assistant or declared.assistant,
                "threshold": s.threshold,
                "expect": [
                    {"kind": a.kind, "name": a.name, "weight": a.weight, "threshold": a.threshold}
                    for a in s.expect
                ],
            }
            for s in declared.steps
        ],
        "report": [{"template": r.template, "output": r.output} for r in declared.report],
    }


def _assistant(project: Project, name: str | None, meta: dict, models: dict) -> dict[str, Any]:
    declared = project.assistant(name) if name else None
    out = {
        "name": name,
        "id": (meta.get("assistants") or {}).get(name),
        "model": models.get(name) or (declared.model if declared else None),
        "description": None,
        "instructions": None,
        "tools": [],
        "source": None,
    }
    if declared:
        out.update(
            description=declared.description,
            instructions=declared.instructions,
            tools=[t.function.name if t.function else t.type for t in declared.tools],
            source=declared.source,
        )
    return out


def _step_stats(step_ids: list[str], items: list[dict], declared: Pipeline | None) -> list[dict]:
    prompts = {s.id: s.prompt for s in declared.steps} if declared else {}
    stats = []
    for step_id in step_ids:
        counts = {"passed": 0, "failed": 0, "error": 0, "skipped": 0}
        scores = []
        for item in items:
            for case in item["cases"]:
                if case["step_id"] == step_id:
                    counts[case["status"]] += 1
                    if case["step"] is not None:
                        scores.append(case["step"]["score"])
        stats.append(
            {
                "id": step_id,
                "prompt": prompts.get(step_id),
                "passed": counts["passed"],
                "failed": counts["failed"],
                "errors": counts["error"],
                "skipped": counts["skipped"],
                "mean_score": round(sum(scores) / len(scores), 4) if scores else None,
            }
        )
    return stats


def _repeats(items: list[dict]) -> list[dict[str, Any]]:
    """Per-item statistics over ``repeat`` runs, pass@k and pass^k too (empty without repeats)."""
    groups: dict[tuple[int, str], list[dict]] = {}
    for item in items:  # each variant's repeats apart
        groups.setdefault((item["index"], item.get("variant") or ""), []).append(item)
    if all(len(g) == 1 for g in groups.values()):
        return []
    out, k = [], repeat_count(items)
    for (index, variant), group in sorted(groups.items()):
        passed = sum(1 for i in group if i["status"] == "passed")
        out.append(
            {
                "index": index,
                "variant": variant or None,
                "label": group[0]["label"],
                "runs": len(group),
                "passed": passed,
                "failed": sum(1 for i in group if i["status"] == "failed"),
                "errors": sum(1 for i in group if i["status"] == "error"),
                "pass_rate": passed / len(group),
                "mean_score": round(sum(i["score"] for i in group) / len(group), 4),
                "pass_at_k": pass_at_k(len(group), passed, k),
                "pass_hat_k": pass_hat_k(len(group), passed, k),
            }
        )
    return out


def _usage(items: list[dict], prices: dict) -> dict[str, Any]:
    totals = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0}
    by_model: dict[str, dict[str, Any]] = {}
    for item in items:
        for step in item["steps"]:
            model = step["model"] or "unknown"
            row = by_model.setdefault(
                model,
                {
                    "model": model,
                    "prompt_tokens": 0,
                    "completion_tokens": 0,
                    "total_tokens": 0,
                    "cost": _cost({}, model, prices),
                },
            )
            for key in totals:
                value = step["usage"].get(key, 0)
                totals[key] += value
                row[key] += value
            if step["cost"] is not None:
                row["cost"] = (row["cost"] or 0.0) + step["cost"]
    unpriced = sorted(m for m in by_model if m not in prices)
    costs = [r["cost"] for r in by_model.values() if r["cost"] is not None]
    return {
        **totals,
        "by_model": sorted(by_model.values(), key=lambda r: r["model"]),
        "cost": sum(costs) if costs else None,
        "priced": bool(prices),
        "unpriced_models": unpriced,
    }
