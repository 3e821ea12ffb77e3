"""The ``openai-chat`` model: any Chat Completions server answers runs and responses.

Per turn it streams the upstream (:mod:`.stream`): text goes to the client as it comes
(``TurnContext.emit_text``), the run's settings go with every request (:mod:`.prompt`:
``max_completion_tokens`` from the turn's budget, ``response_format``, ``tool_choice``,
``parallel_tool_calls``, ``temperature``, ``top_p``, ``seed`` from ``metadata.seed``), and
a cancelled turn closes the upstream request. Function tools become chat tools and their
calls go to the client (``requires_action``, or ``function_call`` items); ``file_search``
and ``code_interpreter`` are offered as the functions ``file_search`` and ``python`` and
run in the engine (:mod:`.hosted`), as many rounds as the upstream asks for. With an
embeddings model (``ORCH_EMBEDDINGS_MODEL``, served by ``ORCH_EMBEDDINGS_BASE_URL`` or the
chat upstream), file_search ranks hybrid (keyword and embedding).
"""

from orch.engine.models.openai_chat.model import OpenAIChatModel

__all__ = ["OpenAIChatModel"]
