"""Resource limits of a sandboxed kernel process, applied as rlimits by the process itself.

The limits are set by :mod:`orch.engine.sandbox.boot` inside the new process, before it drops
to the kernel's user and imports anything else, so they hold for the kernel and everything it
starts. Memory is ``RLIMIT_DATA`` (private writable memory: heap and anonymous mappings), not
``RLIMIT_AS``: a Jupyter kernel reserves several hundred MB of address space it never uses
(per-thread malloc arenas), which an address-space limit would count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_UNITS = {"": 1, "k": 1 << 10, "m": 1 << 20, "g": 1 << 30}


def parse_size(text: str) -> int:
    """Bytes in a size like ``"1g"``, ``"512m"`` or ``"2048"`` (the containers' memory_limit)."""
    match = re.fullmatch(r"\s*(\d+)\s*([kmg]?)b?\s*", text.lower())
    if match is None:
        raise ValueError(f"not a size: {text!r} (expected e.g. 1g, 512m)")
    return int(match[1]) * _UNITS[match[2]]


def format_size(size: int) -> str:
    """``1 GiB``, ``256 MiB``, ``12 KiB`` or bytes."""
    for unit, name in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if size >= unit and size % unit == 0:
            return f"{size // unit} {name}"
    return f"{size} bytes"


@dataclass(frozen=True)
class Limits:
    """What one kernel process may use.

    ``memory`` caps private writable memory (an allocation past it raises ``MemoryError``);
    ``cpu_seconds`` the CPU time of the kernel over its whole life (past it the kernel is
    killed and the next call starts a fresh one); ``processes`` the processes and threads of
    the kernel's user (under bubblewrap as root, each kernel has a user of its own);
    ``file_size`` the size of any file written; ``open_files`` the descriptors open at once;
    ``tmp_size`` the size of the private ``/tmp`` under bubblewrap.
    """

    memory: int = 1 << 30
    cpu_seconds: int = 600
    processes: int = 256
    file_size: int = 1 << 30
    open_files: int = 1024
    tmp_size: int = 256 << 20

    def rlimits(self, processes: int | None = None) -> dict[str, int]:
        """``{resource.RLIMIT_* name: value}`` for the boot script (``processes`` overrides)."""
        return {
            "RLIMIT_DATA": self.memory,
            "RLIMIT_CPU": self.cpu_seconds,
            "RLIMIT_NPROC": self.processes if processes is None else processes,
            "RLIMIT_FSIZE": self.file_size,
            "RLIMIT_NOFILE": self.open_files,
            "RLIMIT_CORE": 0,
        }

    def describe(self) -> str:
        """One line for start-up output."""
        return (
            f"{format_size(self.memory)} memory, {self.cpu_seconds} s CPU, "
            f"{self.processes} processes, {format_size(self.file_size)} per file"
        )
