"""A session's environment: ``none``, or ``openai_hosted`` backed by the engine's code sandbox.

``none`` gives the agent no place to run anything: the session talks to the model only.
``openai_hosted`` is where OpenAI runs an agent's commands in a container; in the engine that
container is a session of the code sandbox (:class:`orch.engine.sandbox.Sandbox`, keyed by the
environment's id): the model gets the code interpreter, and what it runs is written as
``command_execution`` items. The sandbox has no network and installs nothing, so network
access, packages, setup commands, plugins, skills, desktops and saved environments or
templates are refused with a 400 that says so; ``self_hosted`` needs an executor that
connects to OpenAI, which the engine is not. Its ``files`` are taken: read, checked and
stored by :mod:`orch.engine.agents.files`, which the route calls once the rest of the request
is valid.
"""

from __future__ import annotations

from typing import Any

from orch.engine import params as p
from orch.engine.agents.config import unsupported
from orch.engine.errors import invalid_choice, invalid_type
from orch.engine.store import new_id

TYPES = ("none", "openai_hosted", "self_hosted")
_HOSTED_KEYS = frozenset(
    {
        "type",
        "capability_directories",
        "container_size",
        "desktop",
        "env",
        "environment_id",
        "environment_template_id",
        "files",
        "network",
        "packages",
        "plugins",
        "setup_commands",
        "skills",
    }
)
#: Hosted settings the sandbox cannot honour when they are given non-empty.
_NOT_PROVIDED = ("capability_directories", "env", "plugins", "setup_commands", "skills")


def read_environment(body: dict[str, Any], has_sandbox: bool) -> dict[str, Any]:
    """The session's ``environment`` object from the request's (required) ``environment``."""
    value = p.field(body, "environment", dict, required=True)
    kind = p.field(value, "type", str, required=True, param="environment.type")
    if kind == "none":
        p.check_keys(value, frozenset({"type"}), "environment")
        return {"type": "none"}
    if kind == "self_hosted":
        raise unsupported(
            "The orch engine cannot host a self_hosted environment (no executor connects to "
            "it); use 'none', or 'openai_hosted' for the engine's code sandbox.",
            "environment.type",
        )
    if kind != "openai_hosted":
        raise invalid_choice(kind, TYPES, "environment.type")
    if not has_sandbox:
        raise unsupported(
            "The orch engine's code sandbox is off, so it has no 'openai_hosted' environment; "
            "use 'none'.",
            "environment.type",
        )
    return _hosted(value)


def _hosted(value: dict[str, Any]) -> dict[str, Any]:
    """An ``openai_hosted`` environment: the sandbox, without network or installed extras."""
    p.check_keys(value, _HOSTED_KEYS, "environment")
    for key in ("environment_id", "environment_template_id"):
        if key in value:
            raise unsupported(
                f"The orch engine has no saved environments or templates: leave out {key} and "
                "configure the environment inline.",
                f"environment.{key}",
            )
    for key in _NOT_PROVIDED:
        given = value.get(key)
        if given:
            raise unsupported(
                f"The orch engine's sandbox does not provide environment.{key}; leave it empty.",
                f"environment.{key}",
            )
    if value.get("files") is not None and not isinstance(value["files"], list):
        raise invalid_type("environment.files", "an array")
    _check_network(value.get("network"))
    _check_packages(value.get("packages"))
    desktop = value.get("desktop")
    if desktop is not None:
        if not isinstance(desktop, dict):
            raise invalid_type("environment.desktop")
        if p.field(desktop, "enabled", bool, required=True, param="environment.desktop.enabled"):
            raise unsupported("The orch engine has no desktop.", "environment.desktop.enabled")
    size = p.field(
        value,
        "container_size",
        str,
        choices=("small", "medium", "large"),
        param="environment.container_size",
    )
    return {
        "id": new_id("env"),
        "capability_directories": [],
        "files": [],
        "network": {"access": "disabled", "allowed_domains": []},
        "packages": {"npm": [], "python": [], "system": []},
        "plugins": [],
        "skills": [],
        "type": "openai_hosted",
        "container_size": size,
        "desktop": None,
    }


def _check_network(network: Any) -> None:
    """Only ``access: disabled``: the sandbox's code has no network."""
    if network is None:
        return
    if not isinstance(network, dict):
        raise invalid_type("environment.network")
    p.check_keys(
        network, frozenset({"access", "allowed_domains", "blocked_domains"}), "environment.network"
    )
    access = p.field(
        network,
        "access",
        str,
        required=True,
        choices=("enabled", "disabled", "restricted"),
        param="environment.network.access",
    )
    if access != "disabled":
        raise unsupported(
            "The orch engine's sandbox has no network: environment.network.access must be "
            "'disabled'.",
            "environment.network.access",
        )


def _check_packages(packages: Any) -> None:
    """No packages to install: the sandbox has what the engine's Python has."""
    if packages is None:
        return
    if not isinstance(packages, dict):
        raise invalid_type("environment.packages")
    p.check_keys(packages, frozenset({"npm", "python", "system"}), "environment.packages")
    for key in ("npm", "python", "system"):
        if packages.get(key):
            raise unsupported(
                "The orch engine's sandbox installs no packages: it has the libraries of the "
                "engine's Python.",
                f"environment.packages.{key}",
            )


def sandbox_key(environment: dict[str, Any]) -> str | None:
    """The sandbox session that backs the environment (None for ``none``)."""
    return environment["id"] if environment["type"] == "openai_hosted" else None


def state(environment: dict[str, Any], status: str) -> dict[str, Any]:
    """``AgentSessionEnvironmentState`` of a hosted environment."""
    return {"id": environment["id"], "error": None, "status": status, "type": environment["type"]}
