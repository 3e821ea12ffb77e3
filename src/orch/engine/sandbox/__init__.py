"""The code interpreter's sandbox: Python that really runs, one stateful kernel per key.

:class:`Sandbox` (owned by the engine) is the whole interface::

    result = await sandbox.run(key, code, files=[InputFile(name, ident, read)], timeout=60)

``key`` is a thread id or a container id: calls with the same key share one IPython kernel
(variables survive between calls) and one directory, where ``files`` are placed before the
code runs and which is the code's working directory; the model is told its path,
:meth:`Sandbox.data_path` (``/mnt/data`` under bubblewrap). The :class:`CodeResult` carries
the logs (stdout, stderr, results, tracebacks), an error flag, PNG images of matplotlib
figures, and the files the code created or changed. Kernels start on first use, calls past
their timeout are interrupted, and a session expires after 20 idle minutes.

Confinement (:mod:`~orch.engine.sandbox.isolation`) is bubblewrap where it is installed and
works, else rlimits (and a network namespace when allowed); :meth:`Sandbox.describe` (and
:func:`summary`, for a mode) says which.

Modules: ``sessions`` (the sandbox), ``kernel`` (a process and its Jupyter client),
``isolation``, ``limits``, ``workspace`` (directories and files), ``results`` (data types),
``boot`` (the script a kernel process starts with; source only, never imported).
"""

from orch.engine.sandbox.isolation import summary
from orch.engine.sandbox.kernel import SandboxError
from orch.engine.sandbox.limits import Limits, parse_size
from orch.engine.sandbox.results import CodeResult, InputFile, OutputFile
from orch.engine.sandbox.sessions import Sandbox

__all__ = [
    "CodeResult",
    "InputFile",
    "Limits",
    "OutputFile",
    "Sandbox",
    "SandboxError",
    "parse_size",
    "summary",
]
