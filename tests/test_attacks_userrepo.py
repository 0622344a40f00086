"""Hostile agents against the user's repository itself: its files, its hold-out, its objects, its git state.

Without a sandbox an agent runs with the user's access: it can write the
main checkout by absolute path (``$EXPLORE_ROOT``), rewrite the hold-out
tests there while other trials are scored, replace a loose object in the
shared object store, or leave git state behind (a merge in progress, grafts,
alternates, another worktree's admin files).  Each attack here is undone
and named, and no score it could forge is recorded.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.explore_testing import BAD_AGENT, GOOD_AGENT, Project
from tests.test_attacks import HONEST_SCORE, repository_state, spec_for, victim  # noqa: F401

#: Files of the shared git directory that an agent must not leave changed (absent ones included).
GIT_FILES = ("MERGE_HEAD", "CHERRY_PICK_HEAD", "shallow", "info/grafts", "objects/info/alternates")


def full_state(project: Project) -> dict[str, Any]:
    """``repository_state``, and the git files and other worktrees' admin folders an agent could write."""
    common = project.path / ".git"
    git_files = {name: _read(common / name) for name in GIT_FILES}
    admins = [p for p in (common / "worktrees").glob("*") if "/.data/" not in (_read(p / "gitdir") or "")]
    others = {
        str(path.relative_to(common)): hashlib.sha256(path.read_bytes()).hexdigest()
        for admin in admins
        for path in sorted(admin.rglob("*"))
        if path.is_file() and "logs" not in path.parts
    }
    return {**repository_state(project), "git_files": git_files, "other_worktrees": others}


def _read(path: Path) -> str | None:
    return path.read_text() if path.is_file() else None


def attacks_file(project: Project, attacks: dict[str, str]) -> str:
    """The honest agent followed by each attack (``$EXPLORE_ROOT`` is the main checkout), without a sandbox."""
    spec = spec_for(project, "none", [])
    for name, command in attacks.items():
        spec["variants"][name] = {"description": name, "agent": {"run": f"{BAD_AGENT} && {command}"}}
    return project.variants(spec)


@pytest.fixture
def root_env(victim: Project, monkeypatch: pytest.MonkeyPatch) -> Project:  # noqa: F811
    monkeypatch.setenv("EXPLORE_ROOT", str(victim.path))
    monkeypatch.setenv("EXPLORE_RESULTS", str(victim.experiment_dir() / "results"))
    return victim


def test_files_an_agent_writes_in_the_main_checkout_are_put_back_and_named(root_env: Project) -> None:
    user = root_env
    attack = (
        'cd "$EXPLORE_ROOT" && echo pwned > calc.py && echo pwned > notes.txt && echo pwned > secret.env'
        " && echo pwned > planted.py && mkdir -p new_pkg && echo pwned > new_pkg/mod.py && rm .gitignore"
    )

    variants = attacks_file(user, {"writer": attack})
    before = full_state(user)

    result = user.explore("--variants", variants)

    assert result.ret == 0, result.stdout.str()
    changed = {k: (before[k], v) for k, v in full_state(user).items() if v != before[k]}
    assert changed == {}, json.dumps(changed, indent=1)[-1500:]
    tampering = user.trials()["writer"]["tampering"]
    for named in (
        "calc.py changed",  # tracked, with the user's uncommitted edit
        "notes.txt changed",  # staged, then edited
        "secret.env changed",  # ignored
        "planted.py created",
        "new_pkg/mod.py created",
        ".gitignore removed",
    ):
        assert f"main checkout: {named}" in tampering, tampering
    assert user.trials()["a_honest"]["tampering"] == []
    assert user.trials()["writer"]["score"] == pytest.approx(HONEST_SCORE)
    # Nothing is lost: what was there (a change of the user's, for all the plugin can tell) is kept aside.
    kept = [p for p in (user.experiment_dir() / "kept").iterdir() if p.name.startswith("main-checkout-writer-")]
    assert len(kept) == 1 and (kept[0] / "calc.py").read_text() == "pwned\n"
    assert (kept[0] / "new_pkg" / "mod.py").read_text() == "pwned\n"
    assert not (user.path / "new_pkg").exists()


def test_a_write_by_the_code_under_test_is_put_back_and_named(root_env: Project) -> None:
    """The code scored runs with the user's access too: what it writes in the main checkout is undone after scoring."""
    user = root_env
    # Written during scoring, by the code under test: after the trial's agent step was checked.
    test = "import os\\n\\ndef test_write():\\n    open(os.environ['EXPLORE_ROOT'] + '/calc.py', 'w').write('pwned')\\n"
    spec = spec_for(user, "none", [])
    spec["variants"]["scored_writer"] = {"agent": {"run": f'{BAD_AGENT} && printf "{test}" > tests/test_w.py'}}
    spec["score"]["pass_env"] = ["EXPLORE_ROOT"]
    variants = user.variants(spec)
    before = full_state(user)

    result = user.explore("--variants", variants)

    assert result.ret == 0, result.stdout.str()
    assert full_state(user) == before
    assert "main checkout: calc.py changed" in user.trials()["scored_writer"]["tampering"]


def test_an_edit_of_the_holdout_in_the_main_checkout_changes_no_score(root_env: Project) -> None:
    """The hold-out is read when the run starts: rewriting it while another trial is scored forges nothing.

    The attacker keeps rewriting the main checkout's hold-out (so that it is
    rewritten again right after any restore) until the honest trial, run at the
    same time in another worker, has finished.
    """
    user = root_env
    forged = "def test_hidden():\\n    assert True\\n"
    honest = "$EXPLORE_RESULTS/z_honest_progress.json"
    attack = (
        f'until grep -Eqs \'"status": "(done|error|agent_failed)"\' {honest}; do'
        f' printf "{forged}" > "$EXPLORE_ROOT/holdout/test_hidden.py"; done'
    )
    spec = spec_for(user, "none", [])
    spec["variants"] = {
        "holdout_writer": {"agent": {"run": f"{BAD_AGENT} && {attack}"}, "timeout": "60s"},
        "z_honest": {"agent": {"run": BAD_AGENT}},
    }

    result = user.explore("--variants", user.variants(spec), "-n", "2")

    assert result.ret == 0, result.stdout.str()
    trials = user.trials()
    assert trials["z_honest"]["score"] == pytest.approx(HONEST_SCORE), trials["z_honest"]["tests"]
    assert trials["holdout_writer"]["score"] == pytest.approx(HONEST_SCORE)
    assert user.results()["baseline"]["tests"]["passed"] == 0
    # Named, though not as its tampering: the honest trial ran in the other worker at the same time.
    named = [*trials["holdout_writer"]["tampering"], *trials["holdout_writer"]["flags"]]
    assert any("main checkout: holdout/test_hidden.py changed" in line for line in named), named
    assert (user.path / "holdout" / "test_hidden.py").read_text().startswith("from calc import add")


#: Replaces the loose object of the base's tests/test_calc.py with tests that all pass (same id, new content).
FORGE_OBJECT = (
    'python3 -c "import os, subprocess, sys, zlib; '
    "root = os.environ['EXPLORE_ROOT']; "
    "sha = subprocess.check_output(['git', '-C', root, 'rev-parse', 'HEAD:tests/test_calc.py'], text=True).strip(); "
    "common = os.path.join(root, '.git'); "
    "path = os.path.join(common, 'objects', sha[:2], sha[2:]); "
    "body = b'def test_add():\\\\n    pass\\\\n\\\\ndef test_add_zero():\\\\n    pass\\\\n'"
    "    b'\\\\ndef test_negative():\\\\n    pass\\\\n'; "
    "open(path + '.new', 'wb').write(zlib.compress(b'blob %d\\\\0' % len(body) + body)); "
    "os.replace(path + '.new', path)\""
)


def test_a_forged_loose_object_is_put_back_and_named_not_scored(root_env: Project) -> None:
    user = root_env
    blob = user.git("rev-parse", "HEAD:tests/test_calc.py").strip()
    original = user.git("cat-file", "blob", blob)

    # A change of its own besides the honest one: a tree of its own, not one the score cache knows.
    result = user.explore("--variants", attacks_file(user, {"forger": f"echo forged > forged.txt && {FORGE_OBJECT}"}))

    assert result.ret == 0, result.stdout.str()
    trial = user.trials()["forger"]
    assert trial["score"] == pytest.approx(HONEST_SCORE), trial["tests"]
    forged = [t for t in trial["tampering"] if f"objects/{blob[:2]}/{blob[2:]} did not hold what its id says" in t]
    assert forged and forged[0].endswith("put back from the run's copy"), trial["tampering"]
    assert user.git("cat-file", "blob", blob) == original  # the user's repository holds the true object again


@pytest.fixture
def other_worktree(root_env: Project, tmp_path: Path) -> Path:
    """A worktree of the user's own, beside the main checkout."""
    path = tmp_path / "users-other-worktree"
    root_env.git("worktree", "add", "-q", "--detach", str(path), "HEAD")
    return path


def test_git_state_an_agent_leaves_is_put_back_and_named(root_env: Project, other_worktree: Path) -> None:
    user = root_env
    head = user.git("rev-parse", "HEAD").strip()
    admin = user.git("-C", str(other_worktree), "rev-parse", "--git-dir").strip()
    attack = (
        'common="$EXPLORE_ROOT/.git" && mkdir -p "$common/objects/info" "$common/rebase-merge"'
        f' && echo {head} > "$common/MERGE_HEAD" && echo {head} > "$common/shallow"'
        f' && echo {head} > "$common/info/grafts" && echo /tmp/elsewhere > "$common/objects/info/alternates"'
        f' && echo {head} > "$common/rebase-merge/onto"'
        f" && echo {'0' * 40} > {admin}/HEAD && echo evil > {admin}/gitdir"
        # A link where no file was: git follows it (a commondir leading to a repository of the agent's).
        ' && ln -s HEAD "$common/CHERRY_PICK_HEAD"'
    )

    variants = attacks_file(user, {"git_state": attack})
    before = full_state(user)

    result = user.explore("--variants", variants)

    assert result.ret == 0, result.stdout.str()
    changed = {k: (before[k], v) for k, v in full_state(user).items() if v != before[k]}
    assert changed == {}, json.dumps(changed, indent=1)[-1500:]
    assert not (user.path / ".git" / "rebase-merge").exists()
    tampering = user.trials()["git_state"]["tampering"]
    name = Path(admin).name
    for named in ("MERGE_HEAD", "shallow", "info/grafts", "objects/info/alternates", "CHERRY_PICK_HEAD"):
        assert f"git: {named} changed" in tampering, tampering
    assert not (user.path / ".git" / "CHERRY_PICK_HEAD").is_symlink()
    assert "git: rebase-merge/ created" in tampering and f"git: worktrees/{name}/ changed" in tampering
    assert user.git("-C", str(other_worktree), "rev-parse", "HEAD").strip() == head


# A forged object behind a symlinked fanout folder (sandbox none).
#
# The loose-object check lists only fanout folders that are real folders (``is_dir(follow_symlinks=False)``);
# git follows a symlinked one.  The agent swaps ``objects/<xx>`` (holding the blob of the user's calc.py) for a
# link to a copy of it where that blob's id holds other content.

FORGE_FANOUT = textwrap.dedent(
    """
    import os, shutil, zlib
    objects, oid, evil = os.environ["PPE_OBJECTS"], os.environ["PPE_OID"], os.environ["PPE_EVIL"]
    fanout, copy = os.path.join(objects, oid[:2]), os.path.join(evil, oid[:2])
    shutil.copytree(fanout, copy)
    os.chmod(copy, 0o755)
    forged = os.path.join(copy, oid[2:])
    os.chmod(forged, 0o644)
    os.unlink(forged)
    body = b"def add(a, b):\\n    return a + b  # forged\\n"
    with open(forged, "wb") as f:
        f.write(zlib.compress(b"blob %d\\0" % len(body) + body))
    os.rename(fanout, fanout + ".orig")
    os.symlink(copy, fanout)
    """
)


def test_a_forged_object_behind_a_symlinked_fanout_folder_is_found_and_undone(
    calc_project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    oid = calc_project.git("rev-parse", "HEAD:calc.py").strip()
    original = calc_project.git("cat-file", "blob", oid)
    evil = tmp_path / "evil"
    evil.mkdir()
    monkeypatch.setenv("PPE_FORGE", FORGE_FANOUT)
    monkeypatch.setenv("PPE_OBJECTS", str(calc_project.path / ".git" / "objects"))
    monkeypatch.setenv("PPE_OID", oid)
    monkeypatch.setenv("PPE_EVIL", str(evil))
    spec = calc_project.calc_spec(forger=f'{{python}} -c "$PPE_FORGE" && {GOOD_AGENT}')
    spec["sandbox"] = "none"
    result = calc_project.explore("--variants", calc_project.variants(spec))
    out = result.stdout.str() + result.stderr.str()

    assert calc_project.git("cat-file", "blob", oid) == original, out  # the user's history means what it meant
    assert not (calc_project.path / ".git" / "objects" / oid[:2]).is_symlink(), out
    assert "forged" in out or "tamper" in out, out  # and it was reported


# A forged object in a planted pack (sandbox none).
#
# Git looks an id up in its packs before its loose objects, and never hashes a packed object again on an
# ordinary read.  The agent packs other content and rewrites the pack's index to name it with the id of the
# blob of the user's calc.py; only loose objects are checked.

FORGE_PACK = textwrap.dedent(
    """
    import glob, hashlib, os, shutil, struct, subprocess, tempfile
    objects, oid = os.environ["PPE_OBJECTS"], os.environ["PPE_OID"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    work = tempfile.mkdtemp()
    subprocess.run(["git", "init", "-q", work], check=True, env=env)
    body = b"def add(a, b):\\n    return a + b  # forged in a pack\\n"
    other = subprocess.run(["git", "-C", work, "hash-object", "-w", "--stdin"], input=body, check=True,
                           capture_output=True, env=env).stdout.strip()
    name = subprocess.run(["git", "-C", work, "pack-objects", "-q", work + "/p"], input=other + b"\\n",
                          check=True, capture_output=True, env=env).stdout.decode().strip()
    idx = bytearray(open(f"{work}/p-{name}.idx", "rb").read())
    target = bytes.fromhex(oid)
    for i in range(256):
        struct.pack_into(">I", idx, 8 + 4 * i, 1 if i >= target[0] else 0)
    idx[8 + 1024 : 8 + 1024 + 20] = target
    idx[-20:] = hashlib.sha1(bytes(idx[:-20])).digest()
    pack = os.path.join(objects, "pack")
    os.makedirs(pack, exist_ok=True)
    for path in glob.glob(f"{work}/p-{name}.*"):
        suffix = path.rsplit(".", 1)[1]
        if suffix == "idx":
            open(f"{pack}/pack-{name}.idx", "wb").write(idx)
        else:
            shutil.copy(path, f"{pack}/pack-{name}.{suffix}")
    """
)


def test_a_forged_object_in_a_planted_pack_is_found_and_undone(
    calc_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    oid = calc_project.git("rev-parse", "HEAD:calc.py").strip()
    original = calc_project.git("cat-file", "blob", oid)
    monkeypatch.setenv("PPE_FORGE", FORGE_PACK)
    monkeypatch.setenv("PPE_OBJECTS", str(calc_project.path / ".git" / "objects"))
    monkeypatch.setenv("PPE_OID", oid)
    spec = calc_project.calc_spec(forger=f'{{python}} -c "$PPE_FORGE" && {GOOD_AGENT}')
    spec["sandbox"] = "none"
    result = calc_project.explore("--variants", calc_project.variants(spec))
    out = result.stdout.str() + result.stderr.str()

    assert calc_project.git("cat-file", "blob", oid) == original, out  # the user's history means what it meant
    assert "forged" in out or "tamper" in out, out  # and it was reported


# A commit-graph whose entry for HEAD names another tree (sandbox none): git trusts the graph in walks.

FORGE_COMMIT_GRAPH = textwrap.dedent(
    """
    import hashlib, os, struct, subprocess
    repo = os.environ["PPE_REPO"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    def git(*args, input=None):
        return subprocess.run(["git", "-C", repo, *args], input=input, check=True, capture_output=True, env=env).stdout
    body = b"def add(a, b):\\n    return a + b  # forged in the commit-graph\\n"
    blob = git("hash-object", "-w", "--stdin", input=body).decode().strip()
    listing = [l for l in git("ls-tree", "HEAD").decode().splitlines() if not l.endswith("\tcalc.py")]
    listing.append(f"100644 blob {blob}\tcalc.py")
    tree = git("mktree", input=("\\n".join(listing) + "\\n").encode()).decode().strip()
    head = git("rev-parse", "HEAD").decode().strip()
    git("commit-graph", "write", "--reachable")
    path = os.path.join(repo, ".git", "objects", "info", "commit-graph")
    data = bytearray(open(path, "rb").read())
    chunks = data[6]
    table = {
        bytes(data[8 + 12 * i : 12 + 12 * i]): struct.unpack(">Q", data[12 + 12 * i : 20 + 12 * i])[0]
        for i in range(chunks + 1)
    }
    lookup, cdat = table[b"OIDL"], table[b"CDAT"]
    count = (cdat - lookup) // 20
    oids = [bytes(data[lookup + 20 * i: lookup + 20 * i + 20]).hex() for i in range(count)]
    i = oids.index(head)
    data[cdat + 36 * i: cdat + 36 * i + 20] = bytes.fromhex(tree)
    data[-20:] = hashlib.sha1(bytes(data[:-20])).digest()
    os.chmod(path, 0o644)
    open(path, "wb").write(data)
    """
)


def test_a_forged_commit_graph_is_found_and_moved_aside(calc_project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PPE_FORGE", FORGE_COMMIT_GRAPH)
    monkeypatch.setenv("PPE_REPO", str(calc_project.path))
    spec = calc_project.calc_spec(forger=f'{{python}} -c "$PPE_FORGE" && {GOOD_AGENT}')
    spec["sandbox"] = "none"
    result = calc_project.explore("--variants", calc_project.variants(spec))
    out = result.stdout.str() + result.stderr.str()

    graph = calc_project.path / ".git" / "objects" / "info" / "commit-graph"
    assert not graph.exists(), out  # git reads the commits themselves again
    tampering = calc_project.trials()["forger"]["tampering"]
    assert any("objects/info/commit-graph did not say what the objects say (forged)" in t for t in tampering), out


#: ``{python} wait_for.py PATTERN SECONDS`` (committed to the project): returns once a file matches, or after SECONDS.
WAIT_FOR = """
import glob, sys, time

end = time.monotonic() + float(sys.argv[2])
while not glob.glob(sys.argv[1]) and time.monotonic() < end:
    time.sleep(0.02)
"""


@pytest.mark.parametrize(
    "bystander_sandbox",
    ["none", pytest.param("bwrap", marks=pytest.mark.skipif(shutil.which("bwrap") is None, reason="no bubblewrap"))],
)
def test_a_main_checkout_change_is_not_blamed_on_a_trial_that_ran_beside_its_maker(
    root_env: Project, bystander_sandbox: str
) -> None:
    """Two agents at once: whichever is checked first must not carry the other's change as its own tampering.

    "maker" rewrites the main checkout's ``calc.py``, lets "bystander" end (a
    file in its worktree), and waits until the bystander's agent step was
    checked (its patch is written after the check). The bystander's check finds
    the change first; with ``protect_mode: fail`` it would fail the trial that
    made nothing. The change is put back and named on the bystander as a flag
    that says a trial of another worker ran beside it: which made it cannot be told.
    """
    user = root_env
    user.write({"wait_for.py": WAIT_FOR})
    user.commit("a helper the agents wait with")
    go = '"$EXPLORE_ROOT/.data/parallel_explorer/calc/worktrees/bystander/go"'
    maker = (
        f'{GOOD_AGENT} && echo pwned > "$EXPLORE_ROOT/calc.py" && touch {go}'
        ' && {python} wait_for.py "$EXPLORE_RESULTS/bystander.patch" 20'
    )
    bystander = f"{GOOD_AGENT} && {{python}} wait_for.py go 20 && rm go"
    spec = user.calc_spec(maker=maker, bystander={"agent": {"run": bystander}, "sandbox": bystander_sandbox})
    spec["sandbox"] = "none"
    spec["score"]["protect_mode"] = "fail"
    variants = user.variants(spec)
    before = full_state(user)

    result = user.explore("--variants", variants, "-n", "2")

    trials = user.trials()
    assert full_state(user) == before, "the change was put back"
    flags = " ".join(trials["bystander"]["flags"])
    assert "main checkout: calc.py changed" in flags, (trials["bystander"], result.stdout.str())
    assert "a trial of another xdist worker" in flags, flags
    assert trials["bystander"]["tampering"] == [], trials["bystander"]
    assert trials["bystander"]["status"] == "done" and trials["bystander"]["score"] == 1.0


#: Makes a_honest's saved record say its agent still runs (sandbox none): a change could then be its.
FORGE_RUNNING = """
import json, os, pathlib

path = pathlib.Path(os.environ["EXPLORE_RESULTS"], "a_honest_progress.json")
record = json.loads(path.read_text())
for step in record["steps"].values():
    step.pop("seconds", None)
    step.pop("repo_checked", None)
path.write_text(json.dumps(record))
"""


def test_a_record_forged_to_share_the_blame_does_not_hide_a_change_from_one_process(
    root_env: Project, tmp_path: Path
) -> None:
    """In one process the trials it ran are known first-hand: a rewritten progress file does not make them suspects.

    "forger" runs after a_honest (one process, no xdist), writes the main
    checkout, and rewrites a_honest's progress file so that its agent seems to
    run still: the change must stay forger's tampering, and fail it.
    """
    user = root_env
    script = tmp_path / "forge.py"
    script.write_text(FORGE_RUNNING)
    spec = spec_for(user, "none", [])
    attack = f'{BAD_AGENT} && echo pwned > "$EXPLORE_ROOT/calc.py" && {{python}} {script}'
    spec["variants"]["forger"] = {"description": "forger", "agent": {"run": attack}}
    spec["score"]["protect_mode"] = "fail"

    result = user.explore("--variants", user.variants(spec))

    forger = user.trials()["forger"]
    assert "main checkout: calc.py changed" in forger["tampering"], (forger, result.stdout.str())
    assert forger["status"] == "agent_failed"
    assert user.trials()["a_honest"]["tampering"] == []
