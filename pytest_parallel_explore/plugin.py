"""Wiring: options, ini keys, hookspecs, and what to register where.

Without ``--explore`` (or another ``--explore-*`` command) nothing else is
imported or registered: the plugin is installed where people run their
ordinary test suites, including inside every scored worktree.
"""

from __future__ import annotations

import signal
import threading
from typing import Any

import pytest

from .config.defaults import AGENT_HELP, DIR_HELP, MAX_CONCURRENT_HELP, SCORE_COMMAND_HELP, TIMEOUT_HELP
from .config.keys import BASE_COMMIT_KEY, REPO_STATE_INPUT, REPO_STATE_KEY, SETTINGS_KEY, VARIANTS_INPUT


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("explore", "parallel variant exploration (pytest-parallel-explore)")
    group.addoption("--explore", dest="explore", metavar="NAME", help="run (or act on) the experiment NAME")
    group.addoption(
        "--variants",
        dest="explore_variants",
        metavar="FILE|JSON|N",
        help="the variants: a YAML/JSON file, inline JSON {name: description}, or a number of identical variants",
    )
    group.addoption(
        "--explore-task", dest="explore_task", metavar="TEXT", help="the task, instead of the file's 'task'"
    )
    group.addoption("--explore-dir", dest="explore_dir", metavar="DIR", help=DIR_HELP)
    group.addoption("--explore-timeout", dest="explore_timeout", metavar="DURATION", help=TIMEOUT_HELP)
    group.addoption(
        "--explore-min-score",
        dest="explore_min_score",
        type=float,
        metavar="X",
        help="fail a variant's item when its score is below X",
    )
    group.addoption(
        "--explore-repeat",
        dest="explore_repeat",
        metavar="K|auto",
        help="run K trials of every variant, for confidence intervals and significance; 'auto': a sequential "
        "race of up to 12 trials per variant (or the variants file's repeat.max) that stops once the winner is clear",
    )
    group.addoption(
        "--explore-rerun",
        dest="explore_rerun",
        action="store_true",
        help="ignore saved progress and run every variant again",
    )
    group.addoption(
        "--explore-no-cache",
        dest="explore_no_cache",
        action="store_true",
        help="score every tree again: no outcomes from the score cache, none kept in it",
    )
    group.addoption(
        "--explore-retry-failed",
        dest="explore_retry_failed",
        action="store_true",
        help="run only the variants that failed, timed out or could not be judged last time",
    )
    group.addoption(
        "--explore-results",
        dest="explore_results",
        action="store_true",
        help="print the experiment's summary (finished or partial)",
    )
    group.addoption(
        "--explore-list", dest="explore_list", action="store_true", help="list the experiments in the data directory"
    )
    group.addoption(
        "--explore-cleanup",
        dest="explore_cleanup",
        action="store_true",
        help="remove the experiment's worktrees (branches and results stay)",
    )
    group.addoption(
        "--explore-merge",
        dest="explore_merge",
        nargs="+",
        metavar="DIR",
        help="merge results folders written by separate runs (CI matrix jobs) into one report",
    )
    group.addoption(
        "--explore-adopt",
        dest="explore_adopt",
        metavar="VARIANT|best",
        help="merge that variant's branch (or the best one's) into the current branch",
    )
    group.addoption(
        "--explore-adopt-squash",
        dest="explore_adopt_squash",
        action="store_true",
        help="with --explore-adopt: squash the variant's change into one commit",
    )
    group.addoption(
        "--explore-delete-branches",
        dest="explore_delete_branches",
        action="store_true",
        help="with --explore-cleanup: delete the experiment's branches too",
    )
    parser.addini("explore_dir", DIR_HELP)
    parser.addini("explore_timeout", TIMEOUT_HELP)
    parser.addini("explore_max_concurrent", MAX_CONCURRENT_HELP)
    parser.addini("explore_score_command", SCORE_COMMAND_HELP)
    parser.addini("explore_agent", AGENT_HELP)


def pytest_addhooks(pluginmanager: pytest.PytestPluginManager) -> None:
    from . import hookspecs

    pluginmanager.add_hookspecs(hookspecs)


def _command_asked(config: pytest.Config) -> bool:
    commands = ("explore_list", "explore_results", "explore_cleanup", "explore_merge", "explore_adopt")
    return any(config.getoption(o) for o in commands)


def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """``--explore-list``, ``-results``, ``-cleanup``, ``-merge`` and ``-adopt`` run instead of a test session."""
    if not _command_asked(config):
        return None
    from .cli.commands import main

    return main(config)


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("explore") is None or _command_asked(config):
        return
    from .agents import registry
    from .config.settings import resolve_settings
    from .worker import prompt

    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    from_controller = workerinput or {}
    settings = resolve_settings(
        config,
        registry.agent_backends(config),
        base_commit=from_controller.get(BASE_COMMIT_KEY),
        variants_input=from_controller.get(VARIANTS_INPUT),
    )
    config.stash[SETTINGS_KEY] = settings
    if workerinput is not None and REPO_STATE_INPUT in workerinput:
        from .repo.repostate import RepoState

        config.stash[REPO_STATE_KEY] = RepoState.from_json(workerinput[REPO_STATE_INPUT])
    config.pluginmanager.register(registry, "explore-agents")
    config.pluginmanager.register(prompt, "explore-prompt")
    _interrupt_on_sigterm(config)

    distributed = workerinput is None and _distributed(config)
    if not distributed:
        from .worker import items

        config.pluginmanager.register(items, "explore-items")
    if workerinput is None:
        from .controller.runstart import check_run, every_trial_sandboxed
        from .controller.session import ExploreController
        from .controller.workers import XdistHooks

        controller = ExploreController(config, settings, check_run(config, settings), distributed)
        config.pluginmanager.register(controller, "explore-controller")
        if distributed:
            config.pluginmanager.register(XdistHooks(controller), "explore-xdist")
            limit = min(settings.max_concurrent, len(settings.trials))
            _schedule_workers(config, limit, race=settings.race is not None, replace=every_trial_sandboxed(settings))


def _distributed(config: pytest.Config) -> bool:
    """Whether xdist will run the items in workers (this process only reports)."""
    return (
        config.pluginmanager.hasplugin("xdist")
        and config.getoption("dist", "no") != "no"
        and bool(config.getoption("tx", None))
        and not config.getoption("collectonly")
    )


def _interrupt_on_sigterm(config: pytest.Config) -> None:
    """SIGTERM stops a run the way Ctrl-C does: trials save their state and their agents are killed."""
    if threading.current_thread() is not threading.main_thread():
        return

    def interrupt(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt(f"stopped by signal {signum}")

    previous = signal.signal(signal.SIGTERM, interrupt)

    def restore() -> None:
        signal.signal(signal.SIGTERM, previous)

    config.add_cleanup(restore)


def _schedule_workers(config: pytest.Config, limit: int, *, race: bool = False, replace: bool = True) -> None:
    """At most ``limit`` xdist workers, and no trial queued behind a busy one while another idles.

    ``replace``: a worker that dies is replaced by a new one.  Not when anything of the run works
    without a sandbox: the new worker would read the ini and conftest files an agent could have
    changed meanwhile; the dead worker's trials are then reported as not run.

    A race keeps xdist's ``load`` scheduling, which hands the items out one by one in their
    round-robin order: ``worksteal`` would give each worker a contiguous half, so one worker would
    start on the last rounds before the first ones had told the race anything.
    xdist reads ``tx`` and ``dist`` when the session starts, after this.
    """
    tx = getattr(config.option, "tx", None)
    if tx and len(tx) > limit:
        config.option.tx = tx[:limit]
        config.option.numprocesses = limit
    if getattr(config.option, "dist", "no") == "load" and not race:
        config.option.dist = "worksteal"
    if not replace:
        config.option.maxworkerrestart = "0"
