"""A run's prompts rendered without running it: what ``orch run --dry-run`` shows.

:class:`Preview` walks the items a run would take (``--items-limit``, ``--shard``, ``repeat``
and the variants select them as :class:`orch.run.runner.PipelineRunner` does) and renders
each step's prompt, instructions and attachments over the context a real step sees (``item``,
``orch``, ``vars``, ``steps``, ``repeat``, ``run``). Nothing is sent, synced, uploaded or
recorded: no target is opened and neither the history nor ``.orch/`` is touched.

Replies do not exist yet, so an earlier step's ``output`` (and ``text``, ``tool_calls``,
``files``) is a :class:`Pending` placeholder, ``<output of step ask>``. A template that still
cannot render because of one (arithmetic on a reply, say) is shown unrendered with a note; any
other render failure, and an attachment that is not there, is a :class:`~orch.errors.Problem`
at the pipeline's ``file:line``, as ``orch validate`` reports.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import jinja2
from jinja2 import meta

from orch.errors import Problem
from orch.project.documents import Document, display_path, format_path, load_document
from orch.project.model import Pipeline, Project, Target
from orch.run.progress import item_label
from orch.run.shards import Shard, selected_items
from orch.templating import STRICT, environment, render

#: the run id templates see in a preview (``run.id``, ``orch.run_id``): no run exists
PREVIEW_RUN_ID = "<run id>"
#: how many item keys a repeated problem names before it says how many more there are
KEYS_SHOWN = 5
#: characters of a ``data:`` image URL shown (the rest is the image itself)
DATA_URL_SHOWN = 48


class Pending(str):
    """An earlier step's reply in a template rendered before any reply exists.

    A string (``<output of step ask>``), so it prints, joins and goes through ``tojson``. In
    :data:`PREVIEW` a field or index of it is another placeholder naming the path
    (``<output of step ask → answer>``), and iterating it yields one element, so templates
    that reach into a JSON reply or loop over tool calls render too.
    """

    def __new__(cls, what: str, path: str = "") -> Pending:
        """The placeholder for ``what`` (``output of step ask``), at ``path`` within it."""
        self = super().__new__(cls, f"<{what} → {path}>" if path else f"<{what}>")
        self.pending = (what, path)
        return self

    def at(self, part: Any) -> Pending:
        """The placeholder for field (or index) ``part`` of this one."""
        what, path = self.pending
        if isinstance(part, int):
            return Pending(what, f"{path}[{part}]")
        return Pending(what, f"{path}.{part}" if path else str(part))

    def __iter__(self) -> Iterator[str]:  # type: ignore[override]
        yield self.at(0)


def preview_environment() -> jinja2.Environment:
    """A Jinja environment with orch's settings, in which a placeholder's field is one too.

    A field or index of a :class:`Pending` is another Pending (a str's own methods would
    otherwise answer ``output.title`` or ``output.count``).
    """
    env = environment()
    plain_getattr, plain_getitem = env.getattr, env.getitem

    def getattr_(obj: Any, attribute: str) -> Any:
        return obj.at(attribute) if isinstance(obj, Pending) else plain_getattr(obj, attribute)

    def getitem(obj: Any, argument: Any) -> Any:
        if isinstance(obj, Pending) and not isinstance(argument, slice):
            return obj.at(argument)
        return plain_getitem(obj, argument)

    env.getattr, env.getitem = getattr_, getitem  # type: ignore[method-assign]
    return env


#: what previews render with
PREVIEW = preview_environment()


def pending_steps(step_ids: list[str]) -> dict[str, dict[str, Pending]]:
    """The ``steps`` context after ``step_ids`` ran: placeholders for what they return."""
    return {
        sid: {
            "output": Pending(f"output of step {sid}"),
            "text": Pending(f"output of step {sid}"),
            "tool_calls": Pending(f"tool calls of step {sid}"),
            "files": Pending(f"files of step {sid}"),
        }
        for sid in step_ids
    }


@dataclass
class StepPreview:
    """One step of one item as it would be sent."""

    id: str
    assistant: str
    model: str
    prompt: str
    instructions: str | None = None
    additional_instructions: str | None = None
    #: ``{"kind": "file"|"image", "path", "resolved", "bytes", "tools"}`` or an image ``url``
    attachments: list[dict[str, Any]] = field(default_factory=list)
    #: what the preview could not show as sent (a template left unrendered, and why)
    notes: list[str] = field(default_factory=list)
    #: what a run would fail on (this step's part of :attr:`Preview.problems`)
    errors: list[str] = field(default_factory=list)


@dataclass
class ItemPreview:
    """One item run (an item's repeat) and its steps."""

    key: str
    index: int
    repeat: int
    #: the pipeline variant this item run is of (None: the pipeline has none)
    variant: str | None
    label: str
    item: Any
    steps: list[StepPreview]

    def to_json(self) -> dict[str, Any]:
        """Plain data for ``--json``."""
        return asdict(self)


class Preview:
    """The rendered steps of one pipeline's run; iterate :meth:`items`, then read problems."""

    def __init__(
        self,
        project: Project,
        pipeline: Pipeline,
        target: Target,
        vars: dict[str, Any],
        items_limit: int | None = None,
        shard: Shard | None = None,
        variants: tuple[str, ...] = (),
    ):
        self.project = project
        self.pipeline = pipeline
        self.target = target
        self.vars = {**dict(project.vars), **dict(pipeline.vars), **vars}
        self.items_limit = items_limit
        self.shard = shard
        self.variants = variants
        #: (file, line, field, message) → keys of the items that met it, in order
        self._found: dict[tuple[str, int, str, str], list[str]] = {}
        self._document: Document | None = None

    def items(self) -> Iterator[ItemPreview]:
        """Each selected item run with its steps rendered, one at a time (memory stays flat)."""
        self._refusals()
        root = self.project.root
        for key, item, index, rep, variant in selected_items(
            self.pipeline, root, self.items_limit, self.shard, self.variants
        ):
            own = {
                "index": index,
                "repeat": rep,
                "key": key,
                "run_id": PREVIEW_RUN_ID,
                "variant": variant,
            }
            steps = [self._step(i, item, own) for i in range(len(self.pipeline.steps))]
            yield ItemPreview(key, index, rep, variant, item_label(item, key), item, steps)

    def problems(self) -> list[Problem]:
        """What a run would fail on, one Problem each, naming the first items that met it."""
        found = []
        for (file, line, where, message), keys in self._found.items():
            if keys:
                named = ", ".join(f"#{k}" for k in keys[:KEYS_SHOWN])
                more = f" and {len(keys) - KEYS_SHOWN} more" if len(keys) > KEYS_SHOWN else ""
                message = f"{message} (item {named}{more})"
            found.append(Problem(file, line, where, message))
        return found

    def _refusals(self) -> None:
        """The assistants' fields the target's kind has no place for, as a run refuses them."""
        from orch.run.preparation import needed_assistants

        for name in needed_assistants(self.project, self.pipeline):
            assistant = self.project.assistant(name)
            for problem in assistant.refused_by(self.target.kind) if assistant else ():
                self._found.setdefault(
                    (problem.file, problem.line, problem.field, problem.message), []
                )

    def _step(self, i: int, item: dict, own: dict) -> StepPreview:
        step = self.pipeline.steps[i]
        context = {
            "item": item,
            "orch": own,
            "vars": self.vars,
            "steps": pending_steps([s.id for s in self.pipeline.steps[:i]]),
            "repeat": own["repeat"],
            "run": {"id": PREVIEW_RUN_ID},
        }
        chosen = self.pipeline.variant(own["variant"]) if own["variant"] else None
        name = step.assistant or (chosen.assistant if chosen else self.pipeline.assistant)
        assistant = self.project.assistant(name)
        model = self.target.model_for(assistant.model) if assistant else "?"
        shown = StepPreview(step.id, name, model, "")
        here = ("steps", i)
        shown.prompt = self._render(shown, (*here, "prompt"), step.prompt, context, own)
        for key in ("instructions", "additional_instructions"):
            text = getattr(step, key)
            if text:
                setattr(shown, key, self._render(shown, (*here, key), text, context, own))
        for j, attachment in enumerate(step.attachments):
            shown.attachments.append(
                self._attachment(shown, (*here, "attachments", j), attachment, context, own)
            )
        return shown

    def _render(self, shown: StepPreview, path: tuple, text: str, context: dict, own: dict) -> str:
        """``text`` rendered, or (when it cannot be) as written, with a note or a problem."""
        try:
            return render(text, context, PREVIEW)
        except Exception as exc:  # noqa: BLE001 - any render failure is the template's
            if "steps" in _names(text):
                shown.notes.append(
                    f"{format_path(path)} shown unrendered: it needs an earlier step's reply "
                    f"({_reason(exc)})"
                )
            else:
                self._problem(shown, path, f"template error: {_reason(exc)}", own, exc)
            return text

    def _attachment(
        self, shown: StepPreview, path: tuple, attachment, context: dict, own: dict
    ) -> dict[str, Any]:
        """An attachment as it would be sent: the file (resolved, with its size) or image URL."""
        if attachment.path:
            kind, written, field_ = "file", attachment.path, "path"
            extra: dict[str, Any] = {"tools": list(attachment.tools)}
        else:
            kind, written, field_ = "image", attachment.image, "image"
            extra = {"detail": attachment.detail} if attachment.detail else {}
        before = len(shown.notes) + len(shown.errors)
        rel = self._render(shown, (*path, field_), written, context, own)
        rendered = len(shown.notes) + len(shown.errors) == before
        if kind == "image" and rel.startswith(("http://", "https://", "data:")):
            shown_url = rel if len(rel) <= DATA_URL_SHOWN else rel[: DATA_URL_SHOWN - 1] + "…"
            return {"kind": kind, "url": shown_url, **extra}
        resolved = (self.project.root / rel).resolve()
        size = resolved.stat().st_size if rendered and resolved.is_file() else None
        if rendered and size is None:
            self._problem(shown, (*path, field_), f"attachment not found: {rel}", own)
        return {"kind": kind, "path": rel, "resolved": str(resolved), "bytes": size, **extra}

    def _problem(
        self,
        shown: StepPreview,
        path: tuple,
        message: str,
        own: dict,
        exc: BaseException | None = None,
    ) -> None:
        """Note a problem at ``path`` of the pipeline's file (the line the template failed at)."""
        file, line = self._where(path, _template_line(exc) if exc else None)
        self._found.setdefault((file, line, format_path(path), message), []).append(own["key"])
        shown.errors.append(message)

    def _where(self, path: tuple, template_line: int | None) -> tuple[str, int]:
        """The file and line of ``path`` (a ``!file`` include's own file), else the YAML's."""
        if self._document is None:
            self._document = load_document(_source(self.project, self.pipeline))
        doc = self._document
        included = doc.includes.get(path)
        if included is not None:
            return display_path(included), template_line or 1
        if not doc.lines:  # the file changed or went away since it was loaded
            return self.pipeline.source, 0
        return doc.display, doc.text_line(path) + (template_line or 1) - 1


def _source(project: Project, pipeline: Pipeline) -> Path:
    """The pipeline's YAML file (its ``source`` is shown relative to the working directory)."""
    shown = Path(pipeline.source)
    return shown if shown.exists() else project.root / shown


def _names(text: str) -> set[str]:
    """The top-level names a template reads (empty when it does not even parse)."""
    try:
        return set(meta.find_undeclared_variables(STRICT.parse(text)))
    except jinja2.TemplateSyntaxError:
        return set()


def _reason(exc: BaseException) -> str:
    message = getattr(exc, "message", None) or str(exc)
    return message if isinstance(exc, jinja2.TemplateError) else f"{type(exc).__name__}: {message}"


def _template_line(exc: BaseException) -> int | None:
    """The line of the template where rendering failed (Jinja puts it in the traceback)."""
    lineno = getattr(exc, "lineno", None)
    if isinstance(lineno, int):
        return lineno
    found = None
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            found = tb.tb_lineno
        tb = tb.tb_next
    return found


def item_lines(item: ItemPreview) -> list[str]:
    """An item run's preview for a terminal: each step's assistant, prompt and attachments."""
    lines = [item.label]
    for step in item.steps:
        lines.append(f"  step {step.id} → assistant {step.assistant} ({step.model})")
        for key in ("instructions", "additional_instructions"):
            text = getattr(step, key)
            if text is not None:
                lines.append(f"    {key.replace('_', ' ')}:")
                lines += [f"    ┆ {line}" for line in text.splitlines() or [""]]
        lines += [f"    │ {line}" for line in step.prompt.splitlines() or [""]]
        lines += [f"    attachment {attachment_text(a)}" for a in step.attachments]
        lines += [f"    note: {note}" for note in step.notes]
        lines += [f"    ERROR: {error}" for error in step.errors]
    return lines


def attachment_text(attachment: dict[str, Any]) -> str:
    """``data/a.pdf (12.3 kB, file_search) → /abs/data/a.pdf``, or an image's URL."""
    if "url" in attachment:
        return f"image {attachment['url']}"
    size = attachment["bytes"]
    about = [size_text(size) if size is not None else "MISSING"]
    about += attachment.get("tools") or []
    image = "image " if attachment["kind"] == "image" else ""
    return f"{image}{attachment['path']} ({', '.join(about)}) → {attachment['resolved']}"


def size_text(size: int) -> str:
    """``812 B``, ``12.3 kB``, ``4.1 MB`` (powers of 1000, as file managers show)."""
    if size < 1000:
        return f"{size} B"
    value, unit = size / 1000, "kB"
    for bigger in ("MB", "GB"):
        if value < 1000:
            break
        value, unit = value / 1000, bigger
    return f"{value:.1f} {unit}"
