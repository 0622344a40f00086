"""The built-in agent's tools and the rules that confine them to the trial's worktree.

:data:`TOOLS` are the schemas the model is given (list, read, write, edit,
search, run a command); :class:`WorktreeTools` carries them out.  The rules:

* Every path is resolved inside the worktree, symlinks followed; an absolute
  path outside it, a ``..`` escape or a symlink that leads out is refused, and
  so is git's own ``.git`` folder.  A refusal is a :class:`ToolError`, which
  the model reads as an ``is_error`` result and can act on.
* Searches skip symlinks that lead out, binary files and files over 2 MB.
* ``run_command`` is a shell in the worktree, not a sandbox: it runs as its
  own process group with a timeout, without API keys in its environment.
* What goes back to the model is bounded: 30,000 characters of a file (read a
  line range for more), the head and tail of a command's output, 1,000
  directory entries, 200 search matches.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .procs import run_owned

if TYPE_CHECKING:
    from anthropic.types import ToolParam

# Bounds on what one tool call sends back to the model.
_OUTPUT_LIMIT = 30_000  # characters of a file, bytes of a command's output
_LIST_LIMIT = 1_000  # directory entries
_SEARCH_LIMIT = 200  # matching lines
_SEARCH_MAX_FILE_BYTES = 2_000_000


class ToolError(Exception):
    """A tool call that cannot be carried out; the model reads it as an ``is_error`` result."""


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


@dataclasses.dataclass
class WorktreeTools:
    """The tools' implementations: every path is resolved inside ``root`` or refused."""

    root: Path
    env: Mapping[str, str]  # for commands: no API keys
    command_timeout: float

    def call(self, name: str, args: Mapping[str, Any], time_left: float) -> str:
        try:
            if name == "list_directory":
                return self.list_directory(_arg(args, "path", str, "."))
            if name == "read_file":
                start, end = _arg(args, "start_line", int, None), _arg(args, "end_line", int, None)
                return self.read_file(_arg(args, "path", str), start, end)
            if name == "write_file":
                return self.write_file(_arg(args, "path", str), _arg(args, "content", str))
            if name == "edit_file":
                old, new = _arg(args, "old_string", str), _arg(args, "new_string", str)
                return self.edit_file(_arg(args, "path", str), old, new)
            if name == "search":
                path, glob = _arg(args, "path", str, "."), _arg(args, "glob", str, None)
                return self.search(_arg(args, "pattern", str), path, glob)
            if name == "run_command":
                return self.run_command(_arg(args, "command", str), min(self.command_timeout, time_left))
        except OSError as exc:
            raise ToolError(f"{args.get('path', '')}: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise ToolError(f"{args.get('path', '')}: not a UTF-8 text file ({exc.reason})") from exc
        raise ToolError(f"unknown tool {name!r}")

    def resolve(self, path: str) -> Path:
        """``path`` inside the worktree, symlinks followed; anything leading out is refused."""
        try:
            resolved = (self.root / path).resolve()
        except (OSError, RuntimeError) as exc:  # a symlink loop
            raise ToolError(f"{path}: cannot be resolved ({exc})") from exc
        if not resolved.is_relative_to(self.root):
            raise ToolError(
                f"{path}: refused, it is outside the worktree; use paths inside the worktree "
                "(relative to its root), and no symlink that leads out of it"
            )
        if resolved.relative_to(self.root).parts[:1] == (".git",):
            raise ToolError(f"{path}: refused, git's own files are off limits (use git commands)")
        return resolved

    def _show(self, path: Path) -> str:
        return str(path.relative_to(self.root)) if path != self.root else "."

    def list_directory(self, path: str) -> str:
        folder = self.resolve(path)
        entries = sorted(
            entry.name + ("/" if entry.is_dir() else "") for entry in os.scandir(folder) if entry.name != ".git"
        )
        if not entries:
            return f"{self._show(folder)} is empty"
        more = f"\n[{len(entries) - _LIST_LIMIT} more entries not shown]" if len(entries) > _LIST_LIMIT else ""
        return "\n".join(entries[:_LIST_LIMIT]) + more

    def read_file(self, path: str, start: int | None, end: int | None) -> str:
        file = self.resolve(path)
        if file.is_dir():
            raise ToolError(f"{path}: is a directory; use list_directory")
        lines = file.read_text(encoding="utf-8", errors="replace").splitlines()
        first = max(start or 1, 1)
        shown = lines[first - 1 : end]
        text = "\n".join(f"{n:6}\t{line}" for n, line in enumerate(shown, first))
        if len(text) > _OUTPUT_LIMIT:
            note = f"\n[truncated: the file has {len(lines)} lines; read a range with start_line/end_line]"
            return text[:_OUTPUT_LIMIT] + note
        return text or f"{self._show(file)}: no lines in that range (the file has {len(lines)})"

    def write_file(self, path: str, content: str) -> str:
        file = self.resolve(path)
        file.parent.mkdir(parents=True, exist_ok=True)
        file.write_text(content, encoding="utf-8")
        return f"wrote {len(content)} characters to {self._show(file)}"

    def edit_file(self, path: str, old: str, new: str) -> str:
        file = self.resolve(path)
        text = file.read_text(encoding="utf-8")
        count = text.count(old) if old else 0
        if count != 1:
            found = "is empty" if not old else "was not found" if not count else f"occurs {count} times"
            raise ToolError(f"{path}: old_string {found}; it must occur exactly once (include more context)")
        file.write_text(text.replace(old, new, 1), encoding="utf-8")
        return f"edited {self._show(file)}"

    def search(self, pattern: str, path: str, glob: str | None) -> str:
        try:
            regex = re.compile(pattern)
        except re.error as exc:
            raise ToolError(f"bad regular expression {pattern!r}: {exc}") from exc
        matches: list[str] = []
        for file in self._files_under(self.resolve(path)):
            shown = self._show(file)
            if glob and not (fnmatch.fnmatch(shown, glob) or fnmatch.fnmatch(file.name, glob)):
                continue
            text = file.read_text(encoding="utf-8", errors="replace")
            matches += (
                f"{shown}:{n}: {line[:300]}" for n, line in enumerate(text.splitlines(), 1) if regex.search(line)
            )
            if len(matches) > _SEARCH_LIMIT:
                return "\n".join(matches[:_SEARCH_LIMIT]) + "\n[more matches not shown: narrow the search]"
        return "\n".join(matches) or "no matches"

    def _files_under(self, start: Path) -> list[Path]:
        """Text files under ``start`` that are inside the worktree (symlinks out are skipped)."""
        if start.is_file():
            return [start]
        found = []
        for folder, dirs, names in os.walk(start):
            dirs[:] = sorted(d for d in dirs if d != ".git")
            for name in sorted(names):
                file = Path(folder, name)
                if file.resolve().is_relative_to(self.root) and _is_text(file):
                    found.append(file)
        return found

    def run_command(self, command: str, timeout: float) -> str:
        with tempfile.TemporaryDirectory(prefix="explore-command-") as scratch:
            output = Path(scratch, "output")
            finished = run_owned(command, cwd=self.root, env=self.env, timeout=timeout, output=output)
            text = _read_bounded(output)
        if finished.timed_out:
            raise ToolError(f"command timed out after {timeout:g}s and was killed; output so far:\n{text}")
        return f"exit code {finished.returncode}\n{text}"


def _arg(args: Mapping[str, Any], name: str, kind: type, *default: Any) -> Any:
    if name not in args or args[name] is None:
        if default:
            return default[0]
        raise ToolError(f"missing argument {name!r}")
    value = args[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ToolError(f"argument {name!r} must be of type {kind.__name__}, got {value!r}")
    return value


def _is_text(file: Path) -> bool:
    try:
        if file.stat().st_size > _SEARCH_MAX_FILE_BYTES:
            return False
        with file.open("rb") as f:
            return b"\0" not in f.read(8192)
    except OSError:
        return False


def _read_bounded(path: Path) -> str:
    """The text of ``path``, or only its head and tail when it is over the output limit."""
    half = _OUTPUT_LIMIT // 2
    with path.open("rb") as f:
        size = f.seek(0, os.SEEK_END)
        f.seek(0)
        if size <= _OUTPUT_LIMIT:
            return f.read().decode(errors="replace")
        head = f.read(half).decode(errors="replace")
        f.seek(-half, os.SEEK_END)
        tail = f.read().decode(errors="replace")
    return f"{head}\n[... {size - 2 * half} bytes not shown ...]\n{tail}"
