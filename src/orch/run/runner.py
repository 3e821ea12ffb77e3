"""``orch run``: a pipeline's items × steps against a target, concurrently, durably, resumably.

Each item runs in its own :class:`~orch.conversation.Conversation` (one thread, steps share it).
At most ``concurrency`` items are in flight, and at most that many are even *submitted*, so
memory stays flat however many items there are. Every finished item is appended to the run's
``results.jsonl`` and the SQLite history before it is reported; a killed run is resumed with
``--resume RUN_ID`` (missing items only) or ``orch retry RUN_ID`` (failed ones).
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
import secrets
import signal
import threading
import time
import traceback
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jinja2
import openai

from orch import __version__, sync
from orch.errors import BackendError, ExitCode, OrchError, UsageError
from orch.evals.assertions import judge, parse_json
from orch.project.items import item_key, iter_items
from orch.project.model import Pipeline, Project, canonical_json, sha256_file, sha256_text
from orch.results.history import SCHEMA_VERSION, History
from orch.run.progress import Reporter
from orch.targets import retry
from orch.targets.base import META_NAME
from orch.targets.connection import connect
from orch.targets.session import Conversation, ItemTimeout, Stopped, Turn

_TEMPLATES = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
_MISSING_JSON = parse_json("")


@dataclass
class RunOptions:
    """Command-line choices for one ``orch run`` / ``--resume`` / ``orch retry``."""

    target: str | None = None
    vars: dict[str, Any] = field(default_factory=dict)
    items_limit: int | None = None
    concurrency: int | None = None
    resume: str | None = None
    retry_failed: bool = False
    stream: bool | None = None
    sync: bool = True
    quiet: bool = False


@dataclass
class RunSummary:
    """The outcome of a run, with the exit code it implies."""

    run_id: str
    pipeline: str
    status: str
    counts: dict[str, int]
    usage: dict[str, int]
    duration_s: float
    run_dir: Path
    pass_rate: float
    required_pass_rate: float
    reports: list[str] = field(default_factory=list)

    @property
    def exit_code(self) -> int:
        """2 on infrastructure errors or interruption, 1 below the pass rate, else 0."""
        if self.status == "interrupted" or self.counts["errors"]:
            return ExitCode.ERROR
        if self.pass_rate + 1e-9 < self.required_pass_rate:
            return ExitCode.FAILED
        return ExitCode.OK

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return {
            "run_id": self.run_id,
            "pipeline": self.pipeline,
            "status": self.status,
            "counts": self.counts,
            "usage": self.usage,
            "duration_s": self.duration_s,
            "pass_rate": self.pass_rate,
            "required_pass_rate": self.required_pass_rate,
            "run_dir": str(self.run_dir),
            "reports": self.reports,
            "exit_code": self.exit_code,
        }


def now() -> str:
    """UTC timestamp, ISO 8601 with seconds."""
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def new_run_id() -> str:
    """Sortable, unique: ``20261121-220512-3fa2c1``."""
    return dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)


@functools.lru_cache(maxsize=1024)
def _template(text: str) -> jinja2.Template:
    # compiling is most of a render's cost; every item renders the same few templates
    return _TEMPLATES.from_string(text)


def render(text: str, context: dict[str, Any]) -> str:
    """Render a Jinja template string (StrictUndefined: a typo fails loudly)."""
    return _template(text).render(**context)


class Uploads:
    """Attachment uploads, deduplicated by content across items, runs and resumes."""

    def __init__(self, client: openai.OpenAI, project: str, root: Path):
        self.client = client
        self.project = project
        self.root = root
        self._ids: dict[tuple[str, str], str] = {}
        self._lock = threading.Lock()
        self._listed = False

    def _name(self, sha: str, path: Path) -> str:
        return f"orchrun-{self.project}-{sha[:16]}-{path.name}"

    def file_id(self, rel: str, purpose: str = "assistants") -> str:
        """Upload ``rel`` (relative to the project root) once; return its file id."""
        path = (self.root / rel).resolve()
        if not path.is_file():
            raise UsageError(f"attachment not found: {rel}")
        sha = sha256_file(path)
        with self._lock:
            if not self._listed:
                page = retry.call("list files", lambda: self.client.files.list(limit=10000))
                for f in page.data:
                    match = re.match(
                        rf"orchrun-{re.escape(self.project)}-([0-9a-f]{{16}})-", f.filename
                    )
                    if match:
                        self._ids.setdefault((match.group(1), f.purpose), f.id)
                self._listed = True
            key = (sha[:16], purpose)
            if key not in self._ids:
                with path.open("rb") as fh:
                    created = retry.call(
                        f"upload {rel}",
                        lambda: self.client.files.create(
                            file=(self._name(sha, path), fh), purpose=purpose
                        ),
                        idempotent=False,
                    )
                self._ids[key] = created.id
            return self._ids[key]


class PipelineRunner:
    """Runs one pipeline; create it, then call :meth:`run`."""

    def __init__(
        self,
        project: Project,
        pipeline: Pipeline,
        options: RunOptions,
        reporter: Reporter,
        echo=print,
    ):
        self.project = project
        self.pipeline = pipeline
        self.options = options
        self.reporter = reporter
        self.echo = echo
        self.root = project.root
        self.stop = threading.Event()
        self.history = History(project.root)
        self.vars = {**dict(project.vars), **dict(pipeline.vars), **options.vars}

    # -- setup ---------------------------------------------------------------------------------

    def _needed(self) -> list[str]:
        names = {self.pipeline.assistant}
        for step in self.pipeline.steps:
            if step.assistant:
                names.add(step.assistant)
            for a in step.expect:
                if a.kind == "llm_rubric":
                    grader = a.value.get("grader") if isinstance(a.value, dict) else None
                    names.add(grader or self.project.grader)
        return sorted(n for n in names if n)

    def _ensure_synced(self, conn) -> dict[str, str]:
        """Sync the assistants this pipeline needs (or check them with --no-sync); name → id."""
        if self.capabilities.get("hosted_tools") is False:
            for name in self.needed_names:
                hosted = [t.type for t in self.project.assistant(name).tools if not t.function]
                if hosted:
                    raise UsageError(
                        f"assistant {name!r} uses {', '.join(hosted)}, which target "
                        f"{conn.target.name!r} does not support (capabilities.hosted_tools: "
                        "false)"
                    )
        backend = conn.backend()
        state = backend.fetch_state(self.project.name)
        needed = [self.project.assistant(n) for n in self._needed()]
        result = sync.plan(
            self.project.name, conn.label, needed, state, local_assistants=backend.local_assistants
        )
        result.assistants = [c for c in result.assistants if c.name in self.needed_names]
        result.files = [c for c in result.files if c.action == "create"]
        result.stores = [c for c in result.stores if c.action in ("create", "update")]
        if result.changes:
            if not self.options.sync:
                names = ", ".join(
                    sorted({c.name for c in result.assistants if c.action != "unchanged"})
                )
                raise UsageError(
                    f"assistants not in sync on {conn.label}: {names or 'files'}; "
                    "run `orch sync` first (or drop --no-sync)"
                )
            writes = sync.apply(result, backend, self.root)
            self.echo(
                f"Synced {writes} change{'s' if writes != 1 else ''} for "
                f"{', '.join(self.needed_names)} on {conn.label}."
            )
            state = backend.fetch_state(self.project.name)
        ids = {}
        for remote in state.assistants:
            if remote.managed_by(self.project.name):
                ids.setdefault(remote.metadata[META_NAME], remote.id)
        self.resources = {
            n: sync.assistant_resources(self.project.assistant(n), self.project.name, state)
            for n in self.needed_names
        }
        return ids

    # -- the run -------------------------------------------------------------------------------

    def run(self) -> RunSummary:
        """Execute (or resume) the pipeline; returns the summary (never raises on item errors)."""
        pipeline = self.pipeline
        self.needed_names = self._needed()
        skip: set[str] = set()
        if self.options.resume:
            record = self.history.get(self.options.resume)
            if record.pipeline != pipeline.name:
                raise UsageError(
                    f"run {record.run_id} is of pipeline {record.pipeline!r}, not {pipeline.name!r}"
                )
            if record.pipeline_hash != self._pipeline_hash():
                raise UsageError(
                    f"pipeline {pipeline.name!r} changed since run {record.run_id}; results "
                    "would mix two versions. Start a new run instead."
                )
            run_id = record.run_id
            self.vars = record.meta.get("vars", self.vars)
            self.options.items_limit = record.meta.get("items_limit")
            statuses = self.history.item_status(run_id)
            skip = {
                k
                for k, s in statuses.items()
                if not (self.options.retry_failed and s in ("failed", "error"))
            }
            started_at = record.started_at
        else:
            run_id = new_run_id()
            started_at = now()
        self.run_id = run_id
        self.run_dir = self.history.run_dir(run_id)
        t0 = time.monotonic()
        with connect(self.project, self.options.target, quiet=self.options.quiet) as conn:
            self.client = conn.client
            self.kind = conn.target.kind
            self.capabilities = conn.target.option("capabilities") or {}
            self.ids = self._ensure_synced(conn)
            self.uploads = Uploads(conn.client, self.project.name, self.root)
            meta = {
                "schema_version": SCHEMA_VERSION,
                "run_id": run_id,
                "pipeline": pipeline.name,
                "pipeline_file": pipeline.source,
                "pipeline_hash": self._pipeline_hash(),
                "project": self.project.name,
                "target": conn.label,
                "target_name": conn.target.name,
                "assistants": {n: self.ids.get(n) for n in self.needed_names},
                "models": {n: self.project.assistant(n).model for n in self.needed_names},
                "scripted": conn.target.kind == "engine"
                and conn.target.option("model", "scripted") == "scripted",
                "vars": self.vars,
                "items_limit": self.options.items_limit,
                "started_at": started_at,
                "status": "running",
                "orch_version": __version__,
                "generated_at": now(),
            }
            self.history.start_run(meta)
            status = self._execute(skip)
        counts, usage = self._totals()
        total = counts["total"]
        meta.update(
            status=status,
            finished_at=now(),
            counts=counts,
            usage=usage,
            duration_s=round(time.monotonic() - t0, 3),
            generated_at=now(),
        )
        self.history.finish_run(meta)
        pass_rate = counts["passed"] / total if total else 1.0
        summary = RunSummary(
            run_id,
            pipeline.name,
            status,
            counts,
            usage,
            meta["duration_s"],
            self.run_dir,
            pass_rate,
            pipeline.pass_rate,
        )
        self.history.close()
        return summary

    def _pipeline_hash(self) -> str:
        return sha256_text(
            canonical_json(
                {
                    "pipeline": self.pipeline.fingerprint(),
                    "assistants": {
                        n: self.project.assistant(n).fingerprint()
                        for n in self._needed()
                        if self.project.assistant(n)
                    },
                }
            )
        )

    def _work(self, skip: set[str]):
        limit = self.options.items_limit
        repeats = self.pipeline.repeat
        for n, item in enumerate(iter_items(self.pipeline.items, self.root)):
            if limit is not None and n >= limit:
                return
            for rep in range(repeats):
                key = item_key(item["index"], rep, repeats)
                if key not in skip:
                    yield key, item, rep

    def _execute(self, skip: set[str]) -> str:
        total = sum(1 for _ in self._work(skip))
        self.reporter.start(self.run_id, self.pipeline.name, total, len(skip))
        concurrency = self.options.concurrency or self.pipeline.concurrency
        handler_pool = ThreadPoolExecutor(
            max_workers=max(4, concurrency * 2), thread_name_prefix="orch-handler"
        )
        self.handler_pool = handler_pool
        pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="orch-item")
        pending: set[Future] = set()
        previous = _install_sigterm()
        status = "completed"
        try:
            for key, item, rep in self._work(skip):
                while len(pending) >= concurrency:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    self._finish(done)
                pending.add(pool.submit(self._run_item, key, item, rep))
            while pending:
                done, pending = wait(pending, return_when=FIRST_COMPLETED)
                self._finish(done)
        except KeyboardInterrupt:
            status = "interrupted"
            self.stop.set()
            for future in pending:
                future.cancel()
            done, _ = wait(pending, timeout=10)
            self._finish({f for f in done if not f.cancelled()})
        finally:
            if previous is not None:
                signal.signal(signal.SIGTERM, previous)
            pool.shutdown(wait=False, cancel_futures=True)
            handler_pool.shutdown(wait=False, cancel_futures=True)
            self.reporter.finish()
        return status

    def _finish(self, done: set[Future]) -> None:
        for future in done:
            record = future.result()
            if record is None:  # stopped before it finished: a resume will run it
                continue
            self.history.record_item(self.run_id, record)
            self.reporter.item(record)

    def _totals(self) -> tuple[dict[str, int], dict[str, int]]:
        history = self.history
        statuses = history.item_status(self.run_id)
        counts = {"total": len(statuses), "passed": 0, "failed": 0, "errors": 0}
        for s in statuses.values():
            counts[{"passed": "passed", "failed": "failed", "error": "errors"}[s]] += 1
        return counts, history.usage(self.run_id)  # summed in SQL: no record is loaded

    # -- one item ------------------------------------------------------------------------------

    def _run_item(self, key: str, item: dict, rep: int) -> dict[str, Any] | None:
        started_at, t0 = now(), time.monotonic()
        timeout = self.pipeline.timeout
        conv = self._session(
            stream=self.pipeline.stream if self.options.stream is None else self.options.stream,
            deadline=t0 + timeout,
            files_dir=self.run_dir / "files" / key.replace("/", "_"),
        )
        steps_ctx: dict[str, Any] = {}
        records: list[dict] = []
        status, error = "passed", None
        try:
            for step in self.pipeline.steps:
                if step.timeout:
                    conv.deadline = min(t0 + timeout, time.monotonic() + step.timeout)
                record = self._run_step(conv, step, item, rep, steps_ctx)
                records.append(record)
                if record.get("error"):
                    status, error = "error", record["error"]
                    break
                if not record["passed"]:
                    status = "failed"
        except ItemTimeout:
            conv.cancel()
            status, error = (
                "error",
                {"type": "timeout", "message": f"timed out after {timeout:g}s; run cancelled"},
            )
        except Stopped:
            conv.cancel()
            return None
        except OrchError as exc:
            status, error = "error", {"type": type(exc).__name__, "message": str(exc)}
        except jinja2.TemplateError as exc:
            status, error = "error", {"type": "template", "message": f"template error: {exc}"}
        except Exception as exc:  # noqa: BLE001 - a bug must not lose the other items
            status, error = (
                "error",
                {
                    "type": "internal",
                    "message": f"{type(exc).__name__}: {exc}",
                    "traceback": traceback.format_exc(limit=8),
                },
            )
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
            "index": item.get("index", 0),
            "repeat": rep,
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

    def _session(self, stream: bool, deadline: float, files_dir: Path):
        """A Conversation (Assistants wire) or ResponsesSession for one item's thread."""
        common = {
            "stream": stream,
            "deadline": deadline,
            "handler_pool": self.handler_pool,
            "files_dir": files_dir,
            "root": self.root,
            "stop": self.stop,
            "retries": self.pipeline.retries,
            "attempts": self.pipeline.retries + 2,
        }
        if self.kind == "responses":
            from orch.targets.responses import ResponsesSession

            return ResponsesSession(
                self.client,
                resources=self.resources,
                capabilities=self.capabilities,
                label=f"orchrun-{self.project.name}-{self.run_id}",
                **common,
            )
        return Conversation(self.client, **common)

    def _run_step(self, conv: Conversation, step, item, rep, steps_ctx) -> dict[str, Any]:
        context = {
            "item": item,
            "vars": self.vars,
            "steps": steps_ctx,
            "repeat": rep,
            "run": {"id": self.run_id},
        }
        prompt = render(step.prompt, context)
        name = step.assistant or self.pipeline.assistant
        assistant = self.project.assistant(name)
        content, attachments = self._message(prompt, step, context)
        turn = Turn(
            assistant=assistant,
            assistant_id=self.ids.get(name),
            content=content,
            attachments=attachments,
            instructions=render(step.instructions, context) if step.instructions else None,
            additional_instructions=render(step.additional_instructions, context)
            if step.additional_instructions
            else None,
        )
        t0 = time.monotonic()
        outcome = conv.step(turn)
        latency = time.monotonic() - t0
        parsed = parse_json(outcome.output)
        record: dict[str, Any] = {
            "id": step.id,
            "assistant": name,
            "prompt": prompt,
            "thread_id": conv.thread_id,
            "run_id": outcome.run_id,
            "status": outcome.status,
            "output": outcome.output,
            "tool_calls": outcome.tool_calls,
            "citations": outcome.citations,
            "files": [_relative(p, self.run_dir) for p in outcome.files],
            "usage": outcome.usage,
            "latency_s": round(latency, 3),
            "attempts": outcome.attempts,
            "last_error": outcome.last_error,
        }
        steps_ctx[step.id] = {
            "output": outcome.output if parsed is _MISSING_JSON else parsed,
            "text": outcome.output,
            "tool_calls": outcome.tool_calls,
            "files": record["files"],
        }
        if outcome.status != "completed":
            message = (outcome.last_error or {}).get("message") or f"run ended {outcome.status}"
            record["error"] = {
                "type": f"run_{outcome.status}",
                "message": message,
                "thread_id": conv.thread_id,
                "run_id": outcome.run_id,
            }
            record["passed"], record["score"], record["assertions"] = False, 0.0, []
            return record
        record.update(judge(step, record, context, self._grade, self.root))
        return record

    def _message(self, prompt: str, step, context) -> tuple[list[dict], list[dict]]:
        content: list[dict] = [{"type": "text", "text": prompt}]
        attachments: list[dict] = []
        for att in step.attachments:
            if att.path:
                path = render(att.path, context)
                attachments.append(
                    {
                        "file_id": self.uploads.file_id(path),
                        "tools": [{"type": t} for t in att.tools],
                    }
                )
                continue
            image = render(att.image, context)
            detail = {"detail": att.detail} if att.detail else {}
            if image.startswith(("http://", "https://", "data:")):
                content.append({"type": "image_url", "image_url": {"url": image, **detail}})
            else:
                content.append(
                    {
                        "type": "image_file",
                        "image_file": {
                            "file_id": self.uploads.file_id(image, purpose="vision"),
                            **detail,
                        },
                    }
                )
        return content, attachments

    def _grade(self, prompt: str, grader: str | None) -> str:
        """Send ``prompt`` to the grader assistant on a new thread; returns its answer text."""
        name = grader or self.project.grader
        assistant = self.project.assistant(name)
        conv = self._session(
            stream=False, deadline=time.monotonic() + 120, files_dir=self.run_dir / "grader"
        )
        outcome = conv.step(
            Turn(assistant, self.ids.get(name), [{"type": "text", "text": prompt}], [])
        )
        if outcome.status != "completed":
            message = (outcome.last_error or {}).get("message") or ""
            raise BackendError(
                f"grader {name}: run {outcome.run_id} ended {outcome.status}"
                f"{': ' + message if message else ''}"
            )
        return outcome.output


def _relative(path: str, base: Path) -> str:
    try:
        return Path(path).resolve().relative_to(base.resolve()).as_posix()
    except ValueError:
        return path


def _install_sigterm():
    """Treat SIGTERM like Ctrl-C so a terminated run stays resumable (main thread only)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum, frame):
        raise KeyboardInterrupt()

    return signal.signal(signal.SIGTERM, handler)


def summary_lines(summary: RunSummary) -> list[str]:
    """The final summary table for humans."""
    c, u = summary.counts, summary.usage
    lines = [
        "",
        f"Run {summary.run_id} — pipeline {summary.pipeline}: {summary.status}",
        f"  items     {c['total']:>6}   passed {c['passed']}  failed {c['failed']}  "
        f"errors {c['errors']}",
        f"  pass rate {summary.pass_rate:>6.1%}   required {summary.required_pass_rate:.0%}",
        f"  tokens    {u.get('total_tokens', 0):>6}   prompt {u.get('prompt_tokens', 0)}  "
        f"completion {u.get('completion_tokens', 0)}",
        f"  time      {summary.duration_s:>6.1f}s",
        f"  results   {summary.run_dir / 'results.jsonl'}",
    ]
    for report in summary.reports:
        lines.append(f"  report    {report}")
    if summary.status == "interrupted":
        lines.append(f"Interrupted: finish it with `orch run --resume {summary.run_id}`.")
    elif c["errors"]:
        lines.append(
            f"Errors are infrastructure failures; retry them with `orch retry {summary.run_id}`."
        )
    return lines


def dumps(data: Any) -> str:
    """JSON for machine output."""
    return json.dumps(data, indent=2, ensure_ascii=False, default=str)
