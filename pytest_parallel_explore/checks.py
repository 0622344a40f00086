"""Generic checks of settings values, shared by :mod:`.spec` and the agent backends.

They sit below both so that neither imports the other: the spec asks the
agent registry it is given, and the backends check their settings with these.
Problems are text naming the key path (``where`` + key), in the form
:mod:`.spec` collects into one ``pytest.UsageError``.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Iterable, Mapping
from typing import Any, TypeGuard

_DURATION = re.compile(r"(\d+(?:\.\d+)?)\s*([hms]?)")
_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "": 1.0}


def is_a(value: object, kind: type | tuple[type, ...]) -> bool:
    """``isinstance`` that does not count a bool as a number (YAML's ``true`` is not a turn count)."""
    return isinstance(value, kind) and not isinstance(value, bool)


def is_int(value: object) -> TypeGuard[int]:
    """An int that is not a bool."""
    return is_a(value, int)


def is_number(value: object) -> TypeGuard[float]:
    """An int or a float that is not a bool."""
    return is_a(value, (int, float))


def parse_duration(value: Any) -> float:
    """Seconds from ``90``, ``"90s"``, ``"20m"``, ``"1h30m"``; ValueError otherwise."""
    if isinstance(value, bool):
        raise ValueError(value)
    if isinstance(value, (int, float)):
        # YAML reads ``.inf`` and ``.nan`` as floats: neither is a time limit.
        if not math.isfinite(value) or value <= 0:
            raise ValueError(value)
        return float(value)
    text = str(value).strip().lower()
    parts = _DURATION.findall(text)
    if not parts or _DURATION.sub("", text).strip() or (len(parts) > 1 and "" in [u for _, u in parts]):
        raise ValueError(value)
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ValueError(value)
    return seconds


def unknown_keys(data: Mapping[str, Any], known: Iterable[str], prefix: str) -> list[str]:
    """One problem per key of ``data`` not in ``known``, suggesting the nearest known key."""
    known = sorted(known)
    problems = []
    for key in data:
        if key not in known:
            near = difflib.get_close_matches(str(key), known, n=1)
            hint = f"; did you mean {near[0]!r}?" if near else f"; expected one of {', '.join(known)}"
            problems.append(f"{prefix}{key}: unknown key{hint}")
    return problems


def positive_int_problem(settings: Mapping[str, Any], key: str, where: str) -> str | None:
    """The problem with ``settings[key]`` (absent is fine) unless it is an int >= 1."""
    value = settings.get(key, 1)
    if is_int(value) and value >= 1:
        return None
    return f"{where}.{key}: expected a positive integer, got {value!r}"


def describe(value: Any) -> str:
    """A value as an error message shows it: ``'text'``, ``int 3``, ``list``, ``nothing``."""
    if value is None:
        return "nothing"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, (bool, int, float)):
        return f"{type(value).__name__} {value!r}"
    return type(value).__name__
