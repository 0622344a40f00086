"""The controller side of a run: live progress, then ``results.json``, ``summary.md`` and the table.

Registered in the process that reports (the xdist controller, or the main
process without xdist).  Without xdist, trials run here and report each saved
step through ``pytest_explore_trial_progress``.  With xdist they run in
workers, and the controller reads the progress files they write anyway.

Every write to the terminal happens on the main thread.  Under xdist nothing
else runs there while a trial works: ``DSession``'s loop calls hooks only when
a worker sends an event, and an agent can work for minutes without one.  So a
timer thread does no drawing: every :data:`POLL_SECONDS` it puts an event on
that loop's own queue (:class:`MainThreadTicks`), and the loop calls the
controller's :meth:`ExploreController.poll` on the main thread, between the
workers' events.  ``report.html`` is written when the session starts and
rewritten when a trial starts or finishes; it reloads itself until the final
one, written at the end of the session.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import threading
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

import pytest

from ..config.keys import REPO_STATE_KEY
from ..model.frozen import snapshot
from ..model.jsonfile import write_json
from ..model.names import node_id
from ..model.record import RECORD_PROPERTY, TrialRecord, load_records, save, try_load
from ..model.settings import Settings
from ..repo import checkoutstate, gitops, repostate
from ..report.model import Results
from ..report.results import write_live_report, write_report
from ..report.text import terminal_lines
from .live import LiveView
from .recovery import recover_interrupted
from .runstart import RunCheck, RunStart, baseline_notice, experiment_info, start_run

#: How often the progress files are polled for changes.
POLL_SECONDS = 0.5
#: The live ``report.html`` is rewritten at most this often under xdist (its page reloads every 2 s)...
LIVE_REPORT_SECONDS = 1.0
#: ...and rarer when rendering it takes longer: at most this share of one CPU goes to it.
LIVE_REPORT_SHARE = 0.01


class ExploreController:
    def __init__(self, config: pytest.Config, settings: Settings, check: RunCheck, distributed: bool) -> None:
        self.config = config
        self.settings = settings
        self.check = check
        self.distributed = distributed
        self.info = experiment_info(settings, check)
        self.prepared: RunStart | None = None
        self.results: Results | None = None
        self.reported: dict[str, TrialRecord] = {}  # each trial's final record as its process reported it
        self._started = time.time()
        self.ticks: MainThreadTicks | None = None
        self.live: LiveView | None = None
        self._polled: dict[str, tuple[int, int, int]] = {}  # each progress file's version when last read
        self._report_due = False
        self._report_written = 0.0
        self._report_gap = LIVE_REPORT_SECONDS
        self.workers_up = threading.Event()  # set once every xdist worker has collected (or died)
        self._workers_settled = 0
        self._selected: set[str] | None = None  # the node ids xdist's first worker collected
        self._ran: set[str] = set()  # the node ids of every item reported (crashed ones too)
        if not distributed:
            self.workers_up.set()

    # -- live progress -----------------------------------------------------

    @pytest.hookimpl(tryfirst=True)
    def pytest_sessionstart(self, session: pytest.Session) -> None:
        """Set the run up before xdist starts its workers (they get the repository snapshot taken here)."""
        self.prepared = start_run(self.config, self.settings, self.workers_up)
        write_json(self.settings.paths.experiment_json, self.info.to_json())
        if self.config.pluginmanager.get_plugin("terminalreporter") is not None:
            self.live = LiveView.for_terminal(self.config.get_terminal_writer(), self.settings.experiment)
        self.say(self.check.notices + self.prepared.notices)
        # The first report is written by the first poll (under xdist) or trial: not on the way to the first agent.
        self._report_due = not self.config.getoption("collectonly")
        if self.distributed:
            self.ticks = MainThreadTicks.start(self.config, self.poll)

    def worker_collected(self, ids: list[str]) -> None:
        """What the run is to do: every worker collects the same trials."""
        if self._selected is None:
            self._selected = set(ids)

    def _not_run(self, session: pytest.Session) -> list[str]:
        """Trials collected under xdist whose item never ran: a worker was lost, or none could start."""
        if self._selected is None or session.exitstatus == pytest.ExitCode.INTERRUPTED:
            return []
        ids = self._selected - self._ran
        return [t.name for t in self.settings.trials if node_id(self.settings.experiment, t.name) in ids]

    def worker_settled(self) -> None:
        """One more xdist worker has collected, or is gone: once all have, the run's start is over."""
        self._workers_settled += 1
        if self._workers_settled >= len(self.config.getoption("tx", None) or ()):
            self.workers_up.set()

    @contextlib.contextmanager
    def terminal(self) -> Iterator[None]:
        """Hold the terminal for pytest's own writes: the live block is erased meanwhile, then drawn again."""
        if self.live is None:
            yield
            return
        with self.live.suspended():
            yield

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logstart(self) -> Generator[None, object, object]:
        with self.terminal():
            result = yield
        self._start_live()
        return result

    def _start_live(self) -> None:
        """Draw the live block from now on, once pytest's collection lines are out.

        Under xdist that is once every worker has collected: trials start on the first workers up
        (see ``workers``), while xdist still rewrites its status line and then ends it.
        """
        if self.live is not None and self.workers_up.is_set():
            self.live.start()

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logfinish(self) -> Generator[None, object, object]:
        with self.terminal():
            return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> Generator[None, object, object]:
        """Keep each trial's final record as the process that ran it reported it (see ``items``)."""
        self._ran.add(report.nodeid)
        for name, value in report.user_properties:
            if name == RECORD_PROPERTY and isinstance(value, str):
                record = TrialRecord.from_json(json.loads(value))
                self.reported[record.name] = record
        with self.terminal():
            result = yield
        if self.distributed and self.ticks is None:
            self.poll()  # an xdist without an event queue to tick through: update on the workers' reports
        return result

    def pytest_explore_trial_progress(self, trial: TrialRecord) -> None:
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if capture is None:
            self._show(trial)
            return
        with capture.global_and_fixture_disabled():  # the trial runs inside a captured test item
            self._show(trial)

    def poll(self) -> None:
        """Show each trial whose progress file changed since the last poll (trials in xdist workers)."""
        for trial in self.settings.trials:
            path = self.settings.paths.trial_file(trial.name, "_progress.json")
            try:
                stat = path.stat()
            except FileNotFoundError:
                continue
            # Every save replaces the file, so a new version has a new inode, size or time.
            version = (stat.st_ino, stat.st_mtime_ns, stat.st_size)
            if stat.st_mtime < self._started or self._polled.get(trial.name) == version:
                continue  # left by an earlier run, or read already
            self._polled[trial.name] = version
            record = try_load(path)
            if record is not None:
                self._show(record)
        if self.live is not None:
            self.live.tick()
            if self.live.running:
                self._start_live()
        if self._report_due and time.monotonic() - self._report_written >= self._report_gap:
            self._write_live_report()

    def _show(self, record: TrialRecord) -> None:
        """Take a trial's record into the live view; the report is due again when a trial starts or ends.

        Under xdist, :meth:`poll` rewrites a due report at most every :data:`LIVE_REPORT_SECONDS`,
        and no more than :data:`LIVE_REPORT_SHARE` of a CPU's time (rendering it costs the CPU the
        trials run on: about 0.1 s at 32 trials of 300 tests, so every 10 s); in one process, right away.
        """
        if self.live is None:
            return
        first = record.name not in self.live.running and not record.status.finished
        if self.live.update(record) and (first or record.status.finished):
            self._report_due = True
            if not self.distributed:
                self._write_live_report()

    def _write_live_report(self) -> None:
        """``report.html`` of the experiment so far (see :func:`results.write_live_report`).

        The first write also compiles the report's template (once a run, up to a second on a busy
        machine): only the later ones tell what a write costs, and so how far apart they must be.
        """
        first = self._report_written == 0.0
        self._report_due, self._report_written = False, time.monotonic()
        running = list(self.live.running) if self.live is not None else []
        records = load_records(self.settings.paths, [t.name for t in self.settings.trials])
        write_live_report(self.settings.paths, self.info, records, running)
        cost = time.monotonic() - self._report_written
        self._report_gap = LIVE_REPORT_SECONDS if first else max(LIVE_REPORT_SECONDS, cost / LIVE_REPORT_SHARE)

    # -- the report --------------------------------------------------------

    def say(self, lines: list[str]) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None or not lines:
            return
        with self.terminal():
            writer = self.config.get_terminal_writer()
            if writer.width_of_current_line:
                writer.line()  # after pytest's "[100%]", not on its line
            for line in lines:
                reporter.write_line(f"explore {self.settings.experiment}: {line}", yellow=True, bold=True)

    @pytest.hookimpl(wrapper=True, trylast=True)
    def pytest_runtestloop(self) -> Generator[None, object, object]:
        """The trials are over: stop the live view before pytest writes its last progress (innermost wrapper)."""
        try:
            return (yield)
        finally:
            self._stop_live()

    def _stop_live(self) -> None:
        if self.ticks is not None:
            self.ticks.stop()
            self.ticks = None
            self.poll()
        if self.live is not None:
            self.live.stop()

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self._stop_live()
        if self.settings.retry_failed and session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
            self.say(["--explore-retry-failed: no failed or timed-out variant to retry"])
            session.exitstatus = pytest.ExitCode.OK
        if self.prepared is not None and self.prepared.baseline is not None:
            interrupted = session.exitstatus == pytest.ExitCode.INTERRUPTED
            self.say(baseline_notice(self.settings, self.prepared.baseline, interrupted=interrupted))
        # The session is over: nothing of it may keep running, whatever stopped it.
        self.say(recover_interrupted(self.settings))
        self.info = dataclasses.replace(self.info, repository_changes=self._restore_repository())
        self._keep_reported_records()
        changed = []
        if self.prepared is not None:
            now = checkoutstate.checkout_snapshot(self.settings.workspace.repo_root)
            changed = checkoutstate.snapshot_changes(self.prepared.checkout, now)
        if changed:
            self.say([f"warning: the main checkout changed while the trials ran: {', '.join(changed)}"])
        not_run = self._not_run(session)
        if not_run:
            self.say([f"warning: {len(not_run)} trials did not run: {', '.join(not_run)}; run the same command again"])
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED  # CI must hear of it
        self.info = dataclasses.replace(self.info, checkout_changes=changed, not_run=not_run)
        write_json(self.settings.paths.experiment_json, self.info.to_json())
        records = load_records(self.settings.paths, [t.name for t in self.settings.trials])
        # Said now, not only in the summary: it is about the user's own changes.
        self.say(
            [
                f"warning: {r.name}: {flag.removeprefix('kept: ')}"
                for r in records
                if r.name in self.reported and not r.from_checkpoint
                for flag in r.flags
                if flag.startswith("kept: ")
            ]
        )
        self.results = write_report(self.settings.paths, self.info, records)
        self.config.hook.pytest_explore_summary(
            config=self.config, results=snapshot(self.results, "pytest_explore_summary")
        )

    def _restore_repository(self) -> list[str]:
        """Put the user's refs, HEAD, config, hooks and exclude back as before the run; warn about each change."""
        before = self.config.stash.get(REPO_STATE_KEY, None)
        if before is None:
            return []
        root = self.settings.workspace.repo_root
        with gitops.repo_lock(root):
            own = self.settings.workspace.own_refs(self.settings.experiment)
            git_dir, kept = gitops.sealed(root).git_dir, self.settings.paths.kept
            changes = repostate.restore_keeping(git_dir, before, own, kept, root, "main-checkout-end-")
        if changes:
            self.say([f"warning: the repository changed during the run and was restored: {'; '.join(changes)}"])
        return changes

    def _keep_reported_records(self) -> None:
        """A record or branch changed after its trial reported it is put back as reported, and flagged.

        Without a sandbox the code a later trial ran (its agent, or its code
        during scoring) could write other trials' files and branches.
        """
        root = self.settings.workspace.repo_root
        tips = gitops.branch_commits(root, self.settings.workspace.branch(self.settings.experiment, ""))
        for name, reported in self.reported.items():
            path = self.settings.paths.trial_file(name, "_progress.json")
            on_disk = try_load(path)
            flags = []
            if on_disk != reported:
                flags.append("its record on disk was changed after the trial ended; the reported one is kept")
            if reported.commit and tips.get(reported.branch, reported.commit) != reported.commit:
                gitops.set_branch(root, reported.branch, reported.commit)
                flags.append("its branch was moved after the trial ended; reset to the trial's commit")
            if flags:
                reported.flags.extend(flags)
                self.say([f"warning: {name}: {f}" for f in flags])
                save(reported, path)

    def pytest_unconfigure(self) -> None:
        self.check.lock.release()

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.results:
            return
        terminalreporter.section(f"explore {self.settings.experiment}: ranking")
        for line in terminal_lines(self.results):
            terminalreporter.write_line(line)
        terminalreporter.write_line("")
        terminalreporter.write_line(f"summary: {self.settings.paths.summary_md}")


class MainThreadTicks:
    """Calls ``action`` on the main thread about every :data:`POLL_SECONDS` while xdist's loop waits.

    A daemon thread puts an ``explore_tick`` event on ``DSession``'s queue, the one
    the workers' events arrive on; the loop, on the main thread, dispatches it to
    ``worker_explore_tick`` like any worker event.  At most one tick is queued at a
    time, so a busy loop never finds a backlog of them.

    ``DSession.queue`` is private to xdist (3.x), and the only private part of
    xdist the plugin uses: where it is missing, :meth:`start` returns None and
    the live view is updated on the workers' reports instead.
    """

    EVENT = "explore_tick"

    def __init__(self, queue: Any, action: Callable[[], None]) -> None:
        self._queue = queue
        self._action = action
        self._idle = threading.Event()
        self._idle.set()
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="explore-ticks", daemon=True)

    @classmethod
    def start(cls, config: pytest.Config, action: Callable[[], None]) -> MainThreadTicks | None:
        """Ticks through xdist's loop, or None when this xdist has no event queue to post to."""
        dsession = config.pluginmanager.get_plugin("dsession")
        queue = getattr(dsession, "queue", None)
        if queue is None or not hasattr(queue, "put"):
            return None  # the live view then changes only when a worker reports
        ticks = cls(queue, action)
        setattr(dsession, f"worker_{cls.EVENT}", ticks._tick)
        ticks._thread.start()
        return ticks

    def _run(self) -> None:
        while not self._stopped.wait(POLL_SECONDS):
            if self._idle.is_set():
                self._idle.clear()
                self._queue.put((self.EVENT, {}))

    def _tick(self) -> None:
        try:
            if not self._stopped.is_set():
                self._action()
        finally:
            self._idle.set()

    def stop(self) -> None:
        self._stopped.set()
        self._thread.join()
