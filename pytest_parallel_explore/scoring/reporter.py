"""The pytest plugin loaded (``-p``) into every scored pytest run: each test's outcome, as it ends, on a pipe.

The junit file of a scored run is written where the code under test can
find it (its path is in ``sys.argv``) and is only complete once pytest
exits, so an implementation can forge it and leave with ``os._exit(0)``.
This plugin writes one JSON line per test to a pipe the plugin opened
(:data:`FD_VARIABLE` names the inherited file descriptor) as soon as the
test's last phase is reported: a run that ends early has told what it ran,
and the tests it never reported count as missing.  It imports nothing of
the package, so that loading it costs nothing and depends on nothing the
checkout could shadow.

Lines: ``{"plugins": [...]}`` (the modules of the plugins loaded from entry
points, which the trials' runs then load by name), one ``{"test", "outcome",
"duration"}`` per test, and ``{"finished": exit status}``.
"""

from __future__ import annotations

import json
import os
import types
from typing import IO, Any

import pytest

#: The environment variable holding the number of the pipe's write end.
FD_VARIABLE = "EXPLORE_OUTCOMES_FD"


class _Outcomes:
    """Each test's phases, combined the way junit combines them, written once the test is over."""

    def __init__(self, pipe: IO[str]) -> None:
        self.pipe = pipe
        self.pending: dict[str, dict[str, Any]] = {}

    def write(self, message: dict[str, Any]) -> None:
        self.pipe.write(json.dumps(message) + "\n")
        self.pipe.flush()

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        test = self.pending.setdefault(report.nodeid, {"outcome": "passed", "duration": 0.0})
        test["duration"] += report.duration
        if test["outcome"] != "passed":
            return  # the first phase that did not pass decides (a failing teardown after a failure)
        if hasattr(report, "wasxfail"):
            test["outcome"] = "xfailed" if report.skipped else "xpassed"
        elif report.failed:
            test["outcome"] = "failed" if report.when == "call" else "error"
        elif report.skipped:
            test["outcome"] = "skipped"

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        # A module that cannot be collected is an errored test, as junit records it: the suite did run.
        if report.failed:
            self.write({"test": report.nodeid, "outcome": "error", "duration": 0.0})

    def pytest_runtest_logfinish(self, nodeid: str) -> None:
        test = self.pending.pop(nodeid, None)
        if test is not None:
            self.write({"test": nodeid, **test})

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, exitstatus: int) -> None:
        self.write({"finished": int(exitstatus)})
        self.pipe.close()


def pytest_configure(config: pytest.Config) -> None:
    # Only where the plugin opened the pipe: not in xdist workers, nor in a pytest the suite runs itself.
    if hasattr(config, "workerinput") or FD_VARIABLE not in os.environ:
        return
    fd = int(os.environ.pop(FD_VARIABLE))
    os.set_inheritable(fd, False)  # the suite's own subprocesses do not get it
    outcomes = _Outcomes(os.fdopen(fd, "w", encoding="utf-8"))
    # By module: a plugin an entry point gave as an object (not a module) cannot be loaded by name.
    loaded = [plugin for plugin, _ in config.pluginmanager.list_plugin_distinfo()]
    # In the order pytest loaded them: one plugin's import may import another (xdist's two), and a module
    # imported before it is marked for assertion rewriting gets a warning.
    plugins = list(dict.fromkeys(plugin.__name__ for plugin in loaded if isinstance(plugin, types.ModuleType)))
    outcomes.write({"plugins": plugins})
    config.pluginmanager.register(outcomes, "explore-outcomes")
