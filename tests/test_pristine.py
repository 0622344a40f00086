"""The kept scoring checkout: brought to the next tree by writing what differs, and nothing a suite left survives."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

import pytest

from pytest_parallel_explore.repo import treefiles
from pytest_parallel_explore.repo.gitcmd import Git
from pytest_parallel_explore.repo.pristine import PristineCheckout
from pytest_parallel_explore.repo.trees import read_inside
from tests.test_trees import git


def listing(folder: Path) -> dict[str, tuple[str, int, str]]:
    """Everything under ``folder``, not following links: kind, permission bits, content hash (or link target)."""
    found = {}
    for top, dirs, files in os.walk(folder):
        for name in dirs + files:
            full = Path(top, name)
            info = os.lstat(full)
            if stat.S_ISLNK(info.st_mode):
                found[full.relative_to(folder).as_posix()] = ("link", 0, os.readlink(full))
            elif stat.S_ISDIR(info.st_mode):
                found[full.relative_to(folder).as_posix()] = ("dir", 0, "")
            else:
                digest = hashlib.sha256(full.read_bytes()).hexdigest() if stat.S_ISREG(info.st_mode) else "?"
                found[full.relative_to(folder).as_posix()] = ("file", info.st_mode & 0o111, digest)
    return found


def commit(repo: Path, files: dict[str, str | None]) -> str:
    """Write (or, for ``None``, remove) ``files`` and commit; the commit's id."""
    for path, content in files.items():
        full = repo / path
        if content is None:
            full.unlink()
        else:
            full.parent.mkdir(parents=True, exist_ok=True)
            full.write_text(content)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "c")
    return git(repo, "rev-parse", "HEAD").strip()


@pytest.fixture
def trees(tmp_path: Path) -> tuple[Git, str, str]:
    """A repository with a base commit of 40 files and a trial's commit that changes, adds and removes a few."""
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    (repo / "pkg").mkdir()
    os.symlink("m1.py", repo / "pkg" / "alias.py")
    (repo / "run.sh").write_text("#!/bin/sh\n")
    (repo / "run.sh").chmod(0o755)
    base = commit(repo, {f"pkg/m{i}.py": f"x = {i}\n" for i in range(30)} | {f"tests/t{i}.py": "" for i in range(10)})
    trial = commit(repo, {"pkg/m1.py": "x = 'changed'\n", "pkg/new/deep.py": "y = 1\n", "tests/t3.py": None})
    return Git(repo / ".git"), base, trial


@pytest.fixture
def kept(tmp_path: Path) -> PristineCheckout:
    return PristineCheckout(tmp_path / "kept" / "checkout")


def entries(sealed: Git, tree: str) -> list[tuple[Git, dict[str, tuple[str, str]]]]:
    return [(sealed, treefiles.tree_entries(sealed, tree))]


def fresh(sealed: Git, tree: str, folder: Path) -> dict[str, tuple[str, int, str]]:
    treefiles.materialize(sealed, tree, folder)
    return listing(folder)


def test_the_next_tree_is_written_by_its_differences_only(
    trees: tuple[Git, str, str], kept: PristineCheckout, tmp_path: Path
) -> None:
    sealed, base, trial = trees
    first = kept.update(entries(sealed, base))
    assert first.fresh and first.written == 42
    assert listing(kept.folder) == fresh(sealed, base, tmp_path / "base")

    to_trial = kept.update(entries(sealed, trial))
    # m1.py changed, deep.py new; t3.py removed and the folder pkg/new made: nothing else touched.
    assert (to_trial.fresh, to_trial.written, to_trial.removed) == (False, 2, 2)
    assert listing(kept.folder) == fresh(sealed, trial, tmp_path / "trial")
    back = kept.update(entries(sealed, base))
    assert (back.written, back.removed) == (2, 3)  # deep.py and its folder pkg/new go
    assert listing(kept.folder) == listing(tmp_path / "base")


def test_nothing_a_hostile_suite_did_to_the_checkout_survives_into_the_next_one(
    trees: tuple[Git, str, str], kept: PristineCheckout, tmp_path: Path
) -> None:
    sealed, base, trial = trees
    kept.update(entries(sealed, trial))
    root = kept.folder
    # Edited in place with the same size and its mtime put back: only the ctime tells.
    before = os.stat(root / "pkg" / "m2.py")
    (root / "pkg" / "m2.py").write_text("x = 9\n")
    os.utime(root / "pkg" / "m2.py", ns=(before.st_atime_ns, before.st_mtime_ns))
    (root / "tests" / "conftest.py").write_text("collect_ignore_glob = ['*']\n")  # planted
    (root / ".pytest_cache" / "v").mkdir(parents=True)  # a cache, in a folder made read-only
    (root / ".pytest_cache").chmod(0o500)
    os.mkfifo(root / "pkg" / "pipe")
    (root / "pkg" / "m4.py").unlink()
    os.symlink("/etc/passwd", root / "pkg" / "m4.py")  # a file replaced by a link out of the folder
    (root / "pkg" / "m5.py").unlink()  # a file removed
    (root / "pkg" / "m6.py").chmod(0o755)  # a mode changed
    (root / "tests" / "t7.py").rename(root / "tests" / "t7_renamed.py")
    os.link(root / "pkg" / "m8.py", root / "hardlink")  # a link to a kept file: its ctime moves
    (root / "pkg" / "new").rename(root / "pkg" / "moved")  # a folder moved away

    update = kept.update(entries(sealed, base))

    assert not update.fresh
    assert listing(root) == fresh(sealed, base, tmp_path / "base")


def test_a_checkout_whose_folders_were_tampered_with_is_written_again_whole(
    trees: tuple[Git, str, str], kept: PristineCheckout, tmp_path: Path
) -> None:
    sealed, base, trial = trees
    kept.update(entries(sealed, base))
    (kept.folder / "pkg").chmod(0o500)  # nothing in it could be removed: start over
    update = kept.update(entries(sealed, trial))
    assert update.fresh
    assert listing(kept.folder) == fresh(sealed, trial, tmp_path / "trial")
    # A folder replaced by a link to another place is not followed: the checkout is written again.
    outside = tmp_path / "outside"
    outside.mkdir()
    treefiles.remove_tree(kept.folder / "tests")
    os.symlink(outside, kept.folder / "tests")
    assert kept.update(entries(sealed, base)).fresh
    assert listing(kept.folder) == fresh(sealed, base, tmp_path / "base")
    assert list(outside.iterdir()) == []


def test_files_written_over_the_tree_are_removed_by_the_next_update(
    trees: tuple[Git, str, str], kept: PristineCheckout, tmp_path: Path
) -> None:
    sealed, base, trial = trees
    kept.update(entries(sealed, base))
    (kept.folder / "holdout").mkdir()
    (kept.folder / "holdout" / "stale.py").write_text("planted by set-up\n")
    extra = {"holdout/test_hidden.py": treefiles.tree_entries(sealed, trial)["pkg/m1.py"]}
    kept.overlay(sealed, extra, ["holdout"])
    assert sorted(os.listdir(kept.folder / "holdout")) == ["test_hidden.py"]
    kept.update(entries(sealed, trial))
    assert listing(kept.folder) == fresh(sealed, trial, tmp_path / "trial")


def test_the_hold_out_is_never_written_through_a_folder_a_set_up_command_made_a_link(
    trees: tuple[Git, str, str], kept: PristineCheckout, tmp_path: Path
) -> None:
    sealed, base, _ = trees
    outside = tmp_path / "outside"
    (outside / "holdout").mkdir(parents=True)
    (outside / "holdout" / "precious.txt").write_text("the user's\n")
    kept.update(entries(sealed, base))
    treefiles.remove_tree(kept.folder / "tests")
    os.symlink(outside, kept.folder / "tests")  # what `rm -rf tests && ln -s ... tests` in worktree.setup leaves
    hidden = {"tests/holdout/test_hidden.py": treefiles.tree_entries(sealed, base)["pkg/m1.py"]}
    kept.overlay(sealed, hidden, ["tests/holdout"])
    assert (outside / "holdout" / "precious.txt").read_text() == "the user's\n"
    assert sorted(os.listdir(outside / "holdout")) == ["precious.txt"]
    assert (kept.folder / "tests" / "holdout" / "test_hidden.py").is_file()
    assert not (kept.folder / "tests").is_symlink()


def test_removing_a_folder_follows_no_link_opens_no_fifo_and_needs_no_recursion(tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir(mode=0o755)
    (outside / "kept.txt").write_text("x\n")
    top = tmp_path / "top"
    top.mkdir()
    here = os.getcwd()
    try:
        os.chdir(top)
        for _ in range(1500):  # deeper than Python's recursion limit
            os.mkdir("d")
            os.chdir("d")
        Path("f").write_text("x\n")
    finally:
        os.chdir(here)
    os.mkfifo(top / "fifo")
    os.symlink(outside, top / "link")
    (top / "d" / "ro").mkdir()
    (top / "d" / "ro").chmod(0o500)
    treefiles.remove_tree(top)
    assert not top.exists() and (outside / "kept.txt").exists()
    os.symlink(outside, top)  # the folder itself replaced by a link: the link goes, not what it points at
    treefiles.remove_tree(top)
    assert not os.path.lexists(top) and (outside / "kept.txt").exists()
    assert stat.S_IMODE(outside.stat().st_mode) == 0o755
    os.mkfifo(top)
    treefiles.remove_tree(top)
    assert not os.path.lexists(top)


def test_a_report_is_read_without_following_a_link_or_blocking_on_a_fifo(tmp_path: Path) -> None:
    (tmp_path / "out").mkdir()
    (tmp_path / "secret").write_text("SECRET\n")
    os.symlink(tmp_path / "secret", tmp_path / "out" / "junit.xml")
    assert read_inside(tmp_path / "out", "junit.xml", 1 << 20) is None
    os.mkfifo(tmp_path / "out" / "fifo.xml")
    assert read_inside(tmp_path / "out", "fifo.xml", 1 << 20) is None
    os.symlink(tmp_path, tmp_path / "linked")  # a link above the file: not followed either
    assert read_inside(tmp_path / "linked", "secret", 1 << 20) is None
    (tmp_path / "out" / "big.xml").write_bytes(b"x" * 100)
    assert read_inside(tmp_path / "out", "big.xml", 99) is None
    assert read_inside(tmp_path / "out", "big.xml", 100) == b"x" * 100
