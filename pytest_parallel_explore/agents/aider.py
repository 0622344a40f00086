"""The aider backend: ``agent: {backend: aider}`` runs ``aider --message-file`` headless.

aider gets the prompt file, says yes to everything it would ask (``--yes-always``:
create a file, add a file to the chat, run a command), edits the worktree and
exits.  It does not commit (the plugin builds the trial's commit), touches
no ``.gitignore``, checks for no update, and asks the API for whole answers
(``--no-stream``) so that the usage is the API's, not aider's estimate.  Its
chat history, the model's exact conversation and its analytics log go to the
trial's state folder (``results/<trial>_aider/``), read by
:mod:`.aider_history`; its repository-map cache, which aider writes into the
worktree, is removed after the run so it is not taken for the agent's work.

Settings: ``model`` (``--model``, in aider's provider/name form); ``edit_format``;
``reasoning_effort``; ``test_command`` (``--test-cmd`` with ``--auto-test``:
aider runs it after each edit and works on the failures); ``max_turns``,
which aider lacks (it stops itself after 3 reflections, requests after the
first), enforced by stopping it after that many requests; ``args``, more
aider options (a base URL, ``--map-tokens``); ``prices`` and ``executable``.
aider reads its keys from the environment (``OPENAI_API_KEY``,
``ANTHROPIC_API_KEY``, ...), which it keeps.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import stat
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from ..config.checks import positive_int_problem, unknown_keys
from . import aider_history
from .base import AgentOutcome, AgentTask
from .cli import CliAgent, cli_problems, read_bounded, size_of

SETTING_KEYS = (
    "backend",
    "model",
    "edit_format",
    "reasoning_effort",
    "test_command",
    "max_turns",
    "args",
    "prices",
    "executable",
)
EDIT_FORMATS = ("whole", "diff", "diff-fenced", "udiff", "udiff-simple", "patch", "architect")
#: What aider writes into the worktree for itself (``RepoMap.TAGS_CACHE_DIR``).
_CACHE_FOLDERS = (".aider.tags.cache.v3", ".aider.tags.cache.v4")
#: The files aider is told to write in the state folder.
HISTORY, LLM_HISTORY, ANALYTICS, INPUT_HISTORY = "chat.md", "llm-history.txt", "analytics.jsonl", "input-history"


def validate_settings(settings: Mapping[str, Any], where: str) -> list[str]:
    """Problems with an ``aider`` agent mapping, each naming its key path."""
    problems = unknown_keys(settings, SETTING_KEYS, where + ".")
    problem = positive_int_problem(settings, "max_turns", where)
    if problem:
        problems.append(problem)
    if "edit_format" in settings and settings["edit_format"] not in EDIT_FORMATS:
        problems.append(
            f"{where}.edit_format: expected one of {', '.join(EDIT_FORMATS)}, got {settings['edit_format']!r}"
        )
    for key, what in (
        ("model", "a model name in aider's form, e.g. openai/gpt-4.1 or anthropic/claude-sonnet-4-5"),
        ("reasoning_effort", "a reasoning effort such as low, medium or high"),
        ("test_command", "a shell command that runs the tests, e.g. python -m pytest -q"),
    ):
        value = settings.get(key, "x")
        if not (isinstance(value, str) and value.strip()):
            problems.append(f"{where}.{key}: expected {what}, got {value!r}")
    args = settings.get("args", [])
    if not (isinstance(args, list) and all(isinstance(a, str) for a in args)):
        problems.append(f'{where}.args: expected a list of aider options such as ["--map-tokens", "0"], got {args!r}')
    return problems + cli_problems(settings, where, "aider")


@dataclasses.dataclass(frozen=True)
class AiderAgent(CliAgent):
    """``agent: {backend: aider, ...}``; build it with :meth:`from_settings`."""

    setting_keys: ClassVar[frozenset[str]] = frozenset(SETTING_KEYS)
    cli: ClassVar[str] = "aider"
    install: ClassVar[str] = "pipx install aider-chat, or pip install aider-chat"

    executable: str = "aider"
    model: str | None = None  # None: aider picks one from the keys it finds
    edit_format: str | None = None
    reasoning_effort: str | None = None
    test_command: str | None = None
    max_turns: int | None = None
    args: tuple[str, ...] = ()
    prices: Mapping[str, Mapping[str, float]] | None = None

    @classmethod
    def validate_settings(cls, settings: Mapping[str, Any], where: str) -> list[str]:
        return validate_settings(settings, where)

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> AiderAgent:
        values = cls.field_values(settings)
        values["args"] = tuple(values.get("args", ()))
        return cls(**values)

    def argv(self, prompt_file: Path, state: Path) -> list[str]:
        argv = [self.executable, "--message-file", str(prompt_file), "--yes-always"]
        argv += ["--no-stream", "--no-pretty", "--no-fancy-input", "--encoding", "utf-8"]
        argv += ["--no-auto-commits", "--no-dirty-commits", "--no-gitignore"]
        argv += ["--no-check-update", "--no-show-release-notes", "--no-show-model-warnings", "--no-analytics"]
        argv += ["--analytics-log", str(state / ANALYTICS), "--chat-history-file", str(state / HISTORY)]
        argv += ["--llm-history-file", str(state / LLM_HISTORY), "--input-history-file", str(state / INPUT_HISTORY)]
        for flag, value in (
            ("--model", self.model),
            ("--edit-format", self.edit_format),
            ("--reasoning-effort", self.reasoning_effort),
        ):
            if value:
                argv += [flag, value]
        if self.test_command:
            argv += ["--test-cmd", self.test_command, "--auto-test"]
        return [*argv, *self.args]

    def run(self, task: AgentTask) -> AgentOutcome:
        state = self.state_folder(task)
        history = state / HISTORY
        start = size_of(history)
        # litellm would fetch its price list from GitHub at every start: its bundled copy serves.
        env = {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}
        watch = aider_history.Watch(self.max_turns)
        run = self.run_cli(task, self.argv(task.prompt_file, state), env, watch=watch, events=state / ANALYTICS)
        _remove_caches(task.worktree)
        text = read_bounded(history, start).decode(errors="replace")
        model = self.model or aider_history.model_of(text)
        outcome = AgentOutcome(
            aider_history.stats_of(run.events, model, self.prices), transcript=aider_history.transcript_of(text)
        )
        if self.ended_early(run, task, outcome):
            return outcome
        outcome.failure = aider_history.failure_of(run.events, text, run.finished.returncode)
        return outcome


def _remove_caches(worktree: Path, names: Sequence[str] = _CACHE_FOLDERS) -> None:
    """Remove aider's caches from the top of the worktree: real folders only (a link is the agent's, and left)."""
    for name in names:
        path = worktree / name
        try:
            info = os.lstat(path)
        except OSError:
            continue
        if stat.S_ISDIR(info.st_mode):
            shutil.rmtree(path, ignore_errors=True)  # rmtree never follows links inside
