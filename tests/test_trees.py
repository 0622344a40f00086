"""``treefiles.materialize``: a tree written byte for byte, with no filter or attribute, unsafe paths refused."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from pytest_parallel_explore.model.limits import Limits
from pytest_parallel_explore.repo import treefiles, trees, worktreestat
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

    treefiles.materialize(Git(repo / ".git"), "HEAD", target)

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
        treefiles.materialize(Git(repo / ".git"), tree, target)
    assert not target.exists()


def checked_out_afresh(repo: Path) -> None:
    """``repo``'s files removed and written again by git, into a new index: as a trial's checkout is made."""
    for path in repo.iterdir():
        if path.name != ".git":
            subprocess.run(["rm", "-rf", str(path)], check=True)
    (repo / ".git" / "index").unlink()
    git(repo, "read-tree", "-u", "--reset", "HEAD")


@pytest.mark.parametrize("taken", ["from each file", "from the index"])
def test_a_snapshot_skips_reading_unchanged_files_and_still_sees_a_change_that_hides_its_mtime(
    repo: Path, monkeypatch: pytest.MonkeyPatch, taken: str
) -> None:
    for name in ("a.txt", "b.txt", "c.txt"):
        (repo / name).write_text(f"{name}\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    base = git(repo, "rev-parse", "HEAD").strip()
    sealed = Git(repo / ".git", work_tree=repo)
    if taken == "from the index":
        checked_out_afresh(repo)
        snapshot = worktreestat.index_snapshot(repo, len(base))
    else:
        snapshot = worktreestat.stat_snapshot(repo, ["a.txt", "b.txt", "c.txt"])
    assert snapshot is not None and set(snapshot) == {"a.txt", "b.txt", "c.txt"}
    # Same size, same mtime, same inode: only the ctime, which no unprivileged process can set, tells.
    before = (repo / "b.txt").stat()
    with (repo / "b.txt").open("r+") as handle:
        handle.write("B")
    os.utime(repo / "b.txt", ns=(before.st_atime_ns, before.st_mtime_ns))
    read: list[str] = []
    read_file = trees._read_file
    monkeypatch.setattr(
        trees, "_read_file", lambda fd, name, path, *more: read.append(path) or read_file(fd, name, path, *more)
    )

    tree = trees.tree_of_files(sealed, base, unchanged=snapshot).tree

    assert read == ["b.txt"]  # a.txt and c.txt were not read
    assert git(repo, "cat-file", "blob", f"{tree}:b.txt") == "B.txt\n"
    assert tree == trees.tree_of_files(sealed, base).tree  # the same tree as reading every file


def test_the_snapshot_read_from_the_index_is_what_each_files_lstat_says(repo: Path) -> None:
    (repo / "pkg" / "sub").mkdir(parents=True)
    for index in range(40):
        (repo / "pkg" / ("sub" if index % 2 else "") / f"m{index}{'x' * index}.py").write_text("x" * index)
    (repo / "run.sh").write_text("#!/bin/sh\n")
    (repo / "run.sh").chmod(0o755)
    (repo / "pkg" / "café.txt").write_text("é\n")
    os.symlink("pkg", repo / "link")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    checked_out_afresh(repo)
    listed = [p for p in git(repo, "ls-files", "-z").split("\0") if p]

    from_index = worktreestat.index_snapshot(repo, 40)

    assert from_index == worktreestat.stat_snapshot(repo, listed)
    assert len(from_index) == len(listed) == 43


def test_an_index_this_does_not_read_gives_no_snapshot(repo: Path) -> None:
    (repo / "a.txt").write_text("a\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    git(repo, "update-index", "--index-version", "4")
    assert worktreestat.index_snapshot(repo, 40) is None
    (repo / ".git" / "index").write_bytes(b"DIRC\0\0\0\x02\0\0\0\x05")  # five entries promised, none there
    assert worktreestat.index_snapshot(repo, 40) is None


def test_a_listing_by_object_id_is_kept_but_a_name_is_read_again(repo: Path) -> None:
    (repo / "a.txt").write_text("a\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "one")
    first = git(repo, "rev-parse", "HEAD").strip()
    sealed = Git(repo / ".git")
    listing = treefiles.tree_entries(sealed, first)
    listing.clear()  # the caller's copy: the kept listing is untouched
    (repo / "b.txt").write_text("b\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "two")

    assert sorted(treefiles.tree_entries(sealed, first)) == ["a.txt"]
    assert sorted(treefiles.tree_entries(sealed, "HEAD")) == ["a.txt", "b.txt"]
    assert treefiles.tree_id(sealed, first) == git(repo, "rev-parse", f"{first}^{{tree}}").strip()
    assert treefiles.tree_id(sealed, "HEAD") == git(repo, "rev-parse", "HEAD^{tree}").strip()


# -- tree_of_files: the agent's files are hostile input ------------------------------------------------

SECRET = b"the-secret-4f1c9b"


def every_object(repo: Path) -> bytes:
    """The content of every object of ``repo``'s store, to search for what must not be there."""
    return subprocess.run(
        ["git", "cat-file", "--batch-all-objects", "--batch"], cwd=repo, check=True, capture_output=True
    ).stdout


def files_under(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def object_ids(repo: Path) -> set[str]:
    listing = git(repo, "cat-file", "--batch-all-objects", "--batch-check=%(objectname)")
    return set(listing.split())


@pytest.fixture
def based(repo: Path, tmp_path: Path) -> tuple[Path, str, Path]:
    """A repository with a committed ``data/config.txt``, and a secret file outside it."""
    (repo / "data").mkdir()
    (repo / "data" / "config.txt").write_text("config\n")
    (repo / "keep.txt").write_text("keep\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "config.txt").write_bytes(SECRET)
    (outside / "secret.txt").write_bytes(SECRET)
    return repo, git(repo, "rev-parse", "HEAD").strip(), outside


def entries(repo: Path, tree: str) -> dict[str, tuple[str, str]]:
    return treefiles.tree_entries(Git(repo / ".git"), tree)


ReadBack = Callable[..., trees.FilesTree]


@pytest.fixture(params=["tree", "commit"])
def read_back(request: pytest.FixtureRequest) -> ReadBack:
    """``tree_of_files`` of a repository's files, asked for a tree (an index) or a commit (fast-import if it can).

    A commit must hold the very tree, with the base as its only parent.
    """

    def run(repo: Path, base: str, **options: object) -> trees.FilesTree:
        sealed = Git(repo / ".git", work_tree=repo)
        if request.param == "tree":
            return trees.tree_of_files(sealed, base, **options)  # type: ignore[arg-type]
        files = trees.tree_of_files(sealed, base, message="work", **options)  # type: ignore[arg-type]
        assert files.commit is not None
        assert git(repo, "rev-parse", f"{files.commit}^{{tree}}").strip() == files.tree
        if files.tree != git(repo, "rev-parse", f"{base}^{{tree}}").strip():
            assert git(repo, "rev-parse", f"{files.commit}^@").split() == [base]
        return files

    return run


def test_a_commit_holds_the_tree_an_index_makes_of_the_same_files(based: tuple[Path, str, Path]) -> None:
    repo, _base, _outside = based
    for path, text in {
        "gone/a.txt": "a\n",
        "becomes_dir": "f\n",
        "becomes_file/x.txt": "x\n",
        "big.bin": "B" * 2000,
    }.items():
        (repo / path).parent.mkdir(parents=True, exist_ok=True)
        (repo / path).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "more")
    base = git(repo, "rev-parse", "HEAD").strip()
    (repo / "data" / "config.txt").write_text("changed\n")
    (repo / "keep.txt").chmod(0o755)
    (repo / "big.bin").chmod(0o755)  # past the size limit: the base's blob, a new mode
    (repo / "gone" / "a.txt").unlink()
    (repo / "gone").rmdir()
    (repo / "becomes_dir").unlink()
    (repo / "becomes_dir").mkdir()
    (repo / "becomes_dir" / "inner.py").write_text("inner\n")
    (repo / "becomes_file" / "x.txt").unlink()
    (repo / "becomes_file").rmdir()
    (repo / "becomes_file").write_text("now a file\n")
    (repo / "new" / "deep" / "er").mkdir(parents=True)
    (repo / "new" / "deep" / "er" / "n.txt").write_text("n\n")
    os.symlink("keep.txt", repo / "link")
    sealed = Git(repo / ".git", work_tree=repo)
    limits = Limits(file_size=1000)

    committed = trees.tree_of_files(sealed, base, message="work", limits=limits)
    indexed = trees.tree_of_files(sealed, base, limits=limits)

    assert committed.tree == indexed.tree
    assert committed.left_out == indexed.left_out == []
    assert git(repo, "rev-parse", f"{committed.commit}^{{tree}}").strip() == indexed.tree
    listing = entries(repo, indexed.tree)
    assert listing["big.bin"][0] == listing["keep.txt"][0] == "100755" and listing["link"][0] == "120000"
    assert sorted(listing) == [
        "becomes_dir/inner.py",
        "becomes_file",
        "big.bin",
        "data/config.txt",
        "keep.txt",
        "link",
        "new/deep/er/n.txt",
    ]


def test_a_commit_of_nothing_changed_is_the_base(based: tuple[Path, str, Path]) -> None:
    repo, base, _outside = based

    files = trees.tree_of_files(Git(repo / ".git", work_tree=repo), base, message="work")

    assert files.commit == base


@pytest.mark.parametrize(
    "name, shown",
    [
        (b"x\n{secret}", "'x\\n{secret}'"),  # git's --stdin-paths would read the secret's path as a line
        (b"tab\there.py", "'tab\\there.py'"),
        (b"bell\x07.py", "'bell\\x07.py'"),
        (b"del\x7f.py", "'del\\x7f.py'"),
        (b"latin-\xe9.py", "b'latin-\\xe9.py'"),  # not UTF-8
        # Spellings of .git that git will not index: update-index says "Ignoring path" and exits 0.
        (b".GIT/evil.py", "'.GIT/evil.py'"),
        (b"GIT~1/evil.py", "'GIT~1/evil.py'"),
        (b".git./evil.py", "'.git./evil.py'"),
        (b"sub/.Git/evil.py", "'sub/.Git/evil.py'"),
    ],
)
def test_a_file_name_that_cannot_be_recorded_safely_is_left_out_and_named(
    based: tuple[Path, str, Path], read_back: ReadBack, name: bytes, shown: str
) -> None:
    repo, base, outside = based
    secret = os.fsencode(outside / "secret.txt")
    raw = os.fsencode(repo) + b"/" + name.replace(b"{secret}", secret)
    os.makedirs(os.path.dirname(raw), exist_ok=True)
    with open(raw, "wb") as handle:
        handle.write(b"agent\n")
    with open(os.fsencode(repo) + b"/x", "wb") as handle:  # for "x\n<path>": the line before the secret's
        handle.write(b"x\n")
    (repo / "good.py").write_text("good\n")

    files = read_back(repo, base)

    assert files.left_out == [shown.replace("{secret}", str(outside / "secret.txt"))]
    assert sorted(entries(repo, files.tree)) == ["data/config.txt", "good.py", "keep.txt", "x"]
    assert SECRET not in every_object(repo)


def test_a_symlink_is_recorded_as_one_and_never_read_through(
    based: tuple[Path, str, Path], read_back: ReadBack
) -> None:
    repo, base, outside = based
    os.symlink(outside / "secret.txt", repo / "leak.txt")
    (repo / "keep.txt").unlink()
    os.symlink(outside / "secret.txt", repo / "keep.txt")  # a base file replaced by a symlink

    files = read_back(repo, base)

    listing = entries(repo, files.tree)
    assert listing["leak.txt"][0] == listing["keep.txt"][0] == "120000"
    assert git(repo, "cat-file", "blob", listing["leak.txt"][1]) == str(outside / "secret.txt")
    assert SECRET not in every_object(repo)


def test_nothing_below_a_symlinked_folder_is_read(based: tuple[Path, str, Path], read_back: ReadBack) -> None:
    repo, base, outside = based
    (repo / "data" / "config.txt").unlink()
    (repo / "data").rmdir()
    os.symlink(outside, repo / "data")  # data/config.txt is now the secret, through the link

    files = read_back(repo, base)

    listing = entries(repo, files.tree)
    assert sorted(listing) == ["data", "keep.txt"]
    assert listing["data"][0] == "120000"
    assert SECRET not in every_object(repo)


def test_a_fifo_is_not_a_file_and_does_not_hang_the_reader(based: tuple[Path, str, Path], read_back: ReadBack) -> None:
    repo, base, _outside = based
    (repo / "keep.txt").unlink()
    os.mkfifo(repo / "keep.txt")
    os.mkfifo(repo / "new.pipe")

    files = read_back(repo, base)

    assert sorted(entries(repo, files.tree)) == ["data/config.txt"]


@pytest.mark.parametrize(
    "limits, reason",
    [
        (Limits(files=3), "4 files added or changed (limits.files: 3)"),
        (Limits(file_size=1000), "'big.bin' has 2000 bytes (limits.file_size: 1000)"),
        (Limits(trial_size=2000), "more than 2000 bytes added or changed (limits.trial_size: 2000)"),
    ],
)
def test_files_past_a_limit_add_no_object_to_the_repository(
    based: tuple[Path, str, Path], read_back: ReadBack, limits: Limits, reason: str
) -> None:
    repo, base, _outside = based
    for i in range(3):
        (repo / f"new{i}.txt").write_text(f"new file {i}\n")
    (repo / "big.bin").write_bytes(b"B" * 2000)
    (repo / "data" / "config.txt").write_text("changed\n")
    before = object_ids(repo), files_under(repo / ".git")

    with pytest.raises(trees.LimitExceeded) as raised:
        read_back(repo, base, limits=limits)

    assert str(raised.value) == reason
    # No object, and no file of one either (such as the temporary pack of a stopped ``git fast-import``).
    assert (object_ids(repo), files_under(repo / ".git")) == before


def test_a_big_file_of_the_base_that_is_unchanged_is_within_the_limits(
    based: tuple[Path, str, Path], read_back: ReadBack
) -> None:
    repo, _base, _outside = based
    (repo / "dataset.bin").write_bytes(b"D" * 5000)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "a big file of the user's")
    base = git(repo, "rev-parse", "HEAD").strip()
    (repo / "dataset.bin").chmod(0o755)  # a new mode, the same blob: nothing to store

    files = read_back(repo, base, limits=Limits(file_size=1000))

    assert entries(repo, files.tree)["dataset.bin"] == ("100755", entries(repo, base)["dataset.bin"][1])


def test_many_new_files_are_added_as_one_pack_not_as_loose_objects(
    based: tuple[Path, str, Path], read_back: ReadBack
) -> None:
    repo, base, _outside = based
    for i in range(300):
        (repo / f"new{i}.txt").write_text(f"new file {i}\n")
    loose_before = git(repo, "count-objects", "-v").splitlines()[0]

    files = read_back(repo, base)

    assert len(entries(repo, files.tree)) == 302
    # The 300 blobs are in one pack; only the new trees are loose (written by write-tree).
    counts = dict(line.split(": ") for line in git(repo, "count-objects", "-v").splitlines())
    assert int(counts["count"]) - int(loose_before.split(": ")[1]) <= 2
    assert int(counts["in-pack"]) >= 300
    assert git(repo, "cat-file", "blob", f"{files.tree}:new299.txt") == "new file 299\n"


def test_a_listing_near_another_is_the_full_listing_of_the_tree(repo: Path) -> None:
    (repo / "keep.txt").write_text("same\n")
    (repo / "change.txt").write_text("before\n")
    (repo / "gone.txt").write_text("gone\n")
    (repo / "now_a_link").write_text("a file\n")
    (repo / "now_a_folder").write_text("a file\n")
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "base")
    base = git(repo, "rev-parse", "HEAD").strip()
    (repo / "change.txt").write_text("after\n")
    (repo / "gone.txt").unlink()
    (repo / "now_a_link").unlink()
    os.symlink("keep.txt", repo / "now_a_link")
    (repo / "now_a_folder").unlink()
    (repo / "now_a_folder").mkdir()
    (repo / "now_a_folder" / "inside.py").write_text("x = 1\n")
    (repo / "run.sh").write_text("#!/bin/sh\n")
    (repo / "run.sh").chmod(0o755)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "trial")
    sealed = Git(repo / ".git")
    trial_tree = git(repo, "rev-parse", "HEAD^{tree}").strip()

    near = treefiles.tree_entries(sealed, trial_tree, near=base)

    assert near == treefiles.tree_entries(sealed, trial_tree)
    assert sorted(treefiles.tree_changes(sealed, base, trial_tree)) == [
        "change.txt",
        "gone.txt",
        "now_a_folder",
        "now_a_folder/inside.py",
        "now_a_link",
        "run.sh",
    ]
    assert treefiles.tree_changes(sealed, base, trial_tree)["gone.txt"][1] is None
    assert treefiles.tree_changes(sealed, base, trial_tree)["run.sh"] == (None, near["run.sh"])
