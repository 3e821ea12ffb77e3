"""HTTP routes of the engine, one module per resource, gathered by :func:`all_routes`."""

from __future__ import annotations

from starlette.routing import Route


def all_routes() -> list[Route]:
    """Every ``/v1`` route of the engine."""
    from orch.engine.routes import (
        agents,
        assistants,
        batches,
        containers,
        conversations,
        embeddings,
        files,
        messages,
        responses,
        runs,
        threads,
        vector_stores,
    )

    return [
        *files.ROUTES,
        *assistants.ROUTES,
        *runs.ROUTES,  # before threads: "/threads/runs" must win over "/threads/{thread_id}"
        *threads.ROUTES,
        *messages.ROUTES,
        *vector_stores.ROUTES,
        *responses.ROUTES,
        *conversations.ROUTES,
        *containers.ROUTES,
        *agents.ROUTES,
        *batches.ROUTES,
        *embeddings.ROUTES,
    ]
