"""The agent interface: what a trial gives an agent, what it gets back, and what a backend class provides.

An agent edits a worktree to carry out a prompt.  A *backend* is a class
named by ``agent: {backend: NAME}``: it declares the settings it understands,
checks them (:meth:`AgentBackend.validate_settings`, before anything is
created) and builds the agent from them (:meth:`AgentBackend.from_settings`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar, Protocol

from ..config.checks import is_int, unknown_keys
from ..isolation.sandbox import Sandbox
from ..model.record import AgentStats
from ..model.transcript import Entry

#: Keys every backend understands, besides its own ``setting_keys``.
COMMON_AGENT_KEYS = frozenset({"backend", "model"})
THINKING_EXPECTED = '"adaptive", a token budget (int >= 1024) or 0'


class AgentUnavailable(Exception):
    """An agent cannot run at all (missing key or executable): raised before any work starts."""


@dataclasses.dataclass(frozen=True)
class AgentTask:
    """Everything an agent is given for one trial."""

    experiment: str
    trial: str
    variant: str
    settings: Mapping[str, Any]  # the variant's merged ``agent:`` mapping
    prompt: str
    prompt_file: Path
    worktree: Path
    log_path: Path  # the agent's own log / transcript
    timeout: float  # seconds the agent may run
    env: Mapping[str, str]  # EXPLORE_* variables for anything the agent starts
    report: Callable[[AgentStats], None] = lambda stats: None  # running totals, for progress
    sandbox: Sandbox | None = None  # where the agent's commands run (bubblewrap or not) and their limits


@dataclasses.dataclass
class AgentOutcome:
    stats: AgentStats
    failure: str | None = None  # why the agent failed; None when it finished normally
    timed_out: bool = False
    flags: list[str] = dataclasses.field(default_factory=list)  # what the record shows (a refused write)
    transcript: list[Entry] = dataclasses.field(default_factory=list)  # saved as results/<trial>_transcript.json


class Agent(Protocol):
    """What a backend returned by ``pytest_explore_make_agent`` must provide."""

    def preflight(self) -> None:
        """Raise :class:`AgentUnavailable` if the agent cannot run at all.

        Called in the controller before any worktree is made.
        """

    def run(self, task: AgentTask) -> AgentOutcome:
        """Edit ``task.worktree``; never raise for the agent's own failures."""


class AgentBackend:
    """Base class of a backend registered by name (built in, or by ``pytest_explore_agent_backends``).

    A subclass sets :attr:`setting_keys`, implements :meth:`from_settings` and
    :meth:`run`, and extends :meth:`validate_settings` when its values need
    more than a known key.  Validation runs while the spec is loaded, in every
    process, before anything is created; ``from_settings`` gets settings that
    passed it.
    """

    #: The ``agent:`` keys this backend understands besides ``backend`` and ``model``.
    setting_keys: ClassVar[frozenset[str]] = frozenset()

    @classmethod
    def known_keys(cls) -> frozenset[str]:
        return COMMON_AGENT_KEYS | cls.setting_keys

    @classmethod
    def validate_settings(cls, settings: Mapping[str, Any], where: str) -> list[str]:
        """Problems with a variant's merged ``agent:`` mapping, each naming its key path (``where`` + key)."""
        return unknown_keys(settings, cls.known_keys(), where + ".")

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> Agent:
        """The agent for a variant's merged ``agent:`` mapping, already validated."""
        raise NotImplementedError(f"{cls.__name__}.from_settings")

    @classmethod
    def field_values(cls, settings: Mapping[str, Any]) -> dict[str, Any]:
        """The settings that are fields of this (dataclass) backend: what ``from_settings`` passes on."""
        fields = getattr(cls, "__dataclass_fields__", {})
        return {key: value for key, value in settings.items() if key in fields}

    def preflight(self) -> None:
        """Raise :class:`AgentUnavailable` if the agent cannot run at all; by default it can."""

    def programs(self) -> tuple[str, ...]:
        """The commands the agent starts (a shell string each): the sandbox shows their programs."""
        return ()

    def run(self, task: AgentTask) -> AgentOutcome:
        raise NotImplementedError(f"{type(self).__name__}.run")


def programs_of(agent: Agent) -> tuple[str, ...]:
    """:meth:`AgentBackend.programs` of ``agent``; none for an agent of another kind (it runs in-process)."""
    return agent.programs() if isinstance(agent, AgentBackend) else ()


#: Model families released before adaptive thinking: they take a token budget, the others think adaptively.
#: (The Models API reports this per model, but asking costs a request per trial
#: and proxies behind ``base_url`` often lack that endpoint; this list is closed.)
BUDGET_MODELS = (
    "claude-3",
    "claude-opus-4-0",
    "claude-opus-4-1",
    "claude-opus-4-2025",
    "claude-opus-4-5",
    "claude-sonnet-4-0",
    "claude-sonnet-4-2025",
    "claude-sonnet-4-5",
    "claude-haiku-4-5",
)


def takes_thinking_budget(model: str) -> bool:
    """Whether ``model`` takes a thinking token budget rather than thinking adaptively."""
    return model.startswith(BUDGET_MODELS)


def thinking_problem(settings: Mapping[str, Any], where: str) -> str | None:
    """The problem with a ``thinking`` setting, shared by the backends that take one."""
    value = settings.get("thinking", "adaptive")
    if value == "adaptive" or (is_int(value) and (value == 0 or value >= 1024)):
        return None
    return f"{where}.thinking: expected {THINKING_EXPECTED}, got {value!r}"
