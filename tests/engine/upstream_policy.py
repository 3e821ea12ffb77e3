"""What the strict upstream double answers: a deterministic reading of the conversation.

The last user message says what to do. Keywords, in the order they appear, plan tool rounds
(only with tools the request offers): ``weather`` → ``get_weather`` for Rome and Oslo (in
parallel unless ``parallel_tool_calls`` is false), ``search``/``pedro`` → ``file_search``,
``compute`` → ``python`` printing 42, ``plot`` → ``python`` drawing a bar chart, ``chain N``
→ N rounds of ``step``. Each request answers the next round not yet in the conversation;
once all are, the reply sums the tool results up
(citing the first file_search result by its marker). Without tools: ``fail NNN`` answers that
status, ``flaky`` fails once with a 500, ``essay`` writes 300 words, a JSON
``response_format`` gets a JSON object, anything else ``echo: <text>``.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

_MARKER = re.compile(r"【\d+:\d+†[^】]*】")
PYTHON_CODE = "print(6 * 7)"
PLOT_CODE = "import matplotlib.pyplot as plt\nplt.bar([1, 2, 3], [3, 1, 2])\nprint('drawn')"


@dataclass
class Reply:
    """One answer: text or tool calls ``(name, arguments JSON)``, or an error status."""

    text: str = ""
    tool_calls: list[tuple[str, str]] = field(default_factory=list)
    status: int = 200
    error: str = ""


def content_text(content: Any) -> str:
    """The text of a message's content (a string, or the text parts of an array)."""
    if isinstance(content, str):
        return content
    return "\n".join(p.get("text", "") for p in content or [] if p.get("type") == "text")


def _since_user(messages: list[dict[str, Any]]) -> tuple[str, list[dict[str, Any]]]:
    """The last user message's text and the messages after it."""
    for i in range(len(messages) - 1, -1, -1):
        if messages[i]["role"] == "user":
            return content_text(messages[i]["content"]), messages[i + 1 :]
    return "", messages


def _plan(text: str, body: dict[str, Any]) -> list[list[tuple[str, dict[str, Any]]]]:
    """The tool rounds the user's text asks for, in order, with tools the request offers."""
    offered = {t["function"]["name"] for t in body.get("tools") or []}
    parallel = body.get("parallel_tool_calls", True)
    found: list[tuple[int, list[list[tuple[str, dict[str, Any]]]]]] = []
    low = text.lower()

    def want(pos: int, rounds: list[list[tuple[str, dict[str, Any]]]]) -> None:
        if pos >= 0 and all(name in offered for r in rounds for name, _ in r):
            found.append((pos, rounds))

    cities = [("get_weather", {"city": "Rome"}), ("get_weather", {"city": "Oslo"})]
    want(low.find("weather"), [cities] if parallel else [[c] for c in cities])
    search = [m.start() for m in re.finditer(r"search|pedro", low)]
    want(search[0] if search else -1, [[("file_search", {"query": text})]])
    want(low.find("compute"), [[("python", {"code": PYTHON_CODE})]])
    want(low.find("plot"), [[("python", {"code": PLOT_CODE})]])
    chain = re.search(r"chain (\d+)", low)
    if chain:
        want(chain.start(), [[("step", {"n": k + 1})] for k in range(int(chain[1]))])
    return [r for _, rounds in sorted(found, key=lambda f: f[0]) for r in rounds]


def _calls(round_: list[tuple[str, dict[str, Any]]]) -> Reply:
    return Reply(tool_calls=[(name, json.dumps(args)) for name, args in round_])


def _forced(body: dict[str, Any], planned: list[list[tuple[str, dict[str, Any]]]]) -> Reply | None:
    """The first round under a ``tool_choice`` that names a function or requires one."""
    choice = body.get("tool_choice")
    tools = body.get("tools") or []
    if isinstance(choice, dict):
        name = choice["function"]["name"]
        args = next((a for r in planned for n, a in r if n == name), {})
        return _calls([(name, args)])
    if choice == "required" and tools and not planned:
        return _calls([(tools[0]["function"]["name"], {})])
    return None


def _summary(after: list[dict[str, Any]]) -> str:
    """The final answer: the first file_search result cited, then the other tools' outputs."""
    names = {}
    for m in after:
        for call in m.get("tool_calls") or []:
            names[call["id"]] = call["function"]["name"]
    cited, said = "", []
    for m in after:
        if m["role"] != "tool":
            continue
        output = content_text(m["content"])
        if names.get(m["tool_call_id"]) == "file_search":
            marker = _MARKER.search(output)
            if marker and not cited:
                snippet = output[marker.end() :].strip().splitlines()[0][:80]
                cited = f"According to the files, {snippet} {marker.group()}"
        else:
            said.append(output)
    parts = [cited] if cited else []
    if said:
        parts.append("tools said: " + ", ".join(said))
    return " ".join(parts) or "Nothing found."


def answer(body: dict[str, Any], seen: set[str]) -> Reply:
    """The reply to a valid request; ``seen`` remembers ``flaky`` texts that failed once."""
    messages = body["messages"]
    text, after = _since_user(messages)
    fmt = (body.get("response_format") or {}).get("type")
    failing = re.search(r"fail (\d{3})", text)
    if failing:
        return Reply(status=int(failing[1]), error=f"the upstream refuses ({failing[1]})")
    if "flaky" in text and text not in seen:
        seen.add(text)
        return Reply(status=500, error="temporarily overloaded")
    planned = [] if body.get("tool_choice") == "none" else _plan(text, body)
    done = sum(1 for m in after if m["role"] == "assistant" and m.get("tool_calls"))
    if done == 0 and (forced := _forced(body, planned)) is not None:
        return forced
    if done < len(planned):
        return _calls(planned[done])
    if done:
        return Reply(text=_summary(after))
    if fmt in ("json_object", "json_schema"):
        return Reply(text=json.dumps({"answer": text}))
    if "essay" in text:
        return Reply(text=" ".join(f"word{i}" for i in range(300)))
    return Reply(text=f"echo: {text}")
