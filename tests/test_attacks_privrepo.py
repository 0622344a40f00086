"""Hostile agents against their repository: each trial's git is a private one, with no way back to the user's.

Every attacker makes the honest change of ``tests.test_attacks`` (score 1/4)
and then uses git in its folder: to read a tracked hold-out test, to make the
plugin write through symlinks planted in the trial's ``.git``, to move the
user's refs or plant hooks.  Each run is made with the sandbox and without.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.explore_testing import Project
from tests.test_attacks import HOLDOUT_TEST, HONEST_SCORE, SANDBOXES, repository_state, spec_for, victim  # noqa: F401

#: Everything git in the trial can say about the hold-out: the file at HEAD, and every object it can reach.
READ_HOLDOUT = (
    "git show HEAD:holdout/test_hidden.py > shown.txt 2>&1;"
    " git log --all -p > log.txt 2>&1;"
    " git cat-file --batch-all-objects --batch > objects.txt 2>&1;"
    " true"
)


@pytest.fixture
def tracked_holdout(victim: Project) -> Project:  # noqa: F811
    """The victim, with its hold-out test committed (so the base commit holds it)."""
    victim.git("add", "-f", "holdout/test_hidden.py")
    victim.git("commit", "-q", "-m", "the hold-out is tracked", "--", "holdout/test_hidden.py")
    return victim


@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_git_in_the_trial_finds_nothing_of_a_tracked_holdout(tracked_holdout: Project, sandbox: str) -> None:
    spec = spec_for(tracked_holdout, sandbox, [])
    spec["variants"]["reader"] = {"agent": {"run": f"{spec['variants']['a_honest']['agent']['run']} && {READ_HOLDOUT}"}}
    result = tracked_holdout.explore("--variants", tracked_holdout.variants(spec))

    trial = tracked_holdout.trials()["reader"]
    assert trial["score"] == pytest.approx(HONEST_SCORE), result.stdout.str()
    branch = "explore/calc/reader"
    read = {name: show_bytes(tracked_holdout, f"{branch}:{name}.txt") for name in ("shown", "log", "objects")}
    assert b"holdout/test_hidden.py' does not exist" in read["shown"], read["shown"]
    assert b"def add" in read["objects"]  # the base's objects are there to read; the hold-out's are not
    assert b"test_hidden.py\0" not in read["objects"]  # no tree lists it either
    for name, text in read.items():
        assert b"def test_hidden" not in text and b"add(2, 3) == 5" not in text, (name, text[:500])


def show_bytes(project: Project, spec: str) -> bytes:
    """``git show spec`` as bytes (the objects' dump holds binary trees)."""
    return subprocess.run(["git", "show", spec], cwd=project.path, check=True, capture_output=True).stdout


#: Files of the trial's repository that the old plugin wrote after the agent, through whatever they had become.
PLANT_SYMLINKS = (
    "gd=$(git rev-parse --absolute-git-dir)"
    " && for f in index gitdir; do rm -f $gd/$f; ln -s USER_FILE $gd/$f; done"
    " && for f in HEAD commondir config; do rm -f $gd/$f; ln -s HOME_FILE $gd/$f; done"
)


@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_symlinks_in_the_trials_git_lead_no_write_to_the_users_files(
    victim: Project,  # noqa: F811
    sandbox: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    home_file = home / ".profile"
    home_file.write_text("the user's profile\n")
    monkeypatch.setenv("HOME", str(home))
    user_file = victim.path / "calc.py"  # the user's uncommitted edit
    attack = PLANT_SYMLINKS.replace("USER_FILE", str(user_file)).replace("HOME_FILE", str(home_file))
    spec = spec_for(victim, sandbox, [])
    spec["variants"]["linker"] = {"agent": {"run": f"{spec['variants']['a_honest']['agent']['run']} && {attack}"}}
    variants = victim.variants(spec)
    before = repository_state(victim)

    result = victim.explore("--variants", variants)

    trial = victim.trials()["linker"]
    assert trial["score"] == pytest.approx(HONEST_SCORE), result.stdout.str()
    assert home_file.read_text() == "the user's profile\n"
    after = repository_state(victim)
    assert after == before, json.dumps({k: (before[k], v) for k, v in after.items() if v != before[k]})[-1500:]
    # The plugin replaced the planted .git by a repository of its own, at the base, without following a link.
    worktree = Path(trial["worktree"])
    assert not any(p.is_symlink() for p in (worktree / ".git").iterdir())
    assert victim.git("-C", str(worktree), "status", "--short") == " M calc.py\n"


#: An agent that uses git as if its folder were a worktree of the user's repository.
GIT_GAMES = (
    "git rev-parse --absolute-git-dir --git-common-dir > where.txt"
    " && git checkout -q -b evil && git -c user.name=x -c user.email=x commit -qam evil"
    " && git update-ref refs/heads/main HEAD && git tag planted"
    " && git config core.hooksPath hooks-of-mine && git config filter.evil.clean 'touch PWNED; cat'"
    " && hooks=$(git rev-parse --git-common-dir)/hooks && mkdir -p $hooks"
    " && printf '#!/bin/sh\\ntouch PWNED\\n' > $hooks/pre-commit"
)


@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_the_agents_git_never_touches_the_users_refs_config_or_hooks(
    victim: Project,  # noqa: F811
    sandbox: str,
) -> None:
    spec = spec_for(victim, sandbox, [])
    games = GIT_GAMES.replace("PWNED", str(victim.path.parent / "pwned"))
    spec["variants"]["gamer"] = {"agent": {"run": f"{spec['variants']['a_honest']['agent']['run']} && {games}"}}
    variants = victim.variants(spec)
    before = repository_state(victim)

    result = victim.explore("--variants", variants)

    trial = victim.trials()["gamer"]
    assert trial["score"] == pytest.approx(HONEST_SCORE), result.stdout.str()
    assert trial["status"] == "done", trial["reason"]
    assert trial["tampering"] == []  # nothing of the user's was changed, so nothing had to be put back
    worktree = Path(trial["worktree"])
    where = victim.git("show", "explore/calc/gamer:where.txt").split()
    assert where == [str(worktree / ".git"), ".git"]
    assert repository_state(victim) == before
    assert not (victim.path.parent / "pwned").exists()
