"""What goes into a sandbox run and what comes out: input files, output files, the result.

:class:`Transcript` turns a Jupyter kernel's IOPub messages for one execution into a
:class:`CodeResult`: streams and text results become the logs (in the order they came), PNG
display data becomes images, an error becomes its traceback in the logs and sets the flag.
"""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

# The logs of one call are cut to this many characters (head and tail kept): a loop printing
# megabytes must not end up in a run step.
LOG_LIMIT = 20_000
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass(frozen=True)
class InputFile:
    """A file to place in a session's directory before code runs.

    ``name`` is its name there (a plain file name), ``ident`` a stable identity (an engine file
    id or container file id: a file placed once under a name is not rewritten while the
    identity stays the same), and ``read`` returns its bytes (None when it no longer exists).
    """

    name: str
    ident: str
    read: Callable[[], bytes | None]


@dataclass(frozen=True)
class OutputFile:
    """A file the code created or changed in the session's directory.

    ``name`` is its path relative to the directory (``/``-separated), ``path`` the path the
    model is told (``/mnt/data/<name>`` under bubblewrap), ``content`` its bytes.
    """

    name: str
    path: str
    content: bytes


@dataclass
class CodeResult:
    """The outcome of running one piece of code.

    ``logs`` holds stdout, stderr, the text of results and any traceback, in order; ``error``
    is set when the code raised (or timed out, or the kernel died); ``timed_out`` when it was
    stopped at the call's timeout; ``images`` are PNG bytes of the figures it displayed
    (matplotlib figures are displayed at the end of each call); ``files`` are files it created
    or changed in the directory.
    """

    logs: str = ""
    error: bool = False
    timed_out: bool = False
    images: list[bytes] = field(default_factory=list)
    files: list[OutputFile] = field(default_factory=list)


def clip(text: str, limit: int = LOG_LIMIT) -> str:
    """``text`` cut to about ``limit`` characters, keeping its head and its tail."""
    if len(text) <= limit:
        return text
    half = limit // 2
    cut = len(text) - 2 * half
    return f"{text[:half]}\n... [{cut} characters cut] ...\n{text[-half:]}"


class Transcript:
    """Collects one execution's IOPub messages (see the module docstring)."""

    def __init__(self) -> None:
        self.parts: list[str] = []
        self.images: list[bytes] = []
        self.error = False

    def add(self, msg_type: str, content: dict[str, Any]) -> None:
        """Take one IOPub message (its type and content) of the execution."""
        if msg_type == "stream":
            self.parts.append(content.get("text", ""))
        elif msg_type in ("execute_result", "display_data", "update_display_data"):
            self._data(content.get("data") or {})
        elif msg_type == "error":
            self.error = True
            lines = content.get("traceback") or [f"{content.get('ename')}: {content.get('evalue')}"]
            self.note(_ANSI.sub("", "\n".join(lines)))

    def _data(self, data: dict[str, Any]) -> None:
        png = data.get("image/png")
        if isinstance(png, str):
            try:
                self.images.append(base64.b64decode(png))
                return  # its text/plain is only "<Figure size 640x480 with 1 Axes>"
            except (binascii.Error, ValueError):
                pass
        text = data.get("text/plain")
        if isinstance(text, str):
            self.note(_ANSI.sub("", text))

    def note(self, text: str) -> None:
        """Add a line of text to the logs (a newline is added when missing)."""
        self.parts.append(text if text.endswith("\n") else text + "\n")

    def result(self) -> CodeResult:
        """The result so far (logs clipped, without the trailing newline)."""
        logs = clip("".join(self.parts)).removesuffix("\n")
        return CodeResult(logs=logs, error=self.error, images=list(self.images))
