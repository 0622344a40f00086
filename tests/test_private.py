"""``repo.private``: the shared base objects, a trial's private repository, and what a rerun keeps of its folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_parallel_explore.repo import gitops, private
from tests.test_trees import git, repo  # noqa: F401

HOLDOUT = "def test_hidden():\n    assert 'only the scorer knows this'\n"


@pytest.fixture
def base(repo: Path) -> str:  # noqa: F811
    """A commit with a source file and a tracked hold-out, and an object no commit reaches."""
    (repo / "src").mkdir()
    (repo / "src" / "calc.py").write_text("def add(a, b):\n    return a + b\n")
    (repo / "holdout").mkdir()
    (repo / "holdout" / "test_hidden.py").write_text(HOLDOUT)
    git(repo, "add", "-A")
    git(repo, "commit", "-qm", "base")
    git(repo, "hash-object", "-w", "--stdin", input=b"a stash of the user's, reachable from no commit\n")
    return git(repo, "rev-parse", "HEAD").strip()


def objects_of(git_dir: Path) -> list[str]:
    """Every file of a repository's object store (loose objects and packs)."""
    return sorted(str(p.relative_to(git_dir)) for p in (git_dir / "objects").rglob("*") if p.is_file())


def test_the_shared_base_holds_what_its_commit_reaches_and_adds_nothing_to_the_users_objects(
    repo: Path,  # noqa: F811
    base: str,
    tmp_path: Path,
) -> None:
    before = objects_of(repo / ".git")

    shared = private.shared_base(repo / ".git", tmp_path / "base", base, ["holdout"])

    assert objects_of(repo / ".git") == before
    stored = git(shared.store, "cat-file", "--batch-all-objects", "--batch-check=%(objectname)").split()
    reached = [line.split()[0] for line in git(shared.store, "rev-list", "--objects", shared.commit).splitlines()]
    assert sorted(stored) == sorted(reached)
    assert git(shared.store, "ls-tree", "-r", "--name-only", shared.commit).split() == ["src/calc.py"]
    assert git(shared.store, "rev-parse", f"{shared.commit}^{{tree}}") != git(repo, "rev-parse", f"{base}^{{tree}}")
    assert not (shared.store / "objects" / "info" / "alternates").exists()  # the user's objects are not borrowed
    # Built once: a second trial gets the same; another hold-out, another store.
    assert private.shared_base(repo / ".git", tmp_path / "base", base, ["holdout"]) == shared
    other = private.shared_base(repo / ".git", tmp_path / "base", base, [])
    assert other.store != shared.store
    assert git(other.store, "ls-tree", "-r", "--name-only", other.commit).split() == [
        "holdout/test_hidden.py",
        "src/calc.py",
    ]


def test_a_private_repository_is_checked_out_and_its_git_replaced_without_following_links(
    repo: Path,  # noqa: F811
    base: str,
    tmp_path: Path,
) -> None:
    shared = private.shared_base(repo / ".git", tmp_path / "base", base, ["holdout"])
    folder = tmp_path / "trial"
    private.make(folder, shared, "explore/x/t")

    assert sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if ".git" not in p.parts) == [
        "src",
        "src/calc.py",
    ]
    assert git(folder, "status", "--porcelain") == ""
    assert git(folder, "symbolic-ref", "HEAD").strip() == "refs/heads/explore/x/t"
    outside = tmp_path / "outside.txt"
    outside.write_text("not the plugin's\n")
    (folder / "src" / "calc.py").write_text("changed\n")
    for name in ("index", "HEAD", "config"):
        (folder / ".git" / name).unlink()
        (folder / ".git" / name).symlink_to(outside)

    private.reset_git(folder, shared, "explore/x/t")

    assert outside.read_text() == "not the plugin's\n"
    assert not any(p.is_symlink() for p in (folder / ".git").rglob("*"))
    assert git(folder, "status", "--porcelain") == " M src/calc.py\n"


def test_a_rerun_moves_a_changed_trial_folder_aside_and_replaces_an_unchanged_one(
    repo: Path,  # noqa: F811
    base: str,
    tmp_path: Path,
) -> None:
    folder = tmp_path / "experiment" / "worktrees" / "t"
    shared = private.shared_base(repo / ".git", tmp_path / "experiment" / "base", base, ["holdout"])
    private.make(folder, shared, "explore/x/t")
    (folder / ".venv").mkdir()  # what worktree.setup made: the plugin's own file

    assert gitops.keep_changed_folder(repo, folder, base, ["holdout", ".venv"]) == []
    assert folder.is_dir()

    (folder / "src" / "calc.py").write_text("the user's edit\n")
    kept = gitops.keep_changed_folder(repo, folder, base, ["holdout", ".venv"])

    assert not folder.exists()
    (moved,) = (tmp_path / "experiment" / "kept").iterdir()
    assert (moved / "src" / "calc.py").read_text() == "the user's edit\n"
    assert kept == [f"{folder} had uncommitted changes (src/calc.py); moved to {moved}"]

    private.make(folder, shared, "explore/x/t")
    gone = "0" * 40  # a reference that is not in the repository: nothing can be compared, so it is kept
    assert "could not compare" in gitops.keep_changed_folder(repo, folder, gone, ["holdout"])[0]
    assert len(os.listdir(tmp_path / "experiment" / "kept")) == 2
