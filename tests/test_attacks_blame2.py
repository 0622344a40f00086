"""Hostile agents against the checks of the user's repository (sandbox none), a second review.

Each test asserts the promised behaviour (README, "Trust model" and "Without
a sandbox"): the user's repository comes out of the run as it went in; a
change that can be told is the tampering of the trial that made it, never of
a trial that changed nothing outside its own folder; and no check of the
repository crashes, hangs or loses a trial's result.  Found by a review given
the threat model only; each attack here worked against the version before.
Each failed against the version before.
"""

from __future__ import annotations

import stat
import subprocess
from pathlib import Path

from tests.explore_testing import BAD_AGENT, GOOD_AGENT, Project
from tests.test_attacks import victim  # noqa: F401
from tests.test_attacks_blame import INNOCENT_GO, beside_innocent, explore_unharmed, failing_spec, script
from tests.test_attacks_userrepo import WAIT_FOR, full_state, root_env  # noqa: F401

#: ``{python} links.py TRIAL TARGET``: ``kept/main-checkout-TRIAL-<second>`` made a link to TARGET for the next
#: 120 seconds: where the plugin moves what it replaces in the main checkout when TRIAL's check finds a change.
ASIDE_LINKS = """
import os, pathlib, sys, time

kept = pathlib.Path(os.environ["EXPLORE_ROOT"], ".data/parallel_explorer/calc/kept")
kept.mkdir(parents=True, exist_ok=True)
now = int(time.time())
for second in range(now - 2, now + 120):
    os.symlink(sys.argv[2], kept / f"main-checkout-{sys.argv[1]}-{second}")
"""


def test_a_link_planted_for_the_attackers_own_aside_folder_blames_no_later_trial(
    root_env: Project,  # noqa: F811
    tmp_path: Path,
) -> None:
    """One process: "b_attacker" writes the main checkout's calc.py, and makes its own aside folder a link
    into the main checkout (``tests/``).

    Its check moves the changed calc.py "aside", through the link, into
    ``tests/calc.py`` of the main checkout.  The next check, after
    "z_innocent"'s agent, finds it: z_innocent changed nothing outside its
    folder and must not carry it as its tampering (nor fail for it).
    """
    user = root_env
    links = script(tmp_path, "links.py", ASIDE_LINKS)
    attack = (
        f'{BAD_AGENT} && echo pwned > "$EXPLORE_ROOT/calc.py" && {{python}} {links} b_attacker "$EXPLORE_ROOT/tests"'
    )
    spec = failing_spec(user, b_attacker=attack, z_innocent=BAD_AGENT)
    trials, out = explore_unharmed(user, spec)
    attacker = trials["b_attacker"]
    assert "main checkout: calc.py changed" in attacker["tampering"], (attacker, out)
    innocent = trials["z_innocent"]
    assert innocent["tampering"] == [], (innocent, out)
    assert innocent["status"] == "done", (innocent, out)


def test_a_hard_link_to_a_main_checkout_file_is_undone_or_named(root_env: Project, tmp_path: Path) -> None:  # noqa: F811
    """One process: "b_attacker" hard-links the main checkout's calc.py from a path outside the repository.

    The content is unchanged, but whoever holds the outside path now writes the
    user's file at will after the run: the repository did not come out as it
    went in.  Either the link is undone, or it is b_attacker's tampering.
    """
    user = root_env
    outside = tmp_path / "outside.py"
    attack = f'{BAD_AGENT} && ln "$EXPLORE_ROOT/calc.py" {outside}'
    spec = failing_spec(user, b_attacker=attack)

    result = user.explore("--variants", user.variants(spec))

    attacker = user.trials()["b_attacker"]
    linked = (user.path / "calc.py").stat().st_nlink > 1
    named = any("calc.py" in t for t in attacker["tampering"])
    assert named or not linked, (attacker, result.stdout.str())
    outside.write_text("pwned after the run\n")
    assert "pwned" not in (user.path / "calc.py").read_text() or named


def test_a_mode_change_of_a_main_checkout_file_is_undone_or_named(root_env: Project) -> None:  # noqa: F811
    """One process: "b_attacker" makes the user's ignored secret.env (0600) readable and writable by all.

    Its content is the same; its mode is not as it went in: put back, and b_attacker's tampering.
    ``tests/`` made writable by all: its mode is put back too.
    """
    user = root_env
    secret = user.path / "secret.env"
    secret.chmod(0o600)
    attack = f'{BAD_AGENT} && chmod 666 "$EXPLORE_ROOT/secret.env" && chmod 777 "$EXPLORE_ROOT/tests"'
    spec = failing_spec(user, b_attacker=attack)
    tests_mode = stat.S_IMODE((user.path / "tests").stat().st_mode)

    result = user.explore("--variants", user.variants(spec))

    attacker = user.trials()["b_attacker"]
    out = result.stdout.str()
    assert stat.S_IMODE(secret.stat().st_mode) == 0o600, (oct(secret.stat().st_mode), attacker, out)
    assert "main checkout: secret.env changed" in attacker["tampering"], (attacker, out)
    assert stat.S_IMODE((user.path / "tests").stat().st_mode) == tests_mode
    assert "main checkout: tests/ permissions changed" in attacker["tampering"], (attacker, out)


#: ``{python} rewrite.py PATH``: rewrites PATH with other bytes of the same size, its mtime put back.
REWRITE_KEEPING_MTIME = """
import os, sys

path = sys.argv[1]
info = os.stat(path)
with open(path, "r+b") as handle:
    handle.write(b"pwned")
os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
"""


def test_a_large_ignored_file_rewritten_with_its_mtime_put_back_is_named(root_env: Project, tmp_path: Path) -> None:  # noqa: F811
    """One process: "b_attacker" rewrites an ignored file beyond the size kept, same size, mtime put back.

    Such a file is watched, not kept: a change is promised to be reported
    (``big.bin changed (not restored: ...)``), as b_attacker's tampering.
    """
    user = root_env
    with (user.path / ".git" / "info" / "exclude").open("a") as exclude:
        exclude.write("*.bin\n")
    big = user.path / "big.bin"
    big.write_bytes(b"\0" * (11 * 1024 * 1024))
    rewrite = script(tmp_path, "rewrite.py", REWRITE_KEEPING_MTIME)
    attack = f'{BAD_AGENT} && {{python}} {rewrite} "$EXPLORE_ROOT/big.bin"'
    spec = failing_spec(user, b_attacker=attack)

    result = user.explore("--variants", user.variants(spec))

    attacker = user.trials()["b_attacker"]
    changed = big.read_bytes()[:5] == b"pwned"
    assert not changed or any("big.bin" in t for t in attacker["tampering"]), (attacker, result.stdout.str())
    assert not changed or attacker["status"] == "agent_failed"


def test_a_legacy_remote_file_planted_in_the_git_directory_is_put_back(root_env: Project) -> None:  # noqa: F811
    """One process: "b_attacker" writes ``.git/remotes/origin`` (and ``.git/branches/upstream``).

    git still reads these files as remotes when the config names none: the
    user's next ``git push origin`` goes to the attacker's URL.  The repository
    must come out as it went in (the files removed), the change b_attacker's tampering.
    """
    user = root_env
    attack = (
        f'{BAD_AGENT} && mkdir -p "$EXPLORE_ROOT/.git/remotes" "$EXPLORE_ROOT/.git/branches"'
        ' && printf "URL: /tmp/attacker.git\\nPush: refs/heads/*:refs/heads/*\\n" > "$EXPLORE_ROOT/.git/remotes/origin"'
        ' && echo /tmp/attacker.git > "$EXPLORE_ROOT/.git/branches/upstream"'
    )
    spec = failing_spec(user, b_attacker=attack)

    result = user.explore("--variants", user.variants(spec))

    attacker = user.trials()["b_attacker"]
    url = subprocess.run(
        ["git", "remote", "get-url", "--push", "origin"], cwd=user.path, capture_output=True, text=True
    ).stdout
    assert "attacker" not in url, (url, attacker, result.stdout.str())
    assert not (user.path / ".git" / "remotes" / "origin").exists()
    assert not (user.path / ".git" / "branches" / "upstream").exists()


#: ``{python} dangling.py NAME...``: ``kept/main-checkout-NAME-<second>`` (``main-checkout-<second>`` for ``-``)
#: made a dangling link for the next 120 seconds: the folder a check moves what it replaces into cannot be made.
DANGLING_ASIDE = """
import os, pathlib, sys, time

kept = pathlib.Path(os.environ["EXPLORE_ROOT"], ".data/parallel_explorer/calc/kept")
kept.mkdir(parents=True, exist_ok=True)
now = int(time.time())
for name in sys.argv[1:]:
    prefix = "main-checkout-" if name == "-" else f"main-checkout-{name}-"
    for second in range(now - 2, now + 120):
        os.symlink("/nonexistent/aside", kept / f"{prefix}{second}")
"""


def test_a_dangling_link_for_the_aside_folders_breaks_no_check(root_env: Project, tmp_path: Path) -> None:  # noqa: F811
    """One process: "b_attacker" writes the main checkout's calc.py and makes every aside folder name its
    check and the end-of-run check will use a dangling link.

    The checks must not crash (no INTERNALERROR or traceback); calc.py must be
    put back and be b_attacker's tampering; a_honest's result must stand.
    """
    user = root_env
    dangling = script(tmp_path, "dangling.py", DANGLING_ASIDE)
    attack = f'{BAD_AGENT} && echo pwned > "$EXPLORE_ROOT/calc.py" && {{python}} {dangling} b_attacker -'
    spec = failing_spec(user, b_attacker=attack)
    variants = user.variants(spec)
    before = full_state(user)

    result = user.pytester.runpytest_subprocess("--explore", "calc", "--variants", variants, timeout=120)

    out = result.stdout.str() + result.stderr.str()
    assert "INTERNALERROR" not in out and "Traceback" not in out, out[-3000:]
    assert full_state(user) == before, out[-3000:]
    trials = user.trials()
    assert trials["a_honest"]["status"] == "done", (trials["a_honest"], out[-3000:])
    attacker = trials["b_attacker"]
    assert "main checkout: calc.py changed" in attacker["tampering"], (attacker, out[-3000:])
    assert attacker["status"] == "agent_failed"


#: ``{python} keep.py GO PATCH``: writes the main checkout's calc.py, signals GO, and writes it again until PATCH
#: exists (bounded): whichever check comes first finds it.
KEEP_WRITING = """
import os, pathlib, sys, time

calc = pathlib.Path(os.environ["EXPLORE_ROOT"], "calc.py")
go, patch = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
calc.write_text("pwned")
go.touch()
end = time.monotonic() + 20
while not patch.exists() and time.monotonic() < end:
    if calc.read_text() != "pwned":
        calc.write_text("pwned")
    time.sleep(0.01)
"""


def test_a_dangling_link_for_a_bystanders_aside_folder_loses_no_result(root_env: Project, tmp_path: Path) -> None:  # noqa: F811
    """-n 2: "attacker" writes the main checkout, makes "innocent"'s aside folder names dangling links, and
    lets innocent end.

    Innocent's check finds the change (a flag naming the attacker at most):
    it must not end innocent as an ``error`` with its work lost.
    """
    user = root_env
    dangling = script(tmp_path, "dangling.py", DANGLING_ASIDE)
    keep = script(tmp_path, "keep.py", KEEP_WRITING)
    patch = '"$EXPLORE_RESULTS/innocent.patch"'
    attacker = f"{GOOD_AGENT} && {{python}} {dangling} innocent && {{python}} {keep} {INNOCENT_GO} {patch}"
    spec = beside_innocent(user, attacker)
    variants = user.variants(spec)

    result = user.pytester.runpytest_subprocess("--explore", "calc", "--variants", variants, "-n", "2", timeout=180)

    out = result.stdout.str()
    innocent_record = user.trials()["innocent"]
    assert innocent_record["status"] == "done", (innocent_record, out[-3000:])
    assert innocent_record["score"] == 1.0 and innocent_record["tampering"] == []
