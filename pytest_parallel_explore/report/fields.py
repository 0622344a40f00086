"""Typed reading of a results file: a value that is missing or of the wrong type names its key path.

``results.json`` and ``experiment.json`` may come from folders downloaded from
CI (``--explore-merge``), so every value read back is checked, and a
:class:`ResultsError` says which key is wrong (``trials[2].variant: ...``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ..config.checks import describe, is_int, is_number

_REQUIRED: Any = object()


class ResultsError(ValueError):
    """A ``results.json`` or ``experiment.json`` this plugin did not write; the message names the key."""


class Fields:
    """Typed reading of one mapping of a results file: a missing or mistyped value names its key path."""

    def __init__(self, data: Any, where: str) -> None:
        if not isinstance(data, Mapping):
            raise ResultsError(f"{where + ': ' if where else ''}expected a mapping, got {describe(data)}")
        self.data: Mapping[str, Any] = data
        self.where = where

    def at(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def _value(self, key: str, default: Any, valid: Callable[[Any], bool], expected: str) -> Any:
        """The value at ``key``, checked; an optional one (with a ``default``) may be absent or null."""
        value = self.data.get(key)
        if value is None and default is not _REQUIRED:
            return default
        if key not in self.data:
            raise ResultsError(f"{self.at(key)}: missing")
        if not valid(value):
            raise ResultsError(f"{self.at(key)}: expected {expected}, got {describe(value)}")
        return value

    def text(self, key: str, default: Any = _REQUIRED) -> Any:
        return self._value(key, default, lambda v: isinstance(v, str), "text")

    def number(self, key: str, default: Any = _REQUIRED) -> Any:
        return self._value(key, default, is_number, "a number")

    def integer(self, key: str, default: Any = _REQUIRED) -> Any:
        return self._value(key, default, is_int, "an integer")

    def choice(self, key: str, choices: tuple[str | None, ...]) -> Any:
        """One of ``choices`` (None among them: it may be absent or null)."""
        value = self.data.get(key)
        if value not in choices:
            shown = ", ".join("null" if c is None else repr(c) for c in choices)
            raise ResultsError(f"{self.at(key)}: expected one of {shown}, got {describe(value)}")
        return value

    def flag(self, key: str) -> bool:
        return bool(self._value(key, _REQUIRED, lambda v: isinstance(v, bool), "true or false"))

    def names(self, key: str, default: Any = _REQUIRED) -> Any:
        """A list of text (test ids, trial or file names)."""
        valid = lambda v: isinstance(v, list) and all(isinstance(n, str) for n in v)  # noqa: E731
        names = self._value(key, default, valid, "a list of names")
        return None if names is None else list(names)

    def counts(self, key: str) -> dict[str, int]:
        valid = lambda v: isinstance(v, Mapping) and all(isinstance(k, str) and is_int(n) for k, n in v.items())  # noqa: E731
        return dict(self._value(key, _REQUIRED, valid, "a mapping of names to counts"))

    def mapping(self, key: str) -> Fields | None:
        """The mapping at ``key``; None when it is absent, null or empty."""
        value = self.data.get(key)
        return None if value is None or value == {} else Fields(value, self.at(key))

    def entries(
        self, key: str, *, required: bool = True, skip: Callable[[Any], bool] = lambda item: False
    ) -> list[Fields]:
        """The mappings listed at ``key``, but those ``skip`` passes over; absent, it is empty unless ``required``."""
        items = self._value(key, _REQUIRED if required else [], lambda v: isinstance(v, list), "a list")
        return [Fields(item, f"{self.at(key)}[{i}]") for i, item in enumerate(items) if not skip(item)]
