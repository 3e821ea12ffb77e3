"""The embedded Assistants-v2 and Responses compatible engine behind ``orch serve``.

``create_app`` (in :mod:`orch.engine.app`) builds the ASGI application; :mod:`orch.engine.server`
runs it, either in the foreground (``serve_forever``) or in a background thread
(``start_engine``), which is how ``orch sync``/``orch run`` and the tests use it. Start-up
problems raise :class:`orch.engine.errors.EngineSetupError`.

The package is a leaf of ``orch`` (it imports nothing else from it) and its modules form
layers, each importing only from the ones below (``tests/engine/test_layout.py`` checks it):

- ``server``, ``app``: running and serving (``app`` holds each response until its writes are
  on disk); ``routes/``: the HTTP endpoints, one module per resource, on ``routes.common``
  (responses, route tables), ``routes.resources`` (find/retrieve/delete/list written once)
  and ``routes.bodies``/``routes.uploads`` (JSON and multipart bodies, within limits).
- ``core``: puts the parts together (:class:`~orch.engine.core.Engine`).
- ``runs`` and ``responding``: the two APIs' executors on ``turns.TurnExecutor`` (one model
  turn per task), writing through ``steps`` and ``outputs``; ``agents/``: the Agents API's
  sessions, whose turns are the executor's third user.
- ``messages``, ``vectors``, ``containers``, ``conversations``, ``files``: the stored
  resources; ``items``, ``params``: request validation; ``models/``: what answers turns.
- ``store`` (SQLite, group-committed by ``commits``), ``sse``, ``retrieval``, ``errors``,
  ``png``, and ``sandbox/`` (the code interpreter: an IPython kernel per thread or container,
  confined by bubblewrap or rlimits): the ground floor.
"""
