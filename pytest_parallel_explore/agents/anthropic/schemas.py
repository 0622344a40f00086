"""What the built-in agent's model is told about its tools: their names, descriptions and input schemas.

:class:`~pytest_parallel_explore.agents.anthropic.tools.WorktreeTools` carries
the calls out; the schemas are sent with every request, so the last one marks
the cache breakpoint.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from anthropic.types import ToolParam


def _schema(properties: dict[str, Any], *required: str) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(required)}


_PATH = {"type": "string", "description": "Path relative to the worktree root."}
TOOLS: list[ToolParam] = [
    {
        "name": "list_directory",
        "description": "List a directory of the worktree (directories end with '/').",
        "input_schema": _schema({"path": {**_PATH, "default": "."}}),
    },
    {
        "name": "read_file",
        "description": (
            "Read a text file, with line numbers; optionally only lines start_line..end_line (1-based, inclusive)."
        ),
        "input_schema": _schema(
            {"path": _PATH, "start_line": {"type": "integer"}, "end_line": {"type": "integer"}}, "path"
        ),
    },
    {
        "name": "write_file",
        "description": "Create or overwrite a file with the given content (parent directories are created).",
        "input_schema": _schema({"path": _PATH, "content": {"type": "string"}}, "path", "content"),
    },
    {
        "name": "edit_file",
        "description": "Replace old_string, which must occur exactly once in the file, by new_string.",
        "input_schema": _schema(
            {"path": _PATH, "old_string": {"type": "string"}, "new_string": {"type": "string"}},
            "path",
            "old_string",
            "new_string",
        ),
    },
    {
        "name": "search",
        "description": "Search files for a Python regular expression; returns path:line: text for each match.",
        "input_schema": _schema(
            {
                "pattern": {"type": "string"},
                "path": {**_PATH, "default": "."},
                "glob": {"type": "string", "description": "Only files whose path matches, e.g. '*.py'."},
            },
            "pattern",
        ),
    },
    {
        "name": "run_command",
        "description": "Run a shell command in the worktree root; returns its exit code and its stdout and stderr.",
        "input_schema": _schema({"command": {"type": "string"}}, "command"),
        "cache_control": {"type": "ephemeral"},  # the last tool: caches all tool definitions
    },
]
