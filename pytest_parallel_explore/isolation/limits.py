"""Resource limits of a trial: ``limits: {memory, processes, file_size, disk, output, files, trial_size}``.

A hostile or runaway command must not take the machine down with it, nor the
other trials: each limit, once hit, stops that command alone, and says which
limit it was (``limit: memory 8G``).  How each is enforced, and why so:

* ``file_size``: ``RLIMIT_FSIZE`` on the command (it works for root, and
  costs nothing); a write past it kills the writer with ``SIGXFSZ``.  The
  plugin also stores no file of the agent's that is larger (see
  ``repo.trees``: an agent without a sandbox could have made one anyway).
* ``files`` and ``trial_size``: what the plugin stores of a trial's files
  (added or changed), counted while it reads them, before any object is
  written to the user's repository.
* ``output``: the command writes into a pipe that the plugin copies into the
  log, up to the limit; then a note is appended and the command is stopped.
* ``memory`` and ``processes``: the resident memory and the number of the
  command's processes, summed over its process tree, checked
  :data:`POLL_SECONDS` or more apart.  Not ``RLIMIT_AS`` (node and the JVM reserve
  far more address space than they use), not ``RLIMIT_NPROC`` (it counts all
  of a user's processes and never applies to root), and not a cgroup (none is
  writable on many machines, this one included): the check sees every process
  of the tree, in the sandbox's pid namespace or not.  A process can exceed
  the limit by what it allocates between two checks.
* ``disk``: the size of the folders the command writes (the trial's folder,
  the sandbox's private ``$HOME`` and ``/tmp``), walked every
  :data:`DISK_POLL_SECONDS` or more, and at once when their filesystems'
  use (``statvfs``, every :data:`POLL_SECONDS`) grew by more than the
  folders had left to the limit: a tree that makes walks rare hides no burst.
  The first walk comes :data:`DISK_POLL_SECONDS` in, not at the start (most
  commands, a suite included, end before: at 20,000 files a walk costs
  0.08 s), or later, spaced like the others by what this process's last walk
  cost; until then a growth by more than the limit itself makes it come
  at once, so the folders end at most their starting size over the limit.

All of a run's checks together take at most :data:`WATCH_SHARE` of the CPUs:
with 24 agents waiting on a model's API, polling must not take the cores
their test suites need.

The defaults stop nothing an honest agent CLI or test suite does; ``null``
turns a limit off.
"""

from __future__ import annotations

import logging
import math
import os
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import IO

from ..model.limits import Limits, format_size
from .orphans import all_pids, child_pids, children_listed

_log = logging.getLogger(__name__)

#: Seconds between two checks of a command's memory and process count.
POLL_SECONDS = 0.25
#: Seconds between two measures of the folders a command writes (a walk of its files), at least.
DISK_POLL_SECONDS = 1.0
#: The share of the machine's CPUs that the checks of all of a run's watches take together, at most:
#: a check that costs more comes less often (:func:`_spacing`).
WATCH_SHARE = 0.02

# Measuring -------------------------------------------------------------------------------------------------


def process_tree(root: int) -> list[int]:
    """``root`` and its descendants alive now, from ``/proc`` (a sandbox's pid namespace included).

    Walked down from ``root`` through each process's ``children`` lists: a
    few reads for a command's handful of processes, where finding the tree
    from every process's parent read each process's ``stat`` (24 workers'
    commands: 150 processes, some 3 ms a poll).  That is the way without the
    lists.
    """
    if not children_listed():
        return _tree_from_parents(root)
    tree, todo, seen = [], [root], {root}
    while todo:
        pid = todo.pop()
        children = child_pids(pid)
        tree.append(pid)
        todo += [child for child in children if child not in seen]
        seen.update(children)
    return tree


def _tree_from_parents(root: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for pid in all_pids():
        try:  # plain descriptors: every process's stat is read, a few times a second
            fd = os.open(f"/proc/{pid}/stat", os.O_RDONLY | os.O_CLOEXEC)
            try:
                stat = os.read(fd, 1024)
            finally:
                os.close(fd)
        except OSError:
            continue  # gone meanwhile
        parent = int(stat[stat.rindex(b")") + 2 :].split(b" ", 2)[1])
        children.setdefault(parent, []).append(pid)
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, ()))
    return tree


_PAGE = os.sysconf("SC_PAGE_SIZE")


def resident_bytes(pids: Iterable[int]) -> int:
    """The resident memory of ``pids``, summed (pages a parent shares with its forks count once per process)."""
    return sum(_resident_pages(pid) for pid in pids) * _PAGE


def _resident_pages(pid: int) -> int:
    """A process's resident pages; a leader thread that ended alone reads 0, so then its live threads' count."""
    pages = _statm_resident(f"/proc/{pid}/statm")
    if pages == 0:
        try:
            threads = os.listdir(f"/proc/{pid}/task")
        except OSError:
            return 0
        pages = max((_statm_resident(f"/proc/{pid}/task/{tid}/statm") for tid in threads), default=0)
    return pages


def _statm_resident(path: str) -> int:
    try:
        return int(Path(path).read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def folder_bytes(folders: Iterable[Path]) -> int:
    """The size of the files under ``folders`` (links not followed, each file counted once)."""
    seen: set[tuple[int, int]] = set()
    total = 0
    todo = [str(f) for f in folders]
    while todo:
        try:
            entries = list(os.scandir(todo.pop()))
        except OSError:
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    todo.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    info = entry.stat(follow_symlinks=False)
                    if (info.st_dev, info.st_ino) not in seen:
                        seen.add((info.st_dev, info.st_ino))
                        total += info.st_blocks * 512
            except OSError:
                continue
    return total


def filesystems_used(folders: Iterable[Path]) -> int:
    """Bytes in use on the filesystems holding ``folders``, each counted once: one ``statvfs`` each, no walk."""
    devices: set[int] = set()
    total = 0
    for folder in folders:
        try:
            device = os.stat(folder).st_dev
            if device in devices:
                continue
            devices.add(device)
            usage = os.statvfs(folder)
        except OSError:
            continue
        total += (usage.f_blocks - usage.f_bfree) * usage.f_frsize
    return total


# Enforcing --------------------------------------------------------------------------------------------------


class CappedLog:
    """The command's output through a pipe into its log, up to ``cap`` bytes; then a note, and the command stopped."""

    def __init__(self, log: IO[bytes], cap: int) -> None:
        self.log, self.cap = log, cap
        self.full = threading.Event()
        self.wake: threading.Event | None = None  # set too once full: the watch that stops the command
        self._read, self._write = os.pipe()
        self._thread = threading.Thread(target=self._copy, name="explore-output", daemon=True)

    def pipe(self) -> int:
        """The write end, for the command."""
        return self._write

    def started(self) -> None:
        """The command has its copy of the write end: ours goes, so the copy ends when the command's does."""
        os.close(self._write)
        self._thread.start()

    def _copy(self) -> None:
        try:
            self._copy_until_the_end()
        finally:
            os.close(self._read)  # here, once the end is read: never under the feet of a read

    def _copy_until_the_end(self) -> None:
        written, writing = 0, True
        while chunk := os.read(self._read, 1 << 16):
            if self.full.is_set() or not writing:
                continue  # drained, so nothing blocks on a full pipe until the command is gone
            try:
                if written + len(chunk) > self.cap:
                    self.log.write(chunk[: self.cap - written])
                    note = f"\n[explore: output limit {format_size(self.cap)} reached; command stopped]\n"
                    self.log.write(note.encode())
                    self.log.flush()
                    self.full.set()
                    if self.wake is not None:
                        self.wake.set()
                    continue
                self.log.write(chunk)
                self.log.flush()
            except (OSError, ValueError) as exc:  # a full disk, or a log closed: the command goes on, unlogged
                _log.warning("could not write a command's output to %s: %s", self.log.name, exc)
                writing = False
            written += len(chunk)

    def wait(self, seconds: float) -> None:
        """Wait (up to ``seconds``) for the copy to reach the end of the output: every writer gone."""
        if self._thread.ident is not None:
            self._thread.join(timeout=seconds)


class Watch:
    """A thread that checks a running command against its limits and kills its group on the first one hit."""

    def __init__(
        self, leader: int, limits: Limits, written: Sequence[Path], capped: CappedLog | None, kill: Callable[[], None]
    ) -> None:
        self.leader, self.limits, self.written, self.capped, self.kill = leader, limits, written, capped, kill
        self.hit: str | None = None
        self._used_at_walk: int | None = None  # the filesystems' bytes in use when the folders were last walked
        self._room = 0  # what the folders had left to their disk limit then
        self._done = threading.Event()  # set when the command ended, or when its output is full
        if capped is not None:
            capped.wake = self._done
        self._thread: threading.Thread | None = None
        if any(v is not None for v in (limits.memory, limits.processes, limits.disk)) or capped is not None:
            self._thread = threading.Thread(target=self._run, name="explore-limits", daemon=True)
            self._thread.start()

    def stop(self) -> str | None:
        """End the checks; the limit that was hit, if one was."""
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        if self.hit is None and self.capped is not None and self.capped.full.is_set():
            self.hit = self.limits.hit("output")
        return self.hit

    def _run(self) -> None:
        limits, clock = self.limits, time.monotonic
        polls = limits.processes is not None or limits.memory is not None or limits.disk is not None
        # The first checks after a poll's wait: a short command (most are) ends before any costs it.
        next_poll = clock() + POLL_SECONDS if polls else math.inf
        next_disk = math.inf
        if limits.disk is not None:  # no walk yet: the folders are taken as empty until the first
            self._used_at_walk, self._room = filesystems_used(self.written), limits.disk
            next_disk = clock() + _spacing(DISK_POLL_SECONDS, _last_walk_cost)
        spent = time.thread_time()  # this thread's CPU so far: a poll's cost includes its waking up
        while not self._done.wait(_until(min(next_poll, next_disk))) or self._output_full():
            if self._output_full():
                self.hit = limits.hit("output")
            polled, walked = clock() >= next_poll, 0.0
            if self.hit is None and polled:
                self.hit = self._tree_hit()
                if self.hit is None and self._may_be_over():  # a walk spaced by its cost must not hide a burst
                    next_disk = clock()
            if self.hit is None and clock() >= next_disk:
                self.hit, walked = _timed(self._disk_hit)
                next_disk = clock() + _spacing(DISK_POLL_SECONDS, walked)
                _note_walk(walked)
            if self.hit is not None:
                self.kill()
                return
            now = time.thread_time()
            if polled:
                next_poll = clock() + _spacing(POLL_SECONDS, now - spent - walked)
            spent = now

    def _output_full(self) -> bool:
        return self.capped is not None and self.capped.full.is_set()

    def _tree_hit(self) -> str | None:
        if self.limits.processes is None and self.limits.memory is None:
            return None
        tree = process_tree(self.leader)
        if self.limits.processes is not None and len(tree) > self.limits.processes:
            return self.limits.hit("processes")
        if self.limits.memory is not None and resident_bytes(tree) > self.limits.memory:
            return self.limits.hit("memory")
        return None

    def _disk_hit(self) -> str | None:
        assert self.limits.disk is not None
        self._used_at_walk = filesystems_used(self.written)
        size = folder_bytes(self.written)
        self._room = self.limits.disk - size
        return self.limits.hit("disk") if size > self.limits.disk else None

    def _may_be_over(self) -> bool:
        """Whether the filesystems grew by more than the folders had room for at the last walk.

        Whatever the command writes, or holds open after deleting it, is on
        those filesystems.  What others write makes a walk come early; only what
        others free meanwhile can make it late (the next spaced walk still comes).
        """
        return self._used_at_walk is not None and filesystems_used(self.written) - self._used_at_walk > self._room


#: The CPU seconds this process's last walk of a command's folders took: the next command's first walk is
#: spaced by it too (a trial's folders are about as big as the last trial's), so a suite that ends
#: within that time costs no walk.
_last_walk_cost = 0.0


def _note_walk(cost: float) -> None:
    global _last_walk_cost
    _last_walk_cost = cost


def _timed(check: Callable[[], str | None]) -> tuple[str | None, float]:
    """What ``check`` found, and the CPU seconds it took this thread."""
    started = time.thread_time()
    return check(), time.thread_time() - started


def _spacing(least: float, cost: float) -> float:
    """Seconds to the next check of a kind that cost ``cost``: at least ``least``, and its share in all.

    The two kinds, polls (process tree, filesystems' use) and walks of the
    folders, get half of :data:`WATCH_SHARE` each.  Each xdist worker of a run
    watches one command at a time, so a worker's share is the run's divided
    by their number: at ``-n 24`` on 2 cores a walk of 3,000 files (12 ms)
    comes every 14 s, and a poll that costs 0.5 ms every 0.6 s.
    """
    try:
        workers = max(1, int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")))
    except ValueError:
        workers = 1
    return max(least, cost * workers * 2 / (WATCH_SHARE * len(os.sched_getaffinity(0))))


def _until(deadline: float) -> float | None:
    """A wait's timeout until ``deadline`` on the monotonic clock (None: no deadline)."""
    return None if deadline == math.inf else max(0.0, deadline - time.monotonic())
