"""Where an experiment's files live: the repository, the data directory and one experiment's folders.

See DESIGN.md, "Files".  Plain data with no I/O, so every module (workers,
commands, the report) can name paths without loading anything heavy.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

#: The files a trial leaves in ``results/``, as ``<trial><suffix>``.
TRIAL_FILE_SUFFIXES = (
    "_progress.json",
    "_agent.log",
    "_transcript.json",
    "_prompt.md",
    "_setup.log",
    "_tests.log",
    "_junit.xml",
    ".patch",
)


@dataclasses.dataclass(frozen=True)
class ExperimentPaths:
    """Where one experiment's files live (see DESIGN.md, "Files")."""

    root: Path

    @property
    def results(self) -> Path:
        return self.root / "results"

    @property
    def worktrees(self) -> Path:
        return self.root / "worktrees"

    @property
    def kept(self) -> Path:
        """Where a rerun moves a trial's worktree holding changes of the user's (``gitops.keep_changed_folder``)."""
        return self.root / "kept"

    @property
    def store(self) -> Path:
        """The experiment's private object store: the hold-out and the main checkout as the run found them."""
        return self.root / "store.git"

    @property
    def experiment_json(self) -> Path:
        return self.root / "experiment.json"

    @property
    def results_json(self) -> Path:
        return self.results / "results.json"

    @property
    def summary_md(self) -> Path:
        return self.results / "summary.md"

    @property
    def report_html(self) -> Path:
        return self.results / "report.html"

    @property
    def shared_base(self) -> Path:
        """Where the objects every trial's private repository borrows are kept (``repo.private.shared_base``)."""
        return self.root / "base"

    def worktree(self, trial: str) -> Path:
        return self.worktrees / trial

    @property
    def baseline_json(self) -> Path:
        return self.results / "baseline.json"

    @property
    def lock(self) -> Path:
        return self.root / "run.lock"

    @property
    def suite_pool(self) -> Path:
        """The slots of ``score.max_concurrent``, shared by the run's processes (``isolation.pool``)."""
        return self.root / "pool" / "suites"

    def trial_file(self, trial: str, suffix: str) -> Path:
        """``results/<trial><suffix>``: ``_progress.json``, ``_agent.log``, ``.patch``, ..."""
        return self.results / f"{trial}{suffix}"


@dataclasses.dataclass(frozen=True)
class Workspace:
    """The repository and its data directory: all that the non-run commands need."""

    repo_root: Path
    explore_dir: Path

    def experiment(self, name: str) -> ExperimentPaths:
        return ExperimentPaths(self.explore_dir / name)

    def branch(self, experiment: str, trial: str) -> str:
        return f"explore/{experiment}/{trial}"

    def own_refs(self, experiment: str) -> tuple[str, ...]:
        """The ref prefixes of the plugin's branches: ``experiment``'s and every other experiment's here.

        Another experiment may run at the same time, making and moving its
        branches: they are not the user's refs, so the repository snapshot
        neither restores them nor counts them as an agent's tampering.
        """
        names = {experiment}
        if self.explore_dir.is_dir():
            names.update(p.name for p in self.explore_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
        return tuple(f"refs/heads/{self.branch(name, '')}" for name in sorted(names))
