"""``orch view``: a read-only web viewer over a project's run history, served on loopback.

:mod:`~orch.results.viewer.store` reads ``.orch/`` without writing it,
:mod:`~orch.results.viewer.pages` turns runs into page data (the pass-rate charts included),
:mod:`~orch.results.viewer.app` serves them through the templates of ``templates/``.
"""
