"""The controller side of a run: live progress, then ``results.json``, ``summary.md`` and the table.

Registered in the process that reports (the xdist controller, or the main
process without xdist).  Without xdist, trials run here and report each saved
step through ``pytest_explore_trial_progress``; with xdist they run in workers,
and a thread polls the progress files that they write anyway.

That thread also draws the live view (see ``live.py``), because nothing else
runs on the controller while a trial works: xdist's ``DSession`` loop calls
hooks only when a worker sends an event (an item's start or report), and an
agent can work for minutes without one; it has no periodic hook, and a worker
cannot send events it does not know.  So the thread writes, and every write to
the terminal is serialised by the live view's lock, which the hooks below also
hold around the terminal reporter's own writes (``pytest_runtest_log*``, the
nodes' ready/down lines, our notices).  ``report.html`` is written when the
session starts and rewritten when a trial starts or finishes; it reloads itself
until the final one, written at the end of the session.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import threading
import time
from collections.abc import Generator, Iterator
from typing import Any

import pytest

from .defaults import BASE_COMMIT_KEY, REPO_STATE_INPUT, REPO_STATE_KEY
from .isolation import confinement, procs
from .isolation.sandbox import find_bwrap, wanted
from .live import LiveView, every
from .record import Status, TrialRecord, save, try_load, write_json
from .repo import gitops, repostate
from .report.results import format_table, is_repeated, load_records, write_live_report, write_report
from .runlock import ExperimentBusy, ExperimentLock
from .scoring.baseline import BackgroundBaseline
from .settings import Settings
from .version import __version__

#: How often the progress files are polled for changes.
POLL_SECONDS = 0.5


def experiment_info(settings: Settings) -> dict[str, Any]:
    """What ``experiment.json`` says about a run: enough to rebuild its report later."""
    return {
        "experiment": settings.experiment,
        "task": settings.task,
        "source": settings.source,
        "base": settings.base,
        "base_commit": settings.base_commit,
        "trial_names": [t.name for t in settings.trials],
        "variant_names": list(settings.variant_names),
        "race": dataclasses.asdict(settings.race) if settings.race else None,
        "score_command": settings.score.command,
        "plugin_version": __version__,
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


def recover_interrupted(settings: Settings, *, only_dead_owners: bool = False) -> list[str]:
    """Close the records of trials whose run stopped midway; kill what they left running.

    A trial's record lists the process groups alive in it (agents and their
    children).  When the process that ran the trial is gone (an xdist worker
    killed, a run stopped with SIGKILL), nothing else would ever stop them.
    Returns a notice per trial closed.
    """
    notices = []
    for trial in settings.trials:
        path = settings.paths.trial_file(trial.name, "_progress.json")
        record = try_load(path)
        if record is None or (record.status.finished and not record.process_groups):
            continue
        if only_dead_owners and (record.owner_pid is None or _alive(record.owner_pid)):
            continue
        killed = procs.reap(record.process_groups)
        record.process_groups = []
        if not record.status.finished:
            record.reason = f"interrupted during {record.status.value}: the process running it stopped"
            record.status = Status.ERROR
            record.finished_at = record.finished_at or time.time()
            record.end_attempt(record.agent.cost_usd)
            notices.append(
                f"{trial.name}: {record.reason}" + (f"; killed {len(killed)} process groups" if killed else "")
            )
        save(record, path)
    return notices


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclasses.dataclass
class RunStart:
    """What the controller established before the trials: notices to show, the lock, the checkout's state."""

    notices: list[str]
    lock: ExperimentLock
    checkout: dict[str, str]
    baseline: BackgroundBaseline | None
    sandbox_warning: str | None = None


def prepare_run(config: pytest.Config, settings: Settings) -> RunStart:
    """Checks and set-up done once, before any worktree is made.

    Every agent must exist and be able to run; the experiment must not be
    running elsewhere; trials that an earlier run left midway are closed;
    the base commit starts being scored in the background (or its saved
    or cached baseline is reused).
    """
    from .agents import AgentUnavailable, agent_backends, unknown_backend

    for trial in settings.trials:
        agent = config.hook.pytest_explore_make_agent(config=config, variant=trial.variant)
        where = f"{settings.source}: variants.{trial.variant.name}.agent.backend"
        if agent is None:
            backend = trial.variant.agent.get("backend")
            raise pytest.UsageError(f"{where}: {unknown_backend(backend, agent_backends(config))}")
        try:
            agent.preflight()
        except AgentUnavailable as exc:
            raise pytest.UsageError(f"{where}: {exc}") from None
    sandbox_warning = _check_sandbox(settings)
    lock = ExperimentLock(settings.paths.lock)
    try:
        lock.acquire()
    except ExperimentBusy as exc:
        raise pytest.UsageError(f"--explore {settings.experiment}: {exc}") from None
    notices = []
    if lock.stale_pid is not None:
        notices.append(f"warning: took over the lock of an earlier run that died (pid {lock.stale_pid})")
    notices.extend(recover_interrupted(settings))
    if sandbox_warning:
        notices.append(f"warning: {sandbox_warning}")
    root = settings.workspace.repo_root
    if gitops.is_dirty(root):
        # Said on the terminal, not with `warnings`: a project's filterwarnings=error would make it a crash.
        notices.append(
            f"warning: {root} has uncommitted changes; the variants start from the last commit "
            f"({settings.base} = {settings.base_commit[:12]}), without them"
        )
    if settings.workspace.explore_dir.is_relative_to(root):
        gitops.exclude_path(root, str(settings.workspace.explore_dir.relative_to(root)))
    settings.paths.results.mkdir(parents=True, exist_ok=True)
    checkout = gitops.checkout_snapshot(root)
    config.stash[REPO_STATE_KEY] = repostate.capture(gitops.sealed(root).git_dir, own_refs(settings))
    # Scored while the agents work: trials wait for it only to judge their tests.
    baseline = None if config.getoption("collectonly") else BackgroundBaseline(settings)
    return RunStart(notices, lock, checkout, baseline, sandbox_warning)


def _sandbox_use(settings: Settings) -> str:
    """How the trials are confined, for the summary: ``bubblewrap``, ``none``, or per variant."""
    modes = {
        "bubblewrap" if wanted(confinement.sandbox_spec(settings, t.variant).mode) else "none" for t in settings.trials
    }
    return modes.pop() if len(modes) == 1 else "per variant (bubblewrap for some, none for others)"


def baseline_notice(settings: Settings, background: BackgroundBaseline, *, interrupted: bool) -> list[str]:
    """Wait for the baseline (not after Ctrl-C: then its suite is stopped) and say how it was had."""
    if interrupted and background.running:
        background.cancelled.set()
        procs.reap(procs.live_groups())
    result = background.wait()
    if result is None:
        return [f"warning: the baseline could not be scored: {background.error}"] if background.error else []
    baseline, how = result
    flaky = f"; {len(baseline.flaky)} flaky tests left out" if baseline.flaky else ""
    return [
        f"baseline {how}: {baseline.tests.passed}/{baseline.tests.total} tests "
        f"pass at {settings.base_commit[:12]} ({baseline.runs} runs{flaky})"
    ]


def _check_sandbox(settings: Settings) -> str | None:
    """Refuse ``sandbox: bwrap`` without bubblewrap; the warning to give when ``auto`` finds none."""
    modes = {settings.sandbox.mode} | {confinement.sandbox_spec(settings, t.variant).mode for t in settings.trials}
    if find_bwrap() is not None or modes == {"none"}:
        return None
    if "bwrap" in modes:
        raise pytest.UsageError(
            f"{settings.source}: sandbox: 'bwrap' needs bubblewrap, which is not installed "
            "(Debian/Ubuntu: apt-get install bubblewrap); or choose sandbox: auto or none"
        )
    return (
        "no sandbox: bubblewrap (bwrap) is not installed, so agents and the scoring runs work with your "
        "account's full access (install the 'bubblewrap' package; see the README's Trust model)"
    )


def own_refs(settings: Settings) -> str:
    """The prefix of the experiment's own branches, which the repository snapshot leaves out."""
    return f"refs/heads/{settings.workspace.branch(settings.experiment, '')}"


class ExploreController:
    @classmethod
    def for_run(cls, config: pytest.Config, settings: Settings, *, distributed: bool) -> ExploreController:
        return cls(config, settings, prepare_run(config, settings), distributed)

    def __init__(self, config: pytest.Config, settings: Settings, prepared: RunStart, distributed: bool) -> None:
        self.config = config
        self.settings = settings
        self.prepared = prepared
        self.distributed = distributed
        self.info = experiment_info(settings)
        self.info["sandbox_warning"] = prepared.sandbox_warning
        self.info["sandbox"] = "none (bubblewrap not found)" if prepared.sandbox_warning else _sandbox_use(settings)
        self.results: dict[str, Any] | None = None
        self.reported: dict[str, dict[str, Any]] = {}  # each trial's record as its process reported it
        self._started = time.time()
        self._stop = threading.Event()
        self._watcher = every(POLL_SECONDS, self.poll, self._stop)
        self.live: LiveView | None = None
        self._report_lock = threading.Lock()

    # -- live progress -----------------------------------------------------

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        write_json(self.settings.paths.experiment_json, self.info)
        if self.config.pluginmanager.get_plugin("terminalreporter") is not None:
            self.live = LiveView.for_terminal(self.config.get_terminal_writer(), self.settings.experiment)
        self.say(self.prepared.notices)
        if not self.config.getoption("collectonly"):
            self._write_live_report()
        if self.distributed:
            self._watcher.start()

    @contextlib.contextmanager
    def terminal(self) -> Iterator[None]:
        """Hold the terminal: the live block is erased meanwhile, and no other thread writes."""
        if self.live is None:
            yield
            return
        with self.live.suspended():
            yield

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logstart(self) -> Generator[None, object, object]:
        with self.terminal():
            result = yield
        if self.live is not None:
            self.live.start()  # pytest's collection lines are out: the block may be drawn from now on
        return result

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logfinish(self) -> Generator[None, object, object]:
        with self.terminal():
            return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport) -> Generator[None, object, object]:
        """Keep each trial's final record as the process that ran it reported it (see ``items``)."""
        for name, value in report.user_properties:
            if name == "explore_record" and isinstance(value, dict):
                self.reported[str(value.get("name"))] = value
        with self.terminal():
            return (yield)

    def pytest_explore_trial_progress(self, trial: TrialRecord) -> None:
        capture = self.config.pluginmanager.get_plugin("capturemanager")
        if capture is None:
            self._show(trial)
            return
        with capture.global_and_fixture_disabled():  # the trial runs inside a captured test item
            self._show(trial)

    def poll(self) -> None:
        """Show each trial whose step changed since the last poll (trials in xdist workers)."""
        for trial in self.settings.trials:
            path = self.settings.paths.trial_file(trial.name, "_progress.json")
            try:
                if path.stat().st_mtime < self._started:
                    continue  # left by an earlier run
            except FileNotFoundError:
                continue
            record = try_load(path)
            if record is not None:
                self._show(record)
        if self.live is not None:
            self.live.tick()

    def _show(self, record: TrialRecord) -> None:
        """Take a trial's record into the live view; rewrite the report when a trial starts or ends."""
        if self.live is None:
            return
        first = record.name not in self.live.running and not record.status.finished
        if self.live.update(record) and (first or record.status.finished):
            self._write_live_report()

    def _write_live_report(self) -> None:
        """``report.html`` of the experiment so far (see :func:`results.write_live_report`)."""
        running = list(self.live.running) if self.live is not None else []
        with self._report_lock:  # the polling thread and the main thread may both get here
            records = load_records(self.settings.paths, [t.name for t in self.settings.trials])
            write_live_report(self.settings.paths, self.info, records, running)

    # -- the report --------------------------------------------------------

    def say(self, lines: list[str]) -> None:
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if reporter is None or not lines:
            return
        with self.terminal():
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
        if self.distributed:
            self._stop.set()
            if self._watcher.is_alive():
                self._watcher.join()
            self.poll()
        if self.live is not None:
            self.live.stop()

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        self._stop_live()
        if self.settings.retry_failed and session.exitstatus == pytest.ExitCode.NO_TESTS_COLLECTED:
            self.say(["--explore-retry-failed: no failed or timed-out variant to retry"])
            session.exitstatus = pytest.ExitCode.OK
        if self.prepared.baseline is not None:
            interrupted = session.exitstatus == pytest.ExitCode.INTERRUPTED
            self.say(baseline_notice(self.settings, self.prepared.baseline, interrupted=interrupted))
        # The session is over: nothing of it may keep running, whatever stopped it.
        self.say(recover_interrupted(self.settings))
        self.info["repository_changes"] = self._restore_repository()
        self._keep_reported_records()
        changed = gitops.snapshot_changes(
            self.prepared.checkout, gitops.checkout_snapshot(self.settings.workspace.repo_root)
        )
        if changed:
            self.say([f"warning: the main checkout changed while the trials ran: {', '.join(changed)}"])
        self.info["checkout_changes"] = changed
        write_json(self.settings.paths.experiment_json, self.info)
        records = load_records(self.settings.paths, [t.name for t in self.settings.trials])
        self.results = write_report(self.settings.paths, self.info, records)
        self.config.hook.pytest_explore_summary(config=self.config, results=self.results)

    def _restore_repository(self) -> list[str]:
        """Put the user's refs, HEAD, config, hooks and exclude back as before the run; warn about each change."""
        before = self.config.stash.get(REPO_STATE_KEY, None)
        if before is None:
            return []
        root = self.settings.workspace.repo_root
        with gitops.repo_lock(root):
            changes = repostate.restore(gitops.sealed(root).git_dir, before, own_refs(self.settings))
        if changes:
            self.say([f"warning: the repository changed during the run and was restored: {'; '.join(changes)}"])
        return changes

    def _keep_reported_records(self) -> None:
        """A record or branch changed after its trial reported it is put back as reported, and flagged.

        Without a sandbox the code a later trial ran (its agent, or its code
        during scoring) could write other trials' files and branches.
        """
        root = self.settings.workspace.repo_root
        for name, data in self.reported.items():
            reported = TrialRecord.from_json(data)
            path = self.settings.paths.trial_file(name, "_progress.json")
            on_disk = try_load(path)
            flags = []
            if on_disk is None or on_disk.to_json() != data:
                flags.append("its record on disk was changed after the trial ended; the reported one is kept")
            if reported.commit and gitops.branch_commit(root, reported.branch) not in (None, reported.commit):
                gitops.set_branch(root, reported.branch, reported.commit)
                flags.append("its branch was moved after the trial ended; reset to the trial's commit")
            if flags:
                reported.flags.extend(flags)
                self.say([f"warning: {name}: {f}" for f in flags])
                save(reported, path)

    def pytest_unconfigure(self) -> None:
        self.prepared.lock.release()

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.results:
            return
        terminalreporter.section(f"explore {self.settings.experiment}: ranking")
        for line in format_table(self.results):
            terminalreporter.write_line(line)
        if is_repeated(self.results):
            terminalreporter.write_line("")
            for comparison in self.results["comparisons"]:
                terminalreporter.write_line(comparison["sentence"])
        race = self.results.get("race")
        if race:
            terminalreporter.write_line("")
            terminalreporter.write_line(
                f"race: {race['trials_total']} of at most {race['trials_max']} trials; "
                + (f"stopped: {race['reason']}" if race["decided"] else f"not decided: {race['reason']}")
            )
            for elimination in race["eliminated"]:
                terminalreporter.write_line(f"  {elimination['sentence']}")
        terminalreporter.write_line("")
        terminalreporter.write_line(f"summary: {self.settings.paths.summary_md}")


class XdistHooks:
    """The controller's xdist hooks, registered only when xdist runs the trials."""

    def __init__(self, controller: ExploreController) -> None:
        self.controller = controller

    def pytest_configure_node(self, node: Any) -> None:
        """Every worker branches from the commit resolved here, even if HEAD moves meanwhile."""
        node.workerinput[BASE_COMMIT_KEY] = self.controller.settings.base_commit
        state = self.controller.config.stash.get(REPO_STATE_KEY, None)
        if state is not None:
            node.workerinput[REPO_STATE_INPUT] = state.to_json()

    @pytest.hookimpl(wrapper=True)
    def pytest_testnodeready(self) -> Generator[None, object, object]:
        with self.controller.terminal():  # xdist's reporter writes its status line here
            return (yield)

    @pytest.hookimpl(wrapper=True)
    def pytest_testnodedown(self, node: Any, error: Any) -> Generator[None, object, object]:
        """A worker died: stop what its trial left running now, rather than at the end."""
        if error:
            self.controller.say(recover_interrupted(self.controller.settings, only_dead_owners=True))
        with self.controller.terminal():
            return (yield)
