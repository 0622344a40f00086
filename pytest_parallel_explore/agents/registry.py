"""The registry of agent backends: backend name -> :class:`.AgentBackend` class.

The built-in backends are listed here and nowhere else; plugins and
``conftest.py`` files add theirs with ``pytest_explore_agent_backends``.  The
spec is validated against the registry (every registered backend's settings
are checked before anything is created), the plugin's own
``pytest_explore_make_agent`` builds agents from it, and the error for an
unknown backend lists its names.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import pytest

from ..model.frozen import thaw
from .aider import AiderAgent
from .anthropic import AnthropicAgent
from .base import Agent, AgentBackend
from .claude_code import ClaudeCodeAgent
from .codex import CodexAgent
from .command import CommandAgent

if TYPE_CHECKING:
    from ..model.spec import VariantSpec

#: The built-in backends, in the order error messages list them.
BUILTIN_BACKENDS: Mapping[str, type[AgentBackend]] = {
    "command": CommandAgent,
    "anthropic": AnthropicAgent,
    "claude-code": ClaudeCodeAgent,
    "codex": CodexAgent,
    "aider": AiderAgent,
}

_REGISTRY_KEY = pytest.StashKey[Mapping[str, type[AgentBackend]]]()


def agent_backends(config: pytest.Config) -> Mapping[str, type[AgentBackend]]:
    """The built-in backends and those plugins register, asked once per process and kept in ``config.stash``.

    A plugin's name replaces a built-in one; two plugins giving one name to
    different classes is a :class:`pytest.UsageError`.
    """
    if _REGISTRY_KEY in config.stash:
        return config.stash[_REGISTRY_KEY]
    registered: dict[str, type[AgentBackend]] = {}
    for answer in config.hook.pytest_explore_agent_backends(config=config):
        for name, backend in (answer or {}).items():
            if registered.get(name, backend) is not backend:
                raise pytest.UsageError(
                    f"agent backend {name!r} is registered twice, by different classes "
                    f"({registered[name].__qualname__} and {backend.__qualname__}); rename one"
                )
            registered[name] = backend
    backends = {**BUILTIN_BACKENDS, **registered}
    config.stash[_REGISTRY_KEY] = backends
    return backends


def unknown_backend(name: object, backends: Mapping[str, type[AgentBackend]]) -> str:
    """The message for a backend that nothing (registry or ``pytest_explore_make_agent``) knows."""
    *first, last = [repr(known) for known in backends]
    names = f"{', '.join(first)}, {last}" if first else last
    return f"unknown backend {name!r}; expected {names} or one registered by a plugin"


@pytest.hookimpl(trylast=True)
def pytest_explore_make_agent(config: pytest.Config, variant: VariantSpec) -> Agent | None:
    """Any registered backend; a plugin's own ``pytest_explore_make_agent`` answers first."""
    name = variant.agent.get("backend")
    backend = agent_backends(config).get(name) if isinstance(name, str) else None
    return backend.from_settings(thaw(variant.agent)) if backend is not None else None
