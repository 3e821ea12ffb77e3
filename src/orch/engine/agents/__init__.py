"""The Agents API (beta, ``OpenAI-Beta: agents=v1``): saved agents and their sessions.

A saved agent holds an assistant's settings (model, instructions, function tools, output
format). A session runs an agent, saved or configured inline, in an environment (``none``, or
``openai_hosted``: the engine's code sandbox) and takes input as events: messages start turns,
tool results answer the function calls a turn waits on, a cancel ends what is open. Turns are
model turns like runs and responses (:class:`~orch.engine.turns.TurnExecutor`), written as
session items and announced as live events.

Modules: ``config`` (agent settings), ``environments``, ``inputs`` (what clients send),
``objects`` (sessions, turns, items), ``events`` (live event streams), ``executor`` (turns),
``sessions`` (the component, :class:`AgentSessions`).
"""

from orch.engine.agents.sessions import AgentSessions

__all__ = ["AgentSessions"]
