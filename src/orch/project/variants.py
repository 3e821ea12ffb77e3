"""A pipeline's ``variants:``: each a name plus overrides of the assistant its steps talk to.

A variant that only names another ``assistant:`` runs that declared assistant. A variant that
overrides a field (``model``, ``instructions``, ``temperature``, ``top_p``,
``response_format``, ``max_tokens``) runs a *derived* assistant: the declared one (or the one
its ``assistant:`` names) with those fields replaced, called ``<assistant>--<variant>`` and
tagged ``orch_variant: <variant>``. Sync keeps a derived assistant like a declared one: one
remote assistant per variant on targets that hold assistants (named and tagged as orch's own,
so ``orch plan`` and ``orch prune`` stay exact), a local definition sent with each request on
the Responses kind. Two pipelines may derive the same name only with the same overrides.

Precedence, most specific first: a step's own settings (``max_tokens``, ``instructions``, its
``assistant:``), then the variant's overrides, then the assistant's YAML.
"""

from __future__ import annotations

import difflib
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from orch.errors import Problem, UsageError
from orch.project.model import Assistant, Pipeline, Variant
from orch.targets import registry

if TYPE_CHECKING:
    from orch.project.checks import Checker

#: the assistant fields a variant may override (``assistant`` switches the whole assistant)
FIELDS = ("model", "instructions", "temperature", "top_p", "response_format", "max_tokens")
#: the metadata key naming the variant on a derived assistant (``orch_`` keys are orch's own)
META_VARIANT = "orch_variant"
#: between the assistant's and the variant's name in a derived assistant's name
SEPARATOR = "--"
_NAME_LIMIT = 64


def derived_name(assistant: str, variant: str) -> str:
    """The name of the assistant ``variant`` derives from ``assistant``."""
    return f"{assistant}{SEPARATOR}{variant}"


def check_variants(
    checker: Checker, specs: list[dict], pipeline_assistant: str, assistants: dict, settings: dict
) -> tuple[tuple[Variant, ...], tuple[tuple[str, Assistant], ...]]:
    """The ``variants`` entries of a pipeline document, and the assistants they derive.

    Problems (a duplicate name, an unknown ``assistant:``, a derived name too long or taken,
    a field a target kind refuses) are reported through ``checker`` at the variant's line.
    """
    variants: list[Variant] = []
    derived: dict[str, Assistant] = {}
    seen: dict[str, int] = {}
    for i, spec in enumerate(specs):
        name = spec["name"]
        if name in seen:
            checker.problem(
                ("variants", i, "name"),
                f"variant {name!r} is already declared by variants[{seen[name]}]",
            )
            continue
        seen[name] = i
        base_name = spec.get("assistant") or pipeline_assistant
        if "assistant" in spec:
            checker.known_assistant(("variants", i, "assistant"), base_name, assistants)
        overrides = {k: spec[k] for k in FIELDS if k in spec}
        base = assistants.get(base_name)
        runs = base_name
        if overrides and base is not None:
            assistant = _derive(checker, i, base, name, overrides, assistants, settings)
            if assistant is not None:
                runs = assistant.name
                derived[assistant.name] = assistant
        declared = tuple((k, spec[k]) for k in ("assistant", *FIELDS) if k in spec)
        variants.append(Variant(name=name, assistant=runs, overrides=declared))
    return tuple(variants), tuple(sorted(derived.items()))


def _derive(
    checker: Checker,
    i: int,
    base: Assistant,
    variant: str,
    overrides: dict[str, Any],
    assistants: dict,
    settings: dict,
) -> Assistant | None:
    """``base`` with ``overrides``, named and tagged as ``variant``'s; None after problems."""
    here = ("variants", i)
    name = derived_name(base.name, variant)
    if len(name) > _NAME_LIMIT:
        checker.problem(
            (*here, "name"),
            f"the variant's assistant {name!r} would be longer than {_NAME_LIMIT} characters "
            "(its assistant's name, '--', its name): shorten the variant's name",
        )
        return None
    if name in assistants or name in checker.loader.declared_assistants:
        checker.problem(
            (*here, "name"), f"the variant's assistant {name!r} is already a declared assistant"
        )
        return None
    fields = dict(overrides)
    if "instructions" in fields:
        context = None if checker.loader.config_broken else dict(settings.get("vars") or {})
        fields["instructions"] = checker.template(
            (*here, "instructions"), fields["instructions"], context
        )
    response_format = fields.get("response_format")
    if isinstance(response_format, dict) and response_format.get("type") == "json_schema":
        checker.json_schema(
            (*here, "response_format", "json_schema", "schema"),
            response_format["json_schema"]["schema"],
        )
    metadata = tuple(sorted({**dict(base.metadata), META_VARIANT: variant}.items()))
    assistant = replace(base, name=name, source=checker.doc.display, metadata=metadata, **fields)
    assistant = replace(assistant, refusals=_refusals(checker, here, base, assistant, set(fields)))
    _claim(checker, here, assistant)
    return assistant


def _refusals(
    checker: Checker, here: tuple, base: Assistant, derived: Assistant, overridden: set[str]
) -> tuple[tuple[str, tuple[Problem, ...]], ...]:
    """Per target kind, what it refuses of ``derived``.

    The base's own refusals where the variant keeps the field (located in the base's YAML);
    the rest at the variant's line.
    """
    found = []
    for kind in registry.ruled():
        kept = [p for p in base.refused_by(kind) if p.field.split(".")[0] not in overridden]
        known = {p.field.split(".")[0] for p in kept}
        own = [
            checker.doc.problem(
                (*here, path[0]) if path[0] in overridden else (*here, "name"),
                f"a target of kind {kind} has no place for it: {why}",
            )
            for path, why in registry.refusals(kind, derived)
            if path[0] in overridden or path[0] not in known
        ]
        if kept or own:
            found.append((kind, (*kept, *own)))
    return tuple(found)


def _claim(checker: Checker, here: tuple, assistant: Assistant) -> None:
    """Two pipelines may derive one name only when it means the same assistant."""
    claimed = checker.loader.derived_assistants
    earlier = claimed.get(assistant.name)
    if earlier is not None and earlier[0] != assistant.fingerprint():
        checker.problem(
            (*here, "name"),
            f"the variant's assistant {assistant.name!r} is derived differently by {earlier[1]}; "
            "name the variant differently, or give both the same overrides",
        )
        return
    claimed.setdefault(assistant.name, (assistant.fingerprint(), checker.doc.display))


def choose_variants(pipeline: Pipeline, names: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """The variants ``--variant`` asks for, in declaration order; all when none is named.

    UsageError (with a did-you-mean) for a name the pipeline does not declare, or when it
    declares no variants at all.
    """
    if not names:
        return tuple(v.name for v in pipeline.variants)
    declared = [v.name for v in pipeline.variants]
    if not declared:
        raise UsageError(
            f"--variant: pipeline {pipeline.name!r} declares no variants ({pipeline.source})"
        )
    for name in names:
        if name not in declared:
            close = difflib.get_close_matches(name, declared, n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            raise UsageError(
                f"--variant {name!r}: pipeline {pipeline.name!r} has no such variant "
                f"({hint}declared: {', '.join(declared)})"
            )
    return tuple(n for n in declared if n in names)
