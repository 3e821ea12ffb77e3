"""The Conversations API against the engine, through the unchanged SDK over real HTTP."""

from __future__ import annotations

import httpx2
import openai
import pytest
from openai import OpenAI
from openai.types.conversations import Conversation, ConversationItem
from pydantic import TypeAdapter

ITEM = TypeAdapter(ConversationItem)


def test_conversation_crud(client: OpenAI):
    conv = client.conversations.create(
        items=[{"role": "user", "content": "hello"}], metadata={"topic": "demo"}
    )
    Conversation.model_validate(conv.model_dump())
    assert conv.id.startswith("conv_") and conv.metadata == {"topic": "demo"}
    assert client.conversations.retrieve(conv.id).created_at == conv.created_at

    updated = client.conversations.update(conv.id, metadata={"topic": "other"})
    assert updated.metadata == {"topic": "other"}
    assert client.conversations.retrieve(conv.id).metadata == {"topic": "other"}

    gone = client.conversations.delete(conv.id)
    assert gone.deleted and gone.id == conv.id and gone.object == "conversation.deleted"
    with pytest.raises(openai.NotFoundError):
        client.conversations.retrieve(conv.id)
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.list(conv.id)


def test_items_create_list_paginate_retrieve_delete(client: OpenAI):
    conv = client.conversations.create()
    added = client.conversations.items.create(
        conv.id,
        items=[
            {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "a"}]},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": "c"},
            {"role": "developer", "content": "d"},
            {"role": "user", "content": "e"},
        ],
    )
    assert len(added.data) == 5 and added.has_more is False
    for item in added.data:
        ITEM.validate_python(item.model_dump(exclude_none=True))
    assert added.data[1].content[0].type == "output_text"

    first = client.conversations.items.list(conv.id, limit=2)  # newest first by default
    assert [i.content[0].text for i in first.data] == ["e", "d"] and first.has_more
    second = client.conversations.items.list(conv.id, limit=2, after=first.last_id)
    assert [i.content[0].text for i in second.data] == ["c", "b"]
    everything = client.conversations.items.list(conv.id, order="asc", limit=2)
    assert [i.content[0].text for i in everything] == ["a", "b", "c", "d", "e"]  # auto-paging

    target = added.data[2]
    assert client.conversations.items.retrieve(target.id, conversation_id=conv.id).id == target.id
    after_delete = client.conversations.items.delete(target.id, conversation_id=conv.id)
    assert after_delete.id == conv.id and after_delete.object == "conversation"
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.retrieve(target.id, conversation_id=conv.id)
    left = client.conversations.items.list(conv.id, order="asc")
    assert [i.content[0].text for i in left.data] == ["a", "b", "d", "e"]


def test_responses_append_to_the_conversation(client: OpenAI):
    conv = client.conversations.create(items=[{"role": "user", "content": "My name is Ada."}])
    first = client.responses.create(model="gpt-4o", input="hi", conversation=conv.id)
    assert first.conversation.id == conv.id
    second = client.responses.create(model="gpt-4o", input="again", conversation={"id": conv.id})
    assert second.usage.input_tokens > first.usage.input_tokens  # it saw the earlier turns
    items = client.conversations.items.list(conv.id, order="asc")
    texts = [(i.role, i.content[0].text) for i in items.data]
    assert texts == [
        ("user", "My name is Ada."),
        ("user", "hi"),
        ("assistant", first.output_text),
        ("user", "again"),
        ("assistant", second.output_text),
    ]
    assert items.data[2].id == first.output[0].id
    # An item the conversation already holds cannot be sent again.
    with pytest.raises(openai.BadRequestError, match="Duplicate item"):
        client.responses.create(
            model="gpt-4o",
            input=[{"type": "message", "id": items.data[1].id, "role": "user", "content": "x"}],
            conversation=conv.id,
        )


def test_conversation_errors(engine, client: OpenAI):
    url = engine.base_url + "/conversations"
    too_many = {"items": [{"role": "user", "content": str(i)} for i in range(21)]}
    cases = [
        (too_many, "items"),
        ({"metadata": {"k" * 65: "v"}}, "metadata.{}".format("k" * 65)),
        (
            {"items": [{"role": "user", "content": [{"type": "input_audio"}]}]},
            "items[0].content[0].type",
        ),
        ({"nope": 1}, "nope"),
    ]
    for body, param in cases:
        r = httpx2.post(url, json=body, timeout=10)
        assert r.status_code == 400, body
        assert r.json()["error"]["param"] == param
    conv = client.conversations.create()
    with pytest.raises(openai.BadRequestError):
        client.conversations.items.create(conv.id, items=[])
    with pytest.raises(openai.BadRequestError):
        client.conversations.update(conv.id, metadata={str(i): "v" for i in range(17)})
    with pytest.raises(openai.NotFoundError):
        client.conversations.items.retrieve("msg_nope", conversation_id=conv.id)
    with pytest.raises(openai.NotFoundError):
        client.conversations.update("conv_nope", metadata={})
    engine.reset_stats()
    client.conversations.retrieve(conv.id)
    assert engine.stats() == {"GET /v1/conversations/{conversation_id}": 1}
