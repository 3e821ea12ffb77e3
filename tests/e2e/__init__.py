"""Opt-in end-to-end checks against a real model (``make e2e-llm``); never collected by pytest.

Nothing here imports llama.cpp: the model server runs in its own venv (``.venv-llm``) and is
reached over loopback HTTP, so these modules import with the project's venv alone.
"""
