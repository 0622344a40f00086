"""The controller side of a run: live progress, then ``results.json``, ``summary.md`` and the table.

Registered in the process that reports (the xdist controller, or the main
process without xdist).  Without xdist, trials run here and report each saved
step through ``pytest_explore_trial_progress``; with xdist they run in workers,
and a thread polls the progress files that they write anyway.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Any

import pytest

from . import __version__
from .record import TrialRecord, try_load, write_json
from .results import format_table, load_records, write_report
from .settings import Settings

#: How often the progress files are polled for changes.
POLL_SECONDS = 0.5


def experiment_info(settings: Settings) -> dict[str, Any]:
    """What ``experiment.json`` says about a run: enough to rebuild its report later."""
    return {
        "experiment": settings.experiment,
        "task": settings.spec.task,
        "source": settings.spec.source,
        "base": settings.base,
        "base_commit": settings.base_commit,
        "variants": [t.name for t in settings.trials],
        "score_command": settings.score_command,
        "plugin_version": __version__,
        "started": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
    }


class ExploreController:
    def __init__(self, config: pytest.Config, settings: Settings, notices: list[str], distributed: bool) -> None:
        self.config = config
        self.settings = settings
        self.notices = notices
        self.distributed = distributed
        self.info = experiment_info(settings)
        self.results: dict[str, Any] | None = None
        self._seen: dict[str, tuple[Any, ...]] = {}
        self._started = time.time()
        self._stop = threading.Event()
        self._watcher = threading.Thread(target=self._watch, name="explore-progress", daemon=True)

    # -- live progress -----------------------------------------------------

    def pytest_sessionstart(self, session: pytest.Session) -> None:
        write_json(self.settings.paths.experiment_json, self.info)
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        for notice in self.notices:
            if reporter is not None:
                reporter.write_line(f"explore {self.settings.experiment}: {notice}", yellow=True, bold=True)
        if self.distributed:
            self._watcher.start()

    def _watch(self) -> None:
        while not self._stop.wait(POLL_SECONDS):
            self.poll()

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

    def _show(self, record: TrialRecord) -> None:
        """One line when the trial's step (or its agent's turn count) changed."""
        state = (record.status, record.from_checkpoint, record.agent.turns)
        reporter = self.config.pluginmanager.get_plugin("terminalreporter")
        if self._seen.get(record.name) == state or reporter is None:
            return
        self._seen[record.name] = state
        if self.config.get_terminal_writer().width_of_current_line:
            reporter.write_line("")  # finish pytest's line of progress dots first
        reporter.write_line(self._progress_line(record))

    def _progress_line(self, record: TrialRecord) -> str:
        step = record.status.value + (" (from checkpoint)" if record.from_checkpoint else "")
        extra = f", {record.agent.turns} turns" if record.agent.turns else ""
        return f"explore {self.settings.experiment}[{record.name}]: {step} {record.elapsed:.1f}s{extra}"

    # -- the report --------------------------------------------------------

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.distributed:
            self._stop.set()
            if self._watcher.is_alive():
                self._watcher.join()
            self.poll()
        records = load_records(self.settings.paths, [t.name for t in self.settings.trials])
        self.results = write_report(self.settings.paths, self.info, records)
        self.config.hook.pytest_explore_summary(config=self.config, results=self.results)

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        if not self.results:
            return
        terminalreporter.section(f"explore {self.settings.experiment}: ranking")
        for line in format_table(self.results["trials"]):
            terminalreporter.write_line(line)
        terminalreporter.write_line("")
        terminalreporter.write_line(f"summary: {self.settings.paths.summary_md}")
