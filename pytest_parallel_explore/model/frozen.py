"""Read-only snapshots for hooks: what a hook is given, it cannot change the plugin's state through.

A ``conftest.py`` that set ``trial.score`` in ``pytest_explore_trial_finished``
used to change the ranking; a hook that changed ``variant.agent`` changed the
agent the trial ran.  Hooks now get a deep copy wrapped in :class:`Frozen`:
assigning to it raises :class:`ReadOnlyError` naming the hook, its lists are
tuples and its dicts read-only mappings.  Hooks hand results back by
returning them (``pytest_explore_score`` returns metrics).
"""

from __future__ import annotations

import copy
import dataclasses
import enum
import types
from typing import Any, TypeVar

_T = TypeVar("_T")


class ReadOnlyError(AttributeError):
    """A hook assigned to what it was given to read."""


class Frozen:
    """A read-only view of ``target`` (a snapshot: the plugin's own object is never exposed)."""

    __slots__ = ("_hook", "_target")

    def __init__(self, target: object, hook: str) -> None:
        object.__setattr__(self, "_target", target)
        object.__setattr__(self, "_hook", hook)

    def __getattr__(self, name: str) -> Any:
        return _freeze(getattr(self._target, name), self._hook)

    def __setattr__(self, name: str, value: object) -> None:
        raise ReadOnlyError(
            f"{self._hook}: {type(self._target).__name__}.{name} is read-only: a hook is given a copy to read, "
            "and the plugin's records change only through its own steps; return a value where the hook takes one"
        )

    __delattr__ = __setattr__  # type: ignore[assignment]

    def __eq__(self, other: object) -> bool:
        return bool(self._target == (other._target if isinstance(other, Frozen) else other))

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"read-only {self._target!r}"


def snapshot(value: _T, hook: str) -> _T:
    """A deep copy of ``value`` that raises :class:`ReadOnlyError` naming ``hook`` on assignment.

    Typed as ``value``'s own type: it reads the same, attribute by attribute.
    """
    frozen: _T = _freeze(copy.deepcopy(value), hook)
    return frozen


def _freeze(value: Any, hook: str) -> Any:
    if isinstance(value, str | bytes | int | float | enum.Enum | type(None)):
        return value
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return Frozen(value, hook)
    if isinstance(value, list | tuple):
        return tuple(_freeze(v, hook) for v in value)
    if isinstance(value, dict | types.MappingProxyType):
        return types.MappingProxyType({k: _freeze(v, hook) for k, v in value.items()})
    if isinstance(value, set | frozenset):
        return frozenset(value)
    return value


def thaw(value: Any) -> Any:
    """A plain, mutable copy of what :func:`snapshot` froze: dicts and lists again, as parsed from YAML or JSON."""
    if isinstance(value, Frozen):
        return copy.deepcopy(value._target)
    if isinstance(value, types.MappingProxyType | dict):
        return {k: thaw(v) for k, v in value.items()}
    if isinstance(value, tuple | list):
        return [thaw(v) for v in value]
    return value
