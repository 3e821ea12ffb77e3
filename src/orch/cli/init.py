"""``orch init [DIR]``: a new project that validates and runs, offline, right away.

The starter files are package data next to this module (``starter/``); the JSON Schemas that
ship with orch are copied into the project's ``schemas/``, so the ``$schema`` lines at the top of
every file resolve wherever the project lives (no path into a virtualenv or this repository).
Existing files are never overwritten without ``--force``: the command lists them and exits 2.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import click

from orch.errors import UsageError

STARTER = "starter"  # the package folder holding the starter files
PROJECT_NAME = re.compile(r"[^A-Za-z0-9_.-]+")  # what orch.schema.json's `project` refuses

#: starter file → where it goes in the new project (``gitignore`` is not hidden in the wheel)
FILES = {
    "orch.yml": "orch.yml",
    "gitignore": ".gitignore",
    "assistants/geography-tutor.yml": "assistants/geography-tutor.yml",
    "pipelines/capitals.yml": "pipelines/capitals.yml",
    "scripts/rehearsal.yml": "scripts/rehearsal.yml",
}


@dataclass(frozen=True)
class StarterFile:
    """One file ``orch init`` writes: its path relative to the project and its content."""

    path: str
    content: bytes


@click.command()
@click.argument(
    "directory",
    required=False,
    default=".",
    type=click.Path(file_okay=False, path_type=Path),
)
@click.option("--force", is_flag=True, help="Overwrite files that already exist.")
def init(directory: Path, force: bool) -> int:
    """Create a project in DIRECTORY (default: here) that runs offline right away.

    Writes orch.yml, one assistant, one pipeline with expectations, the scripted model's rules
    that answer it (a rehearsal: no AI, no network), a .gitignore for .orch/ and out/, and
    orch's JSON Schemas in schemas/ (the files' `$schema` lines point there). Refuses to
    overwrite an existing file (exit 2, naming them) unless --force.

    \b
    Examples:
      orch init my-evals && cd my-evals && orch run capitals
      orch init --force          rewrite the starter files here
    """
    written = create_project(directory, force)
    click.echo(f"Created an orch project in {directory}: {len(written)} files.")
    for line in next_steps(directory):
        click.echo(line)
    return 0


def starter_files(project: str) -> list[StarterFile]:
    """Every file of a new project named ``project``, schemas included, in writing order."""
    from orch.project.schemas import SCHEMA_NAMES, schema_dir

    folder = resources.files("orch.cli") / STARTER
    files = []
    for source, dest in FILES.items():
        text = folder.joinpath(*source.split("/")).read_text(encoding="utf-8")
        if source == "orch.yml":
            text = text.replace("{project}", project)
        files.append(StarterFile(dest, text.encode("utf-8")))
    for name in SCHEMA_NAMES:
        schema = schema_dir() / f"{name}.schema.json"
        files.append(StarterFile(f"schemas/{schema.name}", schema.read_bytes()))
    return files


def project_name(directory: Path) -> str:
    """A valid ``project:`` for orch.yml from the directory's name (``my evals`` → ``my-evals``)."""
    name = PROJECT_NAME.sub("-", directory.resolve().name).strip("-._")[:64]
    return name or "my-project"


def create_project(directory: Path, force: bool) -> list[Path]:
    """Write the starter files into ``directory`` (created if needed); the paths written.

    Raises UsageError (exit 2), writing nothing, when any of them exists and ``force`` is not
    set, or when one of them is a directory.
    """
    files = starter_files(project_name(directory))
    targets = [directory / f.path for f in files]
    clash = [p for p in targets if p.exists() or p.is_symlink()]
    if any(p.is_dir() for p in clash):
        raise UsageError(f"{next(p for p in clash if p.is_dir())} is a directory; move it away")
    if clash and not force:
        names = ", ".join(str(p.relative_to(directory)) for p in clash)
        raise UsageError(
            f"not overwriting {names} in {directory} (--force overwrites); nothing written"
        )
    for starter, path in zip(files, targets, strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        if path.is_symlink():  # replace the link itself, never the file it points to
            path.unlink()
        path.write_bytes(starter.content)
    return targets


def next_steps(directory: Path) -> list[str]:
    """What to type next, from the directory the user is in."""
    here = Path.cwd().resolve() == directory.resolve()
    cd = [] if here else [f"  cd {directory}"]
    return [
        "",
        "Next steps:",
        *cd,
        "  orch validate           check every file (schemas, assistants, pipelines)",
        "  orch run capitals       run the pipeline: a rehearsal on the scripted model",
        "  orch show               the latest run: each item's prompt, reply and checks",
        "",
        "The scripted model answers from scripts/rehearsal.yml, not an AI. To evaluate a real",
        "model, edit the targets in orch.yml and run `orch run capitals --target local-llm`",
        "(or `--target openai` with OPENAI_API_KEY set).",
    ]
