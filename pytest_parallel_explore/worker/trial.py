"""One trial's state machine: ``pending → worktree → agent → score → done``.

Each step is a function from record to record; the record is saved
atomically before and after every step, so a crash leaves a consistent
progress file that says how far the trial got.  One trial's failure is
recorded in its own record and never stops the others.  Whether the trial
runs at all is decided first (:mod:`.decisions`); the score step is
:mod:`.scorestep`.
"""

from __future__ import annotations

import dataclasses
import os
import threading
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest
from pluggy import HookCaller

from ..agents import AgentOutcome, AgentTask
from ..agents.base import programs_of
from ..isolation import confinement, procs
from ..isolation.sandbox import Sandbox
from ..model import transcript
from ..model.frozen import snapshot
from ..model.paths import TRIAL_FILE_SUFFIXES
from ..model.record import (
    SKIPPED_BY_RACE,
    AgentStats,
    DiffStats,
    Status,
    TestStats,
    TrialRecord,
    save,
)
from ..model.settings import Settings, Trial
from ..repo import gitops, private, trees, worktreestat
from ..scoring import protect, suspicious
from ..scoring.checkout import prepare_worktree
from . import decisions, tampering
from .scorestep import ScoreStep

_R = TypeVar("_R")


class TrialRunner:
    """Runs one trial in this process, saving its record after every step."""

    def __init__(self, config: pytest.Config, settings: Settings, trial: Trial) -> None:
        self.config = config
        self.settings = settings
        self.trial = trial
        self.paths = settings.paths
        self.progress = self.paths.trial_file(trial.name, "_progress.json")
        self.worktree = self.paths.worktree(trial.name)
        self.root = settings.workspace.repo_root
        self.view = settings.view(trial)
        self.keep = settings.worktree.keep
        self._unchanged: dict[str, worktreestat.Stat] | None = None  # see gitops.snapshot_worktree
        self._plugin_files: list[str] = []  # see run()
        self._reference = settings.base_commit  # what this trial's folder holds if nobody changed it; see run()
        self._thread = threading.get_ident()  # the thread the trial runs on

    def run(self) -> TrialRecord:
        previous, problem = decisions.previous_record(self.progress)
        if previous is not None and decisions.reusable(self.settings, self.trial, previous):
            previous.from_checkpoint = True
            self._save(previous)
            return previous
        unneeded = decisions.race_skip(self.settings, self.trial, previous)
        if unneeded is not None:
            return self._skipped(unneeded, SKIPPED_BY_RACE, previous)
        spent = decisions.budget_spent(self.settings, self.trial)
        if spent is not None:
            reason = f"the experiment's budget of ${self.settings.max_cost_usd:.2f} is spent (${spent:.2f})"
            return self._skipped(reason, "budget", previous)
        # What the plugin left in this trial's worktree last time (hidden hold-outs, set-up files) is
        # not the user's: a worktree holding only that is replaced, not moved aside.
        self._plugin_files = [*self.settings.score.holdout, *(previous.setup_files if previous else [])]
        if previous is not None and previous.commit is not None:
            self._reference = previous.commit
        resume = previous is not None and decisions.agent_work_kept(self.settings, self.trial, previous)
        record = self._resumed(previous) if resume and previous else self._new_record(previous)
        if problem:
            record.flags.append(problem)
        with procs.watching(lambda groups: self._groups_changed(record, groups)):
            try:
                if not resume:
                    self._step(record, Status.WORKTREE, self._make_worktree)
                    self._step(record, Status.AGENT, self._run_agent)
                elif self.keep != "none":  # scoring needs only the branch; the worktree is for the user
                    self._step(record, Status.WORKTREE, self._restore_worktree)
                if self.keep == "none":  # before scoring: one checkout per running trial at a time
                    self._drop_worktree(record)
                if record.agent_failure is None or record.diff.files_changed:
                    self._step(record, Status.SCORE, ScoreStep(self.config, self.settings, self.trial, self._save))
                _conclude(record, self.settings.score.protect_mode, self.settings.score.suspicious)
                if self.keep == "failed" and record.status is Status.DONE:
                    self._drop_worktree(record)
            except Exception as exc:  # the pipeline broke: record why, let the other trials go on
                record.reason = f"error during {record.status.value}: {exc}"
                record.status = Status.ERROR
                with self.paths.trial_file(self.trial.name, "_agent.log").open("a") as log:
                    log.write(traceback.format_exc())
            except BaseException as exc:  # Ctrl-C, SIGTERM or pytest-timeout: save what we know, then go
                record.reason = f"interrupted during {record.status.value} ({type(exc).__name__})"
                record.status = Status.ERROR
                record.finished_at = time.time()
                record.end_attempt(self._attempt_cost(record))
                self._save(record)
                raise
        # Its own commands have all ended: what is left listed is other trials' of this process, theirs to keep.
        record.process_groups = []
        record.finished_at = time.time()
        record.end_attempt(self._attempt_cost(record))
        self._save(record)
        self._tell(self.config.hook.pytest_explore_trial_finished, record)
        return record

    def _attempt_cost(self, record: TrialRecord) -> float:
        """What the agent cost in this attempt (nothing when the attempt resumed after the agent step)."""
        return 0.0 if "resumed after the agent step" in record.flags else record.agent.cost_usd

    def _skipped(self, reason: str, by: str, previous: TrialRecord | None) -> TrialRecord:
        record = self._new_record(previous)
        record.status, record.reason, record.finished_at = Status.SKIPPED, reason, time.time()
        record.skipped_by = by
        self._save(record)
        self._tell(self.config.hook.pytest_explore_trial_finished, record)
        return record

    def _resumed(self, previous: TrialRecord) -> TrialRecord:
        """The previous record, ready to be scored again from its committed agent work."""
        record = dataclasses.replace(
            previous,
            status=Status.PENDING,
            reason=None,
            tests=TestStats(),
            metrics={},
            score=None,
            flags=[*previous.flags, "resumed after the agent step"],
            steps={k: v for k, v in previous.steps.items() if k != Status.SCORE.value},
            owner_pid=os.getpid(),
            process_groups=[],
            started_at=time.time(),  # of this attempt; the earlier ones are in ``attempts``
            finished_at=None,
            from_checkpoint=False,
        )
        self._save(record)
        return record

    def _groups_changed(self, record: TrialRecord, groups: list[procs.Group]) -> None:
        """Every command of this process counts, the background baseline's too (run without xdist).

        Another thread's command only updates the list: the record is this
        thread's to save, and the hooks (the live view) are called on it alone.
        """
        record.process_groups = [list(group) for group in groups]
        if threading.get_ident() == self._thread:
            self._save(record)

    def _new_record(self, previous: TrialRecord | None = None) -> TrialRecord:
        """A fresh record; it keeps the earlier attempts of ``previous`` when they were of the same spec.

        A changed task, variant, base commit or score setting makes a new trial, not another attempt
        of the old one; --explore-rerun discards the attempts too.
        """
        same_trial = previous is not None and previous.spec_hash == self.trial.spec_hash and not self.settings.rerun
        record = TrialRecord(
            experiment=self.settings.experiment,
            name=self.trial.name,
            variant=self.trial.variant.name,
            round=self.trial.round,
            description=self.trial.variant.description,
            spec_hash=self.trial.spec_hash,
            branch=self.settings.workspace.branch(self.settings.experiment, self.trial.name),
            base_commit=self.settings.base_commit,
            worktree=str(self.worktree),
            agent=AgentStats(
                backend=str(self.trial.variant.agent.get("backend", "")), model=self.trial.variant.agent.get("model")
            ),
            owner_pid=os.getpid(),
            started_at=time.time(),
            attempts=list(previous.attempts) if previous is not None and same_trial else [],
            race_horizon=self.settings.race.max if self.settings.race else None,
        )
        for suffix in TRIAL_FILE_SUFFIXES:  # nothing of an earlier attempt is mixed in
            if suffix != "_progress.json":
                self.paths.trial_file(self.trial.name, suffix).unlink(missing_ok=True)
        self._save(record)
        return record

    def _step(self, record: TrialRecord, status: Status, action: Callable[[TrialRecord], _R]) -> _R:
        record.status = status
        started = time.time()
        record.steps[status.value] = {"started": started}
        self._save(record)
        result = action(record)
        record.steps[status.value]["seconds"] = round(time.time() - started, 3)
        self._save(record)
        return result

    def _save(self, record: TrialRecord) -> None:
        save(record, self.progress)
        self._tell(self.config.hook.pytest_explore_trial_progress, record)

    def _tell(self, hook: HookCaller, record: TrialRecord) -> None:
        """Call ``hook`` with a read-only snapshot of ``record`` (copied only when someone listens)."""
        if hook.get_hookimpls():
            hook(config=self.config, trial=snapshot(record, hook.name))

    # -- the steps ---------------------------------------------------------

    def _make_worktree(self, record: TrialRecord) -> None:
        base = self.settings.base_commit
        kept = gitops.add_worktree(
            self.root,
            self.worktree,
            record.branch,
            self._shared_base(),
            base,
            reference=self._reference,
            own_files=self._plugin_files,
        )
        # Taken before anything else touches the files; kept in memory, out of the agent's reach.
        self._unchanged = gitops.snapshot_worktree(self.root, self.worktree, base)
        record.flags.extend(f"kept: {notice}" for notice in kept)
        prepare_worktree(self.settings.scoring, self.settings.subject(self.trial), self.worktree)
        # What worktree.copy and worktree.setup put there is the project's set-up, not the agent's work.
        if self.settings.worktree.copy or self.settings.worktree.setup:
            record.setup_files = private.untracked(self.worktree)

    def _shared_base(self) -> private.SharedBase:
        """The base commit without the hold-out, that every trial's private repository starts from."""
        holdout = self.settings.score.holdout
        return private.shared_base(self._git_dir(), self.paths.shared_base, self.settings.base_commit, holdout)

    def _git_dir(self) -> Path:
        return gitops.sealed(self.root).git_dir

    def _run_agent(self, record: TrialRecord) -> AgentOutcome:
        variant = self.trial.variant
        hook = self.config.hook
        agent = hook.pytest_explore_make_agent(
            config=self.config, variant=snapshot(variant, "pytest_explore_make_agent")
        )
        view = snapshot(self.view, "pytest_explore_prompt")
        prompt = hook.pytest_explore_prompt(config=self.config, trial=view, task=self.settings.task or "")
        prompt_file = self.paths.trial_file(self.trial.name, "_prompt.md")
        prompt_file.write_text(prompt, encoding="utf-8")

        def report(stats: AgentStats) -> None:
            record.agent = stats
            self._save(record)

        task = AgentTask(
            experiment=self.settings.experiment,
            trial=self.trial.name,
            variant=variant.name,
            settings=variant.agent,
            prompt=prompt,
            prompt_file=prompt_file,
            worktree=self.worktree,
            log_path=self.paths.trial_file(self.trial.name, "_agent.log"),
            timeout=self.trial.timeout,
            env=self._explore_env(prompt, prompt_file),
            report=report,
            sandbox=self._sandbox(prompt_file, programs_of(agent)),
        )
        try:
            outcome: AgentOutcome = agent.run(task)
        except Exception as exc:
            with task.log_path.open("a") as log:
                log.write(traceback.format_exc())
            outcome = AgentOutcome(record.agent, f"agent backend crashed: {type(exc).__name__}: {exc}")
        record.agent = outcome.stats
        record.agent_failure, record.agent_timed_out = outcome.failure, outcome.timed_out
        record.flags.extend(outcome.flags)
        transcript.save(self.paths.trial_file(self.trial.name, "_transcript.json"), outcome.transcript)
        self._record_work(record)
        return outcome

    def _sandbox(self, prompt_file: Path, programs: tuple[str, ...]) -> Sandbox:
        """What the agent may do: its variant's sandbox and limits, its worktree its own, its programs runnable."""
        settings, variant = self.settings, self.trial.variant
        return confinement.for_agent(
            settings.sandbox_of(variant),
            settings.limits_of(variant),
            programs,
            worktree=self.worktree,
            shared=self._shared_base().store,
            prompt_file=prompt_file,
            hidden=confinement.hidden_paths(settings.workspace, self._git_dir(), settings.score.holdout),
            repo_root=self.root,
        )

    def _explore_env(self, prompt: str, prompt_file: Path) -> dict[str, str]:
        return {
            **self.trial.env(),
            # An agent that runs the tests leaves no __pycache__ in its work (a project without a
            # .gitignore would have it recorded, and flagged where it lands among the tests).
            "PYTHONDONTWRITEBYTECODE": "1",
            "EXPLORE_EXPERIMENT": self.settings.experiment,
            "EXPLORE_WORKTREE": str(self.worktree),
            "EXPLORE_PROMPT": prompt,
            "EXPLORE_PROMPT_FILE": str(prompt_file),
            "EXPLORE_BASE_COMMIT": self.settings.base_commit,
        }

    def _record_work(self, record: TrialRecord) -> None:
        """Keep what the agent left in its files on the trial's branch, and as a patch.

        First the user's repository is put back as it was before the run (what
        the agent changed there is tampering); then the commit is built from
        the files, never from the agent's own repository, whose ``.git`` is
        then replaced by a new one (a user who runs git in a kept folder
        must not run the agent's hooks or filters).
        """
        tampering.check_repository(self.config, self.settings, record, Status.AGENT)
        holdout = self.settings.score.holdout
        tampering.note(record, protect.holdout_written(self.worktree, holdout))
        try:
            change = gitops.record_work(
                self.root,
                self.worktree,
                record.branch,
                self.settings.base_commit,
                f"explore {self.settings.experiment}: {self.trial.name}\n\n{self.trial.variant.description}",
                leave=holdout,
                skip=[*self.settings.worktree.copy, *record.setup_files],
                unchanged=self._unchanged,
                limits=self.settings.limits_of(self.trial.variant),
            )
        except trees.LimitExceeded as exc:  # nothing of the work was stored: the trial fails, the run goes on
            record.agent_failure = "; ".join(filter(None, (record.agent_failure, f"limit: {exc}")))
            gitops.set_branch(self.root, record.branch, self.settings.base_commit)
            private.reset_git(self.worktree, self._shared_base(), record.branch)
            return
        if change.left_out:
            shown = ", ".join(change.left_out[:5]) + (
                f" and {len(change.left_out) - 5} more" if len(change.left_out) > 5 else ""
            )
            reasons = "names with control characters or not UTF-8, spellings of .git or .gitmodules, a .git inside"
            record.flags.append(f"left out of the commit ({reasons}): {shown}")
        record.commit = change.commit
        record.diff = DiffStats(len(change.files), change.insertions, change.deletions, change.files)
        gitops.write_patch(
            self.root, self.settings.base_commit, change.commit, self.paths.trial_file(self.trial.name, ".patch")
        )
        private.reset_git(self.worktree, self._shared_base(), record.branch)

    def _drop_worktree(self, record: TrialRecord) -> None:
        """Remove the trial's worktree (``worktree.keep``), but only once its branch holds the work.

        What the agent left is already the branch's commit (see :meth:`_record_work`);
        resume, ``--explore-adopt``, the report and cleanup all work from the branch.
        """
        root = self.root
        if record.commit is None or gitops.branch_commit(root, record.branch) != record.commit:
            return
        if self.worktree.exists() or self.worktree.is_symlink():
            gitops.remove_trial_folder(root, self.worktree)

    def _restore_worktree(self, record: TrialRecord) -> None:
        """The trial's folder rebuilt at its committed agent work, with a new private repository."""
        assert record.commit is not None
        shared, holdout = self._shared_base(), self.settings.score.holdout
        gitops.restore_worktree(self.root, self.worktree, shared, record.branch, record.commit, holdout)
        prepare_worktree(self.settings.scoring, self.settings.subject(self.trial), self.worktree)


def _conclude(record: TrialRecord, protect_mode: str, suspicious_mode: str) -> None:
    """The trial's final status, from how its agent ended, whether it tampered, and whether its suite was judged.

    Tampering and suspicious code fail the trial only in their ``fail`` modes; otherwise they are shown.
    """
    if record.tampering and protect_mode == "fail":
        record.status = Status.AGENT_FAILED
        record.reason = f"tampering (score.protect_mode: fail): {', '.join(record.tampering)}"
    elif record.suspicious and suspicious_mode == "fail":
        record.status = Status.AGENT_FAILED
        record.reason = f"suspicious code (score.suspicious: fail): {suspicious.in_short(record.suspicious)}"
    elif record.agent_failure is not None:
        record.status = Status.TIMEOUT if record.agent_timed_out else Status.AGENT_FAILED
        record.reason = record.agent_failure
        if record.score is not None:
            record.flags.append("scored after the agent failed")
    elif record.tests.problem:
        record.status, record.reason = Status.DONE, f"scored 0: {record.tests.problem}"
    else:
        record.status = Status.DONE
