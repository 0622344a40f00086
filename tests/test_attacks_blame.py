"""Hostile agents against the blame of main-checkout changes (sandbox none).

Found by a review given the threat model only (each attack worked against the
first version, which read other trials' progress files in ``$EXPLORE_RESULTS``,
within an unsandboxed agent's reach).  Each test asserts the promised
behaviour: a change that can be told is the tampering of its maker
(``protect_mode: fail`` fails it), never of a trial that changed nothing
outside its own folder, and no forged, removed or poisoned record breaks a
trial's check or hangs the run.  Two more attacks of that review are
documented gaps of runs without a sandbox (README): a file planted in another
trial's folder, and the experiment's shared base store rewritten, count as
the work of the trials that later use them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.explore_testing import BAD_AGENT, GOOD_AGENT, Project
from tests.test_attacks import spec_for, victim  # noqa: F401
from tests.test_attacks_userrepo import WAIT_FOR, full_state, root_env  # noqa: F401

#: ``{python} forge.py OWN OTHER``: writes OTHER's progress file from OWN's, its agent step started and not ended.
FORGE_RUNNING_OTHER = """
import json, os, pathlib, sys

results = pathlib.Path(os.environ["EXPLORE_RESULTS"])
record = json.loads((results / f"{sys.argv[1]}_progress.json").read_text())
record["name"] = sys.argv[2]
record["steps"] = {"agent": {"started": record["steps"]["agent"]["started"]}}
(results / f"{sys.argv[2]}_progress.json").write_text(json.dumps(record))
"""


#: Where an attacker lets "innocent" of :func:`beside_innocent` end: a file its agent waits for in its worktree.
INNOCENT_GO = '"$EXPLORE_ROOT/.data/parallel_explorer/calc/worktrees/innocent/go"'


def beside_innocent(user: Project, attacker: str) -> dict[str, Any]:
    """Trials "attacker" and "innocent" (writes calc.py, waits for :data:`INNOCENT_GO`), unsandboxed, protect fail."""
    user.write({"wait_for.py": WAIT_FOR})
    user.commit("a helper the agents wait with")
    innocent = f"{GOOD_AGENT} && {{python}} wait_for.py go 20 && rm go"
    spec = user.calc_spec(attacker=attacker, innocent=innocent)
    spec["sandbox"] = "none"
    spec["score"]["protect_mode"] = "fail"
    return spec


def failing_spec(user: Project, **agents: str) -> dict[str, Any]:
    """The attack project without a sandbox (its ``a_honest`` first), these agents after it, ``protect_mode: fail``."""
    spec = spec_for(user, "none", [])
    for name, run in agents.items():
        spec["variants"][name] = {"description": name, "agent": {"run": run}}
    spec["score"]["protect_mode"] = "fail"
    return spec


def explore_unharmed(user: Project, spec: dict[str, Any], *args: str) -> tuple[dict[str, dict[str, Any]], str]:
    """Run ``spec``'s experiment; the user's repository must come out of it as it went in. Its trials and output."""
    variants = user.variants(spec)
    before = full_state(user)
    result = user.explore("--variants", variants, *args)
    assert full_state(user) == before, result.stdout.str()
    return user.trials(), result.stdout.str()


def script(tmp_path: Path, name: str, text: str) -> Path:
    """``text`` written to ``tmp_path/name``, for an agent command to run."""
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_forged_record_of_a_trial_not_run_yet_does_not_hide_a_change_made_in_one_process(
    root_env: Project,  # noqa: F811
    tmp_path: Path,
) -> None:
    """One process: "b_attacker" writes the main checkout and a progress file for "z_later", not started yet.

    Only b_attacker's agent ran since the last check (a_honest's, in this
    process): the change can be told, so it is b_attacker's tampering.
    """
    user = root_env
    forge = script(tmp_path, "forge.py", FORGE_RUNNING_OTHER)
    attack = f'{BAD_AGENT} && echo pwned > "$EXPLORE_ROOT/calc.py" && {{python}} {forge} b_attacker z_later'
    spec = failing_spec(user, b_attacker=attack, z_later=BAD_AGENT)
    trials, out = explore_unharmed(user, spec)
    attacker = trials["b_attacker"]
    assert "main checkout: calc.py changed" in attacker["tampering"], (attacker, out)
    assert attacker["status"] == "agent_failed"
    assert trials["z_later"]["tampering"] == [] and trials["z_later"]["status"] == "done"


#: ``{python} hide.py OWN GO PATCH``: deletes OWN's progress file, then signals GO, until PATCH exists (bounded).
HIDE_OWN_RECORD = """
import os, pathlib, sys, time

own, go, patch = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
end = time.monotonic() + 20
own.unlink(missing_ok=True)
go.touch()
while not patch.exists() and time.monotonic() < end:
    own.unlink(missing_ok=True)
    time.sleep(0.02)
"""


def test_an_agent_that_deletes_its_own_record_does_not_get_its_change_blamed_on_the_trial_beside_it(
    root_env: Project,  # noqa: F811
    tmp_path: Path,
) -> None:
    """-n 2: "attacker" writes the main checkout, deletes its own progress file, and lets "innocent" end.

    Innocent's check finds the change.  Innocent changed nothing outside its
    folder; the attacker's agent ran at the same time: innocent must not
    carry the change as its tampering (a flag naming the attacker at most).
    """
    user = root_env
    hide = script(tmp_path, "hide.py", HIDE_OWN_RECORD)
    results = '"$EXPLORE_RESULTS"'
    attacker = (
        f'{GOOD_AGENT} && echo pwned > "$EXPLORE_ROOT/calc.py"'
        f" && {{python}} {hide} {results}/attacker_progress.json {INNOCENT_GO} {results}/innocent.patch"
    )
    spec = beside_innocent(user, attacker)
    trials, out = explore_unharmed(user, spec, "-n", "2")
    innocent_record = trials["innocent"]
    assert innocent_record["tampering"] == [], (innocent_record, out)
    assert innocent_record["status"] == "done" and innocent_record["score"] == 1.0


#: ``{python} poison.py OTHER``: a progress file for OTHER (not started yet) whose agent step starts at a string.
POISON_PENDING = """
import json, os, pathlib, sys

results = pathlib.Path(os.environ["EXPLORE_RESULTS"])
record = json.loads((results / f"{os.environ['EXPLORE_TRIAL']}_progress.json").read_text())
record["name"] = sys.argv[1]
record["steps"] = {"agent": {"started": "soon"}}
(results / f"{sys.argv[1]}_progress.json").write_text(json.dumps(record))
"""


def test_a_poisoned_record_of_a_pending_trial_breaks_no_check(root_env: Project, tmp_path: Path) -> None:  # noqa: F811
    """One process: "b_attacker" writes the main checkout and a malformed progress file for "z_pending".

    Every later check reads z_pending's file until z_pending starts: a
    malformed one must neither end the attacker's trial as an ``error`` (its
    tampering unrecorded, protect_mode failing nothing) nor lose "m_innocent"'s.
    """
    user = root_env
    poison = script(tmp_path, "poison.py", POISON_PENDING)
    attack = f'{BAD_AGENT} && echo pwned > "$EXPLORE_ROOT/calc.py" && {{python}} {poison} z_pending'
    spec = failing_spec(user, b_attacker=attack, m_innocent=BAD_AGENT, z_pending=BAD_AGENT)
    trials, out = explore_unharmed(user, spec)
    assert trials["m_innocent"]["status"] == "done", (trials["m_innocent"], out)
    attacker = trials["b_attacker"]
    assert attacker["status"] == "agent_failed", (attacker, out)
    assert "main checkout: calc.py changed" in attacker["tampering"]


#: ``{python} forge.py OTHER``: OTHER's finished progress file (of an earlier run) rewritten: its agent still runs.
FORGE_FINISHED = """
import json, os, pathlib, sys

path = pathlib.Path(os.environ["EXPLORE_RESULTS"], f"{sys.argv[1]}_progress.json")
record = json.loads(path.read_text())
for step in record["steps"].values():
    step.pop("seconds", None)
    step.pop("repo_checked", None)
path.write_text(json.dumps(record))
"""


@pytest.mark.parametrize("second_run", ["resumed", "retry_failed"])
def test_a_forged_record_of_a_resumed_trial_does_not_hide_a_change_made_in_one_process(
    root_env: Project,  # noqa: F811
    tmp_path: Path,
    second_run: str,
) -> None:
    """Second run, one process: a_honest finished in the first run and is reused; "b_attacker" runs.

    b_attacker (new in the second run, or failed in the first and retried
    with ``--explore-retry-failed``) writes the main checkout and rewrites
    a_honest's saved record so that its agent seems to run still.  No other
    trial ran in this run: the change is b_attacker's tampering.
    """
    user = root_env
    forge = script(tmp_path, "forge.py", FORGE_FINISHED)
    armed = tmp_path / "armed"
    attack = (
        f'if [ -e {armed} ]; then {BAD_AGENT} && echo pwned > "$EXPLORE_ROOT/calc.py"'
        f" && {{python}} {forge} a_honest; else exit 1; fi"
    )
    spec = spec_for(user, "none", [])
    spec["score"]["protect_mode"] = "fail"
    spec["variants"]["b_attacker"] = {"description": "attacker", "agent": {"run": attack}}
    first = dict(spec, variants={"a_honest": spec["variants"]["a_honest"]}) if second_run == "resumed" else spec
    user.explore("--variants", user.variants(first, name="variants-first.yaml"))
    assert user.trials()["a_honest"]["status"] == "done"
    armed.touch()
    variants = user.variants(spec)
    before = full_state(user)

    extra = ["--explore-retry-failed"] if second_run == "retry_failed" else []
    result = user.explore("--variants", variants, *extra)

    trials = user.trials()
    assert full_state(user) == before
    if second_run == "resumed":  # with --explore-retry-failed it is not selected at all
        assert trials["a_honest"]["from_checkpoint"], trials["a_honest"]
    attacker = trials["b_attacker"]
    assert "main checkout: calc.py changed" in attacker["tampering"], (attacker, result.stdout.str())
    assert attacker["status"] == "agent_failed"


#: ``{python} poison_own.py GO OTHER``: keeps this trial's own progress file malformed (its agent step starts at
#: a string), signals GO, until OTHER's progress file shows it past its agent step (bounded).
POISON_OWN = """
import json, os, pathlib, re, sys, time

results = pathlib.Path(os.environ["EXPLORE_RESULTS"])
own = results / f"{os.environ['EXPLORE_TRIAL']}_progress.json"
other = results / f"{sys.argv[2]}_progress.json"
record = json.loads(own.read_text())
record["steps"] = {"agent": {"started": "soon"}}
poisoned = json.dumps(record)
own.write_text(poisoned)
pathlib.Path(sys.argv[1]).touch()
end = time.monotonic() + 20
while time.monotonic() < end:
    if not re.search('"status": "(pending|worktree|agent)"', other.read_text()):
        break
    own.write_text(poisoned)
    time.sleep(0.02)
"""


def test_a_poisoned_record_of_a_running_trial_loses_no_other_trials_result(root_env: Project, tmp_path: Path) -> None:  # noqa: F811
    """-n 2: "attacker" writes the main checkout, makes its own progress file malformed, and lets "innocent" end.

    Innocent's check finds the change and reads the attacker's record to
    tell who could have made it: a malformed record must not end innocent
    as an ``error`` with its work uncommitted.
    """
    user = root_env
    poison = script(tmp_path, "poison_own.py", POISON_OWN)
    attacker = f'{GOOD_AGENT} && echo pwned > "$EXPLORE_ROOT/calc.py" && {{python}} {poison} {INNOCENT_GO} innocent'
    spec = beside_innocent(user, attacker)
    trials, out = explore_unharmed(user, spec, "-n", "2")
    innocent_record = trials["innocent"]
    assert innocent_record["status"] == "done", (innocent_record, out)
    assert innocent_record["score"] == 1.0 and innocent_record["tampering"] == []


#: Changes the plugin reports but leaves as they are (sandbox none): found again by every later check.
LEFT_AS_THEY_ARE = {
    "large_ignored_file": ('touch -d "2001-01-01" "$EXPLORE_ROOT/big.bin"', "big.bin changed"),
    "fifo": ('mkfifo "$EXPLORE_ROOT/pipe"', "pipe created"),
    "foreign_worktree": (
        'git -C "$EXPLORE_ROOT" worktree add -q --detach "$EXPLORE_ROOT/../elsewhere" HEAD',
        "a worktree that is no trial's",
    ),
}


@pytest.mark.parametrize("attack", list(LEFT_AS_THEY_ARE))
def test_a_change_left_as_it_is_is_not_blamed_on_every_later_trial(root_env: Project, attack: str) -> None:  # noqa: F811
    """One process: "b_attacker" makes a change the plugin reports without undoing it.

    It was made once, by b_attacker (its tampering, failing it): "z_innocent",
    run after it in the same process, changed nothing and must not carry it
    as its tampering (with ``protect_mode: fail``, fail).
    """
    user = root_env
    with (user.path / ".git" / "info" / "exclude").open("a") as exclude:
        exclude.write("*.bin\n")
    (user.path / "big.bin").write_bytes(b"\0" * (11 * 1024 * 1024))  # beyond the size kept: watched by stat
    command, named = LEFT_AS_THEY_ARE[attack]
    spec = failing_spec(user, b_attacker=f"{BAD_AGENT} && {command}", z_innocent=BAD_AGENT)

    result = user.explore("--variants", user.variants(spec))

    trials = user.trials()
    attacker = trials["b_attacker"]
    assert any(named in t for t in attacker["tampering"]), (attacker, result.stdout.str())
    assert attacker["status"] == "agent_failed"
    innocent = trials["z_innocent"]
    assert innocent["tampering"] == [], (innocent, result.stdout.str())
    assert innocent["status"] == "done"


def test_a_fifo_for_a_pending_trials_record_hangs_nothing(root_env: Project) -> None:  # noqa: F811
    """One process: "b_attacker" writes the main checkout and makes "z_pending"'s progress file a FIFO.

    z_pending reads its saved progress when it starts (to resume it): that
    must not block the run (nobody ever writes that pipe).  Bounded: the run
    gets 120 s, ten times what it needs.
    """
    user = root_env
    fifo = '"$EXPLORE_RESULTS/z_pending_progress.json"'
    attack = f'{BAD_AGENT} && echo pwned > "$EXPLORE_ROOT/calc.py" && mkfifo {fifo}'
    spec = failing_spec(user, b_attacker=attack, z_pending=BAD_AGENT)
    variants = user.variants(spec)
    before = full_state(user)

    result = user.pytester.runpytest_subprocess("--explore", "calc", "--variants", variants, timeout=120)

    trials = user.trials()
    assert full_state(user) == before
    assert trials["b_attacker"]["status"] == "agent_failed", (trials["b_attacker"], result.stdout.str())
    assert trials["z_pending"]["status"] == "done", (trials["z_pending"], result.stdout.str())
