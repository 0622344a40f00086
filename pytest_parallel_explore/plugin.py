"""Wiring: options, ini keys, hookspecs, and what to register where.

Without ``--explore`` (or another ``--explore-*`` command) nothing else is
imported or registered: the plugin is installed where people run their
ordinary test suites, including inside every scored worktree.
"""

from __future__ import annotations

from typing import Any

import pytest

from .settings import AGENT_HELP, DIR_HELP, MAX_CONCURRENT_HELP, SCORE_COMMAND_HELP, SETTINGS_KEY, TIMEOUT_HELP

#: workerinput key that carries the controller's base commit to xdist workers.
BASE_COMMIT_KEY = "explore_base_commit"


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
        "--explore-rerun",
        dest="explore_rerun",
        action="store_true",
        help="ignore saved progress and run every variant again",
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
    return any(config.getoption(o) for o in ("explore_list", "explore_results", "explore_cleanup"))


def pytest_cmdline_main(config: pytest.Config) -> int | None:
    """``--explore-list``, ``--explore-results`` and ``--explore-cleanup`` run instead of a session."""
    if not _command_asked(config):
        return None
    from _pytest.main import wrap_session

    from .commands import run_command

    def main(config: pytest.Config, session: pytest.Session) -> int:
        return run_command(config, config.get_terminal_writer().line)

    return wrap_session(config, main)


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("explore") is None or _command_asked(config):
        return
    from . import agents, prompt, scoring
    from .settings import resolve_settings

    workerinput: dict[str, Any] | None = getattr(config, "workerinput", None)
    settings = resolve_settings(config, base_commit=(workerinput or {}).get(BASE_COMMIT_KEY))
    config.stash[SETTINGS_KEY] = settings
    for module in (agents, prompt, scoring):
        config.pluginmanager.register(module, f"explore-{module.__name__.rsplit('.', 1)[-1]}")

    controller_of_workers = workerinput is None and _distributed(config)
    if not controller_of_workers:
        from . import items

        config.pluginmanager.register(items, "explore-items")
    if workerinput is None:
        notices = _prepare_run(config, settings)
        from .controller import ExploreController

        config.pluginmanager.register(
            ExploreController(config, settings, notices, controller_of_workers), "explore-controller"
        )
        if controller_of_workers:
            config.pluginmanager.register(_WorkerSetup(settings.base_commit), "explore-worker-setup")


def _distributed(config: pytest.Config) -> bool:
    """Whether xdist will run the items in workers (this process only reports)."""
    return (
        config.pluginmanager.hasplugin("xdist")
        and config.getoption("dist", "no") != "no"
        and bool(config.getoption("tx", None))
        and not config.getoption("collectonly")
    )


def _prepare_run(config: pytest.Config, settings: Any) -> list[str]:
    """Checks and set-up done once, in the controller, before any worktree is made.

    Returns the notices to show the user when the session starts.
    """
    from . import gitops
    from .agents import AgentUnavailable

    root = settings.workspace.repo_root
    for trial in settings.trials:
        agent = config.hook.pytest_explore_make_agent(config=config, variant=trial.variant)
        where = f"{settings.spec.source}: variants.{trial.variant.name}.agent.backend"
        if agent is None:
            raise pytest.UsageError(
                f"{where}: unknown backend {trial.variant.agent.get('backend')!r}; "
                "expected 'command', 'anthropic', 'claude-code' or one registered by a plugin"
            )
        try:
            agent.preflight()
        except AgentUnavailable as exc:
            raise pytest.UsageError(f"{where}: {exc}") from None
    notices = []
    if gitops.is_dirty(root):
        # Said on the terminal, not with `warnings`: a project's filterwarnings=error would make it a crash.
        notices.append(
            f"warning: {root} has uncommitted changes; the variants start from the last commit "
            f"({settings.base} = {settings.base_commit[:12]}), without them"
        )
    try:
        relative = str(settings.workspace.explore_dir.relative_to(root))
    except ValueError:
        relative = None
    if relative:
        gitops.exclude_path(root, relative)
    settings.paths.results.mkdir(parents=True, exist_ok=True)
    _schedule_workers(config, settings.max_concurrent)
    return notices


def _schedule_workers(config: pytest.Config, limit: int) -> None:
    """At most ``limit`` xdist workers, and no trial queued behind a busy one while another idles.

    xdist reads ``tx`` and ``dist`` when the session starts, after this.
    """
    tx = getattr(config.option, "tx", None)
    if tx and len(tx) > limit:
        config.option.tx = tx[:limit]
        config.option.numprocesses = limit
    if getattr(config.option, "dist", "no") == "load":
        config.option.dist = "worksteal"


class _WorkerSetup:
    """xdist hook on the controller: hand the resolved base commit to every worker."""

    def __init__(self, base_commit: str) -> None:
        self.base_commit = base_commit

    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput[BASE_COMMIT_KEY] = self.base_commit
