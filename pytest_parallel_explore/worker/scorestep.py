"""A trial's score step: its committed work scored in a sealed checkout, then judged against the baseline.

The tree scored is the trial's commit with every protected path as at the
base (see :mod:`..scoring.protect`); a tree scored before, by any trial of
the repository, reuses its outcomes (see :mod:`..scoring.scorecache`).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from ..config.keys import REPO_STATE_KEY
from ..model.baseline import Baseline
from ..model.frozen import snapshot
from ..model.record import SUITE_WAIT, SUITE_WAITING, Status, TrialRecord
from ..model.settings import Settings, Trial
from ..repo import gitops
from ..repo.gitcmd import Git
from ..repo.store import KeptFiles
from ..scoring import protect, scorecache, suspicious
from ..scoring.baseline import ensure_baseline, judge
from ..scoring.checkout import run_setup_command, scoring_checkout
from ..scoring.pinning import Pinned, base_config
from ..scoring.suite import run_test_suite, suite_metrics, suite_slot, unmeasured_weights, weighted_score, yaml_metrics
from . import tampering


class ScoreStep:
    """Scores one trial's commit into its record: tests, metrics, verdicts, score, and what it tampered with."""

    def __init__(
        self, config: pytest.Config, settings: Settings, trial: Trial, save: Callable[[TrialRecord], None]
    ) -> None:
        self.config = config
        self.settings = settings
        self.trial = trial
        self.save = save  # the record is shown while its suite waits for a slot
        self.spec = settings.scoring
        self.subject = settings.subject(trial)

    def __call__(self, record: TrialRecord) -> None:
        """Score the trial's commit in a sealed checkout, with every protected path as at the base."""
        assert record.commit is not None
        spec = self.spec
        git = gitops.sealed(spec.workspace.repo_root)
        policy = protect.Policy(spec.score.holdout, spec.score.protect, spec.workspace.repo_root)
        sealed = protect.sealed_tree(git, spec.base_commit, record.commit, policy)
        tampering.note(record, sealed.tampering)
        # Read from the scored tree, before any cached outcome is taken: what runs is what is checked.
        record.suspicious = suspicious.check_tree(git, spec.base_commit, sealed.tree)
        if record.tampering:
            record.flags.append(f"tampering: {len(record.tampering)} protected things changed, undone before scoring")
        # The baseline may still be scoring (in the background): the run loads the plugins it loaded.
        baseline = self._baseline(record)
        pinned = Pinned(base_config(git, spec.base_commit), baseline.plugins if baseline else ())
        with scorecache.claim(spec, git, sealed.tree, self._holdout(), pinned=pinned) as slot:
            if slot is not None and slot.runs is not None:
                record.tests, record.score_cached = slot.runs[0], True
                self._note_cached(slot)
            if record.score_cached and not self._scores_from_checkout():
                metrics = {}  # nothing else needs the checkout: it is not even written
            else:
                metrics = self._score_in_checkout(record, git, sealed.tree, pinned)
            if slot is not None and not record.score_cached:
                slot.store([record.tests], f"{spec.experiment}/{self.subject.name}")
        record.flags.extend(f"fault: {fault}" for fault in record.tests.faults)
        # The code scored ran with the user's access too (without a sandbox): what it wrote is undone.
        tampering.check_repository(self.config, self.settings, record, Status.SCORE)
        record.verdicts, record.broken_tests = judge(baseline, record.tests)
        record.metrics = {**suite_metrics(record.tests, record.verdicts), **metrics}
        record.score = weighted_score(spec.score, record.metrics, record.tests)
        record.flags.extend(unmeasured_weights(spec.score, record.metrics))

    def _score_in_checkout(self, record: TrialRecord, git: Git, tree: str, pinned: Pinned) -> dict[str, float]:
        """Write the sealed checkout; run the suite (unless its outcomes are cached), metrics and hooks."""
        spec, subject = self.spec, self.subject
        with scoring_checkout(spec, subject, git, tree, self._holdout()) as scoring:
            checkout, sandbox = scoring.checkout, scoring.sandbox
            # The commands that burn CPU take turns (score.max_concurrent); their timeouts start with the turn.
            with suite_slot(spec, lambda since: self._waiting(record, since)) as grant:
                self._waited(record, grant.waited)
                if not record.score_cached:
                    run_setup_command(spec, subject, checkout, spec.score.setup, "score.setup", sandbox=sandbox)
                    record.tests = run_test_suite(
                        spec, subject, checkout, out=scoring.out, pinned=pinned, sandbox=sandbox
                    )
                    if altered := scoring.altered():  # the run forged its own verdict: it cannot be judged
                        record.tests.problem = f"the scored run changed its tests: {suspicious.in_short(altered)}"
                        tampering.note(record, [f"{path} (changed while the suite ran)" for path in altered])
                metrics, flags = yaml_metrics(spec, subject, checkout, sandbox)
            record.flags.extend(flags)
            view = snapshot(self.settings.view(self.trial), "pytest_explore_score")
            for result in self.config.hook.pytest_explore_score(config=self.config, trial=view, checkout=checkout):
                metrics.update(result or {})
        return metrics

    def _waiting(self, record: TrialRecord, since: float) -> None:
        """The suite waits for a slot: the record says since when, for the live view."""
        record.steps[Status.SCORE.value][SUITE_WAITING] = since
        self.save(record)

    def _waited(self, record: TrialRecord, seconds: float) -> None:
        """The suite has its slot: the step keeps how long it waited for it."""
        step = record.steps[Status.SCORE.value]
        step.pop(SUITE_WAITING, None)
        step[SUITE_WAIT] = round(seconds, 3)
        self.save(record)

    def _holdout(self) -> KeptFiles | None:
        """The hold-out tests as the run read them when it started (see ``checkout.keep_holdout``)."""
        state = self.config.stash.get(REPO_STATE_KEY, None)
        return state.holdout if state is not None else None

    def _scores_from_checkout(self) -> bool:
        """Whether metric commands or ``pytest_explore_score`` hooks need a checkout (they are never cached)."""
        return bool(self.spec.score.metrics) or bool(self.config.hook.pytest_explore_score.get_hookimpls())

    def _note_cached(self, slot: scorecache.Slot) -> None:
        """The trial's tests log says where its outcomes came from."""
        paths, name = self.spec.paths, self.subject.name
        for suffix in ("_tests.log", "_junit.xml"):
            paths.trial_file(name, suffix).unlink(missing_ok=True)
        paths.trial_file(name, "_tests.log").write_text(
            f"score cached: the same tree was scored by {slot.origin} (key {slot.key}); the suite did not run again\n"
        )

    def _baseline(self, record: TrialRecord) -> Baseline | None:
        try:
            return ensure_baseline(self.spec, self._holdout())[0]
        except Exception as exc:  # the trial keeps its outcomes; only the verdicts are missing
            record.flags.append(f"no baseline to judge against: {exc}")
            return None
