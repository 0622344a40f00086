"""The built-in agent's ``agent:`` settings: their keys, defaults and checks, and which models take a thinking budget.

Validation runs while the variants file is loaded, in every process, so it
needs neither the SDK nor a request.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ...config.checks import is_int, is_number, parse_duration, positive_int_problem, unknown_keys
from ..base import takes_thinking_budget, thinking_problem
from ..pricing import price_problems

#: The model when a variant names none: the current Sonnet in the SDK's ``Model`` literals.
DEFAULT_MODEL = "claude-sonnet-5-5"
DEFAULT_MAX_TURNS = 60
DEFAULT_COMMAND_TIMEOUT = 120.0
#: Output tokens per response; raised when a thinking budget needs more room.
DEFAULT_MAX_TOKENS = 32_000


def supports_adaptive_thinking(model: str) -> bool:
    """Whether ``model`` takes ``thinking: {type: adaptive}`` rather than a token budget."""
    return not takes_thinking_budget(model)


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


def validate_settings(settings: Mapping[str, Any], where: str) -> list[str]:
    """Problems with an ``anthropic`` agent mapping, each naming its key path (``where`` + key)."""
    problems = unknown_keys(settings, SETTING_KEYS, where + ".")
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
    if "max_cost_usd" in settings and not (is_number(max_cost) and max_cost > 0):
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
    if is_int(budget) and budget > 0 and is_int(max_tokens) and budget >= max_tokens:
        problems.append(f"{where}.max_tokens: must be above the thinking budget ({budget}), got {max_tokens}")
    if "prices" in settings:
        problems += price_problems(settings["prices"], f"{where}.prices")
    return problems
