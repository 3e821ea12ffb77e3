"""A hosted environment's ``files``: uploaded (``file_id``) or inline, recorded in the session's
environment as the SDK's ``HostedEnvironmentFile`` and placed where the session's code runs."""

from __future__ import annotations

import base64
import json
from typing import Any

import openai
import pytest
from openai.types.beta import HostedEnvironmentFile
from pydantic import TypeAdapter

from orch.engine.server import EngineHandle, start_engine

from .test_agents import settle
from .test_agents_wire import Recorder, check_recorded, sdk_client

SCRIPT = {
    "name": "agents-files",
    "rules": [
        {
            "when": {"contains": "read"},
            "code_interpreter": {
                "input": "{% for f in files %}print(open({{ f | tojson }}).read().strip())\n"
                "{% endfor %}"
            },
            "reply": "Files: {{ files | join(', ') }}\n{{ code.logs }}",
        },
    ],
}
AGENT = {"model": "gpt-5"}
FILE = TypeAdapter(HostedEnvironmentFile)


@pytest.fixture(scope="module")
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> EngineHandle:
    db = tmp_path_factory.mktemp("agent-files") / "engine.db"
    with start_engine(db, script=SCRIPT, poll_after_ms=20) as handle:
        yield handle


@pytest.fixture(scope="module")
def client(engine: EngineHandle, recorder: Recorder) -> openai.OpenAI:
    return sdk_client(engine.base_url, recorder)


@pytest.fixture(autouse=True)
def wire(recorder: Recorder):
    recorder.take()
    yield
    assert check_recorded(recorder) > 0


@pytest.fixture
def upload(client: openai.OpenAI) -> Any:
    return client.files.create(
        file=("sales.csv", b"region,revenue\nnorth,2400\n"), purpose="user_data"
    )


def hosted(*files: dict[str, Any]) -> dict[str, Any]:
    return {"type": "openai_hosted", "files": list(files)}


def inline(path: str, data: bytes) -> dict[str, Any]:
    return {"type": "inline", "path": path, "data": base64.b64encode(data).decode()}


def last_reply(client: openai.OpenAI, session_id: str) -> str:
    items = client.beta.agents.sessions.items.list(session_id, order="asc")
    messages = [i for i in items if i.type == "message" and i.role == "assistant"]
    return "".join(c.text for c in messages[-1].content)


def test_files_are_recorded_and_placed_where_the_code_runs(client: openai.OpenAI, upload):
    environment = hosted(
        {"type": "file_id", "file_id": upload.id, "path": "/workspace/sales.csv"},
        inline("/workspace/notes.txt", b"hello from inline"),
    )
    session = client.beta.agents.sessions.create(
        environment=environment, agent=AGENT, input="read the files"
    )
    by_id, by_data = session.environment.files
    assert (by_id.type, by_id.file_id, by_id.size_bytes) == ("file_id", upload.id, upload.bytes)
    assert (by_data.type, by_data.size_bytes) == ("inline", len(b"hello from inline"))
    assert by_id.path.endswith("/sales.csv") and by_data.path.endswith("/notes.txt")
    assert by_id.id != by_data.id
    raw = json.loads(client.beta.agents.sessions.with_raw_response.retrieve(session.id).text)
    for record in raw["environment"]["files"]:
        FILE.validate_python(record)
        assert "data" not in record  # without their contents
    assert raw["environment"]["files"] == [f.model_dump() for f in session.environment.files]

    assert settle(client, session.id).status == "idle"
    reply = last_reply(client, session.id)
    # the model is told the recorded paths, and the code finds the contents there
    assert f"Files: {by_id.path}, {by_data.path}\n" in reply
    assert "region,revenue\nnorth,2400" in reply and "hello from inline" in reply

    # the upload was copied: deleting it leaves the session its file
    client.files.delete(upload.id)
    client.beta.agents.sessions.events.create(
        session.id,
        events=[
            {
                "type": "agent.session.input.message",
                "input": [{"role": "user", "content": [{"type": "input_text", "text": "read"}]}],
            }
        ],
    )
    assert settle(client, session.id).status == "idle"
    assert "north,2400" in last_reply(client, session.id)
    client.beta.agents.sessions.delete(session.id)


def test_no_files_is_an_empty_list(client: openai.OpenAI):
    session = client.beta.agents.sessions.create(
        environment={"type": "openai_hosted", "files": None}, agent=AGENT, input="hi"
    )
    assert session.environment.files == []
    client.beta.agents.sessions.delete(session.id)


@pytest.mark.parametrize(
    ("files", "param"),
    [
        ([inline("/tmp/x.txt", b"x")], "environment.files[0].path"),
        ([inline("/workspace/sub/x.txt", b"x")], "environment.files[0].path"),
        ([inline("/workspace/.hidden", b"x")], "environment.files[0].path"),
        ([inline("/workspace/", b"x")], "environment.files[0].path"),
        (
            [{"type": "inline", "path": "/workspace/x", "data": "not base64!"}],
            "environment.files[0].data",
        ),
        ([inline("/workspace/a", b"1"), inline("/workspace/a", b"2")], "environment.files[1].path"),
        ([{"type": "url", "path": "/workspace/x"}], "environment.files[0].type"),
        ([{"type": "inline", "path": "/workspace/x"}], "environment.files[0].data"),
        ([{**inline("/workspace/x", b"x"), "mode": "0644"}], "environment.files[0].mode"),
        ("not a list", "environment.files"),
    ],
)
def test_files_the_engine_cannot_place_are_refused(client: openai.OpenAI, files: Any, param: str):
    with pytest.raises(openai.BadRequestError) as err:
        client.beta.agents.sessions.create(
            environment={"type": "openai_hosted", "files": files}, agent=AGENT, input="hi"
        )
    assert err.value.body["param"] == param


def test_an_unknown_file_id_is_not_found(client: openai.OpenAI):
    entry = {"type": "file_id", "file_id": "file-missing", "path": "/workspace/x.csv"}
    with pytest.raises(openai.NotFoundError) as err:
        client.beta.agents.sessions.create(environment=hosted(entry), agent=AGENT, input="hi")
    assert err.value.body["param"] == "environment.files[0].file_id"
