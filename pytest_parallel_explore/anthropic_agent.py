"""The built-in agent: a Messages API tool-use loop confined to the trial's worktree.

``agent: {backend: anthropic}``.  The model gets the task prompt and six tools
(list, read, write, edit, search, run a command) whose paths are all resolved
inside the worktree.  Choices worth knowing about:

* **Retries are ours.** The SDK client is built with ``max_retries=0`` and
  :meth:`_Session.create` retries 408/409/429/5xx/529 and connection errors with
  exponential backoff and jitter, honouring ``retry-after``.  Doing it here puts
  every retry in the transcript and bounds the waiting by the trial's time
  rather than by a retry count: overload never fails a trial while time remains.
* **No streaming.** Each request carries an explicit timeout (the time left),
  which also lifts the SDK's refusal of long non-streaming requests; the
  transcript wants whole messages anyway.
* **Caching.** The tools and the system prompt carry ``cache_control`` and the
  request sets the top-level ``cache_control`` so the growing conversation is
  cached too.  The system prompt names no path, so concurrent trials of one
  model share the cached prefix.
* **Thinking.** ``adaptive`` (the default) where the model supports it, else a
  token budget; see :meth:`AnthropicAgent.thinking_budget`.
* **Confinement** covers the file tools: paths are resolved (symlinks
  followed) and refused unless they stay inside the worktree.  ``run_command``
  is a shell in the worktree, not a sandbox; it only lacks API keys.
* **Lazy SDK import.** ``anthropic`` takes most of a second to import, so it is
  imported only where a request is made; validating settings stays cheap.
"""

from __future__ import annotations

import dataclasses
import difflib
import fnmatch
import json
import os
import random
import re
import tempfile
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, TypeGuard

from .agents import AgentOutcome, AgentTask, AgentUnavailable
from .procs import clean_env, run_owned
from .record import AgentStats
from .spec import parse_duration

if TYPE_CHECKING:
    import anthropic
    from anthropic.types import (
        Message,
        MessageParam,
        ThinkingConfigParam,
        ToolParam,
        ToolResultBlockParam,
        ToolUseBlock,
    )

#: The model when a variant names none: the current Sonnet in the SDK's ``Model`` literals.
DEFAULT_MODEL = "claude-sonnet-5-5"
DEFAULT_MAX_TURNS = 60
DEFAULT_COMMAND_TIMEOUT = 120.0
#: Output tokens per response; raised when a thinking budget needs more room.
DEFAULT_MAX_TOKENS = 32_000

#: Model families released before adaptive thinking: they take a token budget.
#: (The Models API reports this per model, but asking costs a request per trial
#: and proxies behind ``base_url`` often lack that endpoint; this list is closed.)
_BUDGET_ONLY_MODELS = (
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

# Bounds on what one tool call sends back to the model.
_OUTPUT_LIMIT = 30_000  # characters of a file, bytes of a command's output
_LIST_LIMIT = 1_000  # directory entries
_SEARCH_LIMIT = 200  # matching lines
_SEARCH_MAX_FILE_BYTES = 2_000_000
_BACKOFF_MAX_SECONDS = 60.0


class Price(NamedTuple):
    """USD per million tokens."""

    input: float
    output: float
    cache_read: float
    cache_write: float  # 5-minute cache writes, the TTL this agent uses

    def cost(self, input: int, output: int, cache_read: int, cache_write: int) -> float:
        tokens = (input, output, cache_read, cache_write)
        return sum(n * rate for n, rate in zip(tokens, self, strict=True)) / 1_000_000


#: List prices in USD per million tokens (Anthropic's pricing page, October 2026),
#: keyed by model-name prefix; the longest matching prefix wins, so
#: ``claude-opus-5`` prices ``claude-opus-5-20260724`` and ``claude-opus-5-5``
#: has its own row.  Estimates only: Haiku 5.5's dearer rate for prompts over
#: 100k tokens, 1-hour cache writes, batch and regional multipliers are not
#: modelled.  Override or extend with the ``prices`` setting.
PRICES_USD_PER_MTOK: dict[str, Price] = {
    "claude-fable-5": Price(10.0, 50.0, 1.00, 12.50),
    "claude-fable-5-1": Price(10.0, 50.0, 0.25, 12.50),
    "claude-mythos-5": Price(10.0, 50.0, 1.00, 12.50),
    "claude-mythos-5-1": Price(10.0, 50.0, 0.25, 12.50),
    "claude-mythos-preview": Price(25.0, 125.0, 2.50, 31.25),
    "claude-opus-5-5": Price(4.0, 20.0, 0.20, 5.00),
    "claude-opus-5": Price(5.0, 25.0, 0.50, 6.25),
    "claude-opus-4": Price(5.0, 25.0, 0.50, 6.25),  # 4.5 to 4.8
    "claude-sonnet-5-5": Price(2.0, 10.0, 0.10, 2.50),
    "claude-sonnet-5": Price(2.0, 10.0, 0.20, 2.50),
    "claude-sonnet-4": Price(3.0, 15.0, 0.30, 3.75),
    "claude-haiku-5-5": Price(0.10, 0.50, 0.01, 0.125),
    "claude-haiku-4": Price(1.0, 5.0, 0.10, 1.25),
}


def price_for(model: str, overrides: Mapping[str, Mapping[str, float]] | None = None) -> Price | None:
    """The price of ``model``: the ``prices`` setting first, then the built-in table.

    An override needs ``input`` and ``output``; cache rates default to Anthropic's
    usual multiples of the input rate (reads 0.1x, 5-minute writes 1.25x).
    """
    overrides = overrides or {}
    own = _longest_prefix(model, overrides)
    if own is not None:
        rates = overrides[own]
        base = float(rates["input"])
        return Price(
            base,
            float(rates["output"]),
            float(rates.get("cache_read", base * 0.1)),
            float(rates.get("cache_write", base * 1.25)),
        )
    known = _longest_prefix(model, PRICES_USD_PER_MTOK)
    return PRICES_USD_PER_MTOK[known] if known is not None else None


def _longest_prefix(model: str, table: Mapping[str, Any]) -> str | None:
    matches = [prefix for prefix in table if model.startswith(prefix)]
    return max(matches, key=len, default=None)


def supports_adaptive_thinking(model: str) -> bool:
    return not model.startswith(_BUDGET_ONLY_MODELS)


# -- settings -----------------------------------------------------------------

SETTING_KEYS = (
    "backend",
    "model",
    "thinking",
    "max_turns",
    "max_cost_usd",
    "max_tokens",
    "command_timeout",
    "prices",
    "base_url",
    "system",
)
_PRICE_KEYS = ("input", "output", "cache_read", "cache_write")
_THINKING_EXPECTED = '"adaptive", a token budget (int >= 1024) or 0'


def validate_settings(settings: Mapping[str, Any], where: str) -> list[str]:
    """Problems with an ``anthropic`` agent mapping, each naming its key path (``where`` + key)."""
    problems = unknown_key_problems(settings, SETTING_KEYS, where)
    model, system = settings.get("model"), settings.get("system")
    if isinstance(model, str) and not model.strip():  # a model that is not a string: spec.py says so
        problems.append(f"{where}.model: expected a model name, got {model!r}")
    if "system" in settings and not (isinstance(system, str) and system.strip()):
        problems.append(f"{where}.system: expected the system prompt as text, got {system!r}")
    base_url = settings.get("base_url")
    if "base_url" in settings and not (isinstance(base_url, str) and base_url.startswith(("http://", "https://"))):
        problems.append(f"{where}.base_url: expected an http:// or https:// URL, got {base_url!r}")
    for problem in (
        thinking_problem(settings, where),
        positive_int_problem(settings, "max_turns", where),
        positive_int_problem(settings, "max_tokens", where),
    ):
        if problem:
            problems.append(problem)
    max_cost = settings.get("max_cost_usd")
    if "max_cost_usd" in settings and not (_is_number(max_cost) and max_cost > 0):
        problems.append(f"{where}.max_cost_usd: expected a positive number of US dollars, got {max_cost!r}")
    if "command_timeout" in settings:
        try:
            parse_duration(settings["command_timeout"])
        except ValueError:
            problems.append(
                f"{where}.command_timeout: expected a duration such as 120, '90s' or '5m', "
                f"got {settings['command_timeout']!r}"
            )
    budget, max_tokens = settings.get("thinking"), settings.get("max_tokens")
    if _is_int(budget) and budget > 0 and _is_int(max_tokens) and budget >= max_tokens:
        problems.append(f"{where}.max_tokens: must be above the thinking budget ({budget}), got {max_tokens}")
    if "prices" in settings:
        problems += _price_problems(settings["prices"], f"{where}.prices")
    return problems


def _price_problems(prices: Any, where: str) -> list[str]:
    expected = "a mapping of model name to {input, output[, cache_read, cache_write]} in USD per million tokens"
    if not isinstance(prices, Mapping):
        return [f"{where}: expected {expected}, got {prices!r}"]
    problems = []
    for model, rates in prices.items():
        if not isinstance(rates, Mapping):
            problems.append(f"{where}.{model}: expected {expected}, got {rates!r}")
            continue
        problems += unknown_key_problems(rates, _PRICE_KEYS, f"{where}.{model}")
        problems += [f"{where}.{model}.{k}: required" for k in ("input", "output") if k not in rates]
        problems += [
            f"{where}.{model}.{k}: expected a number >= 0, got {v!r}"
            for k, v in rates.items()
            if k in _PRICE_KEYS and not (_is_number(v) and v >= 0)
        ]
    return problems


def unknown_key_problems(settings: Mapping[str, Any], known: tuple[str, ...], where: str) -> list[str]:
    """One problem per key not in ``known``, suggesting the nearest known key."""
    problems = []
    for key in settings:
        if key not in known:
            near = difflib.get_close_matches(str(key), known, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else f"; expected one of {', '.join(known)}"
            problems.append(f"{where}.{key}: unknown key{hint}")
    return problems


def thinking_problem(settings: Mapping[str, Any], where: str) -> str | None:
    value = settings.get("thinking", "adaptive")
    if value == "adaptive" or (_is_int(value) and (value == 0 or value >= 1024)):
        return None
    return f"{where}.thinking: expected {_THINKING_EXPECTED}, got {value!r}"


def positive_int_problem(settings: Mapping[str, Any], key: str, where: str) -> str | None:
    value = settings.get(key, 1)
    if _is_int(value) and value >= 1:
        return None
    return f"{where}.{key}: expected a positive integer, got {value!r}"


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# -- the worktree tools -------------------------------------------------------


class ToolError(Exception):
    """A tool call that cannot be carried out; the model reads it as an ``is_error`` result."""


def _schema(properties: dict[str, Any], *required: str) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required)}


_PATH = {"type": "string", "description": "Path relative to the worktree root."}
_TOOLS: list[ToolParam] = [
    {
        "name": "list_directory",
        "description": "List a directory of the worktree (directories end with '/').",
        "input_schema": _schema({"path": {**_PATH, "default": "."}}),
    },
    {
        "name": "read_file",
        "description": (
            "Read a text file, with line numbers; optionally only lines start_line..end_line (1-based, inclusive)."
        ),
        "input_schema": _schema(
            {"path": _PATH, "start_line": {"type": "integer"}, "end_line": {"type": "integer"}}, "path"
        ),
    },
    {
        "name": "write_file",
        "description": "Create or overwrite a file with the given content (parent directories are created).",
        "input_schema": _schema({"path": _PATH, "content": {"type": "string"}}, "path", "content"),
    },
    {
        "name": "edit_file",
        "description": "Replace old_string, which must occur exactly once in the file, by new_string.",
        "input_schema": _schema(
            {"path": _PATH, "old_string": {"type": "string"}, "new_string": {"type": "string"}},
            "path",
            "old_string",
            "new_string",
        ),
    },
    {
        "name": "search",
        "description": "Search files for a Python regular expression; returns path:line: text for each match.",
        "input_schema": _schema(
            {
                "pattern": {"type": "string"},
                "path": {**_PATH, "default": "."},
                "glob": {"type": "string", "description": "Only files whose path matches, e.g. '*.py'."},
            },
            "pattern",
        ),
    },
    {
        "name": "run_command",
        "description": "Run a shell command in the worktree root; returns its exit code and its stdout and stderr.",
        "input_schema": _schema({"command": {"type": "string"}}, "command"),
        "cache_control": {"type": "ephemeral"},  # the last tool: caches all tool definitions
    },
]


@dataclasses.dataclass
class _WorktreeTools:
    """The tools' implementations: every path is resolved inside ``root`` or refused."""

    root: Path
    env: Mapping[str, str]  # for commands: no API keys
    command_timeout: float

    def call(self, name: str, args: Mapping[str, Any], time_left: float) -> str:
        try:
            if name == "list_directory":
                return self.list_directory(_arg(args, "path", str, "."))
            if name == "read_file":
                start, end = _arg(args, "start_line", int, None), _arg(args, "end_line", int, None)
                return self.read_file(_arg(args, "path", str), start, end)
            if name == "write_file":
                return self.write_file(_arg(args, "path", str), _arg(args, "content", str))
            if name == "edit_file":
                old, new = _arg(args, "old_string", str), _arg(args, "new_string", str)
                return self.edit_file(_arg(args, "path", str), old, new)
            if name == "search":
                path, glob = _arg(args, "path", str, "."), _arg(args, "glob", str, None)
                return self.search(_arg(args, "pattern", str), path, glob)
            if name == "run_command":
                return self.run_command(_arg(args, "command", str), min(self.command_timeout, time_left))
        except OSError as exc:
            raise ToolError(f"{args.get('path', '')}: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise ToolError(f"{args.get('path', '')}: not a UTF-8 text file ({exc.reason})") from exc
        raise ToolError(f"unknown tool {name!r}")

    def resolve(self, path: str) -> Path:
        """``path`` inside the worktree, symlinks followed; anything leading out is refused."""
        try:
            resolved = (self.root / path).resolve()
        except (OSError, RuntimeError) as exc:  # a symlink loop
            raise ToolError(f"{path}: cannot be resolved ({exc})") from exc
        if not resolved.is_relative_to(self.root):
            raise ToolError(
                f"{path}: refused, it is outside the worktree; use paths inside the worktree "
                "(relative to its root), and no symlink that leads out of it"
            )
        if resolved.relative_to(self.root).parts[:1] == (".git",):
            raise ToolError(f"{path}: refused, git's own files are off limits (use git commands)")
        return resolved

    def _show(self, path: Path) -> str:
        return str(path.relative_to(self.root)) if path != self.root else "."

    def list_directory(self, path: str) -> str:
        folder = self.resolve(path)
        entries = sorted(
            entry.name + ("/" if entry.is_dir() else "") for entry in os.scandir(folder) if entry.name != ".git"
        )
        if not entries:
            return f"{self._show(folder)} is empty"
        more = f"\n[{len(entries) - _LIST_LIMIT} more entries not shown]" if len(entries) > _LIST_LIMIT else ""
        return "\n".join(entries[:_LIST_LIMIT]) + more

    def read_file(self, path: str, start: int | None, end: int | None) -> str:
        file = self.resolve(path)
        if file.is_dir():
            raise ToolError(f"{path}: is a directory; use list_directory")
        lines = file.read_text(encoding="utf-8", errors="replace").splitlines()
        first = max(start or 1, 1)
        shown = lines[first - 1 : end]
        text = "\n".join(f"{n:6}\t{line}" for n, line in enumerate(shown, first))
        if len(text) > _OUTPUT_LIMIT:
            note = f"\n[truncated: the file has {len(lines)} lines; read a range with start_line/end_line]"
            return text[:_OUTPUT_LIMIT] + note
        return text or f"{self._show(file)}: no lines in that range (the file has {len(lines)})"

    def write_file(self, path: str, content: str) -> str:
        file = self.resolve(path)
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(content, encoding="utf-8")
        return f"wrote {len(content)} characters to {self._show(file)}"

    def edit_file(self, path: str, old: str, new: str) -> str:
        file = self.resolve(path)
        text = file.read_text(encoding="utf-8")
        count = text.count(old) if old else 0
        if count != 1:
            found = "is empty" if not old else "was not found" if not count else f"occurs {count} times"
            raise ToolError(f"{path}: old_string {found}; it must occur exactly once (include more context)")
        file.write_text(text.replace(old, new, 1), encoding="utf-8")
        return f"edited {self._show(file)}"

    def search(self, pattern: str, path: str, glob: str | None) -> str:
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise ToolError(f"bad regular expression {pattern!r}: {exc}") from exc
        matches: list[str] = []
        for file in self._files_under(self.resolve(path)):
            shown = self._show(file)
            if glob and not (fnmatch.fnmatch(shown, glob) or fnmatch.fnmatch(file.name, glob)):
                continue
            text = file.read_text(encoding="utf-8", errors="replace")
            matches += (
                f"{shown}:{n}: {line[:300]}" for n, line in enumerate(text.splitlines(), 1) if regex.search(line)
            )
            if len(matches) > _SEARCH_LIMIT:
                return "\n".join(matches[:_SEARCH_LIMIT]) + "\n[more matches not shown: narrow the search]"
        return "\n".join(matches) or "no matches"

    def _files_under(self, start: Path) -> list[Path]:
        """Text files under ``start`` that are inside the worktree (symlinks out are skipped)."""
        if start.is_file():
            return [start]
        found = []
        for folder, dirs, names in os.walk(start):
            dirs[:] = sorted(d for d in dirs if d != ".git")
            for name in sorted(names):
                file = Path(folder, name)
                if file.resolve().is_relative_to(self.root) and _is_text(file):
                    found.append(file)
        return found

    def run_command(self, command: str, timeout: float) -> str:
        with tempfile.TemporaryDirectory(prefix="explore-command-") as scratch:
            output = Path(scratch, "output")
            finished = run_owned(command, cwd=self.root, env=self.env, timeout=timeout, output=output)
            text = _read_bounded(output)
        if finished.timed_out:
            raise ToolError(f"command timed out after {timeout:g}s and was killed; output so far:\n{text}")
        return f"exit code {finished.returncode}\n{text}"


def _arg(args: Mapping[str, Any], name: str, kind: type, *default: Any) -> Any:
    if name not in args or args[name] is None:
        if default:
            return default[0]
        raise ToolError(f"missing argument {name!r}")
    value = args[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ToolError(f"argument {name!r} must be of type {kind.__name__}, got {value!r}")
    return value


def _is_text(file: Path) -> bool:
    try:
        if file.stat().st_size > _SEARCH_MAX_FILE_BYTES:
            return False
        with file.open("rb") as f:
            return b"\0" not in f.read(8192)
    except OSError:
        return False


def _read_bounded(path: Path) -> str:
    """The text of ``path``, or only its head and tail when it is over the output limit."""
    half = _OUTPUT_LIMIT // 2
    with path.open("rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(0)
        if size <= _OUTPUT_LIMIT:
            return f.read().decode(errors="replace")
        head = f.read(half).decode(errors="replace")
        f.seek(-half, os.SEEK_END)
        tail = f.read().decode(errors="replace")
    return f"{head}\n[... {size - 2 * half} bytes not shown ...]\n{tail}"


# -- the agent ----------------------------------------------------------------

_SYSTEM_PROMPT = """\
You are a software engineer working alone in a git worktree of a project.
Use the tools to explore, change and test the code. Paths are relative to the worktree root; \
nothing outside the worktree can be read or written.
run_command runs a shell command in the worktree root, stops it after {timeout:g} seconds and \
truncates long output; it has no API keys.
Work in small verified steps: read before you edit, run the tests after changing code, and fix \
what fails.
When the task is done, reply with a short summary of what you changed and stop calling tools."""


@dataclasses.dataclass(frozen=True)
class AnthropicAgent:
    """``agent: {backend: anthropic, ...}``; build it with :meth:`from_settings`."""

    model: str = DEFAULT_MODEL
    thinking: str | int = "adaptive"
    max_turns: int = DEFAULT_MAX_TURNS
    max_cost_usd: float | None = None
    max_tokens: int | None = None
    command_timeout: float = DEFAULT_COMMAND_TIMEOUT
    prices: Mapping[str, Mapping[str, float]] = dataclasses.field(default_factory=dict)
    base_url: str | None = None  # None: ANTHROPIC_BASE_URL, else the SDK's default
    system: str | None = None  # replaces the built-in system prompt

    @classmethod
    def from_settings(cls, settings: Mapping[str, Any]) -> AnthropicAgent:
        """The agent for a variant's merged ``agent:`` mapping, already validated."""
        names = {f.name for f in dataclasses.fields(cls)}
        values = {key: value for key, value in settings.items() if key in names}
        if "command_timeout" in values:
            values["command_timeout"] = parse_duration(values["command_timeout"])
        return cls(**values)

    def thinking_budget(self) -> int | None:
        """Thinking tokens per response: None for adaptive thinking, 0 for none.

        ``adaptive`` falls back to half of ``max_tokens`` on models that predate
        it, so one ``thinking: adaptive`` default serves variants on old and new models.
        """
        if self.thinking == "adaptive":
            return None if supports_adaptive_thinking(self.model) else (self.max_tokens or DEFAULT_MAX_TOKENS) // 2
        return int(self.thinking)

    def thinking_config(self) -> ThinkingConfigParam:
        budget = self.thinking_budget()
        if budget is None:
            return {"type": "adaptive"}
        if budget == 0:
            return {"type": "disabled"}
        return {"type": "enabled", "budget_tokens": budget}

    def output_tokens(self) -> int:
        """``max_tokens`` per response, leaving room for the thinking budget."""
        if self.max_tokens is not None:
            return self.max_tokens
        return max(DEFAULT_MAX_TOKENS, (self.thinking_budget() or 0) + DEFAULT_MAX_TOKENS // 2)

    def system_prompt(self) -> str:
        return self.system or _SYSTEM_PROMPT.format(timeout=self.command_timeout)

    def preflight(self) -> None:
        """Check, without a request, that the SDK finds credentials (and a price when a budget needs one)."""
        import anthropic

        try:
            client = anthropic.Anthropic(base_url=self.base_url, max_retries=0)
        except (anthropic.AnthropicError, ValueError, OSError) as exc:
            raise AgentUnavailable(f"anthropic agent: cannot load Anthropic credentials: {exc}") from exc
        with client:
            if not (client.api_key or client.auth_token or client.credentials):
                raise AgentUnavailable(
                    "anthropic agent: no Anthropic API key; set ANTHROPIC_API_KEY, or choose another "
                    "backend in the variant's agent settings (backend: command or claude-code)"
                )
        if self.max_cost_usd is not None and price_for(self.model, self.prices) is None:
            raise AgentUnavailable(
                f"anthropic agent: max_cost_usd is set but there is no price for model {self.model!r}; "
                "add it under the agent's prices setting ({input, output} USD per million tokens)"
            )

    def run(self, task: AgentTask) -> AgentOutcome:
        import anthropic

        session = _Session(self, task)
        session.transcript.write(
            "start",
            model=self.model,
            thinking=self.thinking_config(),
            max_tokens=self.output_tokens(),
            system=self.system_prompt(),
            prompt=task.prompt,
        )
        try:
            with anthropic.Anthropic(base_url=self.base_url, max_retries=0) as client:
                outcome = session.loop(client)
        except _Stop as stop:
            outcome = stop.outcome(session.stats, task.timeout)
        except anthropic.AnthropicError as exc:  # no usable credentials, a malformed response
            session.stats.stop_reason = "api_error"
            outcome = AgentOutcome(session.stats, f"anthropic agent: {exc}")
        session.stats.seconds = round(session.elapsed(), 3)
        session.transcript.write(
            "end",
            stop_reason=session.stats.stop_reason,
            failure=outcome.failure,
            timed_out=outcome.timed_out,
            stats=dataclasses.asdict(session.stats),
        )
        task.report(session.stats)
        return outcome


class _Stop(Exception):
    """Ends the loop early: a limit was reached or the API refused."""

    def __init__(self, reason: str, failure: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.failure = failure

    def outcome(self, stats: AgentStats, timeout: float) -> AgentOutcome:
        stats.stop_reason = self.reason
        if self.reason == "timeout":
            detail = f" ({self.failure})" if self.failure else ""
            return AgentOutcome(stats, f"agent timed out after {timeout:g}s{detail}", timed_out=True)
        return AgentOutcome(stats, self.failure)


class _Transcript:
    """One JSON line per request, response, retry and tool call, appended to the agent log."""

    def __init__(self, path: Path, started: float) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.started = started

    def write(self, event: str, **fields: Any) -> None:
        line = {"t": round(time.monotonic() - self.started, 3), "event": event, **fields}
        with self.path.open("a", encoding="utf-8") as log:
            log.write(json.dumps(line, default=str) + "\n")


class _Session:
    """One trial's conversation: the messages so far, the running totals and the clock."""

    def __init__(self, agent: AnthropicAgent, task: AgentTask) -> None:
        self.agent = agent
        self.task = task
        self.started = time.monotonic()
        self.transcript = _Transcript(task.log_path, self.started)
        self.stats = AgentStats(backend="anthropic", model=agent.model)
        self.price = price_for(agent.model, agent.prices)
        self.tools = _WorktreeTools(
            root=task.worktree.resolve(),
            env=clean_env(task.env, drop_secrets=True),
            command_timeout=agent.command_timeout,
        )
        self.messages: list[MessageParam] = [{"role": "user", "content": task.prompt}]
        if self.price is None:
            self.transcript.write("warning", message=f"no price for {agent.model!r}: cost is reported as 0")

    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def time_left(self) -> float:
        return self.task.timeout - self.elapsed()

    def loop(self, client: anthropic.Anthropic) -> AgentOutcome:
        """Ask, run the tools asked for, answer; until the model stops asking or a limit is hit."""
        from anthropic.types import ToolUseBlock

        while True:
            response = self.create(client)
            self.account(response)
            self.messages.append({"role": "assistant", "content": response.content})
            tool_uses = [block for block in response.content if isinstance(block, ToolUseBlock)]
            if tool_uses:
                cut_off = response.stop_reason == "max_tokens"
                self.messages.append({"role": "user", "content": [self.use_tool(b, cut_off) for b in tool_uses]})
            elif response.stop_reason == "max_tokens":
                self.messages.append({"role": "user", "content": "You were cut off by max_tokens; go on."})
            else:
                return self.finish(response.stop_reason)
            self.check_limits()

    def create(self, client: anthropic.Anthropic) -> Message:
        """One Messages API request, retried while the trial has time (see the module docstring)."""
        import anthropic

        agent, attempt = self.agent, 0
        while True:
            time_left = self.time_left()
            if time_left <= 0:
                raise _Stop("timeout")
            self.transcript.write(
                "request", turn=self.stats.turns + 1, attempt=attempt + 1, messages=len(self.messages)
            )
            try:
                return client.messages.create(
                    model=agent.model,
                    max_tokens=agent.output_tokens(),
                    system=[{"type": "text", "text": agent.system_prompt(), "cache_control": {"type": "ephemeral"}}],
                    tools=_TOOLS,
                    messages=self.messages,
                    thinking=agent.thinking_config(),
                    cache_control={"type": "ephemeral"},
                    timeout=time_left,
                )
            except anthropic.APIStatusError as exc:
                if not _retryable(exc.status_code):
                    raise _Stop("api_error", _api_failure(exc)) from exc
                delay = _retry_after(exc.response.headers)
                error = f"{exc.status_code} {exc.type or ''}: {exc.api_message or exc.message}"
            except anthropic.APIConnectionError as exc:
                delay, error = None, str(exc)
            if delay is None:
                delay = min(_BACKOFF_MAX_SECONDS, 2.0**attempt) * random.uniform(0.5, 1.0)
            if delay >= self.time_left():
                raise _Stop("timeout", f"no time left for retry {attempt + 1} after {error}")
            self.transcript.write("retry", attempt=attempt + 1, error=error, delay=round(delay, 3))
            time.sleep(delay)
            attempt += 1

    def account(self, response: Message) -> None:
        """Add one response's tokens and estimated cost to the totals, and report them."""
        usage, stats = response.usage, self.stats
        tokens = {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cache_read_tokens": usage.cache_read_input_tokens or 0,
            "cache_write_tokens": usage.cache_creation_input_tokens or 0,
        }
        cost = self.price.cost(*tokens.values()) if self.price else 0.0
        stats.turns += 1
        stats.input_tokens += tokens["input_tokens"]
        stats.output_tokens += tokens["output_tokens"]
        stats.cache_read_tokens += tokens["cache_read_tokens"]
        stats.cache_write_tokens += tokens["cache_write_tokens"]
        stats.cost_usd += cost
        stats.per_turn.append({"turn": stats.turns, **tokens, "cost_usd": cost, "stop_reason": response.stop_reason})
        stats.seconds = round(self.elapsed(), 3)
        self.transcript.write("response", turn=stats.turns, message=response.to_dict(mode="json"), cost_usd=cost)
        self.task.report(stats)

    def use_tool(self, block: ToolUseBlock, cut_off: bool) -> ToolResultBlockParam:
        started = time.monotonic()
        try:
            if cut_off:
                raise ToolError("not run: your reply was cut off by max_tokens; retry in smaller pieces")
            output, is_error = self.tools.call(block.name, block.input, self.time_left()), False
        except ToolError as exc:
            output, is_error = str(exc), True
        self.transcript.write(
            "tool",
            id=block.id,
            name=block.name,
            input=block.input,
            is_error=is_error,
            seconds=round(time.monotonic() - started, 3),
            output=output,
        )
        return {
            "type": "tool_result",
            "tool_use_id": block.id,
            "content": output or "(no output)",
            "is_error": is_error,
        }

    def check_limits(self) -> None:
        agent, stats = self.agent, self.stats
        if agent.max_cost_usd is not None and stats.cost_usd >= agent.max_cost_usd:
            raise _Stop(
                "max_cost_usd",
                f"agent stopped at an estimated ${stats.cost_usd:.2f}, "
                f"over its max_cost_usd of ${agent.max_cost_usd:.2f}",
            )
        if stats.turns >= agent.max_turns:
            raise _Stop("max_turns", f"agent stopped after max_turns={agent.max_turns} turns, before it finished")
        if self.time_left() <= 0:
            raise _Stop("timeout")

    def finish(self, stop_reason: str | None) -> AgentOutcome:
        self.stats.stop_reason = stop_reason
        if stop_reason in ("end_turn", "stop_sequence"):
            return AgentOutcome(self.stats)
        if stop_reason == "refusal":
            return AgentOutcome(self.stats, "the model refused the task (stop_reason: refusal)")
        return AgentOutcome(self.stats, f"the model stopped early (stop_reason: {stop_reason})")


def _retryable(status: int) -> bool:
    return status in (408, 409, 429) or status >= 500


def _retry_after(headers: Mapping[str, str]) -> float | None:
    """Seconds the API asked us to wait (``retry-after-ms`` or ``retry-after``), if it said."""
    for name, scale in (("retry-after-ms", 0.001), ("retry-after", 1.0)):
        try:
            return max(float(headers[name]) * scale, 0.0)
        except (KeyError, ValueError):
            continue
    return None


def _api_failure(exc: anthropic.APIStatusError) -> str:
    detail = f"{exc.status_code} {exc.type or 'error'}: {exc.api_message or exc.message}"
    if exc.status_code in (401, 403):
        return (
            f"the Anthropic API refused the credentials ({detail}); check ANTHROPIC_API_KEY "
            "and the account's access to the model"
        )
    return f"the Anthropic API rejected the request ({detail})"
