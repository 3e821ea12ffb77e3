"""`orch init` from an installed wheel, not the repository: the package data must be in it.

The wheel is built offline (hatchling from the project venv, no build isolation) and installed
without dependencies into a fresh venv; the project venv's site-packages is appended to that
venv's path for the dependencies (a ``.pth`` line, after the venv's own site-packages, so the
installed ``orch`` wins over the editable one). Then, in an empty directory outside the
repository: ``orch init``, ``orch validate``, ``orch run``. About 10 s; set ORCH_SKIP_WHEEL=1 to
skip it, and it skips itself when hatchling is not installed (``pip install -e '.[dev]'``).
"""

from __future__ import annotations

import importlib.util
import json
import os
import site
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [
    pytest.mark.skipif(
        os.environ.get("ORCH_SKIP_WHEEL") == "1", reason="ORCH_SKIP_WHEEL=1: no wheel build"
    ),
    pytest.mark.skipif(
        importlib.util.find_spec("hatchling") is None,
        reason="hatchling is not installed: the wheel cannot be built offline",
    ),
]


def sh(*args: str | Path, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess:
    """Run a command; its output in the assertion message when it fails."""
    done = subprocess.run(
        [str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"{args}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def installed_venv(tmp_path: Path, env: dict[str, str]) -> Path:
    """A fresh venv holding orch from a wheel built now, with the project venv's deps."""
    wheels, venv = tmp_path / "wheels", tmp_path / "venv"
    sh(
        sys.executable,
        "-m",
        "pip",
        "wheel",
        "--no-deps",
        "--no-build-isolation",
        "-q",
        "-w",
        wheels,
        ROOT,
        cwd=tmp_path,
        env=env,
    )
    [wheel] = wheels.glob("orch-*.whl")
    sh(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path, env=env)
    purelib = sh(
        venv / "bin" / "python",
        "-c",
        "import sysconfig; print(sysconfig.get_path('purelib'))",
        cwd=tmp_path,
        env=env,
    ).stdout.strip()
    Path(purelib, "project-deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    sh(
        sys.executable,
        "-m",
        "pip",
        "--python",
        venv / "bin" / "python",
        "install",
        "-q",
        "--no-deps",
        "--no-index",
        wheel,
        cwd=tmp_path,
        env=env,
    )
    return venv


def test_init_validate_run_from_an_installed_wheel(tmp_path: Path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "ORCH_"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    venv = installed_venv(tmp_path, env)
    orch = venv / "bin" / "orch"
    where = sh(
        venv / "bin" / "python", "-c", "import orch; print(orch.__file__)", cwd=tmp_path, env=env
    ).stdout
    assert Path(where.strip()).is_relative_to(venv), where  # the wheel's orch, not the repo's

    project = tmp_path / "fresh"
    project.mkdir()
    created = sh(orch, "init", cwd=project, env=env)
    assert "orch run capitals" in created.stdout
    for name in ("orch", "assistant", "pipeline", "script"):
        assert (project / "schemas" / f"{name}.schema.json").is_file()
    assert "valid" in sh(orch, "validate", cwd=project, env=env).stdout
    ran = sh(orch, "run", "capitals", cwd=project, env=env)
    assert "PASSED" in ran.stdout and "REHEARSAL" in ran.stdout
    [run_json] = (project / ".orch" / "runs").glob("*/run.json")
    assert json.loads(run_json.read_text())["scripted"] is True
    assert not ROOT.joinpath("fresh").exists()
