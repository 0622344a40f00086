"""The score cache: a test suite's per-test outcomes, by what was scored rather than by which trial scored it.

The sealed scoring checkout is written by the plugin from a tree (see
``checkout.scoring_checkout``), so everything a suite run depends on is
known before any file is written: the tree id (protected files already
restored), the hold-out and ``worktree.copy`` files copied in from the main
checkout, the commands and score settings, the sandbox, the interpreter, the
plugin and what is installed.  Their digest is the key; a run of the same
key in this experiment or another of the same repository is not repeated,
its outcomes are reused and the trial is marked ``score_cached``.

Entries live in ``<explore_dir>/.cache/scores/<key>.json``, written
atomically.  A lock file per key (``flock``, released by the kernel when its
process dies) makes concurrent trials of the same key score it once: the
first scores, the others wait and reuse.  Only judgeable runs are kept (a
timed-out suite, or one that collected nothing, is run again next time).

Flaky tests: a cached trial entry is one run.  Tests the baseline found
flaky are left out of every verdict and pass rate, cached or not, and the
baseline's flaky set always comes from real runs: its entry keeps each of
its runs, and the flaky set is worked out again from them.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import functools
import hashlib
import json
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from ..isolation.sandbox import wanted
from ..model.jsonfile import read_json, write_atomic
from ..model.paths import Workspace
from ..model.record import TestStats
from ..model.settings import ScoringSpec
from ..model.spec import SCHEDULING_KEYS
from ..repo.gitcmd import Git
from ..repo.store import KeptFiles
from ..repo.treefiles import tree_id
from ..version import __version__
from .pinning import Pinned

#: 2: outcomes from the reporter plugin of a run pinned to the base (see ``pinning``).
SCHEMA = 2
#: Files at the top of the main checkout that say what the project's environment holds.
LOCK_FILE_PATTERNS = (
    "requirements*.txt",
    "requirements*.in",
    "constraints*.txt",
    "poetry.lock",
    "uv.lock",
    "Pipfile.lock",
    "pdm.lock",
    "pyproject.toml",
    "setup.py",
    "setup.cfg",
)
#: Score settings that change neither the suite's command nor its outcome: not part of the key.
_NOT_IN_KEY = (
    *sorted(SCHEDULING_KEYS),
    *("metrics", "weights", "protect_mode", "suspicious", "baseline_runs", "protect", "holdout"),
)
#: What a trial's tests get from being judged against a baseline: not the tree's outcomes, never cached.
_JUDGED = ("flaky", "added", "verdicts")


def cache_dir(workspace: Workspace) -> Path:
    """Where entries live: shared by every experiment of the repository."""
    return workspace.explore_dir / ".cache" / "scores"


def key_parts(spec: ScoringSpec, git: Git, tree: str, holdout: KeptFiles | None) -> dict[str, Any]:
    """Everything a suite run in the sealed checkout of ``tree`` depends on, as plain data."""
    root = spec.workspace.repo_root
    # The resolved score settings: the command and timeout that run, wherever they were set.
    score = {k: v for k, v in dataclasses.asdict(spec.score).items() if k not in _NOT_IN_KEY}
    return {
        "schema": SCHEMA,
        "tree": tree_id(git, tree),
        # As the run read it when it started: what the scoring checkout is given (see ``checkout.keep_holdout``).
        "holdout": holdout.digest() if holdout is not None and spec.score.holdout else None,
        "copied": _files_digest(root, spec.worktree.copy),
        "worktree_setup": spec.worktree.setup,
        "score": score,
        "pass_env": {name: os.environ.get(name) for name in spec.score.pass_env},
        "sandbox": {"used": wanted(spec.sandbox.mode), "network": spec.sandbox.scoring_network},
        "python": [sys.version, sys.executable],
        "plugin": __version__,
        "installed": _installed(),
        "lock_files": _files_digest(root, _lock_files(root)),
    }


def key_of(parts: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


@functools.lru_cache(maxsize=1)
def _installed() -> str:
    """A digest of what is installed where this Python imports from (an upgrade changes outcomes too).

    Each distribution's metadata folder (``pytest-9.2.0.dist-info``: its name
    and version) and its ctime (a reinstall of the same version), found where
    ``importlib.metadata`` looks; listing the folders costs a millisecond,
    parsing every ``METADATA`` file a tenth of a second a process.
    """
    found = []
    for entry in sys.path:
        with contextlib.suppress(OSError), os.scandir(entry or ".") as listing:
            found += [
                f"{entry}/{item.name}:{item.stat().st_ctime_ns}"
                for item in listing
                if item.name.endswith((".dist-info", ".egg-info"))
            ]
    return hashlib.sha256("\n".join(sorted(found)).encode()).hexdigest()[:16]


def _lock_files(root: Path) -> list[str]:
    return sorted({p.name for pattern in LOCK_FILE_PATTERNS for p in root.glob(pattern) if p.is_file()})


def _files_digest(root: Path, relatives: Sequence[str]) -> str | None:
    """A digest of the files at ``relatives`` under ``root`` (folders walked), or None when there are none."""
    if not relatives:
        return None
    digest = hashlib.sha256()
    for relative in sorted(relatives):
        top = root / relative
        paths = sorted(p for p in top.rglob("*") if p.is_file()) if top.is_dir() else [top]
        for path in paths:
            digest.update(path.relative_to(root).as_posix().encode() + b"\0")
            try:
                digest.update(str(os.access(path, os.X_OK)).encode() + path.read_bytes())
            except OSError:
                digest.update(b"<missing>")
            digest.update(b"\0")
    return digest.hexdigest()[:32]


@dataclasses.dataclass
class Slot:
    """One key's place in the cache while it is held: a hit's runs, or room to store them."""

    key: str
    path: Path
    parts: dict[str, Any]
    runs: list[TestStats] | None  # the cached runs (a hit), or None (score, then ``store``)
    origin: str | None = None  # the experiment and trial that scored it first

    @property
    def hit(self) -> bool:
        return self.runs is not None

    def store(self, runs: Sequence[TestStats], origin: str) -> bool:
        """Keep judgeable runs for the next trial of this key; whether they were kept."""
        if not runs or any(r.problem or r.exit_code is None for r in runs):
            return False
        entry = {
            "schema": SCHEMA,
            "key": self.key,
            "origin": origin,
            "parts": self.parts,
            "runs": [
                {f.name: getattr(r, f.name) for f in dataclasses.fields(r) if f.name not in _JUDGED} for r in runs
            ],
        }
        # On one line: json's C encoder only writes without indentation (300 tests: 0.5 ms, 4.8 ms indented).
        write_atomic(self.path, json.dumps(entry))
        return True


@contextlib.contextmanager
def claim(
    spec: ScoringSpec, git: Git, tree: str, holdout: KeptFiles | None, *, runs: int = 1, pinned: Pinned
) -> Iterator[Slot | None]:
    """The cache slot of ``tree`` scored ``runs`` times as ``pinned``, locked against other processes; None when off.

    While the slot is held no other trial scores the same key: it waits here,
    then finds the entry.
    """
    if not spec.score.cache:
        yield None
        return
    # As it reads back from JSON (tuples become lists), so that a stored entry compares equal.
    parts = {**key_parts(spec, git, tree, holdout), "runs": runs, "pinned": pinned.key()}
    parts = json.loads(json.dumps(parts, default=str))
    key = key_of(parts)
    folder = cache_dir(spec.workspace)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{key}.json"
    with (folder / f"{key}.lock").open("a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield _load(key, path, parts, runs)
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _load(key: str, path: Path, parts: dict[str, Any], runs: int) -> Slot:
    data = read_json(path)
    slot = Slot(key, path, parts, None)
    if not isinstance(data, dict) or data.get("schema") != SCHEMA or data.get("parts") != parts:
        return slot
    try:
        stats = [_stats(r) for r in data["runs"]]
    except (KeyError, TypeError):
        return slot
    if len(stats) == runs:
        slot.runs, slot.origin = stats, str(data.get("origin") or "")
    return slot


def _unjudged(run: TestStats) -> dict[str, Any]:
    """A run's outcomes as the tree gave them (its fields but what a baseline judged), sharing their values."""
    return {f.name: getattr(run, f.name) for f in dataclasses.fields(run) if f.name not in _JUDGED}


def _stats(data: dict[str, Any]) -> TestStats:
    names = {f.name for f in dataclasses.fields(TestStats)} - set(_JUDGED)
    return TestStats(**{k: v for k, v in data.items() if k in names})
