"""orch: assistants as code.

Declare assistants and prompt pipelines in YAML, reconcile them with a server (`orch sync`),
run pipelines and render reports (`orch run`).
"""

__version__ = "0.1.0"
