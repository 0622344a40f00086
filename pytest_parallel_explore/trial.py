"""One trial's state machine: ``pending → worktree → agent → score → done``.

Each step is a function from record to record; the record is saved
atomically before and after every step, so a crash leaves a consistent
progress file that says how far the trial got.  One trial's failure is
recorded in its own record and never stops the others.
"""

from __future__ import annotations

import shutil
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from . import gitops
from .agents import AgentOutcome, AgentTask
from .procs import run_owned
from .record import AgentStats, DiffStats, Status, TrialRecord, load, save
from .scoring import scoring_env, weighted_score
from .settings import Settings, Trial

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

    def run(self) -> TrialRecord:
        previous = load(self.progress)
        if self._reusable(previous):
            assert previous is not None
            previous.from_checkpoint = True
            self._save(previous)
            return previous
        record = self._new_record()
        try:
            self._step(record, Status.WORKTREE, self._make_worktree)
            outcome = self._step(record, Status.AGENT, self._run_agent)
            if outcome.failure is None or record.diff.files_changed:
                self._step(record, Status.SCORE, self._score)
            if outcome.failure is not None:
                record.status = Status.TIMEOUT if outcome.timed_out else Status.AGENT_FAILED
                record.reason = outcome.failure
                if record.score is not None:
                    record.flags.append("scored after the agent failed")
            elif record.tests.problem:
                record.status, record.reason = Status.DONE, f"scored 0: {record.tests.problem}"
            else:
                record.status = Status.DONE
        except Exception as exc:  # the pipeline broke: record why, let the other trials go on
            record.reason = f"error during {record.status.value}: {exc}"
            record.status = Status.ERROR
            with self.paths.trial_file(self.trial.name, "_agent.log").open("a") as log:
                log.write(traceback.format_exc())
        except BaseException as exc:  # Ctrl-C or pytest-timeout: save what we know, then go
            record.reason = f"interrupted during {record.status.value} ({type(exc).__name__})"
            record.status = Status.ERROR
            record.finished_at = time.time()
            self._save(record)
            raise
        record.finished_at = time.time()
        self._save(record)
        self.config.hook.pytest_explore_trial_finished(config=self.config, trial=record)
        return record

    def _reusable(self, previous: TrialRecord | None) -> bool:
        return (
            previous is not None
            and not self.settings.rerun
            and previous.status is Status.DONE
            and previous.spec_hash == self.trial.spec_hash
        )

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
            started_at=time.time(),
        )
        for suffix in ("_agent.log", "_tests.log", "_junit.xml", ".patch"):
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
        self._commit(record)
        return outcome

    def _explore_env(self, prompt: str, prompt_file: Path) -> dict[str, str]:
        return {
            "EXPLORE_EXPERIMENT": self.settings.experiment,
            "EXPLORE_VARIANT": self.trial.variant.name,
            "EXPLORE_TRIAL": self.trial.name,
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
        )
        record.commit = change.commit
        record.diff = DiffStats(len(change.files), change.insertions, change.deletions, change.files)
        gitops.write_patch(
            self.worktree, self.settings.base_commit, change.commit, self.paths.trial_file(self.trial.name, ".patch")
        )

    def _score(self, record: TrialRecord) -> None:
        self._copy_holdout()
        setup = self.settings.spec.score.setup
        if setup:
            finished = run_owned(
                setup,
                cwd=self.worktree,
                env=scoring_env(self.settings, self.worktree, self.trial.name),
                timeout=self.settings.score_timeout,
                output=self.paths.trial_file(self.trial.name, "_tests.log"),
            )
            if finished.returncode != 0:
                raise RuntimeError(f"score.setup failed (exit {finished.returncode}): {setup}")
        metrics: dict[str, float] = {}
        for result in self.config.hook.pytest_explore_score(
            config=self.config, variant=self.trial.variant, worktree=self.worktree, trial=record
        ):
            metrics.update(result or {})
        record.metrics = metrics
        record.score = weighted_score(self.settings, metrics, record.tests)

    def _copy_holdout(self) -> None:
        root = self.settings.workspace.repo_root
        for relative in self.settings.spec.score.holdout:
            source, target = root / relative, self.worktree / relative
            if source.is_dir():
                shutil.copytree(source, target, dirs_exist_ok=True)
            elif source.is_file():
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(source, target)
