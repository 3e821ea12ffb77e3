"""Jinja for orch: the one place its environments are made, and the compiled-template cache.

Every template orch renders (instructions, prompts, attachments, assertion values, report
templates and output paths) uses an environment from :func:`environment`, so they agree on the
basics: ``StrictUndefined`` (a typo is an error, never an empty string) and the template's own
trailing newline kept.

:data:`STRICT` is that environment with nothing changed; :func:`render` renders text with it (or
another environment), compiling each distinct text once. Report templates are checked here,
before any run exists to render them, with the loader and the filter names
:mod:`orch.results.reports` renders them with (:func:`report_loader`, :data:`REPORT_FILTERS`).
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jinja2

#: Where the ``builtin:*`` report templates live; report templates name them ``builtin/<file>``.
BUILTIN_REPORTS = Path(__file__).parent / "results" / "templates"

#: The filters orch adds for report templates, implemented by :mod:`orch.results.reports`.
#: Jinja refuses an unknown filter when it compiles a template, so checking a report template
#: needs their names, though not their code.
REPORT_FILTERS = (
    "duration",
    "timestamp",
    "usd",
    "percent",
    "md",
    "to_json",
    "xml_text",
    "data_uri",
)


def environment(**overrides: Any) -> jinja2.Environment:
    """A new Jinja environment with orch's settings, changed by ``overrides``.

    The settings are ``undefined=StrictUndefined`` and ``keep_trailing_newline=True``; any
    keyword of :class:`jinja2.Environment` may be given to change or add to them.
    """
    settings: dict[str, Any] = {
        "undefined": jinja2.StrictUndefined,
        "keep_trailing_newline": True,
        **overrides,
    }
    return jinja2.Environment(**settings)


#: orch's settings, unchanged: what prompts, instructions and attachment paths render with.
STRICT = environment()


@functools.lru_cache(maxsize=2048)
def compile_text(text: str, env: jinja2.Environment = STRICT) -> jinja2.Template:
    """``text`` compiled in ``env``, once per distinct pair (raises TemplateSyntaxError)."""
    # compiling is most of a render's cost; every item renders the same few templates
    return env.from_string(text)


def render(text: str, context: dict[str, Any], env: jinja2.Environment = STRICT) -> str:
    """Render the template ``text`` over ``context`` (raises jinja2.TemplateError on mistakes)."""
    return compile_text(text, env).render(**context)


def report_loader(root: Path) -> jinja2.BaseLoader:
    """Report templates by name: ``builtin/<file>`` are orch's own, any other is under ``root``."""
    return jinja2.ChoiceLoader(
        [
            jinja2.PrefixLoader({"builtin": jinja2.FileSystemLoader(BUILTIN_REPORTS)}),
            jinja2.FileSystemLoader(root),
        ]
    )


def check_report_template(root: Path, rel: str) -> str | None:
    """Compile (not render) the report template ``rel`` of the project at ``root``.

    Returns what is wrong (not found, a syntax error or unknown filter, with ``rel:line``), or
    None. What remains to go wrong is only what the run's data decides (an undefined key).
    """
    env = environment(loader=report_loader(root))
    env.filters.update(dict.fromkeys(REPORT_FILTERS, _compile_only))
    try:
        env.get_template(Path(rel).as_posix())
    except jinja2.TemplateNotFound:
        return f"template not found: {rel}"
    except jinja2.TemplateSyntaxError as exc:
        return f"template error in {rel}:{exc.lineno}: {exc.message}"
    return None


def _compile_only(*_args: Any, **_kwargs: Any) -> Any:
    # The checking environment compiles and never renders, so its filters are never called.
    raise NotImplementedError("report filters run only in orch.results.reports")
