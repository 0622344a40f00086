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
from pathlib import Path
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


# Field readers for the variants file: each returns the value, or a default after adding a problem.


def flag(data: Mapping[str, Any], key: str, prefix: str, problems: list[str], default: bool = True) -> bool:
    value = data.get(key, default)
    if not isinstance(value, bool):
        problems.append(f"{prefix}{key}: expected true or false, got {value!r}")
        return default
    return value


def choice(data: Mapping[str, Any], key: str, choices: tuple[str, ...], prefix: str, problems: list[str]) -> str | None:
    value = data.get(key)
    if value is not None and value not in choices:
        expected = " or ".join(repr(c) for c in choices)
        problems.append(f"{prefix}{key}: expected {expected}, got {value!r}")
        return None
    return value


def env_names(data: Mapping[str, Any], key: str, prefix: str, problems: list[str]) -> tuple[str, ...]:
    value = data.get(key) or ()
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, (list, tuple)) or not all(
        isinstance(v, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v) for v in value
    ):
        problems.append(f"{prefix}{key}: expected a list of environment variable names, got {value!r}")
        return ()
    return tuple(value)


def paths(
    data: Mapping[str, Any], key: str, prefix: str, problems: list[str], *, inside_repo: bool = True
) -> tuple[str, ...]:
    """A path (or glob) or a list of them; with ``inside_repo``, each inside the repository."""
    value = data.get(key) or ()
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
        problems.append(f"{prefix}{key}: expected a path or a list of paths, got {describe(value)}")
        return ()
    for path in value if inside_repo else ():
        if Path(path).is_absolute() or ".." in Path(path).parts:
            problems.append(f"{prefix}{key}: expected a path inside the repository, got {path!r}")
    return tuple(value)


def positive_int(data: Mapping[str, Any], key: str, prefix: str, problems: list[str]) -> int | None:
    value = optional(data, key, int, "a whole number >= 1", prefix, problems)
    if value is not None and value < 1:
        problems.append(f"{prefix}{key}: expected a whole number >= 1, got {value}")
        return None
    return value


def optional(
    data: Mapping[str, Any], key: str, kind: type | tuple[type, ...], expected: str, prefix: str, problems: list[str]
) -> Any:
    value = data.get(key)
    if value is None:
        return None
    if not is_a(value, kind):
        problems.append(f"{prefix}{key}: expected {expected}, got {describe(value)}")
        return None
    return value


def duration(data: Mapping[str, Any], key: str, prefix: str, problems: list[str]) -> float | None:
    if data.get(key) is None:
        return None
    try:
        return parse_duration(data[key])
    except ValueError:
        problems.append(f"{prefix}{key}: expected a duration such as 90, '90s', '20m' or '1h', got {data[key]!r}")
        return None
