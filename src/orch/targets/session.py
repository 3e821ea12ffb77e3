"""One pipeline item's conversation on a target, whatever API carries it.

A :class:`Session` runs an item's steps in order on one thread (or conversation, or history).
The base class owns what every kind shares: re-running a step whose run failed transiently
(``server_error``, ``rate_limit_exceeded``), the item's deadline, Ctrl-C, and downloads into
the run's folder. A kind supplies one attempt (:meth:`Session.attempt`): send the step, follow
the model through function calls to a terminal status, and describe it as a
:class:`StepOutcome`.

Every create a kind sends carries a nonce (:meth:`Session.nonce`) derived from the thread, the
step and the attempt, so a create whose answer was lost (or whose process was killed) can be
looked up instead of repeated; the :class:`ThreadLedger` in the settings is where a session
notes its thread before sending, so a resumed item can find that thread again.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orch.project.model import Assistant

#: statuses after which a run (or response) changes no more
TERMINAL = frozenset({"completed", "failed", "cancelled", "expired", "incomplete"})
#: error codes of a failed run that a new attempt may fix
RETRYABLE_RUN_ERRORS = frozenset({"server_error", "rate_limit_exceeded"})
#: ``incomplete_details.reason`` values that mean the reply reached its token cap
REPLY_CAPS = frozenset({"max_completion_tokens", "max_output_tokens", "max_tokens"})
#: Function-call rounds one step may take before orch stops it: a model that calls again
#: after every result (small local models do) ends the step at once, not at its timeout.
MAX_TOOL_ROUNDS = 20


class ItemTimeout(Exception):
    """The item's time limit passed; the run in flight has been cancelled."""


class Stopped(Exception):
    """The whole pipeline run is stopping (Ctrl-C)."""


@dataclass
class StepOutcome:
    """What one step produced."""

    run_id: str | None = None
    status: str = ""
    output: str = ""
    messages: list[dict] = field(default_factory=list)
    tool_calls: list[dict] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    citations: list[dict] = field(default_factory=list)
    usage: dict[str, int] = field(default_factory=dict)
    last_error: dict | None = None
    attempts: int = 1
    #: every run the step made or adopted, oldest first (the last is ``run_id``)
    run_ids: list[str] = field(default_factory=list)
    #: the run was adopted from a stopped process that had cancelled it: it answered nothing,
    #: and the step goes on with a new run (its message is on the thread already)
    interrupted: bool = False

    @property
    def cut_at_cap(self) -> bool:
        """Whether the run ended incomplete only because the reply reached its token cap.

        The reply is then the model's answer, cut where the user's ``max_tokens`` said: it is
        judged as it is (a failure if it does not hold), not an error of the machinery.
        """
        reason = (self.last_error or {}).get("reason")
        return self.status == "incomplete" and reason in REPLY_CAPS

    @property
    def retryable(self) -> bool:
        """Whether the run failed in a way a new attempt may fix."""
        code = (self.last_error or {}).get("code")
        return self.status == "failed" and code in RETRYABLE_RUN_ERRORS

    def stop_tool_loop(self, rounds: int) -> None:
        """Mark the step ended by orch after ``rounds`` function-call rounds with no answer."""
        self.status = "incomplete"
        self.last_error = {
            "code": "max_tool_rounds",
            "message": f"the model asked for function calls {rounds} rounds in a row without "
            "answering; orch stopped the step",
        }

    def add_usage(self, **tokens: int | None) -> None:
        """Add token counts (``prompt_tokens=…``) to what the step has used so far."""
        for key, value in tokens.items():
            self.usage[key] = self.usage.get(key, 0) + (value or 0)

    def add_response_usage(self, usage: Any) -> None:
        """Add a Responses-style ``usage`` as prompt, completion and total tokens.

        ``usage`` has ``input_tokens``, ``output_tokens`` and ``total_tokens``; a falsy one
        (None: the server sent no usage) adds nothing.
        """
        if usage:
            self.add_usage(
                prompt_tokens=usage.input_tokens,
                completion_tokens=usage.output_tokens,
                total_tokens=usage.total_tokens,
            )


@dataclass
class Turn:
    """What to send for one step."""

    assistant: Assistant
    assistant_id: str | None
    content: list[dict]
    attachments: list[dict]
    instructions: str | None = None
    additional_instructions: str | None = None
    #: cap on the reply's tokens (the step's, else the assistant's); None: the server's default
    max_tokens: int | None = None
    #: a grading call's model and sampling instead of the assistant's (None: the assistant's);
    #: targets that keep assistants send them with the run, the others with each request
    model: str | None = None
    temperature: float | None = None
    top_p: float | None = None


class ThreadLedger:
    """Where an item's session notes its thread before it sends anything that costs a model run.

    The runner's ledger (:mod:`orch.run.journal`) keeps it in the run's folder, so when a run is
    killed with the item in flight, the resumed item gets the thread back from
    :meth:`adopted` and looks its steps' runs up by their nonces instead of running them again.
    This default remembers nothing (graders, tests): every session starts a fresh thread.
    """

    def adopted(self) -> str | None:
        """The thread a killed process left for this item, if any."""
        return None

    def record(self, thread_id: str) -> None:
        """Note ``thread_id`` as this item's thread; durable once this returns."""


@dataclass
class SessionSettings:
    """How one item's session behaves; the runner builds one per item."""

    stream: bool
    deadline: float
    handler_pool: ThreadPoolExecutor
    files_dir: Path
    root: Path
    stop: threading.Event
    retries: int = 2
    attempts: int = 4
    max_tool_rounds: int = MAX_TOOL_ROUNDS
    #: names what the session creates on the server for this run (conversations, stores)
    label: str = "orch"
    #: per assistant name: the vector stores / files its hosted tools use (local assistants)
    resources: dict[str, dict] = field(default_factory=dict)
    #: where the session notes its thread before sending (see :class:`ThreadLedger`)
    ledger: ThreadLedger = field(default_factory=ThreadLedger)
    #: threads made ahead for the run's items (:mod:`orch.targets.reserve`), if any
    reserve: Any = None


class Session:
    """One item's thread on some API: steps run in order on it; one per item, never shared.

    Subclasses implement :meth:`attempt` (and :meth:`cancel` where the API can). ``thread_id``
    and ``run_id`` name what a failure record points at.
    """

    def __init__(self, settings: SessionSettings):
        self.settings = settings
        self.deadline = settings.deadline
        self.thread_id: str | None = None
        self.run_id: str | None = None
        self.step_no = -1  # which step of the item is in flight (0-based)
        self.attempt_no = 0  # which attempt of that step

    def step(self, turn: Turn) -> StepOutcome:
        """Run one step to a terminal state, re-running a run that failed transiently.

        Up to ``settings.retries`` new runs follow a retryable failure; an adopted run that a
        stopped process cancelled is followed by a new run without using that budget.
        """
        self.step_no += 1
        self.attempt_no, retried, runs = 0, 0, []
        while True:
            outcome = self.attempt(turn, first=self.attempt_no == 0)
            runs += [outcome.run_id] if outcome.run_id else []
            self.attempt_no += 1
            if outcome.interrupted:
                continue
            if outcome.retryable and retried < self.settings.retries:
                self.pause(min(2.0, 0.25 * 2**retried))
                retried += 1
                continue
            break
        outcome.attempts, outcome.run_ids = self.attempt_no, runs
        self.finish(outcome)
        return outcome

    def attempt(self, turn: Turn, first: bool) -> StepOutcome:
        """Send the step (its message only when ``first``) and follow it to a terminal status."""
        raise NotImplementedError

    def finish(self, outcome: StepOutcome) -> None:
        """Complete the final attempt's outcome (messages, files); by default nothing to add."""

    def cancel(self) -> None:
        """Stop the work in flight, if the API allows (best effort)."""

    def close(self) -> None:
        """The item is over: release what the session holds on the server; never raises.

        By default there is nothing to release; agent sessions are deleted here.
        """

    # -- shared mechanics ----------------------------------------------------------------------

    def nonce(self) -> str:
        """The nonce for the create of the current step and attempt.

        On a thread it is derived from the thread, step and attempt: the same create always
        carries the same nonce, even in a resumed process. Without a thread it is random.
        """
        if self.thread_id is None:
            return uuid.uuid4().hex
        seed = f"{self.thread_id}/{self.step_no}/{self.attempt_no}"
        return hashlib.sha256(seed.encode()).hexdigest()[:32]

    def remaining(self) -> float:
        """Seconds left before the item's deadline; ItemTimeout when none."""
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise ItemTimeout()
        return max(left, 0.05)

    def check(self) -> None:
        """Raise Stopped once the pipeline run is stopping, ItemTimeout past the deadline."""
        if self.settings.stop.is_set():
            raise Stopped()
        if time.monotonic() > self.deadline:
            raise ItemTimeout()

    def pause(self, seconds: float) -> None:
        """Sleep, but never past the item's deadline (a long retry-after must not outlast it)."""
        time.sleep(max(0.0, min(seconds, self.remaining())))

    def download(self, name: str, fetch: Callable[[], bytes]) -> str:
        """Save ``fetch()`` as ``name`` in the item's folder once; returns the path."""
        folder = self.settings.files_dir
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / name
        if not target.exists():
            target.write_bytes(fetch())
        return str(target)


def plain(value: Any) -> Any:
    """An SDK model as plain JSON data (unset fields dropped)."""
    return value.model_dump(mode="json", exclude_none=True)
