"""Running the engine: restarts, auth, binding rules, faults, expiry, `orch serve`, concurrency."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from orch.engine.errors import EngineSetupError
from orch.engine.server import start_engine

from .conftest import wait_on_run


def test_state_survives_restart(tmp_path: Path):
    db = tmp_path / "engine.db"
    with start_engine(db) as engine:
        client = OpenAI(base_url=engine.base_url, api_key="x", max_retries=0)
        asst = client.beta.assistants.create(
            model="m", name="keeper", metadata={"orch_project": "p"}
        )
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "remember me"}])
        run = client.beta.threads.runs.create_and_poll(
            thread_id=thread.id, assistant_id=asst.id, poll_interval_ms=20
        )
        data = client.files.create(file=("k.txt", b"kept"), purpose="assistants")
        weather = client.beta.assistants.create(
            model="m", tools=[{"type": "function", "function": {"name": "get_weather"}}]
        )
        waiting = client.beta.threads.create(
            messages=[{"role": "user", "content": "weather in Lima"}]
        )
    script = {
        "rules": [
            {
                "when": {"contains": "weather"},
                "tool_calls": [{"function": "get_weather"}],
                "reply": "done",
            }
        ]
    }
    with start_engine(db, script=script) as engine:
        client = OpenAI(base_url=engine.base_url, api_key="x", max_retries=0)
        assert client.beta.assistants.retrieve(asst.id).metadata == {"orch_project": "p"}
        assert (
            client.beta.threads.runs.retrieve(run_id=run.id, thread_id=thread.id).status
            == "completed"
        )
        assert len(client.beta.threads.messages.list(thread_id=thread.id).data) == 2
        assert client.files.content(data.id).read() == b"kept"
        pending = client.beta.threads.runs.create_and_poll(
            thread_id=waiting.id, assistant_id=weather.id, poll_interval_ms=20
        )
        assert pending.status == "requires_action"
    # A run left waiting for tool outputs is still waiting after a restart and can finish.
    with start_engine(db, script=script) as engine:
        client = OpenAI(base_url=engine.base_url, api_key="x", max_retries=0)
        again = client.beta.threads.runs.retrieve(run_id=pending.id, thread_id=waiting.id)
        assert again.status == "requires_action"
        call = again.required_action.submit_tool_outputs.tool_calls[0]
        done = client.beta.threads.runs.submit_tool_outputs_and_poll(
            run_id=again.id,
            thread_id=waiting.id,
            tool_outputs=[{"tool_call_id": call.id, "output": "sunny"}],
            poll_interval_ms=20,
        )
        assert done.status == "completed"


def test_api_key_is_required_when_set(tmp_path: Path):
    with start_engine(tmp_path / "e.db", api_key="s3cret") as engine:
        with pytest.raises(openai.AuthenticationError) as err:
            OpenAI(
                base_url=engine.base_url, api_key="wrong-key-123", max_retries=0
            ).beta.assistants.list()
        assert err.value.status_code == 401 and err.value.body["code"] == "invalid_api_key"
        good = OpenAI(base_url=engine.base_url, api_key="s3cret", max_retries=0)
        assert good.beta.assistants.list().data == []


def test_refuses_non_loopback_without_api_key(tmp_path: Path):
    with pytest.raises(EngineSetupError, match="refusing to listen on 0.0.0.0"):
        start_engine(tmp_path / "e.db", host="0.0.0.0")


def test_fault_injection(tmp_path: Path):
    with start_engine(tmp_path / "e.db", fault_rate=0.5, fault_seed=7) as engine:
        client = OpenAI(base_url=engine.base_url, api_key="x", max_retries=0)
        seen: set[str] = set()
        for _ in range(40):
            try:
                client.beta.assistants.list()
                seen.add("ok")
            except openai.RateLimitError as exc:
                assert exc.response.headers["retry-after-ms"]
                assert exc.body["code"] == "rate_limit_exceeded"
                seen.add("429")
            except openai.InternalServerError:
                seen.add("500")
            except openai.APIConnectionError:
                seen.add("drop")
        assert seen == {"ok", "429", "500", "drop"}
        # The SDK's own retries get through (it honours retry-after-ms).
        patient = OpenAI(base_url=engine.base_url, api_key="x", max_retries=8)
        for _ in range(5):
            patient.beta.assistants.list()


def test_run_left_in_requires_action_expires(tmp_path: Path, script_path: Path):
    with start_engine(tmp_path / "e.db", script=script_path, run_expiry_seconds=0.5) as engine:
        client = OpenAI(base_url=engine.base_url, api_key="x", max_retries=0)
        asst = client.beta.assistants.create(
            model="m",
            tools=[
                {"type": "function", "function": {"name": "get_weather"}},
                {"type": "function", "function": {"name": "get_time"}},
            ],
        )
        thread = client.beta.threads.create(
            messages=[{"role": "user", "content": "weather in Bern"}]
        )
        run = client.beta.threads.runs.create_and_poll(
            thread_id=thread.id, assistant_id=asst.id, poll_interval_ms=20
        )
        assert run.status == "requires_action"
        deadline = time.monotonic() + 10
        while run.status == "requires_action" and time.monotonic() < deadline:
            time.sleep(0.05)
            run = client.beta.threads.runs.retrieve(run_id=run.id, thread_id=thread.id)
        assert run.status == "expired" and run.expires_at is not None
        step = client.beta.threads.runs.steps.list(run_id=run.id, thread_id=thread.id).data[0]
        assert step.status == "expired" and step.expired_at is not None
        with pytest.raises(openai.BadRequestError):
            client.beta.threads.runs.submit_tool_outputs(
                run_id=run.id, thread_id=thread.id, tool_outputs=[]
            )
        # A run still working at expires_at expires too.
        slow = client.beta.threads.create(messages=[{"role": "user", "content": "be slow"}])
        run = client.beta.threads.runs.create(thread_id=slow.id, assistant_id=asst.id)
        run = wait_on_run(client, run)
        assert run.status == "expired"
        reply = client.beta.threads.messages.list(thread_id=slow.id).data[0]
        assert reply.role == "user"


def test_request_stats(engine, client: OpenAI):
    engine.reset_stats()
    client.beta.assistants.list()
    client.beta.assistants.list()
    thread = client.beta.threads.create()
    client.beta.threads.retrieve(thread.id)
    stats = engine.stats()
    assert stats["GET /v1/assistants"] == 2
    assert stats["GET /v1/threads/{thread_id}"] == 1
    assert engine.write_count() == 1
    import httpx2

    assert (
        httpx2.get(engine.base_url + "/_orch/stats").json()["requests"]["GET /v1/assistants"] == 2
    )


def test_many_concurrent_streamed_runs(engine, assistant):
    async def one(client: AsyncOpenAI, i: int) -> str:
        async with client.beta.threads.create_and_run_stream(
            assistant_id=assistant.id, thread={"messages": [{"role": "user", "content": f"n{i}"}]}
        ) as stream:
            await stream.until_done()
            return (await stream.get_final_messages())[0].content[0].text.value

    async def main() -> list[str]:
        client = AsyncOpenAI(base_url=engine.base_url, api_key="x", max_retries=0)
        return await asyncio.gather(*(one(client, i) for i in range(40)))

    texts = asyncio.run(main())
    assert texts == [f'[scripted] You said: "n{i}"' for i in range(40)]


def test_orch_serve_subprocess(tmp_path: Path):
    env = dict(os.environ, ORCH_ENGINE_API_KEY="")
    env.pop("ORCH_ENGINE_API_KEY")
    proc = subprocess.Popen(
        [sys.executable, "-m", "orch", "serve", "--port", "0", "--db", str(tmp_path / "e.db")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        line = proc.stdout.readline()
        match = re.search(r"listening on (http://127\.0\.0\.1:(\d+)/v1) \(model: scripted", line)
        assert match, line + proc.stderr.read() if proc.poll() is not None else line
        client = OpenAI(base_url=match.group(1), api_key="x", max_retries=2)
        asst = client.beta.assistants.create(model="m")
        thread = client.beta.threads.create(messages=[{"role": "user", "content": "ping"}])
        run = wait_on_run(
            client, client.beta.threads.runs.create(thread_id=thread.id, assistant_id=asst.id)
        )
        assert run.status == "completed"
    finally:
        proc.terminate()
        proc.wait(10)


def test_orch_serve_refuses_public_bind_without_key(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if k != "ORCH_ENGINE_API_KEY"}
    res = subprocess.run(
        [
            sys.executable,
            "-m",
            "orch",
            "serve",
            "--host",
            "0.0.0.0",
            "--port",
            "0",
            "--db",
            str(tmp_path / "e.db"),
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert res.returncode == 2
    assert "refusing to listen on 0.0.0.0" in res.stderr + res.stdout
