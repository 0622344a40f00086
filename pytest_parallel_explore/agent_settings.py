"""Checks shared by the built-in backends' ``validate_settings`` (``anthropic``, ``claude-code``).

Each returns problems as text naming the key path (``where`` + key), in the
form :mod:`.spec` collects into one ``pytest.UsageError``.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeGuard

THINKING_EXPECTED = '"adaptive", a token budget (int >= 1024) or 0'


def thinking_problem(settings: Mapping[str, Any], where: str) -> str | None:
    value = settings.get("thinking", "adaptive")
    if value == "adaptive" or (is_int(value) and (value == 0 or value >= 1024)):
        return None
    return f"{where}.thinking: expected {THINKING_EXPECTED}, got {value!r}"


def positive_int_problem(settings: Mapping[str, Any], key: str, where: str) -> str | None:
    value = settings.get(key, 1)
    if is_int(value) and value >= 1:
        return None
    return f"{where}.{key}: expected a positive integer, got {value!r}"


def is_int(value: object) -> TypeGuard[int]:
    """An int that is not a bool (YAML's ``true`` is not a turn count)."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value: object) -> TypeGuard[float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)
