"""The built-in agent's tools and the rules that confine and bound them.

:data:`.schemas.TOOLS` are the schemas the model is given (list, read, write,
edit, search, run a command); :class:`WorktreeTools` carries them out.  The model is
assumed hostile: whatever it asks, a call ends within the trial's limits,
either with a result or with a :class:`ToolError`, which the model reads as an
``is_error`` result and can act on; never with a hang, a crash of the trial
or unbounded memory or disk.  The rules:

* Every path is resolved inside the worktree, symlinks followed; an absolute
  path outside it, a ``..`` escape or a symlink that leads out is refused, and
  so is git's own ``.git`` folder.  An empty path, a NUL character, a path
  over 4,096 characters or one that cannot be encoded is refused too.
* Only regular files are read or written.  FIFOs, sockets and devices are
  refused after a ``stat`` and before any ``open`` (opening a FIFO blocks
  until its other end opens); files are opened with ``O_NONBLOCK`` and
  checked again with ``fstat``, in case one was swapped in between.
* ``read_file`` reads at most the first 10 MB of a file; ``write_file`` and
  ``edit_file`` write at most 5 MB per call, and edit files up to that size.
* ``search`` runs in a child process (:mod:`._search`) that is killed after
  5 seconds, or when the trial's time runs out, whichever comes first:
  Python's ``re`` cannot be interrupted, and ``(a+)+$`` backtracks for ever.
  It skips symlinks that lead out, non-regular, binary and over-2 MB files.
* ``run_command`` is a shell in the worktree, not a sandbox: it runs as its
  own process group with a timeout and an allow-listed environment
  (:mod:`pytest_parallel_explore.isolation.environ`).  Its output streams through a FIFO into a bounded head
  and tail (:mod:`.output`), taking no disk; after 10 MB the pipe is closed, so the command
  dies of SIGPIPE on its next write, and the model gets an error.
* What goes back to the model is bounded: 30,000 characters of a file (read a
  line range for more), the head and tail of a command's output, 1,000
  directory entries, 200 search matches.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import heapq
import itertools
import json
import os
import stat
import sys
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ...isolation.procs import run_owned
from ...isolation.sandbox import Sandbox
from .output import CappedOutput

# Bounds on what one tool call sends back to the model.
_OUTPUT_LIMIT = 30_000  # characters of a file, bytes of a command's output
_LIST_LIMIT = 1_000  # directory entries
_SEARCH_LIMIT = 200  # matching lines
_SEARCH_MAX_FILE_BYTES = 2_000_000

# Bounds on what one tool call may cost.
READ_LIMIT_BYTES = 10_000_000  # read_file reads at most this prefix of a file
WRITE_LIMIT_BYTES = 5_000_000  # write_file and edit_file write at most this, and edit files up to it
COMMAND_OUTPUT_CAP_BYTES = 10_000_000  # run_command's output pipe is closed after this much
SEARCH_SECONDS = 5.0  # a search's time limit (never more than the trial's time left)
_PATTERN_MAX_CHARS = 1_000
_PATH_MAX_CHARS = 4_096  # PATH_MAX on Linux
_EOL = "\r\n"


class ToolError(Exception):
    """A tool call that cannot be carried out; the model reads it as an ``is_error`` result."""


@dataclasses.dataclass
class WorktreeTools:
    """The tools' implementations: every path is resolved inside ``root`` or refused."""

    root: Path
    env: Mapping[str, str]  # for commands: the allow-listed environment
    command_timeout: float
    search_timeout: float = SEARCH_SECONDS
    sandbox: Sandbox | None = None  # where run_command runs (bubblewrap), or None

    def call(self, name: str, args: Any, time_left: float) -> str:
        """Carry out one tool call; anything the model can get wrong is a :class:`ToolError`."""
        if not isinstance(args, Mapping):
            raise ToolError(f"the input of {name!r} must be an object of named arguments, got {_clip(args)}")
        path = _clip(args.get("path", ""))
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
                where, glob = _arg(args, "path", str, "."), _arg(args, "glob", str, None)
                return self.search(_arg(args, "pattern", str), where, glob, min(self.search_timeout, time_left))
            if name == "run_command":
                return self.run_command(_arg(args, "command", str), min(self.command_timeout, time_left))
        except OSError as exc:
            raise ToolError(f"{path}: {exc.strerror or exc}") from exc
        except UnicodeDecodeError as exc:
            raise ToolError(f"{path}: not a UTF-8 text file ({exc.reason})") from exc
        except UnicodeEncodeError as exc:  # a lone surrogate ("\ud800") in a path or in content
            raise ToolError(f"{path}: the text cannot be encoded as UTF-8 ({exc.reason} at {exc.start})") from exc
        raise ToolError(f"unknown tool {_clip(name)}")

    def resolve(self, path: str) -> Path:
        """``path`` inside the worktree, symlinks followed; anything leading out is refused."""
        if not path:
            raise ToolError("empty path; use '.' for the worktree root")
        if "\0" in path:
            raise ToolError(f"{_clip(path)}: refused, a path cannot contain a NUL character")
        if len(path) > _PATH_MAX_CHARS:
            raise ToolError(f"{_clip(path)}: {os.strerror(errno.ENAMETOOLONG)} ({len(path)} characters)")
        try:
            resolved = (self.root / path).resolve()
        except (OSError, RuntimeError) as exc:  # a symlink loop
            raise ToolError(f"{_clip(path)}: cannot be resolved ({exc})") from exc
        if not resolved.is_relative_to(self.root):
            raise ToolError(
                f"{_clip(path)}: refused, it is outside the worktree; use paths inside the worktree "
                "(relative to its root), and no symlink that leads out of it"
            )
        if resolved.relative_to(self.root).parts[:1] == (".git",):
            raise ToolError(f"{_clip(path)}: refused, git's own files are off limits (use git commands)")
        return resolved

    def _show(self, path: Path) -> str:
        return str(path.relative_to(self.root)) if path != self.root else "."

    def list_directory(self, path: str) -> str:
        folder = self.resolve(path)
        count, first = 0, []
        with os.scandir(folder) as entries:
            names = (entry.name + ("/" if entry.is_dir() else "") for entry in entries if entry.name != ".git")
            # Keep only the first entries in order, however many there are.
            for name in names:
                count += 1
                first.append(name)
                if len(first) > 2 * _LIST_LIMIT:
                    first = heapq.nsmallest(_LIST_LIMIT, first)
        if not count:
            return f"{self._show(folder)} is empty"
        more = f"\n[{count - _LIST_LIMIT} more entries not shown]" if count > _LIST_LIMIT else ""
        return "\n".join(heapq.nsmallest(_LIST_LIMIT, first)) + more

    def read_file(self, path: str, start: int | None, end: int | None) -> str:
        file = self.resolve(path)
        data, size = _read_prefix(file, path, READ_LIMIT_BYTES)
        text = data.decode("utf-8", errors="replace")
        total = text.count("\n") + (1 if text and not text.endswith("\n") else 0)
        first = max(start or 1, 1)
        last = total if end is None else max(min(end, total), 0)
        # One line at a time: a file of short lines costs no more memory than one of long lines.
        shown: list[str] = []
        length = 0
        for number, line in enumerate(itertools.islice(_lines(text), first - 1, last), first):
            shown.append(f"{number:6}\t{line}")
            length += len(shown[-1]) + 1
            if length > _OUTPUT_LIMIT:
                break
        whole = f"the file has {total} lines"
        if size > len(data):
            whole = (
                f"the file is {size:,} bytes; only its first {READ_LIMIT_BYTES:,} bytes ({total} lines, the last "
                "one maybe cut) can be read here: use run_command (sed -n, tail) for the rest"
            )
        body = "\n".join(shown)
        if len(body) > _OUTPUT_LIMIT:
            return body[:_OUTPUT_LIMIT] + f"\n[truncated: {whole}; read a range with start_line/end_line]"
        if not body:
            return f"{self._show(file)}: no lines in that range ({whole})"
        return body + (f"\n[{whole}]" if size > len(data) and last == total else "")

    def write_file(self, path: str, content: str) -> str:
        file = self.resolve(path)
        data = _encode_bounded(content, path)
        file.parent.mkdir(parents=True, exist_ok=True)
        _write(file, path, data)
        return f"wrote {len(content)} characters to {self._show(file)}"

    def edit_file(self, path: str, old: str, new: str) -> str:
        file = self.resolve(path)
        data, size = _read_prefix(file, path, WRITE_LIMIT_BYTES)
        if size > len(data):
            raise ToolError(
                f"{path}: refused, the file is {size:,} bytes, over the {WRITE_LIMIT_BYTES:,} bytes "
                "the file tools edit; use run_command"
            )
        text = data.decode("utf-8")
        count = text.count(old) if old else 0
        if count != 1:
            found = "is empty" if not old else "was not found" if not count else f"occurs {count} times"
            raise ToolError(f"{path}: old_string {found}; it must occur exactly once (include more context)")
        _write(file, path, _encode_bounded(text.replace(old, new, 1), path))
        return f"edited {self._show(file)}"

    def search(self, pattern: str, path: str, glob: str | None, timeout: float) -> str:
        """Matching lines, found by a child process that is killed after ``timeout`` seconds."""
        if len(pattern) > _PATTERN_MAX_CHARS:
            raise ToolError(f"the pattern is {len(pattern):,} characters, over {_PATTERN_MAX_CHARS:,}")
        start = self.resolve(path)
        kind = stat.S_IFMT(os.stat(start).st_mode)
        if kind not in (stat.S_IFREG, stat.S_IFDIR):
            raise ToolError(f"{_clip(path)}: refused, it is {_KINDS.get(kind, 'not a regular file')}")
        if timeout <= 0:
            raise ToolError("search not run: the trial has no time left")
        request = {
            "root": str(self.root),
            "start": str(start),
            "pattern": pattern,
            "glob": glob,
            "limit": _SEARCH_LIMIT,
            "max_file_bytes": _SEARCH_MAX_FILE_BYTES,
        }
        argv = [sys.executable, "-I", "-S", str(Path(__file__).with_name("_search.py"))]
        finished = run_owned(
            argv, cwd=self.root, env=self.env, timeout=timeout, stdin=json.dumps(request), capture=True
        )
        if finished.timed_out:
            raise ToolError(
                f"search stopped after {timeout:g}s and found nothing in time: the pattern may backtrack "
                "catastrophically (nested quantifiers such as (a+)+), or there is too much to search; "
                "simplify the pattern, or narrow it with path or glob"
            )
        try:
            answer = json.loads(finished.stdout)
        except ValueError:
            raise ToolError(f"search failed (exit code {finished.returncode})") from None
        if "error" in answer:
            raise ToolError(answer["error"])
        matches: list[str] = answer["matches"]
        more = "\n[more matches not shown: narrow the search]" if answer["more"] else ""
        return "\n".join(matches) + more if matches else "no matches"

    def run_command(self, command: str, timeout: float) -> str:
        """Run ``command``; its output streams through a pipe into a bounded head and tail, never to disk."""
        if "\0" in command:
            raise ToolError("refused: a command cannot contain a NUL character")
        with tempfile.TemporaryDirectory(prefix="explore-command-") as scratch:
            pipe = Path(scratch, "output")
            os.mkfifo(pipe, 0o600)
            with CappedOutput(pipe, COMMAND_OUTPUT_CAP_BYTES, _OUTPUT_LIMIT) as output:
                finished = run_owned(
                    command, cwd=self.root, env=self.env, timeout=timeout, output=pipe, sandbox=self.sandbox
                )
        text = output.text()
        if finished.limit is not None:
            raise ToolError(f"command stopped: it hit a resource limit ({finished.limit}); output so far:\n{text}")
        if finished.timed_out:
            raise ToolError(f"command timed out after {timeout:g}s and was killed; output so far:\n{text}")
        if output.capped:
            raise ToolError(
                f"command stopped: it wrote more than {COMMAND_OUTPUT_CAP_BYTES:,} bytes of output, so its "
                f"output pipe was closed (exit code {finished.returncode}); redirect long output to a file "
                f"and read parts of it; output so far:\n{text}"
            )
        return f"exit code {finished.returncode}\n{text}"


def _arg(args: Mapping[str, Any], name: str, kind: type, *default: Any) -> Any:
    if name not in args or args[name] is None:
        if default:
            return default[0]
        raise ToolError(f"missing argument {name!r}")
    value = args[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ToolError(f"argument {name!r} must be of type {kind.__name__}, got {_clip(value)}")
    return value


def _lines(text: str) -> Iterator[str]:
    """The lines of ``text`` one by one, without their ends, each cut to what can be shown.

    Not ``splitlines``, which would hold every line at once, nor whole lines: a
    10 MB line would be copied twice to show 30,000 characters of it.
    """
    start = 0
    while start < len(text):
        end = text.find("\n", start) + 1 or len(text)
        yield text[start : min(end, start + _OUTPUT_LIMIT + 2)].rstrip(_EOL)
        start = end


def _clip(value: object, limit: int = 200) -> str:
    """``value`` as shown in an error: a huge path or argument is not echoed back whole."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text):,} characters)"


_KINDS = {
    stat.S_IFDIR: "a directory",
    stat.S_IFIFO: "a FIFO (named pipe)",
    stat.S_IFSOCK: "a socket",
    stat.S_IFCHR: "a character device",
    stat.S_IFBLK: "a block device",
}


def _open_regular(file: Path, path: str, flags: int) -> int:
    """A descriptor of ``file``, refused unless it is a regular file.

    The ``stat`` comes first: opening a FIFO blocks until someone opens its
    other end, and opening a device may do anything.  ``O_NONBLOCK`` and the
    ``fstat`` of what was opened guard against a swap in between.
    """
    with contextlib.suppress(FileNotFoundError):
        kind = stat.S_IFMT(os.stat(file).st_mode)
        if kind != stat.S_IFREG:
            what = _KINDS.get(kind, "not a regular file")
            hint = "; use list_directory" if kind == stat.S_IFDIR else ": only regular files can be read or written"
            raise ToolError(f"{_clip(path)}: refused, it is {what}{hint}")
    fd = os.open(file, flags | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC, 0o666)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ToolError(f"{_clip(path)}: refused, it is not a regular file")
    return fd


def _read_prefix(file: Path, path: str, limit: int) -> tuple[bytes, int]:
    """At most ``limit`` bytes from the start of a regular file, and its size."""
    with os.fdopen(_open_regular(file, path, os.O_RDONLY), "rb") as f:
        data = f.read(limit)
        size = max(os.fstat(f.fileno()).st_size, len(data) + len(f.read(1)))  # /proc files report 0
    return data, size


def _encode_bounded(text: str, path: str) -> bytes:
    if len(text) > WRITE_LIMIT_BYTES:  # each character is at least one byte
        raise ToolError(f"{_clip(path)}: refused, over {WRITE_LIMIT_BYTES:,} bytes in one call")
    data = text.encode("utf-8")
    if len(data) > WRITE_LIMIT_BYTES:
        raise ToolError(f"{_clip(path)}: refused, {len(data):,} bytes is over {WRITE_LIMIT_BYTES:,} in one call")
    return data


def _write(file: Path, path: str, data: bytes) -> None:
    with os.fdopen(_open_regular(file, path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), "wb") as f:
        f.write(data)
