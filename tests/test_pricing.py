"""The price table and the ``prices`` setting."""

from __future__ import annotations

import pytest

from pytest_parallel_explore.agents.pricing import PRICES_USD_PER_MTOK, Price, price_for, price_problems


@pytest.mark.parametrize(
    "model, rates",
    [
        ("claude-opus-4-20250514", (15.0, 75.0)),
        ("claude-opus-4-1-20250805", (15.0, 75.0)),
        ("claude-opus-4-0", (15.0, 75.0)),
        ("claude-opus-4-5-20251101", (5.0, 25.0)),
        ("claude-opus-4-8", (5.0, 25.0)),
        ("claude-sonnet-4-20250514", (3.0, 15.0)),
        ("claude-sonnet-5-5", (2.0, 10.0)),
        ("gpt-5.1-codex", (1.25, 10.0)),
        ("gpt-5-mini-2025-08-07", (0.25, 2.0)),
    ],
)
def test_each_model_gets_the_row_of_its_longest_prefix(model: str, rates: tuple[float, float]) -> None:
    price = price_for(model)

    assert price is not None and (price.input, price.output) == rates


def test_cost_is_tokens_times_rates_per_million() -> None:
    price = Price(input=2.0, output=10.0, cache_read=0.1, cache_write=2.5)

    assert price.cost(1_000_000, 0, 0, 0) == 2.0
    assert price.cost(5_000, 20_000, 400_000, 40_000) == pytest.approx(0.01 + 0.2 + 0.04 + 0.1)


def test_every_row_prices_cache_reads_below_input_and_writes_not_below() -> None:
    for model, price in PRICES_USD_PER_MTOK.items():
        assert price.cache_read < price.input <= price.cache_write < price.output, model
        if model.startswith("claude-"):
            assert price.input < price.cache_write, model


def test_one_hour_cache_writes_cost_twice_the_input_rate() -> None:
    price = Price(input=5.0, output=25.0, cache_read=0.5, cache_write=6.25)

    assert price.cost(0, 0, 0, 0, cache_write_1h=1_000_000) == 10.0


def test_price_problems_name_the_key_path() -> None:
    assert price_problems({"m": {"input": 1, "output": 2}}, "agent.prices") == []
    assert price_problems([], "agent.prices") == [
        "agent.prices: expected a mapping of model name to {input, output[, cache_read, cache_write]} "
        "in USD per million tokens, got []"
    ]
    assert price_problems({"m": {"input": 1, "outptu": 2}}, "agent.prices") == [
        "agent.prices.m.outptu: unknown key; did you mean 'output'?",
        "agent.prices.m.output: required",
    ]
