"""Agents: the interface, the registry of backends, and the built-in backends.

:mod:`.base` is the interface (:class:`AgentTask`, :class:`AgentOutcome`,
:class:`AgentBackend`); :mod:`.registry` maps backend names to classes (the
built-in ones and those from ``pytest_explore_agent_backends``); the backends
are :mod:`.command`, the agent CLIs (:mod:`.claude_code`, :mod:`.codex`,
:mod:`.aider`, on :mod:`.cli`) and the built-in agent in
:mod:`.anthropic`.
"""

from ..model.record import AgentStats
from .base import Agent, AgentBackend, AgentOutcome, AgentTask, AgentUnavailable
from .command import CommandAgent
from .registry import BUILTIN_BACKENDS, agent_backends, unknown_backend

__all__ = [
    "BUILTIN_BACKENDS",
    "Agent",
    "AgentBackend",
    "AgentOutcome",
    "AgentStats",
    "AgentTask",
    "AgentUnavailable",
    "CommandAgent",
    "agent_backends",
    "unknown_backend",
]
