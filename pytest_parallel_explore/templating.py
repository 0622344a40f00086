"""Rendering the package's jinja2 templates (the prompt and ``summary.md``).

Templates are package data with ``StrictUndefined``: a missing variable is an
error, never a silent blank in a prompt or a report.
"""

from __future__ import annotations

import contextlib
import functools
import re
import sys
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import jinja2

#: What a prompt template may use (see ``prompt.pytest_explore_prompt``).
PROMPT_VARIABLES = ("task", "variant", "trial", "description", "experiment", "worktree", "score_command")


#: Markdown's inline markup (links, images, emphasis, code, table cells) and raw HTML, escaped in agent text.
_MARKDOWN = str.maketrans(
    {
        **{c: f"\\{c}" for c in "\\`*[]|~"},
        "&": "&amp;",
        "<": "&lt;",
        ">": "&gt;",
        "\n": " ",
        "\r": " ",
    }
)
_BACKTICKS = re.compile(r"`+")
#: An underscore that could open or close emphasis: one not between two letters or digits (``end_turn`` cannot).
_EMPHASIS_UNDERSCORE = re.compile(r"(?<![^\W_])_|_(?![^\W_])")


def markdown_text(value: object) -> str:
    """``value`` as literal Markdown text on one line: no HTML, link, image, emphasis or table cell of its own.

    For what an agent can write (file names, test ids, reasons): ``summary.md``
    is rendered as HTML by the places it is read (GitHub, a CI job summary).
    """
    return _EMPHASIS_UNDERSCORE.sub(r"\_", str(value).translate(_MARKDOWN))


def markdown_code(value: object) -> str:
    """``value`` as a Markdown code span on one line, whatever backticks it holds (CommonMark's longer fence).

    Inside a code span nothing is markup, HTML included (the summary puts none in a table cell).
    """
    text = " ".join(str(value).splitlines())
    fence = "`" * (max((len(run) for run in _BACKTICKS.findall(text)), default=0) + 1)
    pad = " " if text.startswith(("`", " ")) or text.endswith(("`", " ")) else ""
    return f"{fence}{pad}{text}{pad}{fence}"


#: Where the templates' compiled code is kept, as Python keeps a module's: the report's template takes
#: about 0.25 s of CPU to compile, in every run.
_COMPILED = Path(__file__).parent / "templates" / "__pycache__"


@functools.cache
def _environment() -> jinja2.Environment:
    import jinja2  # here: every pytest process imports this module, few render anything before their work starts

    class CompiledTemplates(jinja2.FileSystemBytecodeCache):
        """jinja2's cache of compiled templates, written under the rules Python writes ``.pyc`` files by.

        Not written under ``PYTHONDONTWRITEBYTECODE``, and never an error: a
        read-only install just compiles every time.  jinja2 checks each entry
        against its template's source and the Python version.
        """

        def load_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
            with contextlib.suppress(OSError):
                super().load_bytecode(bucket)

        def dump_bytecode(self, bucket: jinja2.bccache.Bucket) -> None:
            if not sys.dont_write_bytecode:
                with contextlib.suppress(OSError):
                    _COMPILED.mkdir(exist_ok=True)
                    super().dump_bytecode(bucket)

    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("pytest_parallel_explore", "templates"),
        bytecode_cache=CompiledTemplates(str(_COMPILED)),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    environment.filters.update(md=markdown_text, code=markdown_code)
    return environment


def render(name: str, **context: Any) -> str:
    """Render the package template ``templates/<name>``."""
    return _environment().get_template(name).render(**context)


def render_text(text: str, **context: Any) -> str:
    """Render a user's template (read when the variants file was) with the same settings as the package's own."""
    return _environment().from_string(text).render(**context)


def template_problem(text: str, variables: Collection[str] = PROMPT_VARIABLES) -> str | None:
    """What is wrong with the user's template (its syntax, a variable it cannot have), or None.

    Checked when the variants file is read, so a typo stops the run before any trial rather than
    failing every trial at its agent step.
    """
    import jinja2.meta

    environment = _environment()
    try:
        parsed = environment.parse(text)
    except jinja2.TemplateSyntaxError as exc:
        return f"line {exc.lineno}: {exc.message}"
    unknown = sorted(jinja2.meta.find_undeclared_variables(parsed) - {*variables, *environment.globals})
    if unknown:
        return f"unknown variable {', '.join(map(repr, unknown))}; a prompt template can use {', '.join(variables)}"
    return None
