"""Terraform-style sync: a pure ``plan(desired, remote)`` and a separate ``apply``.

Identity lives on the server, never in a local state file (:mod:`orch.sync.naming`). A re-sync
with nothing changed therefore costs three list requests and no writes. An object whose fields
no longer match what its own ``orch_hash`` says was edited behind orch's back: that is *drift*,
shown as such and repaired. Objects without this project's tags are listed as unmanaged and
never touched.

Rooms: :mod:`~orch.sync.naming` (identity), :mod:`~orch.sync.planning` (pure),
:mod:`~orch.sync.applying` (writes through a backend), :mod:`~orch.sync.rendering` (for humans),
:mod:`~orch.sync.importing` (remote assistants → YAML).
"""

from orch.sync.applying import apply, wire_spec
from orch.sync.naming import (
    files_hash,
    kept_files,
    kept_stores,
    managed_filename,
    parse_managed_filename,
    store_name,
)
from orch.sync.planning import Change, FieldDiff, Plan, assistant_resources, desired_fields, plan
from orch.sync.rendering import SYMBOLS, render

__all__ = [
    "SYMBOLS",
    "Change",
    "FieldDiff",
    "Plan",
    "apply",
    "assistant_resources",
    "desired_fields",
    "files_hash",
    "kept_files",
    "kept_stores",
    "managed_filename",
    "parse_managed_filename",
    "plan",
    "render",
    "store_name",
    "wire_spec",
]
