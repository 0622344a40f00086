"""run_owned leaves no process behind, even one that left the command's session; real processes throughout."""

from __future__ import annotations

import ctypes
import dataclasses
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest

from pytest_parallel_explore.isolation import limits, orphans, procs
from pytest_parallel_explore.isolation.procs import clean_env, run_owned
from tests.process_testing import ESCAPING_COMMAND, blocking_on, exists, next_tick, release, unblock, wait_pid

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="child subreapers are Linux-only")


@pytest.fixture(autouse=True)
def short_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM-ignoring children get SIGKILLed after half a second, not three."""
    monkeypatch.setattr(procs, "KILL_GRACE_SECONDS", 0.5)


def test_the_process_becomes_a_child_subreaper() -> None:
    assert orphans.become_subreaper()
    flag = ctypes.c_int(-1)
    assert ctypes.CDLL(None).prctl(37, ctypes.byref(flag), 0, 0, 0) == 0  # PR_GET_CHILD_SUBREAPER
    assert flag.value == 1


@pytest.fixture(params=["children lists", "every process"])
def child_listing(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Orphans found from the threads' ``children`` lists, or (a kernel without them) among every process."""
    if request.param == "every process":
        monkeypatch.setattr(orphans, "_CHILDREN", "no-such-list")


@pytest.mark.usefixtures("child_listing")
def test_a_commands_process_tree_holds_its_children_and_theirs_and_nobody_else(tmp_path: Path) -> None:
    nested = f"(sleep 300 & echo $! > {tmp_path}/grandchild; wait) & sleep 300 & echo $! > {tmp_path}/child; wait"
    command = subprocess.Popen(["sh", "-c", nested], start_new_session=True)
    bystander = subprocess.Popen(["sleep", "300"])
    try:
        grandchild, child = wait_pid(tmp_path / "grandchild"), wait_pid(tmp_path / "child")
        tree = limits.process_tree(command.pid)
        assert tree[0] == command.pid
        assert {grandchild, child} <= set(tree)
        assert len(tree) == 4  # the shell, its subshell and their two sleeps
        assert bystander.pid not in tree and os.getpid() not in tree
    finally:
        orphans.signal_group(command.pid, signal.SIGKILL)
        bystander.kill()
        command.wait()
        bystander.wait()


@pytest.mark.usefixtures("child_listing")
def test_a_setsid_double_fork_does_not_outlive_the_command(tmp_path: Path) -> None:
    finished = run_owned(ESCAPING_COMMAND.format(dir=tmp_path, then="true"), cwd=tmp_path, env=clean_env(), timeout=60)
    assert finished.returncode == 0
    escaped, stubborn = wait_pid(tmp_path / "escaped.pid"), wait_pid(tmp_path / "stubborn.pid")
    assert not exists(escaped), "the setsid'd sleeper survived run_owned"
    assert not exists(stubborn)


def test_a_setsid_double_fork_does_not_outlive_a_timeout(tmp_path: Path) -> None:
    _, wait = blocking_on(tmp_path)  # never released: the command hangs until its timeout
    finished = run_owned(ESCAPING_COMMAND.format(dir=tmp_path, then=wait), cwd=tmp_path, env=clean_env(), timeout=3)
    assert finished.timed_out
    escaped = wait_pid(tmp_path / "escaped.pid")
    stubborn = wait_pid(tmp_path / "stubborn.pid")
    assert not exists(escaped), "the setsid'd sleeper survived the timeout"
    assert not exists(stubborn), "the SIGTERM-ignoring child survived the timeout"


@dataclasses.dataclass
class Blocked:
    """A command running in another thread that has started its escapees and waits on ``fifo``."""

    future: Future[procs.Finished]
    fifo: Path
    escaped: int
    stubborn: int


@pytest.fixture
def start_blocked(tmp_path: Path) -> Iterator[Callable[[str], Blocked]]:
    pool = ThreadPoolExecutor(2)
    started: list[Blocked] = []

    def start(name: str) -> Blocked:
        directory = tmp_path / name
        directory.mkdir()
        fifo, wait = blocking_on(directory)
        command = ESCAPING_COMMAND.format(dir=directory, then=wait)
        future = pool.submit(run_owned, command, cwd=directory, env=clean_env(), timeout=60)
        started.append(Blocked(future, fifo, wait_pid(directory / "escaped.pid"), wait_pid(directory / "stubborn.pid")))
        return started[-1]

    yield start
    for blocked in started:  # after a failure, commands may still wait
        unblock(blocked.fifo)
    pool.shutdown()


@pytest.mark.usefixtures("child_listing")
def test_concurrent_commands_do_not_kill_each_others_processes(start_blocked: Callable[[str], Blocked]) -> None:
    running = start_blocked("running")
    ending = start_blocked("ending")
    assert all(map(exists, [running.escaped, running.stubborn, ending.escaped, ending.stubborn]))

    release(ending.fifo)
    assert ending.future.result(timeout=60).returncode == 0
    assert not exists(ending.stubborn)
    assert exists(running.escaped), "ending one command killed another one's setsid'd child"
    assert exists(running.stubborn), "ending one command killed another one's child"
    assert not running.future.done()

    release(running.fifo)
    assert running.future.result(timeout=60).returncode == 0
    assert not exists(running.escaped)
    assert not exists(running.stubborn)
    # The ending command's setsid'd sleeper started after the running command: it could
    # have been that one's, so it was spared until no command was left.
    assert not exists(ending.escaped)


def test_an_escapee_older_than_every_running_command_is_killed_at_once(
    start_blocked: Callable[[str], Blocked],
) -> None:
    ending = start_blocked("ending")
    next_tick()
    running = start_blocked("running")

    release(ending.fifo)
    assert ending.future.result(timeout=60).returncode == 0
    assert not exists(ending.escaped), "an escapee that no running command can own was left"
    assert exists(running.escaped)
    assert exists(running.stubborn)

    release(running.fifo)
    running.future.result(timeout=60)
    assert not exists(running.escaped)


def test_children_started_before_any_command_are_spared(tmp_path: Path) -> None:
    # A child of this process in a session of its own, like an escapee, but not from a command.
    bystander = subprocess.Popen(["sleep", "300"], start_new_session=True)
    try:
        next_tick()
        finished = run_owned(
            ESCAPING_COMMAND.format(dir=tmp_path, then="true"), cwd=tmp_path, env=clean_env(), timeout=60
        )
        assert finished.returncode == 0
        assert not exists(wait_pid(tmp_path / "escaped.pid"))
        assert bystander.poll() is None, "run_owned killed a child it did not start"
    finally:
        bystander.kill()
        bystander.wait()


def test_a_command_does_nothing_before_its_process_group_is_announced(tmp_path: Path) -> None:
    # A trial saves the groups it is told of; a worker killed right after a spawn must not leave
    # a command running that its record does not list. So the command waits for the announcement.
    marker = tmp_path / "ran"
    seen_before_announced: list[bool] = []

    def listener(groups: list[procs.Group]) -> None:
        if groups and not seen_before_announced:
            # Without the gate, the command writes the marker within milliseconds of its spawn.
            seen_before_announced.append(_appears(marker, within=0.5))

    with procs.watching(listener):
        finished = run_owned(f"touch {marker}", cwd=tmp_path, env=clean_env(), timeout=30)

    assert finished.returncode == 0 and marker.exists()
    assert seen_before_announced == [False]


def test_a_command_reads_its_input_after_the_gate(tmp_path: Path) -> None:
    finished = run_owned("cat", cwd=tmp_path, env=clean_env(), timeout=30, stdin="line one\nline two\n", capture=True)
    assert finished.stdout == "line one\nline two\n"


def _appears(path: Path, within: float) -> bool:
    """Whether ``path`` comes to exist within ``within`` seconds (a window to observe, not a wait for success)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if path.exists():
            return True
        time.sleep(0.01)
    return path.exists()
