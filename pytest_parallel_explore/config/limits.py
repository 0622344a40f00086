"""Reading the ``limits`` section: sizes such as ``512M`` and counts, each checked and named on error."""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from ..model.limits import COUNTS, LIMIT_KEYS, UNITS, Limits
from .checks import describe, is_int, unknown_keys

_SIZE = re.compile(r"(\d+(?:\.\d+)?)\s*([KMGT]?)(?:I?B)?", re.IGNORECASE)
_SIZE_EXPECTED = "a size such as 512M, 4G or a number of bytes, or null for no limit"


def parse_size(value: Any) -> int:
    """Bytes from ``1024``, ``"512M"``, ``"1.5G"``, ``"2GiB"`` (binary units); ValueError otherwise."""
    if is_int(value) and value > 0:
        return value
    match = _SIZE.fullmatch(str(value).strip()) if isinstance(value, str) else None
    if match is None:
        raise ValueError(value)
    size = int(float(match.group(1)) * UNITS[match.group(2).upper()])
    if size <= 0:
        raise ValueError(value)
    return size


def parse_limits(raw: Any, default: Limits, where: str, problems: list[str]) -> Limits:
    """``limits: {memory: 4G, processes: 512, file_size: 1G, disk: 2G, output: 20M, files: 1000}``, over ``default``."""
    if not isinstance(raw, dict):
        problems.append(f"{where}: expected a mapping ({', '.join(sorted(LIMIT_KEYS))}), got {describe(raw)}")
        return default
    problems.extend(unknown_keys(raw, LIMIT_KEYS, where + "."))
    values: dict[str, int | None] = {}
    for key in (k for k in raw if k in LIMIT_KEYS):
        value = raw[key]
        if value is None:
            values[key] = None
        elif key in COUNTS:
            if is_int(value) and value >= 1:
                values[key] = value
            else:
                problems.append(
                    f"{where}.{key}: expected a whole number >= 1, or null for no limit, got {describe(value)}"
                )
        else:
            try:
                values[key] = parse_size(value)
            except ValueError:
                problems.append(f"{where}.{key}: expected {_SIZE_EXPECTED}, got {describe(value)}")
    return dataclasses.replace(default, **values)
