"""Reports: a run from the history rendered through Jinja templates.

A report is a template (``builtin:markdown|html|junit|json`` or a file in the project) rendered
over the *report context* (:mod:`orch.results.context`) made from a run's ``run.json`` and item
records — never from a model, so ``orch report RUN_ID`` re-renders any past run offline.

Templates render with ``StrictUndefined`` (a typo is an error naming ``file:line``, not an empty
string) and autoescape for HTML and XML templates (decided by the template's extension without
``.j2``, else by the output's). Output paths are Jinja templates over the same context, relative
to the project root; their folders are created. A report is written to a temporary file and
renamed into place (:func:`orch.results.files.write_atomic`): a reader, a crash or a full disk
never finds a truncated report.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import mimetypes
import re
from pathlib import Path
from typing import Any

import jinja2

from orch import templating
from orch.errors import ExitCode, OrchError
from orch.project.documents import display_path
from orch.project.loading import load_project
from orch.project.model import Pipeline, Project
from orch.results import markdown
from orch.results.context import REHEARSAL_NOTE, RunData, build_context, load_run
from orch.results.files import cannot_write, write_atomic

__all__ = [
    "REHEARSAL_NOTE",
    "RunData",
    "ReportError",
    "ReportWriteError",
    "build_context",
    "load_run",
    "render_declared",
    "report_task",
    "write_report",
]

BUILTINS = {
    "markdown": "markdown.md.j2",
    "html": "html.html.j2",
    "junit": "junit.xml.j2",
    "json": "json.json.j2",
}
_ESCAPED = {"html", "htm", "xml", "svg", "xhtml"}
_XML_INVALID = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff]")


class ReportError(OrchError):
    """A report template is missing, has a syntax error, or failed while rendering."""


class ReportWriteError(ReportError):
    """A rendered report could not be written (a folder that is a file, no space, no access)."""


def _duration(seconds: Any) -> str:
    """``0.25`` → ``250 ms``, ``2.4 s``, ``1 min 12 s``, ``2 h 05 min``; ``-`` when unknown."""
    if seconds is None:
        return "-"
    seconds = float(seconds)
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60} min {whole % 60} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def _timestamp(value: Any) -> str:
    """An ISO 8601 time (or epoch seconds) as ``2026-11-29 15:20 UTC``; ``-`` when unknown.

    A time without a zone is taken as UTC (orch records UTC); text that is not a time is shown
    as it is.
    """
    if value is None or value == "":
        return "-"
    try:
        if isinstance(value, int | float):
            moment = dt.datetime.fromtimestamp(value, dt.UTC)
        else:
            moment = dt.datetime.fromisoformat(str(value))
    except (ValueError, OverflowError, OSError):
        return str(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")


def _usd(value: Any) -> str:
    if value is None:
        return "-"
    if value and value < 0.01:
        return f"${value:.4f}"
    return f"${value:,.2f}"


def _percent(value: Any) -> str:
    return "-" if value is None else f"{float(value) * 100:.1f}%".replace(".0%", "%")


def _to_json(value: Any, indent: int | None = None) -> str:
    return json.dumps(value, indent=indent, ensure_ascii=False, default=str)


def _xml_text(value: Any) -> str:
    """Drop characters XML 1.0 cannot hold (control characters in model output)."""
    return _XML_INVALID.sub("", "" if value is None else str(value))


def _template_name(spec: str) -> str:
    if spec.startswith("builtin:"):
        kind = spec.split(":", 1)[1]
        if kind not in BUILTINS:
            raise ReportError(
                f"unknown built-in template {spec!r} "
                f"(built-ins: {', '.join('builtin:' + k for k in BUILTINS)})"
            )
        return f"builtin/{BUILTINS[kind]}"
    return Path(spec).as_posix()


def _extension(name: str) -> str:
    stem = re.sub(r"\.(j2|jinja2?|tmpl)$", "", name.lower())
    return Path(stem).suffix.lstrip(".")


def environment(
    root: Path, run_dir: Path, output: str | None = None, builtin: bool = False
) -> jinja2.Environment:
    """The Jinja environment for reports: built-ins under ``builtin/``, files under ``root``.

    User templates get Jinja's default whitespace handling; the built-ins are written for
    ``trim_blocks``/``lstrip_blocks``.
    """
    out_ext = _extension(output) if output else ""

    def autoescape(name: str | None) -> bool:
        ext = _extension(name or "")
        return (ext or out_ext) in _ESCAPED

    def data_uri(rel: str) -> str:
        """A run file (relative to the run folder) as a data: URI; empty when missing."""
        path = (run_dir / rel).resolve()
        if not path.is_relative_to(run_dir.resolve()) or not path.is_file():
            return ""
        mime = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
        return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode('ascii')}"

    env = templating.environment(
        loader=templating.report_loader(root),
        autoescape=autoescape,
        trim_blocks=builtin,
        lstrip_blocks=builtin,
    )
    filters = {
        "duration": _duration,
        "timestamp": _timestamp,
        "usd": _usd,
        "percent": _percent,
        "md": markdown.escape,
        "to_json": _to_json,
        "xml_text": _xml_text,
        "data_uri": data_uri,
    }
    # validation compiles report templates against exactly these names (orch.templating)
    env.filters.update((name, filters[name]) for name in templating.REPORT_FILTERS)
    return env


def _located(exc: Exception, fallback: str) -> str:
    """``file:line: message`` for an error raised inside a template."""
    if isinstance(exc, jinja2.TemplateSyntaxError):
        where = exc.filename or exc.name or fallback
        return f"{display_path(where)}:{exc.lineno}: {exc.message}"
    where, line = fallback, None
    tb = exc.__traceback__
    while tb is not None:  # jinja maps template frames back to the template's file and line
        filename = tb.tb_frame.f_code.co_filename
        if (
            filename.endswith((".j2", ".jinja", ".jinja2", ".tmpl"))
            or tb.tb_frame.f_globals.get("__jinja_template__") is not None
        ):
            where, line = filename, tb.tb_lineno
        tb = tb.tb_next
    message = (
        exc.message
        if isinstance(exc, jinja2.TemplateError) and exc.message
        else f"{type(exc).__name__}: {exc}"
    )
    shown = display_path(where)
    return f"{shown}:{line}: {message}" if line else f"{shown}: {message}"


def render_template(env: jinja2.Environment, spec: str, context: dict[str, Any]) -> str:
    """Render one template (``builtin:*`` or a project path) over ``context``."""
    name = _template_name(spec)
    try:
        template = env.get_template(name)
    except jinja2.TemplateNotFound as exc:
        raise ReportError(f"report template not found: {spec}") from exc
    except jinja2.TemplateSyntaxError as exc:
        raise ReportError(_located(exc, spec)) from exc
    try:
        return template.render(**context)
    except Exception as exc:  # noqa: BLE001 - any failure inside a template is the template's
        raise ReportError(_located(exc, template.filename or spec)) from exc


def render_output_path(env: jinja2.Environment, output: str, context: dict[str, Any]) -> str:
    """The output path of a report entry (a Jinja template over the context)."""
    try:
        return env.from_string(output).render(**context).strip()
    except jinja2.TemplateError as exc:
        raise ReportError(f"report output {output!r}: {exc}") from exc


def write_report(
    project: Project,
    data: RunData,
    template: str,
    output: str | None,
    context: dict[str, Any] | None = None,
) -> tuple[str, str | None]:
    """Render ``template`` for a run, writing it to ``output`` (relative to the root) if given.

    Returns the text and the path written (None when printing).
    """
    context = context if context is not None else build_context(project, data)
    env = environment(project.root, data.run_dir, output, template.startswith("builtin:"))
    text = render_template(env, template, context)
    if output is None:
        return text, None
    rel = render_output_path(env, output, context)
    path = Path(rel) if Path(rel).is_absolute() else project.root / rel
    try:
        write_atomic(path, text)
    except OSError as exc:
        raise ReportWriteError(cannot_write(path, exc)) from exc
    return text, display_path(str(path))


def render_declared(project: Project, pipeline: Pipeline, run_id: str) -> list[str]:
    """Render every ``report:`` entry of ``pipeline`` for a run; returns the paths written.

    All entries are attempted; problems are raised together afterwards (the run itself is
    already recorded, so `orch report RUN_ID` can retry once the template is fixed).
    """
    if not pipeline.report:
        return []
    data = load_run(project.root, run_id)
    context = build_context(project, data)
    written, problems = [], []
    for entry in pipeline.report:
        try:
            _, path = write_report(project, data, entry.template, entry.output, context)
            written.append(path)
        except ReportError as exc:
            problems.append(exc)
    if problems:
        run_id = data.record.run_id
        hint = f"(run {run_id} is recorded; fix the template, then `orch report {run_id}`)"
        if all(isinstance(p, ReportWriteError) for p in problems):
            hint = f"(run {run_id} is recorded; `orch report {run_id}` writes its reports again)"
        # one problem, one line: the hint goes on it
        raise ReportError("\n".join(str(p) for p in problems) + f" {hint}")
    return written


def report_task(
    path: Path | None, run_id: str, template: str | None, output: str | None, echo
) -> int:
    """``orch report``: re-render a past run's reports (or one template) from the history.

    Runs no project code: handler and ``python:`` modules are not imported.
    """
    project = load_project(path, import_handlers=False)
    data = load_run(project.root, run_id)
    if template is None:
        declared = project.pipeline(data.record.pipeline)
        if declared is not None and declared.report and output is None:
            for written in render_declared(project, declared, data.record.run_id):
                echo(f"wrote {written}")
            return ExitCode.OK
        template = "builtin:markdown"
    text, written = write_report(project, data, template, None if output in (None, "-") else output)
    if written:
        echo(f"wrote {written}")
    else:
        echo(text.rstrip("\n"))
    return ExitCode.OK
