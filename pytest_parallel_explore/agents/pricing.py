"""Estimated cost: the one price table of every backend, and the ``prices`` setting that overrides it.

The built-in agent prices every response's usage with :func:`price_for` to
report a cost and to enforce ``max_cost_usd``; the CLI backends price the
usage their CLI reports with the same table, so that backends compare, and
keep the CLI's own figure beside it (``AgentStats.cli_cost_usd``) when it
differs.  Token counts follow Anthropic's usage: ``input`` excludes cache
reads and writes (an OpenAI usage's cached tokens are taken out of its input
before pricing).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

from ..config.checks import is_number, unknown_keys

#: The keys of one model's entry under ``prices``.
PRICE_KEYS = ("input", "output", "cache_read", "cache_write")


class Price(NamedTuple):
    """USD per million tokens."""

    input: float
    output: float
    cache_read: float
    cache_write: float  # 5-minute cache writes, the TTL the built-in agent uses

    def cost(self, input: int, output: int, cache_read: int, cache_write: int, cache_write_1h: int = 0) -> float:
        """USD for these tokens; ``cache_write_1h`` (Claude Code's 1-hour cache writes) cost twice the input rate."""
        tokens = (input, output, cache_read, cache_write)
        total = sum(n * rate for n, rate in zip(tokens, self, strict=True)) + cache_write_1h * 2 * self.input
        return total / 1_000_000


#: List prices in USD per million tokens (Anthropic's and OpenAI's pricing pages, October 2026),
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
    # Opus 4 and 4.1 kept the earlier, higher price: without these rows "claude-opus-4" would cover them.
    "claude-opus-4-0": Price(15.0, 75.0, 1.50, 18.75),
    "claude-opus-4-1": Price(15.0, 75.0, 1.50, 18.75),
    "claude-opus-4-2025": Price(15.0, 75.0, 1.50, 18.75),  # claude-opus-4-20250514
    "claude-sonnet-5-5": Price(2.0, 10.0, 0.10, 2.50),
    "claude-sonnet-5": Price(2.0, 10.0, 0.20, 2.50),
    "claude-sonnet-4": Price(3.0, 15.0, 0.30, 3.75),
    "claude-haiku-5-5": Price(0.10, 0.50, 0.01, 0.125),
    "claude-haiku-4": Price(1.0, 5.0, 0.10, 1.25),
    # OpenAI (its pricing page): cached input is the cache read; writing the cache costs nothing extra.
    "gpt-5": Price(1.25, 10.0, 0.125, 1.25),  # gpt-5, gpt-5.1, gpt-5-codex, gpt-5.1-codex
    "gpt-5-mini": Price(0.25, 2.0, 0.025, 0.25),
    "gpt-5-nano": Price(0.05, 0.40, 0.005, 0.05),
    "gpt-4.1": Price(2.0, 8.0, 0.50, 2.0),
    "gpt-4.1-mini": Price(0.40, 1.60, 0.10, 0.40),
    "gpt-4o": Price(2.50, 10.0, 1.25, 2.50),
    "gpt-4o-mini": Price(0.15, 0.60, 0.075, 0.15),
    "o3": Price(2.0, 8.0, 0.50, 2.0),
    "o4-mini": Price(1.10, 4.40, 0.275, 1.10),
    "codex-mini": Price(1.50, 6.0, 0.375, 1.50),
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


def price_problems(prices: Any, where: str) -> list[str]:
    """Problems with a ``prices`` setting, each naming its key path."""
    expected = "a mapping of model name to {input, output[, cache_read, cache_write]} in USD per million tokens"
    if not isinstance(prices, Mapping):
        return [f"{where}: expected {expected}, got {prices!r}"]
    problems = []
    for model, rates in prices.items():
        if not isinstance(rates, Mapping):
            problems.append(f"{where}.{model}: expected {expected}, got {rates!r}")
            continue
        problems += unknown_keys(rates, PRICE_KEYS, f"{where}.{model}.")
        problems += [f"{where}.{model}.{k}: required" for k in ("input", "output") if k not in rates]
        problems += [
            f"{where}.{model}.{k}: expected a number >= 0, got {v!r}"
            for k, v in rates.items()
            if k in PRICE_KEYS and not (is_number(v) and v >= 0)
        ]
    return problems
