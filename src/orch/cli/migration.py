"""``orch import-eval``: an OpenAI eval (and a run of it) as an assistant, a pipeline and items.

The command's body imports what it uses when it runs: loading the CLI must stay cheap.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import click

from orch.errors import UsageError

if TYPE_CHECKING:
    from orch.evals.openai_evals import Conversion

_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.command("import-eval")
@click.argument("eval_file", metavar="EVAL.json", type=_FILE)
@click.option(
    "--runs",
    "run_file",
    metavar="RUN.json",
    type=_FILE,
    help="A run of the eval (client.evals.runs.retrieve as JSON, or runs.list: the newest "
    "run): its model, sampling parameters and input-message template, and its items when "
    "they are inline.",
)
@click.option(
    "--data",
    "data_file",
    metavar="ITEMS.jsonl",
    type=_FILE,
    help='The eval\'s data: one {"item": {...}} per line (the file you uploaded to OpenAI).',
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Project folder to write into (default: this project's root).",
)
@click.option("--force", is_flag=True, help="Overwrite files that exist.")
def import_eval(eval_file: Path, run_file, data_file, out, force) -> int:
    """Turn an OpenAI eval definition into an orch pipeline, assistant and items file.

    EVAL.json is what `client.evals.retrieve(id)` returns (save it with
    `.model_dump_json()`), or the JSON you pass to `client.evals.create`. Its testing
    criteria become `grader:` assertions unchanged; a run gives the model, the prompt
    template and sampling settings. Written (relative to --out):

    \b
      assistants/<name>.yml           model, instructions, temperature, ...
      pipelines/<name>.yml            one step: the template's user message + graders
      pipelines/data/<name>.jsonl     the items

    Whatever has no orch equivalent is listed with the reason; nothing is dropped silently.

    \b
    Examples:
      orch import-eval support-eval.json --runs run.json
      orch import-eval support-eval.json --runs run.json --data items.jsonl --out evals/
    """
    from orch.evals.openai_evals import convert, parse_eval, parse_run, read_data, read_json
    from orch.project.loading import find_root

    evaluation = parse_eval(read_json(eval_file), str(eval_file))
    source = parse_run(read_json(run_file), str(run_file)) if run_file else None
    rows = read_data(data_file) if data_file else None
    conversion = convert(evaluation, source, rows)
    root = out if out is not None else find_root()
    written = write_conversion(conversion, root, eval_file, force)
    for path in written:
        click.echo(f"wrote {path}")
    for note in conversion.skipped:
        click.echo(f"  not mapped: {note}")
    pipeline = written[1].relative_to(root)
    click.echo(f"next: orch validate && orch run {pipeline} --target <your target>")
    return 0


def write_conversion(conversion: Conversion, root: Path, source: Path, force: bool) -> list[Path]:
    """Write the three files under ``root``; all of them or none (existing ones need ``force``)."""
    from orch.results.files import cannot_write, write_atomic

    slug = conversion.slug
    files = {
        root / "assistants" / f"{slug}.yml": _yaml("assistant", conversion.assistant, source),
        root / "pipelines" / f"{slug}.yml": _yaml("pipeline", conversion.pipeline, source),
        root / "pipelines" / "data" / f"{slug}.jsonl": "".join(
            json.dumps(item, ensure_ascii=False) + "\n" for item in conversion.items
        ),
    }
    existing = [path for path in files if path.exists()]
    if existing and not force:
        names = ", ".join(str(path) for path in existing)
        raise UsageError(f"{names} exists; pass --force to overwrite")
    done: list[Path] = []
    for path, text in files.items():
        try:
            write_atomic(path, text)
        except OSError as exc:
            for earlier in done:  # all or nothing: a half import is worse than none
                if earlier not in existing:
                    earlier.unlink(missing_ok=True)
            raise UsageError(cannot_write(path, exc)) from exc
        done.append(path)
    return done


def _yaml(kind: str, data: dict, source: Path) -> str:
    from orch.sync.importing import dump_yaml

    header = (
        f"# yaml-language-server: $schema=../schemas/{kind}.schema.json\n"
        f"# Imported by `orch import-eval` from {source.name}.\n"
    )
    return header + dump_yaml(data)
