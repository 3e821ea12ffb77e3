"""The first code a sandboxed kernel process runs (``python -c <this file> <spec>``).

It runs inside the sandbox (under bubblewrap, or as a plain child process) and is not imported
by the engine: :mod:`orch.engine.sandbox.kernel` passes its source. Given the JSON ``spec``,
it optionally leaves the host's network (a new network namespace, when bubblewrap is not
there to do it), applies the rlimits, drops to the kernel's own user (under bubblewrap as
root), and then either exits 0 (``"probe": true``: the isolation works) or becomes an
IPython kernel on the connection file.
"""

import ctypes
import json
import os
import resource
import sys

CLONE_NEWUSER = 0x10000000
CLONE_NEWNET = 0x40000000


def leave_network() -> None:
    """Move into a new network namespace (as root directly, else inside a user namespace)."""
    uid, gid = os.getuid(), os.getgid()
    libc = ctypes.CDLL(None, use_errno=True)
    flags = CLONE_NEWNET if uid == 0 else CLONE_NEWUSER | CLONE_NEWNET
    if libc.unshare(flags) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"unshare: {os.strerror(errno)}")
    if uid != 0:
        # Map the user to itself so files keep their owner.
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1")):
            with open(f"/proc/self/{name}", "w") as fh:
                fh.write(text)
        with open("/proc/self/gid_map", "w") as fh:
            fh.write(f"{gid} {gid} 1")


def main() -> None:
    """Apply the spec, then probe or run the kernel."""
    spec = json.loads(sys.argv[1])
    if spec.get("leave_network"):
        leave_network()
    for name, value in spec["rlimits"].items():
        resource.setrlimit(getattr(resource, name), (value, value))
    if os.getuid() != spec["uid"]:
        os.setgroups([])
        os.setgid(spec["gid"])
        os.setuid(spec["uid"])
    if spec.get("probe"):
        return
    sys.argv = ["orch-sandbox-kernel", "-f", spec["connection"], *spec["kernel_args"]]
    from ipykernel import kernelapp

    kernelapp.launch_new_instance()


if __name__ == "__main__":
    main()
