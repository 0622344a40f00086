"""Large repositories: checkout costs, peak disk per ``worktree.keep``, and the controller's memory.

The script builds a synthetic committed repository (default 20,000 files of
10 KB, about 200 MB of working files, in 200 folders) in a temporary
directory and prints three tables.

1. **Checkouts**, medians over ``--repeat`` runs, each method alternating
   with the others (so that the page cache treats them alike):

   ``git worktree add`` by hand
       ``git worktree add --quiet -b <branch> <path> HEAD``, the reference;
   ``gitops.add_worktree``
       the plugin's trial folder: a private repository of its own (the
       foreign-branch and changed-folder checks, the trial's branch set, then
       ``git init`` borrowing the shared base objects and a checkout);
   ``private.shared_base``
       the objects those private repositories borrow (the base without the
       hold-out, packed once per experiment and base), shown but not counted
       per trial;
   ``treefiles.materialize``
       the sealed scoring checkout written from the tree, as for a process's first trial;
   kept checkout, next tree
       the same checkout kept by the process and brought to the next trial's tree
       (3 files differ): the tree listed, one ``lstat`` a file, the writes;
   ``trees.tree_of_files``
       reading a worktree back into a tree after an "agent" changed 3 files
       (done after every agent), hashing every file, and with the stat
       snapshot the trial runner takes when it makes the worktree.

   Each is shown with its ratio to the hand-made worktree (goal <= 1.2x for
   the private repository).  No checkout copies objects: the worktrees share
   the repository's object store, the private repositories the shared base.

2. **Peak disk** of 16 trials (``--trials``) run by ``pytest --explore -n 2``
   with ``worktree.keep`` all, failed and none: a thread samples every 20 ms
   how many checkouts exist (folders under the experiment's ``worktrees/``,
   and scoring checkouts ``explore-bench-*`` in the run's private ``TMPDIR``); the
   peak disk is that peak count times the size of one checkout, and the
   worktrees left after the run are counted too.  Half the agents "fail"
   (exit 1 after their edit), so ``failed`` keeps half.

3. **Peak memory** of the controller process (``VmHWM`` read by a
   ``conftest.py`` in ``pytest_unconfigure``, in the controller only) for
   32 trials (``--memory-trials``) of a small project with ``-n 2``, against
   a plain ``pytest -n 2`` of 32 trivial tests in the same environment
   (goal: at most 15 MB more).

Usage::

    python benchmarks/large_repo.py                         # 20,000 files, 5 repeats
    python benchmarks/large_repo.py --files 2000 --repeat 3 # quick look
    python benchmarks/large_repo.py --tmpdir /dev/shm       # disk out of the figures
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import yaml

from pytest_parallel_explore.repo import gitops, private, treefiles, trees
from pytest_parallel_explore.repo.pristine import PristineCheckout

GIT_ENV = {
    "GIT_AUTHOR_NAME": "bench",
    "GIT_AUTHOR_EMAIL": "bench@localhost",
    "GIT_COMMITTER_NAME": "bench",
    "GIT_COMMITTER_EMAIL": "bench@localhost",
}
EDIT_AGENT = "printf 'changed\\n' >> d0000/f00000.txt && printf 'new\\n' > d0001/new.txt && rm d0002/f00200.txt"


def git(cwd: Path, *args: str) -> str:
    env = {**os.environ, **GIT_ENV}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout


def build_repo(root: Path, files: int, size: int) -> None:
    """``files`` files of ``size`` bytes of hex text (half-compressible, like source), 100 per folder."""
    root.mkdir(parents=True)
    git(root, "init", "-q", "-b", "main")
    git(root, "config", "gc.auto", "0")  # no background gc racing the explicit repack below
    for index in range(files):
        folder = root / f"d{index // 100:04d}"
        folder.mkdir(exist_ok=True)
        (folder / f"f{index:05d}.txt").write_bytes(os.urandom(size // 2).hex().encode())
    (root / "tests").mkdir()
    (root / "tests" / "test_ok.py").write_text("def test_ok():\n    assert True\n")
    (root / ".gitignore").write_text("variants*.yaml\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "base")
    git(root, "repack", "-adq")  # one pack, as a real clone has


def tree_size(path: Path) -> int:
    """Bytes on disk of the files under ``path`` (blocks, not apparent size)."""
    total = 0
    for folder, _dirs, names in os.walk(path):
        for name in names:
            total += os.lstat(os.path.join(folder, name)).st_blocks * 512
    return total


def timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def measure_checkouts(repo: Path, scratch: Path, repeat: int) -> dict[str, list[float]]:
    base = git(repo, "rev-parse", "HEAD").strip()
    sealed = gitops.sealed(repo)
    tree = sealed.run("rev-parse", f"{base}^{{tree}}")
    times: dict[str, list[float]] = {
        "hand": [],
        "add_worktree": [],
        "shared_base": [],
        "materialize": [],
        "kept_update": [],
        "tree_of_files": [],
        "tree_of_files_snapshot": [],
    }

    def hand(i: int) -> float:
        path = scratch / f"hand-{i}"
        spent = timed(lambda: git(repo, "worktree", "add", "--quiet", "-b", f"hand-{i}", str(path), base))
        git(repo, "worktree", "remove", "--force", str(path))
        return spent

    shared: list[private.SharedBase] = []
    times["shared_base"].append(
        timed(lambda: shared.append(private.shared_base(sealed.git_dir, scratch / "base", base, ["d0003"])))
    )

    def plugin(i: int) -> float:
        path = scratch / f"plugin-{i}"
        spent = timed(lambda: gitops.add_worktree(repo, path, f"explore/bench/t{i}", shared[0], base, reference=base))
        snapshot = gitops.snapshot_worktree(repo, path, base)  # as the trial runner takes it
        subprocess.run(EDIT_AGENT, shell=True, cwd=path, check=True)
        reader = sealed.with_(work_tree=path)
        times["tree_of_files"].append(timed(lambda: edited.append(trees.tree_of_files(reader, base).tree)))
        times["tree_of_files_snapshot"].append(timed(lambda: trees.tree_of_files(reader, base, unchanged=snapshot)))
        gitops.remove_trial_folder(repo, path)
        return spent

    def materialize(i: int) -> float:
        target = scratch / f"scoring-{i}"
        spent = timed(lambda: treefiles.materialize(sealed, tree, target))
        treefiles.remove_tree(target)
        return spent

    # The kept scoring checkout, from the last edited tree to the base and back: listing, sweep and writes.
    edited: list[str] = []
    kept = PristineCheckout(scratch / "kept" / "checkout")

    def kept_update(i: int) -> float:
        target = edited[-1] if i % 2 == 0 else tree
        return timed(lambda: kept.update([(sealed, treefiles.tree_entries(sealed, f"{target}^{{tree}}"))]))

    methods = [("hand", hand), ("add_worktree", plugin), ("materialize", materialize), ("kept_update", kept_update)]
    for _, warm_up in methods:  # one untimed warm-up each: the page cache holds the pack for all alike
        warm_up(-1)
    times["tree_of_files"].clear()
    times["tree_of_files_snapshot"].clear()
    for i in range(repeat):
        order = methods[i % len(methods) :] + methods[: i % len(methods)]
        for name, method in order:
            times[name].append(method(i))
    return times


def measure_keep(repo: Path, scratch: Path, trials: int, keep: str, checkout_bytes: int) -> dict[str, float]:
    """Run ``trials`` trials with ``worktree.keep: keep``; sample the number of checkouts that exist."""
    project = scratch / f"keep-{keep}"
    git(repo.parent, "clone", "-q", "--shared", str(repo), str(project))  # shares the objects: no copy
    tmp = scratch / f"tmp-{keep}"
    tmp.mkdir()
    variants = {
        f"t{i:02d}": {"description": f"trial {i}", "agent": {"run": EDIT_AGENT + (" && exit 1" if i % 2 else "")}}
        for i in range(trials)
    }
    spec = {
        "task": "edit",
        "agent": {"backend": "command"},
        "sandbox": "none",
        "max_concurrent": 2,
        "worktree": {"keep": keep},
        "score": {"command": "{python} -m pytest -q -p no:cacheprovider tests", "baseline_runs": 1},
        "variants": variants,
    }
    (project / "variants.yaml").write_text(yaml.safe_dump(spec))
    worktrees = project / ".data" / "parallel_explorer" / "bench" / "worktrees"
    peak, stop = [0], threading.Event()

    def count() -> int:
        made = len(list(worktrees.iterdir())) if worktrees.is_dir() else 0
        return made + sum(1 for p in tmp.iterdir() if p.name.startswith("explore-bench-"))

    def sample() -> None:
        while not stop.wait(0.02):
            try:
                peak[0] = max(peak[0], count())
            except FileNotFoundError:
                continue  # a folder went away between listing and reading

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.perf_counter()
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--explore", "bench", "--variants", "variants.yaml", "-n", "2"],
        cwd=project,
        env={**os.environ, **GIT_ENV, "TMPDIR": str(tmp)},
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - start
    stop.set()
    sampler.join()
    if run.returncode not in (0, 1):  # 1: the failing half
        sys.exit(f"pytest --explore failed ({run.returncode}):\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}")
    left = len(list(worktrees.iterdir())) if worktrees.is_dir() else 0
    return {"peak": peak[0], "peak_bytes": peak[0] * checkout_bytes, "left": left, "wall": wall}


MEMORY_CONFTEST = textwrap.dedent(
    """
    import os, pathlib

    def pytest_unconfigure(config):
        out = os.environ.get("BENCH_MEMORY_OUT")
        if out is None or hasattr(config, "workerinput"):
            return  # only the controller (the scoring runs do not see the variable)
        status = pathlib.Path("/proc/self/status").read_text()
        hwm = next(line for line in status.splitlines() if line.startswith("VmHWM:"))
        pathlib.Path(out).write_text(hwm.split()[1])
    """
)


def measure_memory(scratch: Path, trials: int) -> tuple[int, int]:
    """Peak RSS in kB of the controller: ``pytest --explore`` with ``trials`` trials, and plain pytest."""
    project = scratch / "memory"
    project.mkdir()
    git(project, "init", "-q", "-b", "main")
    (project / "tests").mkdir()
    (project / "tests" / "test_ok.py").write_text(
        f"import pytest\n\n@pytest.mark.parametrize('i', range({trials}))\ndef test_ok(i):\n    assert i >= 0\n"
    )
    (project / "conftest.py").write_text(MEMORY_CONFTEST)
    (project / ".gitignore").write_text("variants.yaml\n")
    git(project, "add", "-A")
    git(project, "commit", "-q", "-m", "base")
    variants = {f"t{i:02d}": {"description": f"trial {i}", "agent": {"run": "true"}} for i in range(trials)}
    spec = {
        "task": "nothing",
        "agent": {"backend": "command"},
        "score": {"command": "{python} -m pytest -q -p no:cacheprovider tests/test_ok.py"},
        "variants": variants,
    }
    (project / "variants.yaml").write_text(yaml.safe_dump(spec))
    out = scratch / "memory.kb"
    results = []
    for args in (
        ["--explore", "mem", "--variants", "variants.yaml", "-n", "2"],
        ["tests", "-q", "-n", "2"],
    ):
        run = subprocess.run(
            [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
            cwd=project,
            env={**os.environ, **GIT_ENV, "BENCH_MEMORY_OUT": str(out)},
            capture_output=True,
            text=True,
        )
        if run.returncode != 0:
            sys.exit(f"pytest {' '.join(args)} failed ({run.returncode}):\n{run.stdout[-3000:]}")
        results.append(int(out.read_text()))
    return results[0], results[1]


def load_average() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--size", type=int, default=10_000, help="bytes per file")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--trials", type=int, default=16, help="trials of the keep runs")
    parser.add_argument("--memory-trials", type=int, default=32)
    parser.add_argument("--tmpdir", type=Path, default=None)
    parser.add_argument("--skip", nargs="*", default=(), choices=("checkouts", "keep", "memory"))
    args = parser.parse_args(argv)
    scratch = Path(tempfile.mkdtemp(prefix="explore-large-", dir=args.tmpdir))
    try:
        print(f"load average before: {load_average()} on {os.cpu_count()} cores")
        repo = scratch / "repo"
        spent = timed(lambda: build_repo(repo, args.files, args.size))
        checkout_bytes = tree_size(repo) - tree_size(repo / ".git")
        pack = tree_size(repo / ".git")
        print(
            f"repository: {args.files:,} files, {checkout_bytes / 1e6:.0f} MB of working files, "
            f"{pack / 1e6:.0f} MB in .git (built in {spent:.0f}s)\n"
        )
        if "checkouts" not in args.skip:
            times = measure_checkouts(repo, scratch / "checkouts", args.repeat)
            hand = statistics.median(times["hand"])
            print(f"checkouts, medians of {args.repeat} (spread: min-max)")
            for name, label in (
                ("hand", "git worktree add (by hand)"),
                ("add_worktree", "gitops.add_worktree (private)"),
                ("shared_base", "  private.shared_base (once)"),
                ("materialize", "treefiles.materialize (scoring)"),
                ("kept_update", "  kept checkout, next tree"),
                ("tree_of_files", "trees.tree_of_files (3 edits)"),
                ("tree_of_files_snapshot", "  with the stat snapshot"),
            ):
                values = times[name]
                median = statistics.median(values)
                print(f"  {label:32} {median:7.2f}s  {median / hand:5.2f}x   ({min(values):.2f}-{max(values):.2f}s)")
            print()
        if "keep" not in args.skip:
            print(f"{args.trials} trials, -n 2, max_concurrent 2; one checkout = {checkout_bytes / 1e6:.0f} MB")
            for keep in ("all", "failed", "none"):
                figures = measure_keep(repo, scratch, args.trials, keep, checkout_bytes)
                print(
                    f"  keep: {keep:6}  peak {figures['peak']:2} checkouts = {figures['peak_bytes'] / 1e9:5.2f} GB; "
                    f"{figures['left']:2} worktrees left; {figures['wall']:.0f}s"
                )
            print()
        if "memory" not in args.skip:
            explore, plain = measure_memory(scratch, args.memory_trials)
            print(f"controller peak RSS, {args.memory_trials} trials, -n 2")
            print(f"  pytest --explore: {explore / 1024:6.1f} MB")
            print(f"  plain pytest:     {plain / 1024:6.1f} MB   (difference {(explore - plain) / 1024:+.1f} MB)")
        print(f"\nload average after: {load_average()}")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
