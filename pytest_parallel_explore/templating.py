"""Rendering the package's jinja2 templates (the prompt and ``summary.md``).

Templates are package data with ``StrictUndefined``: a missing variable is an
error, never a silent blank in a prompt or a report.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import jinja2


@functools.cache
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.PackageLoader("pytest_parallel_explore", "templates"),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(name: str, **context: Any) -> str:
    """Render the package template ``templates/<name>``."""
    return _environment().get_template(name).render(**context)


def render_file(path: Path, **context: Any) -> str:
    """Render a user's template file with the same settings as the package's own."""
    return _environment().from_string(path.read_text(encoding="utf-8")).render(**context)
