"""The hosted tools the openai-chat model offers upstream, run in the engine.

``file_search`` (a function with a ``query``) searches the run's vector stores with the
engine's retrieval; ``python`` (a function with ``code``) runs code in the engine's sandbox
(``TurnContext.run_code``), offered only when the run has ``code_interpreter`` and the engine
has a sandbox; its description tells where the code runs and where the run's files are.
Each call is handed to the executor (``emit_call``), which writes it as a run step or an
output item, and its result goes back to the upstream as the tool message.

Search results are shown to the upstream with markers, 【n:i†file】 for result ``i`` of the
turn's ``n``-th search; markers the reply carries become ``file_citation`` annotations.
"""

from __future__ import annotations

import json
import re
from typing import Any

from orch.engine.models.base import Citation, CodeCall, SearchCall, SearchHit, TurnContext
from orch.engine.models.openai_chat.stream import UpstreamCall
from orch.engine.retrieval import search_settings

FILE_SEARCH = "file_search"
PYTHON = "python"
#: Characters of search results (all results together) and of code logs given upstream:
#: small local models have small contexts; the run step keeps everything.
RESULT_CHARS = 8000
LOG_CHARS = 4000
_MARKER = re.compile(r"【(\d+):(\d+)†([^】]*)】")

FILE_SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": FILE_SEARCH,
        "description": "Search the files the user provided. Returns the most relevant "
        "passages, each with a marker like 【0:1†name.pdf】; cite a passage you use by "
        "writing its marker.",
        "parameters": {
            "type": "object",
            "properties": {"query": {"type": "string", "description": "What to look for."}},
            "required": ["query"],
        },
    },
}


def python_tool(code_dir: str | None, files: list[str]) -> dict[str, Any]:
    """The ``python`` function, telling where the code's directory and the run's files are."""
    where = f" Its working directory is {code_dir}." if code_dir else ""
    if files:
        where += " The user's files: " + ", ".join(files) + "."
    return {
        "type": "function",
        "function": {
            "name": PYTHON,
            "description": "Run Python code in a stateful sandbox; returns what it printed. "
            "Figures it shows are given to the user." + where,
            "parameters": {
                "type": "object",
                "properties": {"code": {"type": "string", "description": "The code to run."}},
                "required": ["code"],
            },
        },
    }


def _argument(arguments: str, key: str, raw: bool = False) -> str | None:
    """``arguments[key]`` when they are a JSON object; with ``raw``, text that is not JSON."""
    try:
        parsed = json.loads(arguments or "{}")
    except ValueError:
        return (arguments.strip() or None) if raw else None
    if isinstance(parsed, dict):
        value = parsed.get(key)
        if isinstance(value, list):  # "queries": [...] and the like
            value = next((v for v in value if isinstance(v, str)), None)
        return value if isinstance(value, str) and value.strip() else None
    return None


class HostedTools:
    """The hosted tools of one turn: their definitions, running them, the citations they allow."""

    def __init__(self, ctx: TurnContext):
        self.ctx = ctx
        kinds = {t.get("type") for t in ctx.run.get("tools", [])}
        taken = set(ctx.function_names())  # a client function of the same name wins
        self.by_type: dict[str, str] = {}
        if "file_search" in kinds and FILE_SEARCH not in taken:
            self.by_type["file_search"] = FILE_SEARCH
        if "code_interpreter" in kinds and PYTHON not in taken and ctx.run_code is not None:
            self.by_type["code_interpreter"] = PYTHON
        self.limit, self.ranking = search_settings(ctx.run.get("tools", []))
        self.searches: list[SearchCall] = []

    def definitions(self) -> list[dict[str, Any]]:
        """The chat tools to offer for them."""
        out = []
        if FILE_SEARCH in self.by_type.values():
            out.append(FILE_SEARCH_TOOL)
        if PYTHON in self.by_type.values():
            out.append(python_tool(self.ctx.code_dir, self.ctx.code_files))
        return out

    def handles(self, name: str) -> bool:
        """Whether a call of ``name`` is one of these tools."""
        return name in self.by_type.values()

    async def run(self, call: UpstreamCall) -> str:
        """Run one call, have it written as a step, and return what the upstream reads."""
        if call.name == FILE_SEARCH:
            return await self._search(call)
        return await self._python(call)

    async def _search(self, call: UpstreamCall) -> str:
        query = _argument(call.arguments, "query", raw=True) or self.ctx.user_text
        hits = await self.ctx.search(query, self.limit, self.ranking)
        n = len(self.searches)
        search = SearchCall(query, hits, self.ranking.recorded())
        self.searches.append(search)
        await self.ctx.emit_call(search)
        if not hits:
            return f"No results for {query!r}."
        return (
            f"Results for {query!r}; cite a result you use by writing its marker.\n\n"
            + _passages(n, hits)
        )

    async def _python(self, call: UpstreamCall) -> str:
        code = _argument(call.arguments, "code")
        if code is None or self.ctx.run_code is None:
            # broken JSON is not run as code: it would only ever be a syntax error
            return 'Error: the arguments must be a JSON object: {"code": "<python code>"}.'
        ran = CodeCall.ran(code, await self.ctx.run_code(code))
        await self.ctx.emit_call(ran)
        logs = ran.logs or ""
        if len(logs) > LOG_CHARS:
            logs = logs[: LOG_CHARS // 2] + "\n…\n" + logs[-LOG_CHARS // 2 :]
        notes = [logs or "(no output)"]
        if ran.error:
            notes.append("[the code raised an error]")
        if ran.images:
            notes.append(f"[{len(ran.images)} image(s) shown to the user]")
        if ran.files:
            notes.append("[files written: " + ", ".join(f.path for f in ran.files) + "]")
        return "\n".join(notes)

    def citations(self, text: str) -> list[Citation]:
        """``file_citation`` spans for the markers in ``text`` that name a result of this turn."""
        out = []
        for match in _MARKER.finditer(text):
            hit = self._hit(int(match[1]), int(match[2]), match[3])
            if hit is not None:
                out.append(Citation(hit.file_id, match.start(), match.end(), match.group()))
        return out

    def _hit(self, n: int, i: int, name: str) -> SearchHit | None:
        """The result a marker names: by its numbers, else the first result of that file."""
        if n < len(self.searches) and i < len(self.searches[n].hits):
            return self.searches[n].hits[i]
        return next((h for s in self.searches for h in s.hits if h.filename == name), None)


def _passages(n: int, hits: list[SearchHit]) -> str:
    """The results with their markers, cut to :data:`RESULT_CHARS` in all (at least one)."""
    out: list[str] = []
    left = RESULT_CHARS
    for i, hit in enumerate(hits):
        if left <= 0:
            break
        text = hit.text[:left]
        out.append(f"【{n}:{i}†{hit.filename}】 {text}")
        left -= len(text)
    return "\n\n".join(out)
