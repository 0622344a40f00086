"""One trial's state machine: ``pending → worktree → agent → score → done``.

Each step is a function from record to record; the record is saved
atomically before and after every step, so a crash leaves a consistent
progress file that says how far the trial got.  One trial's failure is
recorded in its own record and never stops the others.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import os
import shutil
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from . import gitops, procs
from .agents import AgentOutcome, AgentTask
from .procs import run_owned
from .record import AgentStats, CorruptRecord, DiffStats, Status, TestStats, TrialRecord, load, save
from .results import load_records
from .scoring import scoring_env, weighted_score
from .settings import TRIAL_FILE_SUFFIXES, Settings, Trial

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
        self._set_up_files: list[str] = []

    def run(self) -> TrialRecord:
        previous, problem = self._previous()
        if previous is not None and self._reusable(previous):
            previous.from_checkpoint = True
            self._save(previous)
            return previous
        spent = self._budget_spent()
        if spent is not None:
            return self._skipped(
                f"the experiment's budget of ${self.settings.max_cost_usd:.2f} is spent (${spent:.2f})"
            )
        resume = previous is not None and self._agent_work_kept(previous)
        record = self._resumed(previous) if resume and previous else self._new_record()
        if problem:
            record.flags.append(problem)
        with procs.watching(lambda groups: self._groups_changed(record, groups)):
            try:
                if resume:
                    self._step(record, Status.WORKTREE, self._restore_worktree)
                else:
                    self._step(record, Status.WORKTREE, self._make_worktree)
                    self._step(record, Status.AGENT, self._run_agent)
                if record.agent_failure is None or record.diff.files_changed:
                    self._step(record, Status.SCORE, self._score)
                _conclude(record)
            except Exception as exc:  # the pipeline broke: record why, let the other trials go on
                record.reason = f"error during {record.status.value}: {exc}"
                record.status = Status.ERROR
                with self.paths.trial_file(self.trial.name, "_agent.log").open("a") as log:
                    log.write(traceback.format_exc())
            except BaseException as exc:  # Ctrl-C, SIGTERM or pytest-timeout: save what we know, then go
                record.reason = f"interrupted during {record.status.value} ({type(exc).__name__})"
                record.status = Status.ERROR
                record.finished_at = time.time()
                self._save(record)
                raise
        record.finished_at = time.time()
        self._save(record)
        self.config.hook.pytest_explore_trial_finished(config=self.config, trial=record)
        return record

    def _budget_spent(self) -> float | None:
        """What the other trials cost so far, when that reaches the experiment-wide ``max_cost_usd``."""
        budget = self.settings.max_cost_usd
        if budget is None:
            return None
        others = [t.name for t in self.settings.trials if t.name != self.trial.name]
        spent = sum(r.agent.cost_usd for r in load_records(self.paths, others))
        return spent if spent >= budget else None

    def _skipped(self, reason: str) -> TrialRecord:
        record = self._new_record()
        record.status, record.reason, record.finished_at = Status.SKIPPED, reason, time.time()
        self._save(record)
        self.config.hook.pytest_explore_trial_finished(config=self.config, trial=record)
        return record

    def _previous(self) -> tuple[TrialRecord | None, str | None]:
        """The saved record, if any; an unreadable one is set aside and reported."""
        try:
            return load(self.progress), None
        except CorruptRecord as exc:
            kept = self.progress.with_name(self.progress.name + ".corrupt")
            os.replace(self.progress, kept)
            return None, f"the saved progress was unreadable ({exc}); kept as {kept.name}, trial run again"

    def _reusable(self, previous: TrialRecord) -> bool:
        """A finished trial of the same spec is not run again (unless --explore-rerun)."""
        return not self.settings.rerun and previous.status is Status.DONE and previous.spec_hash == self.trial.spec_hash

    def _agent_work_kept(self, previous: TrialRecord) -> bool:
        """Whether a trial stopped after its agent succeeded can resume at scoring."""
        return (
            not self.settings.rerun
            and previous.spec_hash == self.trial.spec_hash
            and previous.status in (Status.SCORE, Status.ERROR)
            and previous.finished_step(Status.AGENT)
            and previous.agent_failure is None
            and previous.commit is not None
            and gitops.branch_commit(self.settings.workspace.repo_root, previous.branch) == previous.commit
        )

    def _resumed(self, previous: TrialRecord) -> TrialRecord:
        """The previous record, ready to be scored again from its committed agent work."""
        record = dataclasses.replace(
            previous,
            status=Status.PENDING,
            reason=None,
            tests=TestStats(),
            metrics={},
            score=None,
            rank=None,
            flags=[*previous.flags, "resumed after the agent step"],
            steps={k: v for k, v in previous.steps.items() if k != Status.SCORE.value},
            owner_pid=os.getpid(),
            process_groups=[],
            finished_at=None,
            from_checkpoint=False,
        )
        self._save(record)
        return record

    def _groups_changed(self, record: TrialRecord, groups: list[procs.Group]) -> None:
        record.process_groups = [list(group) for group in groups]
        self._save(record)

    def _new_record(self) -> TrialRecord:
        record = TrialRecord(
            experiment=self.settings.experiment,
            name=self.trial.name,
            variant=self.trial.variant.name,
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
        self.config.hook.pytest_explore_trial_progress(config=self.config, trial=record)

    # -- the steps ---------------------------------------------------------

    def _make_worktree(self, record: TrialRecord) -> None:
        root = self.settings.workspace.repo_root
        gitops.add_worktree(root, self.worktree, record.branch, self.settings.base_commit)
        gitops.hide_paths(self.worktree, self.settings.spec.score.holdout)
        prepare_worktree(self.settings, self.worktree, self.trial.name)
        # What worktree.copy and worktree.setup put there is the project's set-up, not the agent's work.
        self._set_up_files = gitops.untracked(self.worktree)

    def _run_agent(self, record: TrialRecord) -> AgentOutcome:
        variant = self.trial.variant
        hook = self.config.hook
        agent = hook.pytest_explore_make_agent(config=self.config, variant=variant)
        prompt = hook.pytest_explore_prompt(config=self.config, variant=variant, task=self.settings.spec.task or "")
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
        )
        try:
            outcome: AgentOutcome = agent.run(task)
        except Exception as exc:
            with task.log_path.open("a") as log:
                log.write(traceback.format_exc())
            outcome = AgentOutcome(record.agent, f"agent backend crashed: {type(exc).__name__}: {exc}")
        record.agent = outcome.stats
        record.agent_failure, record.agent_timed_out = outcome.failure, outcome.timed_out
        self._commit(record)
        return outcome

    def _explore_env(self, prompt: str, prompt_file: Path) -> dict[str, str]:
        return {
            **self.trial.env(),
            "EXPLORE_EXPERIMENT": self.settings.experiment,
            "EXPLORE_WORKTREE": str(self.worktree),
            "EXPLORE_PROMPT": prompt,
            "EXPLORE_PROMPT_FILE": str(prompt_file),
            "EXPLORE_BASE_COMMIT": self.settings.base_commit,
        }

    def _commit(self, record: TrialRecord) -> None:
        """Keep everything the agent changed on the trial's branch, and as a patch."""
        change = gitops.commit_all(
            self.worktree,
            f"explore {self.settings.experiment}: {self.trial.name}\n\n{self.trial.variant.description}",
            self.settings.base_commit,
            exclude=[*self.settings.spec.worktree.copy, *self._set_up_files],
        )
        record.commit = change.commit
        record.diff = DiffStats(len(change.files), change.insertions, change.deletions, change.files)
        gitops.write_patch(
            self.worktree, self.settings.base_commit, change.commit, self.paths.trial_file(self.trial.name, ".patch")
        )

    def _restore_worktree(self, record: TrialRecord) -> None:
        """The trial's worktree at its committed agent work (recreated from the branch if deleted)."""
        assert record.commit is not None
        gitops.restore_worktree(self.settings.workspace.repo_root, self.worktree, record.branch, record.commit)
        prepare_worktree(self.settings, self.worktree, self.trial.name)

    def _score(self, record: TrialRecord) -> None:
        record.tampering = self._undo_tampering(record)
        if record.tampering:
            record.flags.append(f"tampering: changed {len(record.tampering)} protected files, restored before scoring")
        run_setup_command(self.settings, self.worktree, self.trial.name, self.settings.spec.score.setup, "score.setup")
        metrics: dict[str, float] = {}
        for result in self.config.hook.pytest_explore_score(
            config=self.config, variant=self.trial.variant, worktree=self.worktree, trial=record
        ):
            metrics.update(result or {})
        record.metrics = metrics
        record.score = weighted_score(self.settings, metrics, record.tests)

    def _undo_tampering(self, record: TrialRecord) -> list[str]:
        """Protected files the agent changed, and hold-out paths it wrote, put back as they must be.

        No variant can pass by editing the tests: changed protected files are
        restored from the base commit (or removed if the agent added them)
        and the hold-out files are copied in afresh.
        """
        protect = self.settings.spec.score.protect
        touched = [f for f in record.diff.files if any(fnmatch.fnmatchcase(f, g.replace("**", "*")) for g in protect)]
        gitops.restore_files(self.worktree, self.settings.base_commit, touched)
        written = [h for h in self.settings.spec.score.holdout if (self.worktree / h).exists()]
        copy_holdout(self.settings, self.worktree, replace=True)
        return sorted({*touched, *written})


def _conclude(record: TrialRecord) -> None:
    """The trial's final status, from how its agent ended and whether its suite could be judged."""
    if record.agent_failure is not None:
        record.status = Status.TIMEOUT if record.agent_timed_out else Status.AGENT_FAILED
        record.reason = record.agent_failure
        if record.score is not None:
            record.flags.append("scored after the agent failed")
    elif record.tests.problem:
        record.status, record.reason = Status.DONE, f"scored 0: {record.tests.problem}"
    else:
        record.status = Status.DONE


def prepare_worktree(settings: Settings, worktree: Path, name: str, *, holdout: bool = False) -> None:
    """What a new worktree needs besides git's files: ``worktree.copy``, ``worktree.setup``, hold-out tests."""
    root = settings.workspace.repo_root
    for relative in settings.spec.worktree.copy:
        _copy(root / relative, worktree / relative)
    run_setup_command(settings, worktree, name, settings.spec.worktree.setup, "worktree.setup")
    if holdout:
        copy_holdout(settings, worktree)


def copy_holdout(settings: Settings, worktree: Path, *, replace: bool = False) -> None:
    """Copy the hold-out tests from the main checkout; ``replace`` first removes what is there."""
    root = settings.workspace.repo_root
    for relative in settings.spec.score.holdout:
        target = worktree / relative
        if replace and target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        elif replace and (target.exists() or target.is_symlink()):
            target.unlink()
        _copy(root / relative, target)


def _copy(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target, dirs_exist_ok=True)
    elif source.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)


def run_setup_command(settings: Settings, worktree: Path, name: str, command: str | None, key: str) -> None:
    """Run a set-up command in the worktree (output in ``<name>_setup.log``); raise when it fails."""
    if not command:
        return
    finished = run_owned(
        command,
        cwd=worktree,
        env=scoring_env(settings, worktree, name),
        timeout=settings.score_timeout,
        output=settings.paths.trial_file(name, "_setup.log"),
    )
    if finished.returncode != 0:
        raise RuntimeError(f"{key} failed (exit {finished.returncode}; see {name}_setup.log): {command}")
