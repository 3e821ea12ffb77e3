"""Markdown text: values made safe to stand inside a Markdown table cell."""

from __future__ import annotations

from typing import Any


def escape(value: Any, limit: int = 0, *, one_line: bool = False) -> str:
    """``value`` as text that keeps a Markdown table cell whole (``None`` is empty).

    Text longer than ``limit`` (when given) is cut to ``limit`` characters ending in "…". ``|``
    is escaped and ``<`` written as ``&lt;`` so a reply cannot add columns or HTML.

    By default (the ``md`` report filter) backslashes are escaped too, carriage returns
    dropped and line breaks written as ``<br>``. ``one_line`` (``orch compare``) joins lines
    with a space and leaves backslashes and carriage returns as they are.
    """
    text = "" if value is None else str(value)
    if limit and len(text) > limit:
        text = text[: limit - 1] + "…"
    if one_line:
        return text.replace("|", "\\|").replace("\n", " ").replace("<", "&lt;")
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", "")
    # the <br> written for line breaks must survive the escaping of "<" that follows
    return text.replace("\n", "<br>").replace("<", "&lt;").replace("&lt;br>", "<br>")
