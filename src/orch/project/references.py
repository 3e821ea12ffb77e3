"""What a pipeline's templates may name, and the names they use that will not be there.

A prompt such as ``{{ item.question }}`` parses fine and fails only when it renders, after the
run has started spending model calls. A :class:`Scope` says what a template of one place in a
pipeline will see when it renders (the items' fields, the steps that have run by then, the
declared vars, orch's own values); :func:`unknown_references` lists, as messages, every name a
template uses that its scope will not hold. :mod:`orch.project.checks` reports them at the
template's line, so ``orch validate`` (and ``orch run``, which loads the project first) catches
them before any model call.

References guarded by ``| default(...)`` or ``is defined`` are not reported: they are meant to
be optional. A ``steps.<id>.output`` is the reply's JSON when it parses, so nothing below
``output`` is checked.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import jinja2
from jinja2 import meta, nodes

from orch import templating
from orch.project.model import Pipeline

#: What orch puts in a step's template context (see orch.run.execution), by top-level name.
ORCH_FIELDS = ("index", "repeat", "key", "run_id", "variant")
STEP_FIELDS = ("output", "text", "tool_calls", "files")
CONTEXT = ("item", "orch", "vars", "steps", "repeat", "run")
RUN_FIELDS = ("id",)
_GUARD_FILTERS = ("default", "d")
_GUARD_TESTS = ("defined", "undefined")


@dataclass(frozen=True)
class Scope:
    """What a template at one place of a pipeline sees when it renders.

    ``item_fields`` is None when the items' fields are unknown (then ``item.*`` is not
    checked); ``item_origin`` says where the fields come from, for messages. ``steps_done``
    are the ids of the steps whose results exist by then, ``steps_later`` the others.
    ``var_names`` is None when orch.yml is broken (its vars unknown).
    """

    item_fields: frozenset[str] | None
    item_origin: str
    steps_done: tuple[str, ...]
    steps_later: tuple[str, ...]
    var_names: frozenset[str] | None


def unknown_references(text: str, scope: Scope, env: jinja2.Environment) -> list[str]:
    """A message for each name ``text`` uses that ``scope`` will not hold when it renders.

    ``text`` must parse in ``env`` (syntax errors are the caller's to report).
    """
    tree = env.parse(text)
    free = meta.find_undeclared_variables(tree)
    guarded = _guarded(tree)
    messages = []
    for name in sorted(free):
        if name not in CONTEXT and name not in env.globals:
            messages.append(_unknown_name(name, scope))
    for root, key, sub in _lookups(tree, free):
        if (root, key) in guarded or (root, key, sub) in guarded:
            continue
        message = _check(root, key, sub, scope)
        if message:
            messages.append(message)
    return list(dict.fromkeys(messages))


def _unknown_name(name: str, scope: Scope) -> str:
    if scope.item_fields and name in scope.item_fields:
        return f"unknown variable {name!r} (did you mean 'item.{name}'?)"
    return f"unknown variable {name!r}{_hint(name, CONTEXT)}"


def _check(root: str, key: str, sub: str | None, scope: Scope) -> str | None:
    """What is wrong with ``root.key`` (``.sub``, for a step's field), or None."""
    if root == "item":
        return _check_item(key, scope)
    if root == "orch" and key not in ORCH_FIELDS:
        return f"orch has no {key!r}{_hint(key, ORCH_FIELDS)} (orch: {', '.join(ORCH_FIELDS)})"
    if root == "run" and key not in RUN_FIELDS:
        return f"run has no {key!r} (run: id)"
    if root == "vars" and scope.var_names is not None and key not in scope.var_names:
        declared = ", ".join(sorted(scope.var_names)) or "none"
        return (
            f"unknown variable vars.{key}{_hint(key, scope.var_names)}: declare it in the "
            f"pipeline's or orch.yml's vars (declared: {declared})"
        )
    if root == "steps":
        return _check_step(key, sub, scope)
    return None


def _check_item(key: str, scope: Scope) -> str | None:
    fields = scope.item_fields
    if fields is None or key in fields:
        return None
    if key in ORCH_FIELDS:
        return f"item has no field {key!r}: orch's own {key} is orch.{key}"
    have = ", ".join(sorted(fields)) or "no fields"
    return f"item has no field {key!r}{_hint(key, fields)} ({scope.item_origin}: {have})"


def _check_step(key: str, sub: str | None, scope: Scope) -> str | None:
    if key in scope.steps_later:
        return f"steps.{key} has not run yet when this renders (steps run in order)"
    if key not in scope.steps_done:
        done = ", ".join(scope.steps_done) or "none"
        hint = _hint(key, scope.steps_done)
        return f"unknown step {key!r}{hint} (steps that have run by then: {done})"
    if sub is not None and sub not in STEP_FIELDS:
        return f"steps.{key} has no {sub!r}{_hint(sub, STEP_FIELDS)} ({', '.join(STEP_FIELDS)})"
    return None


def _hint(name: str, choices) -> str:
    close = difflib.get_close_matches(name, sorted(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _key(node: nodes.Node) -> str | None:
    """The name a ``.attr`` or ``['key']`` lookup reads, or None for anything computed."""
    if isinstance(node, nodes.Getattr):
        return node.attr
    if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
        return node.arg.value if isinstance(node.arg.value, str) else None
    return None


def _lookups(tree: nodes.Template, free: set[str]) -> Iterator[tuple[str, str, str | None]]:
    """(root, key, sub) for each ``root.key`` lookup on a context name (``sub``: one deeper).

    A lookup that is the callee of a call (``item.get('x')``) reads a method, not a field.
    """
    called = {id(call.node) for call in tree.find_all(nodes.Call)}
    outer = {}
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        inner = node.node
        if isinstance(inner, nodes.Getattr | nodes.Getitem):
            outer[id(inner)] = node
    for node in tree.find_all((nodes.Getattr, nodes.Getitem)):
        root = node.node
        if not (isinstance(root, nodes.Name) and root.name in free) or id(node) in called:
            continue
        key = _key(node)
        if key is None:
            continue
        parent = outer.get(id(node))
        sub = _key(parent) if parent is not None and id(parent) not in called else None
        yield root.name, key, sub


def _guarded(tree: nodes.Template) -> set[tuple]:
    """(root, key) and (root, key, sub) of lookups under ``| default`` or ``is defined``."""
    out: set[tuple] = set()
    for node in tree.find_all((nodes.Filter, nodes.Test)):
        kinds = _GUARD_FILTERS if isinstance(node, nodes.Filter) else _GUARD_TESTS
        if node.name not in kinds or node.node is None:
            continue
        chain = []
        target = node.node
        while isinstance(target, nodes.Getattr | nodes.Getitem):
            chain.append(_key(target))
            target = target.node
        if isinstance(target, nodes.Name) and chain and None not in chain:
            chain.reverse()
            out.add((target.name, *chain[:2]))
            out.add((target.name, chain[0]))
    return out


def pipeline_vars(pipeline: Pipeline, declared: Iterable[str]) -> set[str]:
    """The var names ``pipeline`` uses: ``declared`` ones and any ``vars.<name>`` it names.

    What a ``--var`` may set; a name outside it would change nothing (a typo, most likely).
    Guarded references (``vars.x | default(...)``) count: they are meant to be set that way.
    """
    names = set(declared)
    for text in _texts(pipeline):
        if "{{" not in text and "{%" not in text:
            continue
        try:
            tree = templating.STRICT.parse(text)
        except jinja2.TemplateSyntaxError:
            continue  # validate reports it; nothing to learn here
        free = meta.find_undeclared_variables(tree)
        names |= {key for root, key, _sub in _lookups(tree, free) if root == "vars"}
    return names


def _texts(pipeline: Pipeline) -> Iterator[str]:
    """Every template a step of ``pipeline`` renders (prompts, instructions, paths, checks)."""

    def strings(value: Any) -> Iterator[str]:
        if isinstance(value, str):
            yield value
        elif isinstance(value, list | tuple):
            for v in value:
                yield from strings(v)
        elif isinstance(value, dict):
            for v in value.values():
                yield from strings(v)

    for step in pipeline.steps:
        yield from strings([step.prompt, step.instructions, step.additional_instructions])
        for att in step.attachments:
            yield from strings([att.path, att.image])
        for assertion in step.expect:
            if assertion.kind not in ("json_schema", "python"):
                yield from strings(assertion.value)
