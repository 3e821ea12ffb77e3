"""The ``scripted`` model: deterministic rules from a YAML script (schemas/script.schema.json).

The first rule whose ``when`` matches the last user message answers; ``default`` answers
otherwise. It is a rehearsal model, not an AI: the built-in replies start with ``[scripted]``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
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


@dataclass(frozen=True)
class ToolChoice:
    """A run's ``tool_choice``: ``kind`` none/auto/required/function/file_search/code_interpreter.

    ``name`` is the function a ``{"type": "function", "function": {"name": ...}}`` forces.
    """

    kind: str
    name: str | None = None

    @classmethod
    def of(cls, run: dict[str, Any]) -> ToolChoice:
        """The choice of a run (Responses hand the model the Assistants shape too)."""
        value = run.get("tool_choice") or "auto"
        if isinstance(value, str):
            return cls(value)
        if value.get("type") == "function":
            return cls("function", (value.get("function") or {}).get("name"))
        return cls(str(value.get("type")))


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
            "files": ctx.code_files,
            "code": None,
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
            turn.code = await self._code_call(action["code_interpreter"] or {}, variables, ctx)
        choice = ToolChoice.of(ctx.run)
        forced_search = choice.kind == "file_search" and not ctx.after_tool_outputs
        if action.get("file_search") or forced_search:
            spec = action.get("file_search")
            turn.search = await self._search_call(
                spec if isinstance(spec, dict) else {}, variables, ctx
            )
        if may_call_tools and choice.kind != "none":
            turn.tool_calls = self._calls(action, variables, ctx, choice, turn)
        if turn.tool_calls:
            turn.state = {"rule": index}
        else:
            self._reply(turn, action, variables, ctx)
        turn.usage = _usage(action.get("usage") or {}, ctx, turn)
        return turn

    async def _code_call(
        self, spec: dict[str, Any], variables: dict[str, Any], ctx: TurnContext
    ) -> CodeCall:
        """The rule's code (a template), run in the sandbox unless the rule pins its outputs.

        A rule with ``logs`` or ``image`` shows those and runs nothing. Otherwise the code runs
        through ``ctx.run_code`` and the result is the ``code`` variable of the reply
        (``code.logs``, ``code.error``, ``code.files``: the paths it wrote, ``code.images``:
        how many figures it drew); the run must offer the code_interpreter tool.
        """
        source = self._render(spec.get("input", ""), variables)
        if "logs" in spec or "image" in spec:
            logs = self._render(spec["logs"], variables) if spec.get("logs") is not None else None
            return CodeCall(source, logs=logs, image=render_chart() if spec.get("image") else None)
        if ctx.run_code is None:
            raise ModelError(
                "scripted model: rule runs code, but this run does not offer the "
                "code_interpreter tool (or the engine's sandbox is off)"
            )
        result = await ctx.run_code(source)
        variables["code"] = {
            "logs": result.logs,
            "error": result.error,
            "files": [f.path for f in result.files],
            "images": len(result.images),
        }
        return CodeCall.ran(source, result)

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

    def _calls(
        self,
        action: dict[str, Any],
        variables: dict[str, Any],
        ctx: TurnContext,
        choice: ToolChoice,
        turn: Turn,
    ) -> list[FunctionCall]:
        """The rule's function calls, as the run's ``tool_choice`` allows or forces them.

        A named function keeps only the rule's calls to it, or calls it with ``{}`` when the
        rule has none; ``required`` calls the first offered function when the rule calls no
        tool at all. Forcing applies to the turn that answers the user: the turn after the
        outputs replies, so a run with a forced call still ends.
        """
        rule_calls = action.get("tool_calls") or []
        calls = self._function_calls(rule_calls, variables, ctx) if rule_calls else []
        if choice.kind == "function":
            if choice.name not in ctx.function_names():
                raise ModelError(
                    f"scripted model: tool_choice names function {choice.name!r}, which this "
                    f"run does not offer (tools: {sorted(ctx.function_names()) or 'none'})"
                )
            calls = [c for c in calls if c.name == choice.name]
            if not calls and not ctx.after_tool_outputs:
                calls = [FunctionCall(choice.name, "{}")]
        elif choice.kind == "required" and not ctx.after_tool_outputs:
            if not calls and turn.code is None and turn.search is None:
                offered = ctx.function_names()
                if not offered:
                    raise ModelError(
                        "scripted model: tool_choice is 'required' but this run offers no tool "
                        "the rule could call"
                    )
                calls = [FunctionCall(offered[0], "{}")]
        return calls

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
