"""One pipeline item: its steps in order on one session, each judged by its assertions.

An item never raises: what goes wrong becomes the item's ``error`` (with the thread and run it
points at), so one broken item cannot lose the others. Only a stopping run (Ctrl-C) returns
None, leaving the item for ``--resume``.

The item is the user's data, untouched: templates see it as ``item`` (a CSV column named
``index`` stays the user's). What orch knows about the item run is in its own namespace,
``orch`` (``orch.index``: the item's position, 0-based; ``orch.repeat``; ``orch.key``;
``orch.run_id``; ``orch.variant``, None without variants), and result records keep orch's
position in their top-level ``index``.
"""

from __future__ import annotations

import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jinja2

from orch.errors import OrchError
from orch.evals.assertions import judge
from orch.evals.replies import MISSING, parse_json
from orch.project.documents import relative_to
from orch.project.items import key_variant
from orch.project.model import Pipeline, Project
from orch.results.history import SCHEMA_VERSION
from orch.run.grading import Grading
from orch.run.journal import RunJournal
from orch.run.summary import now
from orch.run.uploads import Uploads
from orch.targets.registry import Connection
from orch.targets.session import ItemTimeout, Session, SessionSettings, Stopped, Turn
from orch.templating import render


@dataclass
class RunContext:
    """What every item of one run shares."""

    project: Project
    pipeline: Pipeline
    conn: Connection
    run_id: str
    run_dir: Path
    vars: dict[str, Any]
    ids: dict[str, str]
    resources: dict[str, dict]
    uploads: Uploads
    handler_pool: ThreadPoolExecutor
    stop: threading.Event
    stream: bool
    #: where item sessions note their threads (None: nothing is noted, nothing adopted)
    journal: RunJournal | None = None
    #: threads made ahead for the items (:mod:`orch.targets.reserve`), while items run
    reserve: Any = None

    @property
    def label(self) -> str:
        """What the run's sessions tag the conversations they make with."""
        return f"orchrun-{self.project.name}-{self.run_id}"


class ItemRunner:
    """Runs items of one run; thread-safe (one session per item, nothing else mutable)."""

    def __init__(self, ctx: RunContext):
        self.ctx = ctx
        #: what assertions ask: llm_rubric answers, grading models, embeddings
        self.grading = Grading(self)

    def session(
        self, stream: bool, deadline: float, files_dir: Path, key: str | None = None
    ) -> Session:
        """A new session on the run's target for one item ``key`` (or, without, a grading)."""
        ctx = self.ctx
        more: dict[str, Any] = {"reserve": ctx.reserve} if key is not None else {}
        if ctx.journal and key is not None:
            more["ledger"] = ctx.journal.ledger(key)
        settings = SessionSettings(
            stream=stream,
            deadline=deadline,
            handler_pool=ctx.handler_pool,
            files_dir=files_dir,
            root=ctx.project.root,
            stop=ctx.stop,
            retries=ctx.pipeline.retries,
            attempts=ctx.pipeline.retries + 2,
            label=ctx.label,
            resources=ctx.resources,
            **more,
        )
        return ctx.conn.session(settings)

    def run(self, key: str, item: dict, index: int, rep: int) -> dict[str, Any] | None:
        """Run item ``index`` (its ``rep``-th repeat); its record, or None when stopping."""
        started_at, t0 = now(), time.monotonic()
        timeout = self.ctx.pipeline.timeout
        files = self.ctx.run_dir / "files" / key.replace("/", "_")
        conv = self.session(self.ctx.stream, t0 + timeout, files, key)
        variant = key_variant(key)
        own = {
            "index": index,
            "repeat": rep,
            "key": key,
            "run_id": self.ctx.run_id,
            "variant": variant,
        }
        records: list[dict] = []
        try:
            status, error = self._steps(conv, item, own, t0, records)
        except ItemTimeout:
            conv.cancel()
            message = f"timed out after {timeout:g}s; run cancelled"
            status, error = "error", {"type": "timeout", "message": message}
        except Stopped:
            conv.cancel()
            return None
        except Exception as exc:  # noqa: BLE001 - a bug must not lose the other items
            status, error = "error", _error_record(exc)
        finally:
            conv.close()
        if error is not None:
            error.setdefault("thread_id", conv.thread_id)
            error.setdefault("run_id", conv.run_id)
        usage: dict[str, int] = {}
        for r in records:
            for k, v in (r.get("usage") or {}).items():
                usage[k] = usage.get(k, 0) + v
        return {
            "schema_version": SCHEMA_VERSION,
            "key": key,
            "index": index,
            "repeat": rep,
            # without variants, records keep the shape they always had
            **({"variant": variant} if variant is not None else {}),
            "item": item,
            "status": status,
            "thread_id": conv.thread_id,
            "steps": records,
            "error": error,
            "usage": usage,
            "started_at": started_at,
            "finished_at": now(),
            "duration_s": round(time.monotonic() - t0, 3),
        }

    def _steps(
        self, conv: Session, item: dict, own: dict, t0: float, records: list[dict]
    ) -> tuple[str, dict | None]:
        status, steps_ctx = "passed", {}
        for step in self.ctx.pipeline.steps:
            if step.timeout:
                conv.deadline = min(t0 + self.ctx.pipeline.timeout, time.monotonic() + step.timeout)
            record = self._step(conv, step, item, own, steps_ctx)
            records.append(record)
            if record.get("error"):
                return "error", record["error"]
            if not record["passed"]:
                status = "failed"
        return status, None

    def _step(self, conv: Session, step, item, own: dict, steps_ctx) -> dict[str, Any]:
        ctx = self.ctx
        context = {
            "item": item,
            "orch": own,
            "vars": ctx.vars,
            "steps": steps_ctx,
            "repeat": own["repeat"],
            "run": {"id": ctx.run_id},
        }
        prompt = render(step.prompt, context)
        name = step.assistant or _variant_assistant(ctx.pipeline, own.get("variant"))
        turn = self._turn(name, prompt, step, context)
        t0 = time.monotonic()
        outcome = conv.step(turn)
        record: dict[str, Any] = {
            "id": step.id,
            "assistant": name,
            "prompt": prompt,
            "thread_id": conv.thread_id,
            "run_id": outcome.run_id,
            "runs": outcome.run_ids,  # every attempt's run, so none is unaccounted for
            "status": outcome.status,
            "output": outcome.output,
            "tool_calls": outcome.tool_calls,
            "citations": outcome.citations,
            "files": [relative_to(p, ctx.run_dir) for p in outcome.files],
            "usage": outcome.usage,
            "latency_s": round(time.monotonic() - t0, 3),
            "attempts": outcome.attempts,
            "last_error": outcome.last_error,
        }
        parsed = parse_json(outcome.output)
        steps_ctx[step.id] = {
            "output": outcome.output if parsed is MISSING else parsed,
            "text": outcome.output,
            "tool_calls": outcome.tool_calls,
            "files": record["files"],
        }
        if outcome.cut_at_cap:
            record["truncated"] = True  # judged as it is: the reply the cap let through
        elif outcome.status != "completed":
            message = (outcome.last_error or {}).get("message") or f"run ended {outcome.status}"
            record["error"] = {
                "type": f"run_{outcome.status}",
                "message": message,
                "thread_id": conv.thread_id,
                "run_id": outcome.run_id,
            }
            record["passed"], record["score"], record["assertions"] = False, 0.0, []
            return record
        record.update(judge(step, record, context, self.grading, ctx.project.root))
        return record

    def _turn(self, name: str, prompt: str, step, context: dict[str, Any]) -> Turn:
        """What to send for ``step``: its message, attachments, instructions and token cap."""
        ctx = self.ctx
        content, attachments = self._message(prompt, step, context)
        assistant = ctx.conn.assistant(ctx.project.assistant(name))
        return Turn(
            assistant=assistant,
            assistant_id=ctx.ids.get(name),
            content=content,
            attachments=attachments,
            instructions=_render_optional(step.instructions, context),
            additional_instructions=_render_optional(step.additional_instructions, context),
            max_tokens=step.max_tokens or assistant.max_tokens,
        )

    def _message(self, prompt: str, step, context) -> tuple[list[dict], list[dict]]:
        content: list[dict] = [{"type": "text", "text": prompt}]
        attachments: list[dict] = []
        uploads = self.ctx.uploads
        for att in step.attachments:
            if att.path:
                file_id = uploads.file_id(render(att.path, context))
                attachments.append({"file_id": file_id, "tools": [{"type": t} for t in att.tools]})
                continue
            image = render(att.image, context)
            detail = {"detail": att.detail} if att.detail else {}
            if image.startswith(("http://", "https://", "data:")):
                content.append({"type": "image_url", "image_url": {"url": image, **detail}})
            else:
                file_id = uploads.file_id(image, purpose="vision")
                content.append({"type": "image_file", "image_file": {"file_id": file_id, **detail}})
        return content, attachments


def _variant_assistant(pipeline: Pipeline, variant: str | None) -> str:
    """Who a step without its own ``assistant:`` talks to in ``variant`` (None: no variants)."""
    chosen = pipeline.variant(variant) if variant is not None else None
    return chosen.assistant if chosen else pipeline.assistant


def _render_optional(text: str | None, context: dict[str, Any]) -> str | None:
    return render(text, context) if text else None


def _error_record(exc: Exception) -> dict[str, Any]:
    if isinstance(exc, OrchError):
        return {"type": type(exc).__name__, "message": str(exc)}
    if isinstance(exc, jinja2.TemplateError):
        return {"type": "template", "message": f"template error: {exc}"}
    return {
        "type": "internal",
        "message": f"{type(exc).__name__}: {exc}",
        "traceback": traceback.format_exc(limit=8),
    }
