"""Sealed git: configuration an agent plants in the repository runs nothing when the plugin calls git.

Each test plants hooks, an fsmonitor, clean/smudge filters (directly and through
an ``include.path``) and checks that the plugin's git runs none of them, while
plain ``git`` on the same repository does (so the planted traps are real).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from pytest_parallel_explore.repo.gitcmd import Git
from pytest_parallel_explore.repo.gitops import GitProblem, is_dirty, repo_root, resolve_commit
from tests.test_trees import git


@pytest.fixture
def trapped(tmp_path: Path) -> tuple[Path, Path]:
    """A repository whose configuration runs ``touch <marker>`` from every place git would run a program."""
    repo, marker, hooks = tmp_path / "repo", tmp_path / "ran", tmp_path / "hooks"
    repo.mkdir()
    hooks.mkdir()
    trap = f"touch {marker}"
    for hook in ("post-checkout", "pre-commit", "post-index-change", "reference-transaction"):
        (hooks / hook).write_text(f"#!/bin/sh\n{trap}\n")
        (hooks / hook).chmod(0o755)

    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.name=u", "-c", "user.email=u@x", *args], cwd=repo, check=True)

    git("init", "-q", "-b", "main")
    (repo / "a.txt").write_text("a\n")
    (repo / ".gitattributes").write_text("* filter=evil\n")
    git("add", "-A")
    git("commit", "-qm", "base")
    (tmp_path / "included").write_text(f'[filter "sneaky"]\n\tsmudge = "{trap}; cat"\n\tclean = "{trap}; cat"\n')
    git("config", "core.hooksPath", str(hooks))
    git("config", "core.fsmonitor", f"{trap}; true")
    git("config", "filter.evil.clean", f"{trap}; cat")
    git("config", "filter.evil.smudge", f"{trap}; cat")
    git("config", "include.path", str(tmp_path / "included"))
    (repo / "a.txt").write_text("changed\n")
    return repo, marker


def test_the_traps_are_real(trapped: tuple[Path, Path]) -> None:
    repo, marker = trapped
    subprocess.run(["git", "status", "--porcelain"], cwd=repo, check=True, capture_output=True)
    assert marker.exists()


def test_sealed_git_runs_no_hook_fsmonitor_or_filter(trapped: tuple[Path, Path], tmp_path: Path) -> None:
    repo, marker = trapped
    git = Git(repo / ".git", work_tree=repo)
    git.run("status", "--porcelain")
    git.run("diff", "--no-ext-diff", "--no-textconv", "HEAD")  # as the plugin diffs
    git.run("add", "-A")
    git.run("commit", "-qm", "sealed commit")
    git.run("checkout", "-q", "HEAD~1", "--", "a.txt")
    Git(repo / ".git").run("worktree", "add", "-q", str(tmp_path / "wt"), "-b", "other")
    assert not marker.exists()
    assert (tmp_path / "wt" / "a.txt").read_text() == "changed\n"  # the sealed commit, checked out


def test_a_filter_planted_after_an_earlier_call_is_still_neutralised(tmp_path: Path) -> None:
    repo, marker = tmp_path / "repo", tmp_path / "ran"
    subprocess.run(["git", "init", "-q", "-b", "main", str(repo)], check=True)
    (repo / "a.txt").write_text("a\n")
    (repo / ".gitattributes").write_text("* filter=late\n")
    git = Git(repo / ".git", work_tree=repo)
    git.run("status", "--porcelain")  # the configuration is read (and remembered) before the plant
    included = tmp_path / "included"
    included.write_text("")
    subprocess.run(["git", "-C", str(repo), "config", "include.path", str(included)], check=True)
    git.run("status", "--porcelain")  # the include is remembered, empty
    included.write_text(f'[filter "late"]\n\tclean = "touch {marker}; cat"\n')  # planted in the included file

    git.run("add", "-A")
    assert not marker.exists()
    subprocess.run(["git", "-C", str(repo), "add", "-A"], check=True)  # the trap is real
    assert marker.exists()


def test_feed_writes_objects_to_a_private_folder_and_a_failing_block_stops_git(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    staging = tmp_path / "staging"
    staging.mkdir()
    sealed = Git(repo / ".git", objects=staging)

    with sealed.feed("hash-object", "-w", "--stdin") as stdin:
        stdin.write(b"fed\n")

    assert [p.name for p in staging.iterdir()] and not [p for p in (repo / ".git" / "objects").glob("??")]
    with pytest.raises(RuntimeError), sealed.feed("fast-import", "--quiet", "--done") as stdin:
        stdin.write(b"blob\ndata 4\nhalf")
        raise RuntimeError("stopped half way")
    assert not list((repo / ".git").glob("fast_import_crash_*"))  # git was killed, not left to die on half a stream


def test_a_stream_read_whole_while_an_exception_is_handled_keeps_its_git(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Reading in an ``except`` block (a retry after a failure) is not stopping early: git is not killed.

    ``poll`` answers "still running", as it may when git has not exited yet after its last output.
    """
    repo = tmp_path / "repo"
    git(tmp_path, "init", "-q", str(repo))
    blob = git(repo, "hash-object", "-w", "--stdin", input=b"content\n").strip()
    wanted = tmp_path / "wanted"
    wanted.write_text(f"{blob}\n")
    monkeypatch.setattr(subprocess.Popen, "poll", lambda self: None)
    killed = []
    monkeypatch.setattr(subprocess.Popen, "kill", lambda self: killed.append(self.args))

    try:
        raise OSError("the first attempt failed")
    except OSError:
        with Git(repo / ".git").stream("cat-file", "--batch", stdin=wanted) as out:
            answer = out.read()

    assert answer == f"{blob} blob 8\ncontent\n\n".encode()
    assert killed == []


def test_the_checkout_is_dirty_when_tracked_files_differ_from_head_staged_or_not(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    with pytest.raises(GitProblem, match="no commits yet"):
        resolve_commit(tmp_path, "HEAD")
    (tmp_path / "a.txt").write_text("a\n")
    git(tmp_path, "add", "a.txt")
    git(tmp_path, "commit", "-q", "-m", "base")
    (tmp_path / "sub").mkdir()
    assert repo_root(tmp_path / "sub") == tmp_path.resolve()
    assert resolve_commit(tmp_path, "HEAD") == git(tmp_path, "rev-parse", "HEAD").strip()
    with pytest.raises(GitProblem, match="'nope' is not a commit"):
        resolve_commit(tmp_path, "nope")
    (tmp_path / "untracked.txt").write_text("x\n")
    assert not is_dirty(tmp_path)
    (tmp_path / "a.txt").write_text("changed\n")
    assert is_dirty(tmp_path)
    git(tmp_path, "add", "a.txt")
    assert is_dirty(tmp_path)  # staged
    git(tmp_path, "commit", "-q", "-m", "second")
    assert not is_dirty(tmp_path)
    with pytest.raises(GitProblem, match="not inside a git repository"):
        repo_root(tmp_path.parent)
