"""The ``scripted`` model: deterministic rules from a YAML script (schemas/script.schema.json).

The first rule whose ``when`` matches the last user message answers; ``default`` answers
otherwise. It is a rehearsal model, not an AI: the built-in replies start with ``[scripted]``
and every assistant message it writes carries ``metadata.orch_model = "scripted"``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import yaml
from jinja2.sandbox import SandboxedEnvironment

from orch.engine.errors import EngineSetupError
from orch.engine.models.base import (
    Citation,
    CodeCall,
    FunctionCall,
    ModelError,
    SearchCall,
    Turn,
    TurnContext,
    estimate_tokens,
    message_text,
)
from orch.engine.png import render_chart

BUILTIN_SCRIPT: dict[str, Any] = {
    "name": "builtin",
    "default": {
        "reply": '[scripted] You said: "{{ message | truncate(200) }}"',
    },
}

_AFTER_TOOLS_REPLY = (
    "[scripted] Tool outputs: "
    "{% for t in tool_outputs %}{{ t.name }} -> {{ t.output }}"
    "{% if not loop.last %}; {% endif %}{% endfor %}"
)


class ToolOutput(dict):
    """A submitted tool output for templates: ``{{ o }}`` is the output, ``o.name`` the function."""

    def __str__(self) -> str:
        return str(self.get("output", ""))


class ScriptedModel:
    """Deterministic rules; see the module docstring."""

    name = "scripted"

    def __init__(self, script: dict[str, Any]):
        self.script = script
        self.rules: list[dict[str, Any]] = list(script.get("rules") or [])
        self.default: dict[str, Any] = script.get("default") or BUILTIN_SCRIPT["default"]
        self._env = SandboxedEnvironment(autoescape=False, keep_trailing_newline=True)
        self._env.filters["tojson"] = lambda v: json.dumps(v, ensure_ascii=False)
        self._templates: dict[str, Any] = {}
        self._regexes = {
            i: re.compile(r["when"]["regex"])
            for i, r in enumerate(self.rules)
            if "regex" in r.get("when", {})
        }

    @classmethod
    def from_source(cls, script: str | Path | dict[str, Any] | None) -> ScriptedModel:
        """Build from a script file (see :func:`load_script`), a script dict, or None (built-in)."""
        if script is None:
            return cls(BUILTIN_SCRIPT)
        if isinstance(script, dict):
            return cls(script)
        return cls(load_script(script))

    async def aclose(self) -> None:
        """Nothing to release."""

    # -- matching ------------------------------------------------------------------------------
    def _match(self, index: int, when: dict[str, Any], ctx: TurnContext) -> tuple[bool, Any]:
        text = ctx.user_text
        found: Any = None
        if "contains" in when:
            needles = when["contains"] if isinstance(when["contains"], list) else [when["contains"]]
            if not any(n in text for n in needles):
                return False, None
        if "icontains" in when:
            needles = (
                when["icontains"] if isinstance(when["icontains"], list) else [when["icontains"]]
            )
            low = text.lower()
            if not any(n.lower() in low for n in needles):
                return False, None
        if "regex" in when:
            found = self._regexes[index].search(text)
            if found is None:
                return False, None
        if "assistant" in when and when["assistant"] != ctx.assistant.get("name"):
            return False, None
        wants_after = when.get("after_tool_outputs")
        if wants_after is not None and bool(wants_after) != ctx.after_tool_outputs:
            return False, None
        return True, found

    def _choose(self, ctx: TurnContext) -> tuple[dict[str, Any], Any, int | None, bool]:
        """(action, regex match, rule index, may_call_tools)."""
        if ctx.after_tool_outputs:
            for i, rule in enumerate(self.rules):
                if rule["when"].get("after_tool_outputs") is True:
                    ok, found = self._match(i, rule["when"], ctx)
                    if ok:
                        return rule, found, i, True
            issued = ctx.state.get("rule")
            if isinstance(issued, int) and 0 <= issued < len(self.rules):
                rule = self.rules[issued]
                _, found = self._match(
                    issued, {k: v for k, v in rule["when"].items() if k == "regex"}, ctx
                )
                return rule, found, issued, False
            return self.default, None, None, False
        for i, rule in enumerate(self.rules):
            ok, found = self._match(i, rule["when"], ctx)
            if ok:
                return rule, found, i, True
        return self.default, None, None, True

    # -- answering -----------------------------------------------------------------------------
    def _render(self, source: str, variables: dict[str, Any]) -> str:
        template = self._templates.get(source)
        if template is None:
            try:
                template = self._env.from_string(source)
            except Exception as exc:  # jinja2.TemplateSyntaxError and friends
                raise ModelError(f"scripted model: bad template {source!r}: {exc}") from exc
            self._templates[source] = template
        try:
            return template.render(variables)
        except Exception as exc:
            raise ModelError(f"scripted model: template {source!r} failed: {exc}") from exc

    def _render_value(self, value: Any, variables: dict[str, Any]) -> Any:
        if isinstance(value, str):
            return self._render(value, variables)
        if isinstance(value, dict):
            return {k: self._render_value(v, variables) for k, v in value.items()}
        if isinstance(value, list):
            return [self._render_value(v, variables) for v in value]
        return value

    async def respond(self, ctx: TurnContext) -> Turn:
        """Answer with the first matching rule (or the default action)."""
        action, found, index, may_call_tools = self._choose(ctx)
        variables: dict[str, Any] = {
            "message": ctx.user_text,
            "match": found,
            "tool_outputs": [ToolOutput(o) for o in ctx.tool_outputs],
            "citations": [],
            "assistant": {
                k: ctx.assistant.get(k) for k in ("id", "name", "instructions", "metadata", "model")
            },
        }
        turn = Turn(delay_ms=int(action.get("delay_ms", self.script.get("delay_ms", 0)) or 0))
        if "fail" in action:
            fail = action["fail"]
            turn.fail = (fail.get("code", "server_error"), self._render(fail["message"], variables))
            return turn
        if "code_interpreter" in action and not ctx.after_tool_outputs:
            turn.code = self._code_call(action["code_interpreter"] or {}, variables)
        if action.get("file_search"):
            spec = action["file_search"] if isinstance(action["file_search"], dict) else {}
            turn.search = await self._search_call(spec, variables, ctx)
        if action.get("tool_calls") and may_call_tools and ctx.run.get("tool_choice") != "none":
            turn.tool_calls = self._function_calls(action["tool_calls"], variables, ctx)
            turn.state = {"rule": index}
        else:
            self._reply(turn, action, variables, ctx)
        turn.usage = _usage(action.get("usage") or {}, ctx, turn)
        return turn

    def _code_call(self, spec: dict[str, Any], variables: dict[str, Any]) -> CodeCall:
        logs = self._render(spec["logs"], variables) if spec.get("logs") is not None else None
        image = render_chart() if spec.get("image") else None
        return CodeCall(input=spec.get("input", ""), logs=logs, image=image)

    async def _search_call(
        self, spec: dict[str, Any], variables: dict[str, Any], ctx: TurnContext
    ) -> SearchCall:
        """Search the run's vector stores; the hits become the ``citations`` variable."""
        query = self._render(spec["query"], variables) if spec.get("query") else ctx.user_text
        hits = await ctx.search(query, int(spec.get("max_results", 3)))
        variables["citations"] = [
            {
                "index": i,
                "file_id": h.file_id,
                "filename": h.filename,
                "score": h.score,
                "text": h.text,
                "marker": f"【{i}:0†{h.filename}】",
            }
            for i, h in enumerate(hits)
        ]
        return SearchCall(query=query, hits=hits)

    def _function_calls(
        self, calls: list[dict[str, Any]], variables: dict[str, Any], ctx: TurnContext
    ) -> list[FunctionCall]:
        """The rule's function calls, arguments rendered; each must be a tool the run offers."""
        offered = set(ctx.function_names())
        out = []
        for call in calls:
            if call["function"] not in offered:
                raise ModelError(
                    f"scripted model: rule calls function {call['function']!r}, "
                    f"which this run does not offer (tools: {sorted(offered) or 'none'})"
                )
            args = self._render_value(call.get("arguments") or {}, variables)
            out.append(FunctionCall(call["function"], json.dumps(args, ensure_ascii=False)))
        return out

    def _reply(
        self, turn: Turn, action: dict[str, Any], variables: dict[str, Any], ctx: TurnContext
    ) -> None:
        """The reply text; after a search it cites the hits (markers appended if it did not)."""
        turn.text = self._reply_text(action, variables, ctx, turn)
        turn.citations = _citations(turn.text, variables["citations"]) if turn.search else []
        if turn.search and not turn.citations and variables["citations"]:
            suffix = " " + "".join(c["marker"] for c in variables["citations"][:3])
            turn.text += suffix
            turn.citations = _citations(turn.text, variables["citations"][:3])

    def _reply_text(
        self, action: dict[str, Any], variables: dict[str, Any], ctx: TurnContext, turn: Turn
    ) -> str:
        reply = action.get("reply")
        if isinstance(reply, (dict, list)):
            return json.dumps(self._render_value(reply, variables), ensure_ascii=False)
        if isinstance(reply, str):
            return self._render(reply, variables)
        if ctx.after_tool_outputs:
            return self._render(_AFTER_TOOLS_REPLY, variables)
        if turn.search is not None:
            return f"[scripted] Found {len(turn.search.hits)} result(s)."
        if turn.code is not None:
            return "[scripted] Code ran."
        return self._render(BUILTIN_SCRIPT["default"]["reply"], variables)


def _usage(usage: dict[str, Any], ctx: TurnContext, turn: Turn) -> tuple[int, int]:
    """The script's token counts, or estimates from the prompt and the answer."""
    prompt = usage.get("prompt_tokens")
    if prompt is None:
        prompt = estimate_tokens(ctx.run.get("instructions") or "") + sum(
            estimate_tokens(message_text(m)) for m in ctx.messages
        )
    completion = usage.get("completion_tokens")
    if completion is None:
        completion = estimate_tokens(turn.text or "") + sum(
            estimate_tokens(c.arguments) for c in turn.tool_calls
        )
    return int(prompt), int(completion)


def _citations(text: str, citations: list[dict[str, Any]]) -> list[Citation]:
    out = []
    for c in citations:
        start = text.find(c["marker"])
        if start >= 0:
            out.append(Citation(c["file_id"], start, start + len(c["marker"]), c["marker"]))
    return out


def load_script(path: str | Path) -> dict[str, Any]:
    """A script file's rules as a dict, read with a plain YAML load (an empty file: ``{}``).

    The engine does not check scripts against ``schemas/script.schema.json``: callers that want
    located schema errors validate the file first and pass the dict. Raises
    :class:`~orch.engine.errors.EngineSetupError` when the file cannot be read, is not YAML,
    or is not a mapping.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise EngineSetupError(f"cannot read script {path}: {exc}") from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise EngineSetupError(f"script {path} is not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise EngineSetupError(
            f"script {path} must be a mapping (with 'rules' and/or 'default'), "
            f"not {type(data).__name__}"
        )
    return data
