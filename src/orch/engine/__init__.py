"""The embedded Assistants-v2-compatible engine behind ``orch serve``.

``create_app`` (in :mod:`orch.engine.app`) builds the ASGI application; :mod:`orch.engine.server`
runs it, either in the foreground (``serve_forever``) or in a background thread
(``start_engine``), which is how ``orch sync``/``orch run`` and the tests use it.
"""
