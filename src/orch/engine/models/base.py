"""The contract between the run executor and the models that answer runs.

A model receives a :class:`TurnContext` (the run, its assistant, the thread's messages, tool
outputs when continuing after ``requires_action``, a search function over the run's vector
stores and, when the run offers the code interpreter, ``run_code``, which really runs Python
in the engine's sandbox) and returns one :class:`Turn`: optional code-interpreter and
file-search steps, then either function calls (the run goes to ``requires_action``) or a reply
message. The executor turns that into run steps, messages, statuses and stream events.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from orch.engine.sandbox import CodeResult, OutputFile


@dataclass(frozen=True)
class SearchHit:
    """One file_search result: a chunk of a file and its score."""

    file_id: str
    filename: str
    score: float
    text: str


@dataclass
class FunctionCall:
    """A function call the model asks the client to perform."""

    name: str
    arguments: str


@dataclass
class CodeCall:
    """A code-interpreter tool call and its outputs.

    The outputs come from running ``input`` (:meth:`ran`) or, for a scripted rule that pins
    them, from the script. ``images`` are PNG bytes (``image`` is the first, for writers that
    show one; give either), ``files`` what the code created or changed in its directory,
    ``error`` whether it raised.
    """

    input: str
    logs: str | None = None
    image: bytes | None = None
    images: list[bytes] = field(default_factory=list)
    files: list[OutputFile] = field(default_factory=list)
    error: bool = False

    def __post_init__(self) -> None:
        if self.image is not None and not self.images:
            self.images = [self.image]
        elif self.images and self.image is None:
            self.image = self.images[0]

    @classmethod
    def ran(cls, code: str, result: CodeResult) -> CodeCall:
        """The call of ``code`` with what running it gave (empty logs: no logs output)."""
        return cls(
            code,
            logs=result.logs or None,
            images=list(result.images),
            files=list(result.files),
            error=result.error,
        )


#: The ranking a file_search uses unless the tool's ``ranking_options`` say otherwise.
DEFAULT_RANKING: dict[str, Any] = {"ranker": "default_2024_08_21", "score_threshold": 0.0}


@dataclass
class SearchCall:
    """A file_search tool call: the query, its hits and the ranking options it used."""

    query: str
    hits: list[SearchHit]
    ranking_options: dict[str, Any] = field(default_factory=lambda: dict(DEFAULT_RANKING))


@dataclass
class Citation:
    """A ``file_citation`` annotation over ``text[start:end]`` of the reply."""

    file_id: str
    start: int
    end: int
    marker: str


@dataclass
class Turn:
    """What a model answers for one turn of a run."""

    text: str | None = None
    tool_calls: list[FunctionCall] = field(default_factory=list)
    code: CodeCall | None = None
    search: SearchCall | None = None
    citations: list[Citation] = field(default_factory=list)
    delay_ms: int = 0
    usage: tuple[int, int] | None = None
    fail: tuple[str, str] | None = None
    # The model stopped at the output token limit: the reply ends ``incomplete``.
    truncated: bool = False
    # Model-private state kept on the run until the continuation after tool outputs.
    state: dict[str, Any] = field(default_factory=dict)


async def _ignore(_: Any) -> None:
    """A streaming hook that drops what it is given (a context no executor listens to)."""


@dataclass
class TurnContext:
    """Everything a model may read to answer a turn."""

    run: dict[str, Any]
    assistant: dict[str, Any]
    messages: list[dict[str, Any]]
    user_text: str
    tool_outputs: list[dict[str, Any]]
    state: dict[str, Any]
    # search(query, limit, ranking=None): ranking is a retrieval.Ranking (default ranking)
    search: Callable[..., Awaitable[list[SearchHit]]]
    load_file: Callable[[str], bytes | None]
    # Responses keep earlier function-call rounds as items: they are already in ``messages``
    # (``_round`` entries), so a model must not replay its own rounds from ``state``.
    rounds_in_messages: bool = False
    # Output tokens this turn may still produce (None: no limit); a model passes it upstream.
    max_output_tokens: int | None = None
    # Streaming hooks, set by the executor. ``emit_text`` sends a piece of the reply to the
    # client as soon as the model has it (a model that never calls it has its finished text
    # streamed in pieces); ``emit_call`` writes a hosted tool call (code, search) the model
    # ran itself, as a step, before the text that follows it. Both await nothing slow.
    emit_text: Callable[[str], Awaitable[None]] = field(default=_ignore, repr=False)
    emit_call: Callable[[CodeCall | SearchCall], Awaitable[None]] = field(
        default=_ignore, repr=False
    )
    # The code interpreter, set when the run offers it: ``await run_code(code)`` runs the code
    # in the run's sandbox session (the thread's, or the response's container: variables and
    # files persist between calls) with the run's files placed, and returns its
    # :class:`~orch.engine.sandbox.CodeResult`. ``code_dir`` is that directory as the code
    # sees it (``/mnt/data`` under bubblewrap) and ``code_files`` the paths of the run's files
    # there: what a model tells its upstream.
    run_code: Callable[[str], Awaitable[CodeResult]] | None = field(default=None, repr=False)
    code_dir: str | None = None
    code_files: list[str] = field(default_factory=list)

    @property
    def after_tool_outputs(self) -> bool:
        """Whether this turn answers submitted tool outputs."""
        return bool(self.tool_outputs)

    def function_names(self) -> list[str]:
        """Names of the function tools this run offers."""
        return [
            t["function"]["name"] for t in self.run.get("tools", []) if t.get("type") == "function"
        ]


class ModelError(Exception):
    """The model could not answer; the run fails with ``last_error`` = (code, message)."""

    def __init__(self, message: str, code: str = "server_error"):
        super().__init__(message)
        self.code = code
        self.message = message


class Model(Protocol):
    """Answers one turn of a run.

    A model may also have ``embed`` (texts → vectors, for hybrid file_search) and
    ``embeddings`` (a ``/v1/embeddings`` request's params → vectors, prompt tokens, model name);
    without ``embeddings`` the engine answers ``/v1/embeddings`` with local vectors.
    """

    name: str

    async def respond(self, ctx: TurnContext) -> Turn:
        """Produce the next turn. Raise :class:`ModelError` to fail the run."""
        ...

    async def aclose(self) -> None:
        """Release resources (HTTP clients)."""
        ...


def message_text(message: dict[str, Any]) -> str:
    """The plain text of a thread message (its text parts joined)."""
    parts = []
    for block in message.get("content", []):
        if block.get("type") == "text":
            parts.append(block["text"]["value"])
    return "\n".join(parts)


def estimate_tokens(text: str) -> int:
    """A cheap deterministic token estimate (~4 characters a token)."""
    return max(1, (len(text) + 3) // 4) if text else 0
