"""The end of an ``orch run`` process: the interpreter's teardown skipped when nothing needs it.

After a run, tearing the interpreter down (freeing some 165,000 objects, most of them the
OpenAI SDK's pydantic types, module by module) takes 0.2–0.6 s: a tenth of a short run, for
nothing anyone reads. So when the process is started as ``orch`` (or ``python -m orch``) and the
command was ``run`` or ``retry``, :func:`end_process` does what the interpreter's finalization
does that matters, then ends the process with ``os._exit``:

1. other threads: the interpreter would wait for every non-daemon one; they are given up to
   half a second to end (a worker pool shut down without waiting is ending on its own), then
   there must be none left, daemon or not; if any is alive — a handler stuck past its timeout —
   the interpreter ends normally, as it would have;
2. ``atexit`` handlers run, as they would have (logging's flush, ``weakref.finalize``);
3. stdout and stderr are flushed; if either fails (a reader that went away), the interpreter
   ends normally and reports it the way it always does.

What is *not* done is freeing objects and running finalizers of objects still referenced. That
is safe for these two commands because their own code closes everything it writes before they
return: the history database (:meth:`~orch.results.history.History.close`), results.jsonl and
reports (closed ``with`` blocks, fsync'd), the thread journal (a raw descriptor, closed), run.json
(written atomically). ``tests/cli/test_shutdown.py`` checks that no writable file or database
connection is left open when such a command returns. On an error path a database connection may
stay open; that loses nothing, as SQLite survives a process that ends without closing it (what
was committed stays, and orch's history commits every write). Other commands end the usual way:
their teardown is short, and nobody audited them.

Click's test runner calls ``main.main(...)``, never ``main()``: in-process tests end normally.
"""

from __future__ import annotations

import atexit
import os
import sys
import threading
import time

#: the commands whose code closes every file and database it writes before returning
COMMANDS = frozenset({"run", "retry"})

#: how long threads that are ending anyway (a pool shut down without waiting) are waited for
THREADS_GRACE_S = 0.5


def end_process(code: object) -> None:
    """End the process now with exit ``code`` if that is safe (see the module); else return."""
    if code is None:
        code = 0
    if not isinstance(code, int):
        return  # a message as the exit "code": the interpreter prints it
    deadline = time.monotonic() + THREADS_GRACE_S
    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join(max(0.0, deadline - time.monotonic()))
    if threading.active_count() != 1:
        return  # threads still at work: the interpreter ends them (or waits) as usual
    run_exit_functions = getattr(atexit, "_run_exitfuncs", None)  # CPython's own, since 2.x
    if run_exit_functions is None:
        return
    run_exit_functions()
    try:
        sys.stdout.flush()
        sys.stderr.flush()
    except (OSError, ValueError):  # a closed or broken stream: the usual ending reports it
        return
    os._exit(code)
