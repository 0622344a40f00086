"""A hostile model against the built-in agent's tools: every call ends, in time, as a clear ToolError.

The tools are built as the agent's session builds them (``WorktreeTools`` on
the trial's worktree, the allow-listed environment) and driven through
``call``, the entry point the session uses.  Files, FIFOs, sockets and
processes are real.  Each call runs in a thread joined with a deadline, so a
tool that blocks (opening a FIFO does) fails the test instead of hanging it;
every process group the tools start is recorded through ``procs.watching``
and must be gone afterwards.
"""

from __future__ import annotations

import dataclasses
import os
import socket
import stat
import tempfile
import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from messages_server import MessagesServer, text, tool_use

from pytest_parallel_explore.agents import AgentTask
from pytest_parallel_explore.agents.anthropic import AnthropicAgent
from pytest_parallel_explore.agents.anthropic.tools import (
    COMMAND_OUTPUT_CAP_BYTES,
    READ_LIMIT_BYTES,
    WRITE_LIMIT_BYTES,
    ToolError,
    WorktreeTools,
)
from pytest_parallel_explore.isolation import procs
from pytest_parallel_explore.isolation.environ import is_allowed, safe_env

#: A guard against hangs, not a performance target.
DEADLINE = 15.0


@dataclasses.dataclass
class Outcome:
    result: str | None
    error: ToolError | None
    seconds: float
    groups: set[int]
    peak_bytes: int


@pytest.fixture
def tools(agent_worktree: Path) -> WorktreeTools:
    """The tools as ``agents.anthropic.agent._Session`` builds them for a trial."""
    return WorktreeTools(root=agent_worktree.resolve(), env=safe_env({"EXPLORE_VARIANT": "v1"}), command_timeout=30.0)


_PF_EXITING = 0x4  # a process's flags in /proc/<pid>/stat: it is on its way out
_SIGKILL_BIT = 1 << (9 - 1)


def _dying(pid: int, flags: int) -> bool:
    """Killed, but not yet gone: exiting, or with SIGKILL pending (a kill is asynchronous)."""
    if flags & _PF_EXITING:
        return True
    try:
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
    except OSError:
        return True
    pending = [int(line.split()[1], 16) for line in status if line.startswith(("SigPnd:", "ShdPnd:"))]
    return any(mask & _SIGKILL_BIT for mask in pending)


def _running() -> Iterator[tuple[int, int, int]]:
    """(pid, ppid, process group) of every process that is neither a zombie nor dying, from ``/proc``."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid, state, ppid, pgrp, flags = int(entry.name), fields[0], int(fields[1]), int(fields[2]), int(fields[6])
            # Zombies count as gone: this container's init may never reap them.
            if state not in ("Z", "X") and not _dying(pid, flags):
                yield pid, ppid, pgrp


def _group_alive(pgid: int) -> bool:
    return any(pgrp == pgid for _, _, pgrp in _running())


def _children() -> set[int]:
    """Running child processes of this process."""
    return {pid for pid, ppid, _ in _running() if ppid == os.getpid()}


def run_tool(
    tools: WorktreeTools, name: str, args: Any, time_left: float = 60.0, *, trace_memory: bool = False
) -> Outcome:
    """Call the tool in a thread with a deadline; check that it left no process behind."""
    before = _children()
    groups: set[int] = set()
    box: dict[str, Any] = {}

    def call() -> None:
        try:
            box["result"] = tools.call(name, args, time_left)
        except ToolError as exc:
            box["error"] = exc

    if trace_memory:
        tracemalloc.start()
    started = time.monotonic()
    try:
        with procs.watching(lambda live: groups.update(pgid for pgid, _ in live)):
            thread = threading.Thread(target=call, daemon=True)
            thread.start()
            thread.join(DEADLINE)
        seconds = time.monotonic() - started
        peak = tracemalloc.get_traced_memory()[1] if trace_memory else 0
    finally:
        tracemalloc.stop()
    assert not thread.is_alive(), f"{name} still running after {DEADLINE}s"
    assert box, f"{name} raised something other than a ToolError (see the thread's traceback)"
    assert seconds < DEADLINE
    assert not [pgid for pgid in groups if _group_alive(pgid)], "a process group outlived the call"
    assert _children() <= before, "a child process outlived the call"
    return Outcome(box.get("result"), box.get("error"), seconds, groups, peak)


def refused(outcome: Outcome, *words: str) -> str:
    assert outcome.error is not None, f"expected a ToolError, got {outcome.result!r}"
    message = str(outcome.error)
    for word in words:
        assert word in message
    return message


# -- non-regular files ----------------------------------------------------------


def _fifo(worktree: Path) -> str:
    os.mkfifo(worktree / "pipe")
    (worktree / "link-to-pipe").symlink_to("pipe")
    return "link-to-pipe"


def _socket(worktree: Path) -> str:
    # A socket's path is limited to ~108 bytes: bind a relative name from inside the worktree.
    cwd = os.getcwd()
    os.chdir(worktree)
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind("sock")
    finally:
        os.chdir(cwd)
    return "sock"


def _device(worktree: Path) -> str:
    try:
        os.mknod(worktree / "zero", stat.S_IFCHR | 0o666, os.makedev(1, 5))  # like /dev/zero
    except PermissionError:
        pytest.skip("cannot make a device node here")
    return "zero"


SPECIAL_FILES = {"symlink to a FIFO": _fifo, "socket": _socket, "character device": _device}
SPECIAL_CALLS = {
    "read": ("read_file", {}),
    "write": ("write_file", {"content": "x"}),
    "edit": ("edit_file", {"old_string": "a", "new_string": "b"}),
    "search": ("search", {"pattern": "x"}),
}


@pytest.mark.parametrize("make", SPECIAL_FILES.values(), ids=SPECIAL_FILES.keys())
@pytest.mark.parametrize("tool, extra", SPECIAL_CALLS.values(), ids=SPECIAL_CALLS.keys())
def test_fifos_sockets_and_devices_are_refused_without_being_opened(
    tools: WorktreeTools, agent_worktree: Path, make: Callable[[Path], str], tool: str, extra: dict[str, str]
) -> None:
    path = make(agent_worktree)

    outcome = run_tool(tools, tool, {"path": path, **extra})

    message = refused(outcome, path, "refused, it is a ")
    assert any(kind in message for kind in ("FIFO", "socket", "character device"))
    assert not outcome.groups  # refused before any search process started


def test_a_search_of_the_worktree_skips_fifos_instead_of_opening_them(
    tools: WorktreeTools, agent_worktree: Path
) -> None:
    _fifo(agent_worktree)
    (agent_worktree / "notes.txt").write_text("needle\n")

    outcome = run_tool(tools, "search", {"pattern": "needle"})

    assert outcome.result == "notes.txt:1: needle"
    assert outcome.groups  # it ran in a child process, which is gone


# -- huge files -----------------------------------------------------------------


@pytest.fixture
def huge_file(agent_worktree: Path) -> Path:
    """A sparse 4 GiB file: lines of text at the start, then zeros (no disk used)."""
    file = agent_worktree / "huge.log"
    file.write_text("".join(f"line {n}\n" for n in range(1, 1001)))
    os.truncate(file, 4 << 30)
    return file


def test_reading_a_huge_file_reads_only_a_bounded_prefix(tools: WorktreeTools, huge_file: Path) -> None:
    outcome = run_tool(tools, "read_file", {"path": "huge.log", "start_line": 2, "end_line": 3}, trace_memory=True)

    assert outcome.result is not None
    assert outcome.result.startswith("     2\tline 2\n     3\tline 3")
    assert f"the file is {4 << 30:,} bytes; only its first {READ_LIMIT_BYTES:,} bytes" not in outcome.result
    assert outcome.peak_bytes < 4 * READ_LIMIT_BYTES  # the prefix, decoded, not 4 GiB

    whole = run_tool(tools, "read_file", {"path": "huge.log"}, trace_memory=True)
    assert whole.result is not None and len(whole.result) < 31_000
    assert f"the file is {4 << 30:,} bytes; only its first {READ_LIMIT_BYTES:,} bytes" in whole.result
    assert whole.peak_bytes < 4 * READ_LIMIT_BYTES


def test_editing_or_searching_a_huge_file_is_refused_or_skipped(tools: WorktreeTools, huge_file: Path) -> None:
    edit = run_tool(tools, "edit_file", {"path": "huge.log", "old_string": "line 1\n", "new_string": "x"})
    search = run_tool(tools, "search", {"pattern": "line 1$"})

    refused(edit, "huge.log", f"{4 << 30:,} bytes", "use run_command")
    assert huge_file.stat().st_size == 4 << 30
    assert search.result == "no matches"


# -- catastrophic regular expressions ------------------------------------------------


@pytest.fixture
def backtracking_bait(agent_worktree: Path) -> None:
    (agent_worktree / "bait.txt").write_text("a" * 64 + "b\n")


def test_a_catastrophic_pattern_is_stopped_and_its_process_killed(
    tools: WorktreeTools, backtracking_bait: None
) -> None:
    outcome = run_tool(tools, "search", {"pattern": "(a+)+$"})

    refused(outcome, "search stopped after 5s", "backtrack catastrophically")
    assert outcome.groups  # the child was started, and run_tool checked it is gone


def test_a_search_never_outlasts_the_trials_time_left(tools: WorktreeTools, backtracking_bait: None) -> None:
    outcome = run_tool(tools, "search", {"pattern": "(a+)+$"}, time_left=1.0)

    refused(outcome, "search stopped after 1s")
    assert outcome.seconds < 1.0 + procs.KILL_GRACE_SECONDS


@pytest.mark.parametrize(
    "pattern, message",
    [
        ("(", "bad regular expression '('"),
        ("a" * 1001, "over 1,000"),
        ("(" * 499 + ")" * 499, "maximum recursion depth"),
    ],
    ids=["unbalanced", "too long", "too deep"],
)
def test_bad_patterns_are_clear_errors(tools: WorktreeTools, pattern: str, message: str) -> None:
    refused(run_tool(tools, "search", {"pattern": pattern}), message)


# -- invalid paths and arguments ------------------------------------------------------

BAD_PATHS = {
    "NUL byte": ("a\x00b", "cannot contain a NUL character"),
    "empty": ("", "empty path"),
    "name too long": ("x" * 300, "File name too long"),
    "path too long": ("d/" * 3000, "File name too long"),
    "lone surrogate": ("\ud800.txt", "cannot be encoded as UTF-8"),
}
PATH_TOOLS = {
    "list": ("list_directory", {}),
    "read": ("read_file", {}),
    "write": ("write_file", {"content": "x"}),
    "edit": ("edit_file", {"old_string": "a", "new_string": "b"}),
    "search": ("search", {"pattern": "x"}),
}


@pytest.mark.parametrize("path, message", BAD_PATHS.values(), ids=BAD_PATHS.keys())
@pytest.mark.parametrize("tool, extra", PATH_TOOLS.values(), ids=PATH_TOOLS.keys())
def test_invalid_paths_are_clear_errors(
    tools: WorktreeTools, tool: str, extra: dict[str, str], path: str, message: str
) -> None:
    text = refused(run_tool(tools, tool, {"path": path, **extra}), message)
    assert len(text) < 400  # a huge path is not echoed back whole


BAD_ARGUMENTS = {
    "input not an object": ("read_file", ["README.md"], "must be an object"),
    "path not a string": ("read_file", {"path": 5}, "'path' must be of type str"),
    "line not an integer": ("read_file", {"path": "README.md", "start_line": "2"}, "'start_line' must be of type"),
    "bool for an integer": ("read_file", {"path": "README.md", "end_line": True}, "'end_line' must be of type int"),
    "content missing": ("write_file", {"path": "a.txt"}, "missing argument 'content'"),
    "content a list": ("write_file", {"path": "a.txt", "content": ["x"]}, "'content' must be of type str"),
    "content not UTF-8": ("write_file", {"path": "a.txt", "content": "ok \udc80"}, "cannot be encoded as UTF-8"),
    "edit to non-UTF-8": (
        "edit_file",
        {"path": "README.md", "old_string": "demo", "new_string": "\ud800"},
        "cannot be encoded as UTF-8",
    ),
    "command with NUL": ("run_command", {"command": "echo a\x00b"}, "NUL character"),
    "unknown tool": ("delete_everything", {}, "unknown tool"),
}


@pytest.mark.parametrize("tool, args, message", BAD_ARGUMENTS.values(), ids=BAD_ARGUMENTS.keys())
def test_invalid_arguments_are_clear_errors(
    tools: WorktreeTools, agent_worktree: Path, tool: str, args: Any, message: str
) -> None:
    refused(run_tool(tools, tool, args), message)
    assert not (agent_worktree / "a.txt").exists()
    assert (agent_worktree / "README.md").read_text() == "# demo\n"


def test_editing_a_file_that_is_not_utf8_is_a_clear_error(tools: WorktreeTools, agent_worktree: Path) -> None:
    (agent_worktree / "latin1.txt").write_bytes("café\n".encode("latin-1"))

    refused(run_tool(tools, "edit_file", {"path": "latin1.txt", "old_string": "caf", "new_string": "x"}), "UTF-8")
    assert (agent_worktree / "latin1.txt").read_bytes() == "café\n".encode("latin-1")


# -- bounded writes --------------------------------------------------------------------


@pytest.mark.parametrize(
    "content", ["x" * (WRITE_LIMIT_BYTES + 1), "é" * (WRITE_LIMIT_BYTES // 2 + 1)], ids=["ascii", "two-byte"]
)
def test_a_write_over_the_limit_is_refused_and_writes_nothing(
    tools: WorktreeTools, agent_worktree: Path, content: str
) -> None:
    refused(run_tool(tools, "write_file", {"path": "big.txt", "content": content}), f"{WRITE_LIMIT_BYTES:,}")
    assert not (agent_worktree / "big.txt").exists()


def test_an_edit_that_would_grow_a_file_over_the_limit_is_refused(tools: WorktreeTools, agent_worktree: Path) -> None:
    args = {"path": "README.md", "old_string": "demo", "new_string": "x" * WRITE_LIMIT_BYTES}

    refused(run_tool(tools, "edit_file", args), f"{WRITE_LIMIT_BYTES:,}")
    assert (agent_worktree / "README.md").read_text() == "# demo\n"


def test_a_write_at_the_limit_is_carried_out(tools: WorktreeTools, agent_worktree: Path) -> None:
    outcome = run_tool(tools, "write_file", {"path": "d/big.txt", "content": "x" * WRITE_LIMIT_BYTES})

    assert outcome.result == f"wrote {WRITE_LIMIT_BYTES} characters to d/big.txt"
    assert (agent_worktree / "d" / "big.txt").stat().st_size == WRITE_LIMIT_BYTES


# -- command output --------------------------------------------------------------------


def test_gigabytes_of_output_stop_the_command_with_bounded_memory_and_no_disk(
    tools: WorktreeTools, agent_worktree: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    # Once the output is cut off, list the big regular files in the tools' scratch space.
    command = f"yes | head -c 3G; find {scratch} -type f -size +1000k > {agent_worktree}/big-files.txt"

    outcome = run_tool(tools, "run_command", {"command": command}, trace_memory=True)

    message = refused(outcome, f"more than {COMMAND_OUTPUT_CAP_BYTES:,} bytes of output", "output so far:\ny\ny\n")
    assert len(message) < 31_000
    assert outcome.peak_bytes < 16 * 1024 * 1024
    assert (agent_worktree / "big-files.txt").read_text() == ""  # written, and empty: the output took no disk
    assert list(scratch.iterdir()) == []


def test_output_under_the_cap_keeps_its_head_and_tail(tools: WorktreeTools) -> None:
    outcome = run_tool(tools, "run_command", {"command": "seq 1 1000000; echo done >&2"})

    assert outcome.result is not None
    assert outcome.result.startswith("exit code 0\n1\n2\n3\n")
    assert outcome.result.endswith("\n999999\n1000000\ndone\n")
    assert "bytes not shown" in outcome.result and len(outcome.result) < 31_000


def test_a_writer_that_escaped_the_process_group_does_not_hold_the_call(tools: WorktreeTools) -> None:
    # A daemon in a session of its own keeps writing to the output pipe after the command ended;
    # once the call returns and the pipe is closed, its next write kills it (SIGPIPE).
    command = "setsid sh -c 'while :; do echo daemon; sleep 0.01; done' & echo started"

    outcome = run_tool(tools, "run_command", {"command": command})

    assert outcome.result is not None and outcome.result.startswith("exit code 0\n")
    assert "started" in outcome.result


def test_a_command_that_keeps_writing_is_killed_at_its_timeout(tools: WorktreeTools) -> None:
    outcome = run_tool(tools, "run_command", {"command": "echo tick; sleep 60"}, time_left=1.0)

    refused(outcome, "timed out after 1s", "tick")
    assert outcome.seconds < 1.0 + procs.KILL_GRACE_SECONDS


# -- the environment: an allow-list -------------------------------------------------------

SECRETS = {
    "MY_SERVICE_CREDENTIAL": "credential-x",
    "ANTHROPIC_API_KEY": "sk-ant-y",
    "PYTEST_ADDOPTS": "-p evil",
    "FOO_TOKEN": "token-z",
    "EXPLORE_API_KEY": "explore-key",
    "LD_PRELOAD": "/tmp/evil.so",
    "GIT_DIR": "/elsewhere/.git",
    "PYTHONSTARTUP": "/tmp/evil.py",
}


def test_commands_see_only_allowed_variables(
    messages_server: MessagesServer,
    make_task: Callable[..., AgentTask],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in {**SECRETS, "MY_ORDINARY_SETTING": "plain", "LC_ALL": "C.UTF-8", "CI": "true"}.items():
        monkeypatch.setenv(name, value)
    messages_server.message(tool_use("run_command", command="env"))
    messages_server.message(text("Done."))
    agent = AnthropicAgent.from_settings({"backend": "anthropic", "base_url": messages_server.url})

    agent.run(make_task())

    [result] = messages_server.tool_results(1)
    seen = dict(line.split("=", 1) for line in result["content"].splitlines()[1:] if "=" in line)
    assert result["content"].startswith("exit code 0\n")
    assert not set(SECRETS) & set(seen)
    assert not [value for value in SECRETS.values() if value in result["content"]]
    assert "MY_ORDINARY_SETTING" not in seen  # not on the list, so not passed on
    assert seen["PATH"] == os.environ["PATH"]
    assert seen["HOME"] == os.environ["HOME"]
    assert (seen["LC_ALL"], seen["CI"], seen["EXPLORE_VARIANT"]) == ("C.UTF-8", "true", "v1")


@pytest.mark.parametrize(
    "name",
    [
        *("PYTEST_PLUGINS", "PYTHONHOME", "PYTHONINSPECT", "PYTHONBREAKPOINT", "PYTHONWARNINGS", "PYTHONPATH"),
        *("LD_LIBRARY_PATH", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_CONFIG_GLOBAL", "SSH_AUTH_SOCK"),
        *("PIP_INDEX_URL", "AWS_SECRET_ACCESS_KEY", "DB_PASSWORD", "LC_TOKEN", "GIT_AUTHOR_AUTH"),
    ],
)
def test_names_off_the_list_or_secret_looking_are_refused(name: str) -> None:
    assert not is_allowed(name)


@pytest.mark.parametrize(
    "name",
    ["PATH", "HOME", "LANG", "LC_CTYPE", "TMPDIR", "VIRTUAL_ENV", "https_proxy", "NO_PROXY", "GIT_AUTHOR_NAME"],
)
def test_names_on_the_list_are_allowed(name: str) -> None:
    assert is_allowed(name)


def test_the_callers_own_variables_are_kept_as_given(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PYTHONPATH", "/outer")

    env = safe_env({"PYTHONPATH": "/worktree", "EXPLORE_TRIAL": "t1"})

    assert (env["PYTHONPATH"], env["EXPLORE_TRIAL"]) == ("/worktree", "t1")
    assert "PYTHONPATH" not in safe_env()
