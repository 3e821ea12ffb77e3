"""What assertions ask of the run: a grader assistant's answers and the target's embeddings.

:class:`Grading` is the ``grader`` an item's assertions get (:func:`orch.evals.assertions.judge`):
called with a prompt it answers ``llm_rubric`` through the runner's grader assistant, and it
provides :class:`orch.evals.graders.Services` to OpenAI's grader objects: ``ask`` (score_model,
label_model) on a new thread of orch.yml's grader assistant, ``embed`` (text_similarity cosine)
through the target's client.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

import openai

from orch.errors import BackendError
from orch.targets.session import Turn

#: how long one grading answer may take
GRADE_SECONDS = 120


class Grading:
    """The run's grader for one :class:`~orch.run.execution.ItemRunner` (thread-safe)."""

    def __init__(self, runner: Any):
        self.runner = runner

    def __call__(self, prompt: str, grader: str | None) -> str:
        """``llm_rubric``: the answer of ``grader`` (default: orch.yml's) to ``prompt``."""
        ctx = self.runner.ctx
        name = grader or ctx.project.grader
        assistant = ctx.conn.assistant(ctx.project.assistant(name))
        content = [{"type": "text", "text": prompt}]
        turn = Turn(assistant, ctx.ids.get(name), content, [], max_tokens=assistant.max_tokens)
        return self._answer(name, turn)

    def ask(
        self, system: str | None, content: list[dict], model: str | None, sampling: dict | None
    ) -> str:
        """One message to orch.yml's grader assistant on a new thread; its answer text.

        ``system`` replaces the assistant's instructions and ``max_completions_tokens`` caps
        the answer. ``model`` (renamed by the target's ``models:``), ``temperature`` and
        ``top_p`` replace the assistant's: sent with the run (``assistants``, ``engine``) or
        with each request (``responses``).
        """
        ctx = self.runner.ctx
        name = ctx.project.grader
        assistant = ctx.conn.assistant(ctx.project.assistant(name))
        sampling = sampling or {}
        changes: dict[str, Any] = {
            key: sampling[key] for key in ("temperature", "top_p") if sampling.get(key) is not None
        }
        if model:
            changes["model"] = ctx.conn.target.model_for(model)
        assistant = dataclasses.replace(assistant, **changes)
        turn = Turn(
            assistant,
            ctx.ids.get(name),
            content,
            [],
            instructions=system,
            max_tokens=sampling.get("max_completions_tokens") or assistant.max_tokens,
            model=changes.get("model"),
            temperature=changes.get("temperature"),
            top_p=changes.get("top_p"),
        )
        return self._answer(name, turn)

    def _answer(self, name: str, turn: Turn) -> str:
        """``turn`` on a new thread of grader ``name``; its answer, or BackendError saying why."""
        deadline = time.monotonic() + GRADE_SECONDS
        conv = self.runner.session(False, deadline, Path(self.runner.ctx.run_dir) / "grader")
        try:
            outcome = conv.step(turn)
        finally:
            conv.close()
        if outcome.status != "completed":
            message = (outcome.last_error or {}).get("message") or ""
            raise BackendError(
                f"grader {name}: run {outcome.run_id} ended {outcome.status}"
                f"{': ' + message if message else ''}"
            )
        return outcome.output

    def embed(self, texts: list[str], model: str) -> list[list[float]]:
        """Embeddings of ``texts`` from the target's ``/v1/embeddings``."""
        conn = self.runner.ctx.conn
        try:
            res = conn.client.embeddings.create(
                model=conn.target.model_for(model), input=texts, encoding_format="float"
            )
        except openai.APIError as exc:
            raise BackendError(f"embeddings from {conn.label}: {exc}") from exc
        return [d.embedding for d in sorted(res.data, key=lambda d: d.index)]
