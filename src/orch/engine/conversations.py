"""Conversations: an ordered, durable list of items that responses read and append to."""

from __future__ import annotations

from typing import Any

from orch.engine.errors import not_found
from orch.engine.store import Store, child_key, new_object


class Conversations:
    """Creates conversations and stores their items."""

    def __init__(self, store: Store):
        self.store = store

    def create(
        self, items: list[dict[str, Any]], metadata: dict[str, str] | None
    ) -> dict[str, Any]:
        """Store a conversation with its first items."""
        conversation = new_object("conversation", metadata=metadata or {})
        self.store.insert("conversation", conversation)
        self.append(conversation["id"], items)
        return conversation

    def get(self, conversation_id: str, param: str | None = None) -> dict[str, Any]:
        """The conversation or a 404."""
        conversation = self.store.get("conversation", conversation_id)
        if conversation is None:
            raise not_found("conversation", conversation_id, param)
        return conversation

    def append(self, conversation_id: str, items: list[dict[str, Any]]) -> None:
        """Add items at the end of a conversation."""
        for item in items:
            key = child_key(conversation_id, item["id"])
            self.store.insert("conversation_item", item, parent=conversation_id, key=key)

    def items(self, conversation_id: str) -> list[dict[str, Any]]:
        """Every item of a conversation, oldest first."""
        return self.store.all("conversation_item", conversation_id)

    def remove(self, conversation_id: str, item_id: str) -> None:
        """Forget one item of a conversation."""
        self.store.delete(child_key(conversation_id, item_id))

    def delete(self, conversation_id: str) -> None:
        """Forget a conversation and its items."""
        self.store.delete_children("conversation_item", conversation_id)
        self.store.delete(conversation_id)
