"""``/v1/threads/{id}/runs`` (+ steps, cancel, submit_tool_outputs) and ``/v1/threads/runs``."""

from __future__ import annotations

import copy
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from orch.engine import params as p
from orch.engine.core import Engine
from orch.engine.errors import bad_request, invalid_choice, invalid_type, not_found
from orch.engine.routes.bodies import read_json
from orch.engine.routes.common import (
    engine_of,
    event_stream,
    json_response,
    object_response,
    routes,
)
from orch.engine.routes.resources import View, finder, page_response
from orch.engine.routes.threads import create_thread, find_thread, validate_message
from orch.engine.routes.tool_resources import resolve_tool_resources
from orch.engine.sse import encode_event
from orch.engine.store import public

RUN_FIELDS = frozenset(
    {
        "assistant_id",
        "model",
        "instructions",
        "additional_instructions",
        "additional_messages",
        "tools",
        "metadata",
        "temperature",
        "top_p",
        "stream",
        "max_prompt_tokens",
        "max_completion_tokens",
        "truncation_strategy",
        "tool_choice",
        "parallel_tool_calls",
        "response_format",
        "reasoning_effort",
    }
)
CREATE_AND_RUN_FIELDS = (RUN_FIELDS - {"additional_instructions", "additional_messages"}) | {
    "thread",
    "tool_resources",
}
RESULTS_CONTENT = "step_details.tool_calls[*].file_search.results[*].content"


def _poll_headers(engine: Engine) -> dict[str, str]:
    return {"openai-poll-after-ms": str(engine.config.poll_after_ms)}


def _polled_page(request: Request, kind: str, parent: str, view: View) -> Response:
    """A page of a thread's runs or a run's steps, with the polling hint header."""
    headers = _poll_headers(engine_of(request))
    return page_response(request, kind, parent, view=view, headers=headers)


def _run_params(engine: Engine, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(assistant, validated run overrides)."""
    aid = p.field(body, "assistant_id", str, required=True)
    assistant = engine.store.get("assistant", aid)
    if assistant is None:
        raise not_found("assistant", aid, "assistant_id")
    out: dict[str, Any] = {}
    for key in ("model", "instructions", "additional_instructions"):
        out[key] = p.field(body, key, str)
    if "tools" in body:
        out["tools"] = p.tools(body)
    out["metadata"] = p.metadata(body)
    out.update(p.sampling(body))
    for key in ("max_prompt_tokens", "max_completion_tokens"):
        out[key] = p.field(body, key, int, minimum=1)
    out["truncation_strategy"] = p.truncation_strategy(body)
    if "tool_choice" in body:
        out["tool_choice"] = p.tool_choice(body)
    if "response_format" in body:
        out["response_format"] = p.response_format(body) or "auto"
    if "parallel_tool_calls" in body:
        out["parallel_tool_calls"] = p.field(body, "parallel_tool_calls", bool, default=True)
    p.field(body, "stream", bool)
    return assistant, out


async def create(request: Request) -> Response:
    """POST /v1/threads/{thread_id}/runs."""
    engine = engine_of(request)
    thread = find_thread(request)
    body = await read_json(request)
    p.check_keys(body, RUN_FIELDS)
    assistant, params = _run_params(engine, body)
    extra = p.field(body, "additional_messages", list) or []
    specs = [
        validate_message(engine.store, m, f"additional_messages[{i}]") for i, m in enumerate(extra)
    ]
    engine.runs.check_idle(thread["id"])
    for spec in specs:
        engine.messages.add(thread, spec)
    run = engine.runs.create(thread["id"], assistant, params)
    if body.get("stream"):
        return event_stream(engine.runs, run["id"], lambda: engine.runs.start(run))
    engine.runs.start(run)
    return object_response(run, _poll_headers(engine))


async def create_and_run(request: Request) -> Response:
    """POST /v1/threads/runs."""
    engine = engine_of(request)
    body = await read_json(request)
    p.check_keys(body, CREATE_AND_RUN_FIELDS)
    assistant, params = _run_params(engine, body)
    thread_body = p.field(body, "thread", dict) or {}
    resources = resolve_tool_resources(engine, p.tool_resources(body))
    thread = create_thread(engine, copy.deepcopy(thread_body), "thread")
    if resources:
        merged = dict(thread.get("tool_resources") or {})
        merged.update(resources)
        thread["tool_resources"] = merged
        engine.store.put(thread)
    run = engine.runs.create(thread["id"], assistant, params)
    if body.get("stream"):
        prelude = [encode_event("thread.created", public(thread))]
        return event_stream(engine.runs, run["id"], lambda: engine.runs.start(run), prelude=prelude)
    engine.runs.start(run)
    return object_response(run, _poll_headers(engine))


def find_run(request: Request) -> dict[str, Any]:
    """The run the path names (live while executing); a 404 for its thread, then for it."""
    engine = engine_of(request)
    thread_id = request.path_params["thread_id"]
    run_id = request.path_params["run_id"]
    run = engine.runs.get(thread_id, run_id)
    if run is None:
        if engine.store.get("thread", thread_id) is None:
            raise not_found("thread", thread_id)
        raise not_found("run", run_id)
    return run


async def retrieve(request: Request) -> Response:
    """GET /v1/threads/{thread_id}/runs/{run_id}."""
    return object_response(find_run(request), _poll_headers(engine_of(request)))


async def update(request: Request) -> Response:
    """POST /v1/threads/{thread_id}/runs/{run_id}."""
    engine = engine_of(request)
    run = find_run(request)
    body = await read_json(request)
    p.check_keys(body, frozenset({"metadata"}))
    if "metadata" in body:
        run["metadata"] = p.metadata(body) or {}
        engine.store.put(run)
    return object_response(run, _poll_headers(engine))


async def list_runs(request: Request) -> Response:
    """GET /v1/threads/{thread_id}/runs (live versions of executing runs)."""
    live = engine_of(request).runs.live
    thread = find_thread(request)
    return _polled_page(request, "run", thread["id"], lambda run: public(live.get(run["id"], run)))


async def cancel(request: Request) -> Response:
    """POST /v1/threads/{thread_id}/runs/{run_id}/cancel."""
    engine = engine_of(request)
    run = find_run(request)
    return json_response(engine.runs.cancel(run), headers=_poll_headers(engine))


async def submit_tool_outputs(request: Request) -> Response:
    """POST /v1/threads/{thread_id}/runs/{run_id}/submit_tool_outputs."""
    engine = engine_of(request)
    run = find_run(request)
    body = await read_json(request)
    p.check_keys(body, frozenset({"tool_outputs", "stream"}))
    outputs = p.field(body, "tool_outputs", list, required=True)
    for i, out in enumerate(outputs):
        if not isinstance(out, dict):
            raise invalid_type(f"tool_outputs[{i}]")
        p.check_keys(out, frozenset({"tool_call_id", "output"}), f"tool_outputs[{i}]")
        p.field(out, "tool_call_id", str, required=True, param=f"tool_outputs[{i}].tool_call_id")
        p.field(out, "output", str, param=f"tool_outputs[{i}].output")
    if p.field(body, "stream", bool):
        if run["status"] != "requires_action":
            raise bad_request(f'Runs in status "{run["status"]}" do not accept tool outputs.')
        return event_stream(
            engine.runs, run["id"], lambda: engine.runs.submit_tool_outputs(run, outputs)
        )
    engine.runs.submit_tool_outputs(run, outputs)
    return object_response(run, _poll_headers(engine))


def _include_content(request: Request) -> bool:
    q = request.query_params
    includes = q.getlist("include[]") + q.getlist("include")
    for inc in includes:
        if inc != RESULTS_CONTENT:
            raise invalid_choice(inc, [RESULTS_CONTENT], "include")
    return bool(includes)


def _step_view(step: dict[str, Any], with_content: bool) -> dict[str, Any]:
    step = public(step)
    if not with_content and step["type"] == "tool_calls":
        step = copy.deepcopy(step)
        for call in step["step_details"]["tool_calls"]:
            if call["type"] == "file_search":
                for r in call["file_search"].get("results") or []:
                    r.pop("content", None)
    return step


async def list_steps(request: Request) -> Response:
    """GET /v1/threads/{thread_id}/runs/{run_id}/steps."""
    run = find_run(request)
    with_content = _include_content(request)
    return _polled_page(request, "step", run["id"], lambda step: _step_view(step, with_content))


find_step = finder("step", "step_id", noun="run step", within=find_run)


async def retrieve_step(request: Request) -> Response:
    """GET /v1/threads/{thread_id}/runs/{run_id}/steps/{step_id}."""
    step = find_step(request)
    view = _step_view(step, _include_content(request))
    return json_response(view, headers=_poll_headers(engine_of(request)))


ROUTES = routes(
    {
        "/threads/runs": {"POST": create_and_run},
        "/threads/{thread_id}/runs": {"POST": create, "GET": list_runs},
        "/threads/{thread_id}/runs/{run_id}": {"GET": retrieve, "POST": update},
        "/threads/{thread_id}/runs/{run_id}/cancel": {"POST": cancel},
        "/threads/{thread_id}/runs/{run_id}/submit_tool_outputs": {"POST": submit_tool_outputs},
        "/threads/{thread_id}/runs/{run_id}/steps": {"GET": list_steps},
        "/threads/{thread_id}/runs/{run_id}/steps/{step_id}": {"GET": retrieve_step},
    }
)
