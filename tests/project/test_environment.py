"""The project's environment: the process's variables, completed by the project's .env."""

from __future__ import annotations

from pathlib import Path

from orch.project.environment import read_environment


def test_dotenv_fills_only_unset_names(tmp_path: Path):
    (tmp_path / ".env").write_text("SET=from-file\nUNSET=from-file\nBARE\nEMPTY=\n")
    env = read_environment(tmp_path, {"SET": "from-shell"})
    assert env == {"SET": "from-shell", "UNSET": "from-file", "EMPTY": ""}


def test_without_dotenv_it_is_a_copy_of_the_base(tmp_path: Path):
    base = {"A": "1"}
    env = read_environment(tmp_path, base)
    assert env == base and env is not base


def test_the_default_base_is_the_process_environment(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("ORCH_TEST_VARIABLE", "shell")
    (tmp_path / ".env").write_text("ORCH_TEST_VARIABLE=file\nORCH_TEST_OTHER=file\n")
    env = read_environment(tmp_path)
    assert env["ORCH_TEST_VARIABLE"] == "shell" and env["ORCH_TEST_OTHER"] == "file"
