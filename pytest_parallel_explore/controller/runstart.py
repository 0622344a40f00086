"""What a run does before its trials, in two steps (what it does after them is :mod:`.recovery`).

:func:`check_run` runs in ``pytest_configure``: it only checks (every agent can
run, the sandbox asked for exists) and takes the experiment's lock, so a bad
command line fails before anything is written.  :func:`start_run` runs when the
session starts: it closes what an earlier run left midway, snapshots the
repository (handed to xdist workers, restored at the end) and starts scoring
the base commit in the background.  Nothing here runs in xdist workers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import itertools
import tempfile
import threading
from pathlib import Path

import pytest

from ..config.keys import REPO_STATE_KEY
from ..isolation import confinement, procs
from ..isolation.sandbox import find_bwrap, wanted
from ..model.frozen import snapshot
from ..model.settings import Settings
from ..model.spec import VariantSpec
from ..repo import checkoutstate, gitops, private, repostate
from ..repo.store import open_store
from ..report.model import ExperimentInfo
from ..scoring.baseline import BackgroundBaseline
from ..scoring.checkout import keep_holdout
from ..version import __version__
from .recovery import recover_interrupted
from .runlock import ExperimentBusy, ExperimentLock


@dataclasses.dataclass
class RunCheck:
    """What ``pytest_configure`` established: the lock held, and how the trials will be confined."""

    lock: ExperimentLock
    notices: list[str]
    sandbox: str  # for the summary: bubblewrap, none, or per variant
    sandbox_warning: str | None


@dataclasses.dataclass
class RunStart:
    """What the session start set up: notices to show, the main checkout's state, the baseline."""

    notices: list[str]
    checkout: dict[str, str]
    baseline: BackgroundBaseline | None


def check_run(config: pytest.Config, settings: Settings) -> RunCheck:
    """Refuse a run that cannot work, before anything is written; then take the experiment's lock."""
    from ..agents import AgentUnavailable, agent_backends, unknown_backend

    probed: set[tuple[str, str]] = set()
    for trial in settings.trials:
        agent = config.hook.pytest_explore_make_agent(
            config=config, variant=snapshot(trial.variant, "pytest_explore_make_agent")
        )
        where = f"{settings.source}: variants.{trial.variant.name}.agent.backend"
        if agent is None:
            backend = trial.variant.agent.get("backend")
            raise pytest.UsageError(f"{where}: {unknown_backend(backend, agent_backends(config))}")
        try:
            agent.preflight()
            _probe_cli(settings, trial.variant, agent, probed)
        except AgentUnavailable as exc:
            raise pytest.UsageError(f"{where}: {exc}") from None
    warning = _check_sandbox(settings)
    lock = ExperimentLock(settings.paths.lock)
    try:
        lock.acquire()
    except ExperimentBusy as exc:
        raise pytest.UsageError(f"--explore {settings.experiment}: {exc}") from None
    notices = []
    if lock.stale_pid is not None:
        notices.append(f"warning: took over the lock of an earlier run that died (pid {lock.stale_pid})")
    if warning:
        notices.append(f"warning: {warning}")
    misled = _rootdir_misled(config, settings)
    if misled:
        notices.append(f"warning: {misled}")
    sandbox = "none (bubblewrap not found)" if warning else _sandbox_use(settings)
    return RunCheck(lock, notices, sandbox, warning)


def _probe_cli(settings: Settings, variant: VariantSpec, agent: object, probed: set[tuple[str, str]]) -> None:
    """A CLI agent's sandbox probe (see :meth:`.CliAgent.probe`), once per variant, when the sandbox is used."""
    from ..agents.cli import CliAgent

    if not isinstance(agent, CliAgent) or not wanted(settings.sandbox_of(variant).mode):
        return
    if find_bwrap() is None or (variant.name, agent.executable) in probed:
        return
    with tempfile.TemporaryDirectory(prefix="explore-probe-") as folder:
        where = Path(folder)
        sandbox = confinement.for_agent(
            settings.sandbox_of(variant),
            settings.limits_of(variant),
            agent.programs(),
            worktree=where,
            shared=where,
            prompt_file=where / "prompt.md",
            hidden=confinement.hidden_paths(settings.workspace, where / ".git", settings.score.holdout),
            repo_root=settings.workspace.repo_root,
        )
        agent.probe(sandbox)
    probed.add((variant.name, agent.executable))


def _rootdir_misled(config: pytest.Config, settings: Settings) -> str | None:
    """Why pytest's rootdir is outside the repository, when ``--variants FILE`` (with a space) put it there.

    pytest finds its rootdir and ini file before it loads plugins, so it takes the
    value of an option it does not know yet for a test path: a variants file outside
    the repository pulls the rootdir out, and the project's ini file goes unread.
    """
    args = list(config.invocation_params.args)
    root = settings.workspace.repo_root
    for flag, value in itertools.pairwise(args):
        if flag != "--variants" or config.rootpath.is_relative_to(root):
            continue
        path = config.invocation_params.dir / value
        if path.exists() and not path.resolve().is_relative_to(root):
            return (
                f"--variants {value}: pytest took the file for a test path before this plugin loaded and made "
                f"{config.rootpath} its rootdir, so the ini settings of {root} were not read; "
                f"write --variants={value}"
            )
    return None


def start_run(config: pytest.Config, settings: Settings, workers_up: threading.Event | None = None) -> RunStart:
    """Set-up done once, before any worktree is made (the controller's session start, before xdist's).

    The baseline is scored once ``workers_up`` is set (at once without it).
    """
    notices = recover_interrupted(settings)
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
    checkout = checkoutstate.checkout_snapshot(root)
    state = snapshot_repository(config, settings)
    config.stash[REPO_STATE_KEY] = state
    if config.getoption("collectonly"):
        return RunStart(notices, checkout, None)
    # Built while the xdist workers start up, so that their first trials find it ready.
    threading.Thread(target=_build_shared_base, args=(settings,), name="explore-shared-base", daemon=True).start()
    # Scored while the agents work: trials wait for it only to judge their tests.
    return RunStart(notices, checkout, BackgroundBaseline(settings.scoring, state.holdout, workers_up))


def _build_shared_base(settings: Settings) -> None:
    """The objects every trial's private repository starts from (see :func:`private.shared_base`)."""
    git_dir = gitops.sealed(settings.workspace.repo_root).git_dir
    with contextlib.suppress(Exception):  # the first trial builds it then, and its record says what failed
        private.shared_base(git_dir, settings.paths.shared_base, settings.base_commit, settings.score.holdout)


def snapshot_repository(config: pytest.Config, settings: Settings) -> repostate.RepoState:
    """The user's repository before any agent runs: its git state, the hold-out, and (without a sandbox) its files.

    The hold-out and the files are kept in the experiment's private store,
    never in the repository's own objects, where an agent could reach them.
    """
    root = settings.workspace.repo_root
    git = gitops.sealed(root)
    own = settings.workspace.own_refs(settings.experiment)
    state = repostate.capture(git.git_dir, own, settings.workspace.explore_dir)
    store = open_store(settings.paths.store)
    holdout = keep_holdout(settings.scoring, git, store)
    files = None
    if not every_trial_sandboxed(settings):
        basetemp = config.getoption("basetemp", None)
        excluded = [settings.workspace.explore_dir, *([Path(basetemp).resolve()] if basetemp else [])]
        files = checkoutstate.capture(git, root, store, excluded)
    return dataclasses.replace(state, holdout=holdout, checkout=files, store=str(store.git_dir))


def every_trial_sandboxed(settings: Settings) -> bool:
    """Whether every agent and every scored run works in bubblewrap: nothing of the run can write your checkout."""
    modes = [settings.sandbox.mode, *(settings.sandbox_of(t.variant).mode for t in settings.trials)]
    return all(wanted(mode) for mode in modes)


def experiment_info(settings: Settings, check: RunCheck) -> ExperimentInfo:
    """What ``experiment.json`` says about a run: enough to rebuild its report later."""
    return ExperimentInfo(
        experiment=settings.experiment,
        task=settings.task or "",
        source=settings.source,
        base=settings.base,
        base_commit=settings.base_commit,
        trial_names=[t.name for t in settings.trials],
        variant_names=list(settings.variant_names),
        race=settings.race,
        score_command=settings.score.command,
        plugin_version=__version__,
        started=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        sandbox_warning=check.sandbox_warning,
        sandbox=check.sandbox,
    )


def baseline_notice(settings: Settings, background: BackgroundBaseline, *, interrupted: bool) -> list[str]:
    """Wait for the baseline (not after Ctrl-C: then its suite is stopped) and say how it was had."""
    if interrupted and background.running:
        background.cancelled.set()
        procs.reap(procs.live_groups())
    result = background.wait()
    if result is None:
        return [f"warning: the baseline could not be scored: {background.error}"] if background.error else []
    baseline, how = result
    if baseline.tests.problem:
        return [
            f"warning: baseline {how} at {settings.base_commit[:12]}, but {baseline.tests.problem}; "
            "every test of a trial counts as added"
        ]
    flaky = f"; {len(baseline.flaky)} flaky tests left out" if baseline.flaky else ""
    return [
        f"baseline {how}: {baseline.tests.passed}/{baseline.tests.total} tests "
        f"pass at {settings.base_commit[:12]} ({baseline.runs} runs{flaky})"
    ]


def _sandbox_use(settings: Settings) -> str:
    """How the trials are confined, for the summary: ``bubblewrap``, ``none``, or per variant."""
    modes = {"bubblewrap" if wanted(settings.sandbox_of(t.variant).mode) else "none" for t in settings.trials}
    return modes.pop() if len(modes) == 1 else "per variant (bubblewrap for some, none for others)"


def _check_sandbox(settings: Settings) -> str | None:
    """Refuse ``sandbox: bwrap`` without bubblewrap; the warning to give when ``auto`` finds none."""
    modes = {settings.sandbox.mode} | {settings.sandbox_of(t.variant).mode for t in settings.trials}
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
