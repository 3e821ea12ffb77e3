"""What checks read from a reply: the JSON value in its text, and values a JSONPath selects.

Both answer :data:`MISSING` when there is nothing to read (JSON's ``null`` is ``None``, a value
like any other).
"""

from __future__ import annotations

import json
import re
from typing import Any

from orch.errors import OrchError

#: What :func:`parse_json` and :func:`jsonpath` return when there is nothing (JSON's null is None).
MISSING: Any = object()


class CheckError(OrchError):
    """An assertion could not be evaluated (bad template or JSONPath, grader gave no verdict)."""


def parse_json(text: str) -> Any:
    """The JSON value in ``text`` (also inside a ```json fence), or ``MISSING``."""
    candidate = text.strip()
    fence = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", candidate, flags=re.S)
    if fence:
        candidate = fence.group(1)
    try:
        return json.loads(candidate)
    except ValueError:
        return MISSING


_PATH_TOKEN = re.compile(
    r"\.(?P<name>\*|[A-Za-z_][\w-]*)|\[(?P<index>\*|-?\d+)\]|\['(?P<sq>[^']*)'\]"
    r"|\[\"(?P<dq>[^\"]*)\"\]"
)


def jsonpath(data: Any, path: str) -> Any:
    """Follow a JSONPath: ``$.a.b[0]``, ``$['k']``, ``[-1]``, wildcards ``[*]`` / ``.*``.

    Returns the value, a list of values when the path has a wildcard, or ``MISSING`` when
    nothing is there. Raises :class:`CheckError` for syntax it does not support.
    """
    if not path.startswith("$"):
        raise CheckError(f"JSONPath {path!r} must start with '$'")
    tokens, pos = [], 1
    while pos < len(path):
        match = _PATH_TOKEN.match(path, pos)
        if not match:
            raise CheckError(
                f"unsupported JSONPath {path!r} at {path[pos:]!r} (supported: "
                ".key, ['key'], [0], [-1], [*], .*)"
            )
        tokens.append(match)
        pos = match.end()
    nodes, wildcard = [data], False
    for token in tokens:
        name, index = token.group("name"), token.group("index")
        found: list[Any] = []
        for node in nodes:
            if "*" in (name, index):
                wildcard = True
                found.extend(
                    node
                    if isinstance(node, list)
                    else node.values()
                    if isinstance(node, dict)
                    else []
                )
            elif index is not None:
                i = int(index)
                if isinstance(node, list) and -len(node) <= i < len(node):
                    found.append(node[i])
            else:
                key = next(k for k in (name, token.group("sq"), token.group("dq")) if k is not None)
                if isinstance(node, dict) and key in node:
                    found.append(node[key])
        nodes = found
    if not nodes:
        return MISSING
    return nodes if wildcard else nodes[0]
