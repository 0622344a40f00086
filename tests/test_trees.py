"""``trees.materialize``: a tree written byte for byte, with no filter or attribute, unsafe paths refused."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from pytest_parallel_explore.repo import trees
from pytest_parallel_explore.repo.gitcmd import Git, GitFailed


def git(repo: Path, *args: str, input: bytes | None = None) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@l", "GIT_COMMITTER_NAME": "t"}
    env["GIT_COMMITTER_EMAIL"] = "t@l"
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, input=input, check=True, capture_output=True
    ).stdout.decode()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    git(repo, "init", "-q")
    return repo


def test_files_are_written_byte_for_byte_whatever_the_attributes_say(repo: Path, tmp_path: Path) -> None:
    (repo / ".gitattributes").write_text("*.txt text eol=crlf ident filter=evil\n")
    git(repo, "config", "filter.evil.smudge", f"touch {tmp_path / 'smudged'}; cat")
    (repo / "a.txt").write_bytes(b"line\n$Id$\n")
    (repo / "sub").mkdir()
    (repo / "sub" / "run.sh").write_bytes(b"#!/bin/sh\n")
    (repo / "sub" / "run.sh").chmod(0o755)
    (repo / "same.txt").write_bytes(b"line\n$Id$\n")  # one blob, two paths
    os.symlink("a.txt", repo / "link")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    target = tmp_path / "out"

    trees.materialize(Git(repo / ".git"), "HEAD", target)

    assert (target / "a.txt").read_bytes() == b"line\n$Id$\n" == (target / "same.txt").read_bytes()
    assert os.access(target / "sub" / "run.sh", os.X_OK) and not os.access(target / "a.txt", os.X_OK)
    assert os.readlink(target / "link") == "a.txt"
    assert not (tmp_path / "smudged").exists()
    assert sorted(p.relative_to(target).as_posix() for p in target.rglob("*")) == [
        ".gitattributes",
        "a.txt",
        "link",
        "same.txt",
        "sub",
        "sub/run.sh",
    ]


@pytest.mark.parametrize("name", [".git", "..", "."])
def test_a_tree_with_an_unsafe_path_is_refused_before_anything_is_written(
    repo: Path, tmp_path: Path, name: str
) -> None:
    blob = git(repo, "hash-object", "-w", "--stdin", input=b"x\n").strip()
    good = git(repo, "mktree", input=f"100644 blob {blob}\tfine\n".encode()).strip()
    tree = git(repo, "mktree", input=f"040000 tree {good}\tdir\n100644 blob {blob}\t{name}\n".encode()).strip()
    target = tmp_path / "out"

    with pytest.raises(GitFailed, match="refusing to write the unsafe path"):
        trees.materialize(Git(repo / ".git"), tree, target)
    assert not target.exists()


def test_a_snapshot_skips_reading_unchanged_files_and_still_sees_a_change_that_hides_its_mtime(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("a.txt", "b.txt", "c.txt"):
        (repo / name).write_text(f"{name}\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    base = git(repo, "rev-parse", "HEAD").strip()
    sealed = Git(repo / ".git", work_tree=repo)
    snapshot = trees.stat_snapshot(repo, ["a.txt", "b.txt", "c.txt"])
    assert set(snapshot) == {"a.txt", "b.txt", "c.txt"}
    # Same size, same mtime, same inode: only the ctime, which no unprivileged process can set, tells.
    before = (repo / "b.txt").stat()
    with (repo / "b.txt").open("r+") as handle:
        handle.write("B")
    os.utime(repo / "b.txt", ns=(before.st_atime_ns, before.st_mtime_ns))
    read: list[str] = []
    read_file = trees._read_file
    monkeypatch.setattr(trees, "_read_file", lambda fd, name, path, *more: read.append(path) or read_file(fd, name, path, *more))

    tree = trees.tree_of_files(sealed, base, unchanged=snapshot).tree

    assert read == ["b.txt"]  # a.txt and c.txt were not read
    assert git(repo, "cat-file", "blob", f"{tree}:b.txt") == "B.txt\n"
    assert tree == trees.tree_of_files(sealed, base).tree  # the same tree as reading every file


def test_a_listing_by_object_id_is_kept_but_a_name_is_read_again(repo: Path) -> None:
    (repo / "a.txt").write_text("a\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "one")
    first = git(repo, "rev-parse", "HEAD").strip()
    sealed = Git(repo / ".git")
    listing = trees.tree_entries(sealed, first)
    listing.clear()  # the caller's copy: the kept listing is untouched
    (repo / "b.txt").write_text("b\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "two")

    assert sorted(trees.tree_entries(sealed, first)) == ["a.txt"]
    assert sorted(trees.tree_entries(sealed, "HEAD")) == ["a.txt", "b.txt"]
    assert trees.tree_id(sealed, first) == git(repo, "rev-parse", f"{first}^{{tree}}").strip()
    assert trees.tree_id(sealed, "HEAD") == git(repo, "rev-parse", "HEAD^{tree}").strip()
