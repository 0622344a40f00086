"""Hostile agents: each tries to forge its score or harm the user's repository, and fails.

Every attacker makes the same honest change (``BAD_AGENT``: ``add`` returns
``a * b``, which passes one test of three, and a hold-out test that it
fails), then attacks.  So the honest score is known: 1/4 of the visible
and hold-out tests.  For each attack: the score equals the honest score, the
trial names the tampering, the user's repository (refs, HEAD, config,
hooks, exclude, and the working tree byte for byte, with uncommitted and
untracked work in it) is as it was, and no process is left.  Each run is
made with the sandbox (bubblewrap) and without; attacks that only the
sandbox stops say so.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.explore_testing import BAD_AGENT, Project

#: The honest score of every attacker: of test_add, test_add_zero, test_negative and the hold-out test,
#: ``a * b`` passes only test_add_zero.
HONEST_SCORE = 0.25

HOLDOUT_TEST = "from calc import add\n\ndef test_hidden():\n    assert add(2, 2) == 4 and add(2, 3) == 5\n"
FORGING_CONFTEST = (
    "import pytest\\n"
    "@pytest.hookimpl(hookwrapper=True)\\n"
    "def pytest_runtest_makereport(item, call):\\n"
    "    outcome = yield\\n"
    "    report = outcome.get_result()\\n"
    "    report.outcome = 'passed'\\n"
)

#: name -> (shell commands run after the honest change, what the trial's tampering must name).
#: The names of attacks on other trials' files or the main checkout are in SANDBOX_STOPS: in the
#: sandbox those writes fail, so there is nothing to undo (and nothing to name).  Attacks on git
#: (refs, hooks, filters, the ``.git`` link) hit the trial's private repository, which the plugin
#: never reads: nothing to undo or name, and the user's repository is untouched.
ATTACKS: dict[str, tuple[str, list[str]]] = {
    "conftest": (f"printf '{FORGING_CONFTEST}' > conftest.py", ["conftest.py"]),
    "nested_conftest": (f"printf '{FORGING_CONFTEST}' > tests/conftest.py", ["tests/conftest.py"]),
    "plugin_ini": (
        f"printf '{FORGING_CONFTEST}' > evil_plugin.py && printf '[pytest]\\naddopts = -p evil_plugin\\n' > pytest.ini",
        ["pytest.ini"],
    ),
    "pyproject": (
        'printf \'[project]\\nname = "calc"\\n\\n[tool.pytest.ini_options]\\n'
        'addopts = "--deselect tests/test_calc.py::test_add"\\n\' > pyproject.toml',
        ["pyproject.toml"],
    ),
    "sitecustomize": (
        'printf \'import os\\nos.environ["PYTEST_ADDOPTS"] = "-k zero"\\n\' > sitecustomize.py',
        ["sitecustomize.py"],
    ),
    "shadow_pytest": ("mkdir -p _pytest && printf 'raise SystemExit(0)\\n' > pytest.py", ["pytest.py"]),
    "edit_test_hidden": (
        "sed -i 's/assert add(1, 2) == 3/assert True/' tests/test_calc.py"
        " && git update-index --assume-unchanged tests/test_calc.py",
        ["tests/test_calc.py"],
    ),
    "skip_worktree": (
        "sed -i 's/== -3/== 2/' tests/test_calc.py && git update-index --skip-worktree tests/test_calc.py",
        ["tests/test_calc.py"],
    ),
    "exclude_conftest": (
        f"printf '{FORGING_CONFTEST}' > conftest.py"
        " && echo conftest.py >> $(git rev-parse --git-common-dir)/info/exclude && echo conftest.py >> .gitignore",
        ["conftest.py"],
    ),
    "rename_test": ("git mv tests/test_calc.py tests/test_renamed.py", ["tests/test_calc.py"]),
    "delete_tests": ("rm -r tests", ["tests/test_calc.py"]),
    "fake_holdout": (
        "mkdir -p holdout && printf 'def test_hidden():\\n    assert True\\n' > holdout/test_hidden.py",
        ["holdout"],
    ),
    "moved_head": (
        "git checkout -q -b evil && git -c user.name=x -c user.email=x commit -qam evil --allow-empty"
        " && git update-ref refs/heads/main HEAD",
        [],
    ),
    "planted_git": (
        "common=$(git rev-parse --git-common-dir)"
        " && printf '#!/bin/sh\\ntouch PWNED_PATH\\n' > $common/hooks/post-checkout"
        " && chmod +x $common/hooks/post-checkout"
        " && git config filter.evil.clean 'touch PWNED_PATH; cat'"
        " && git config filter.evil.smudge 'touch PWNED_PATH; cat'"
        " && git update-ref refs/tags/planted HEAD"
        " && printf '* filter=evil\\n' > .gitattributes",
        [],
    ),
    "deleted_git_link": ("rm -rf .git", []),
    "rewritten_git_link": ('rm -rf .git && echo "gitdir: $EXPLORE_ROOT/.git" > .git', []),
    "other_record": (
        # Runs after "a_honest" (no xdist: items run in order) and rewrites its finished record.
        "python3 -c \"import json,sys; p=sys.argv[1]; d=json.load(open(p)); d['score']=0.0; "
        "json.dump(d, open(p, 'w'))\" $EXPLORE_RESULTS/a_honest_progress.json",
        [],
    ),
    "escaped_process": (
        # A new session, so the agent's process group is not its own; the agent waits until it runs.
        '(setsid sh -c \'echo $$ > "$EXPLORE_PIDS/escaped.tmp" && mv "$EXPLORE_PIDS/escaped.tmp" '
        '"$EXPLORE_PIDS/escaped" && exec sleep 300\' < /dev/null > /dev/null 2>&1 &)'
        ' && until [ -e "$EXPLORE_PIDS/escaped" ] || [ ! -w "$EXPLORE_PIDS" ]; do :; done',
        [],
    ),
    "steal_holdout": ("cp $EXPLORE_ROOT/holdout/test_hidden.py stolen_holdout.py", []),
}
SANDBOX_STOPS = {
    "other_record",
    "escaped_process",
    "steal_holdout",
}


@pytest.fixture
def victim(calc_project: Project, tmp_path: Path) -> Project:
    """The calc project, a hold-out test, and user work that is not committed: the agents' target."""
    calc_project.write({"holdout/test_hidden.py": HOLDOUT_TEST})
    calc_project.write({".gitignore": "variants*.yaml\nrunpytest-*\nstdout\nstderr\nholdout/\nsecret.env\n"})
    calc_project.commit("hold-out is untracked")
    calc_project.write(
        {
            "calc.py": "def add(a, b):\n    raise NotImplementedError  # the user's uncommitted edit\n",
            "notes.txt": "untracked user work\n",
            "secret.env": "ignored user file\n",
        }
    )
    calc_project.git("add", "notes.txt")  # staged, too
    calc_project.write({"notes.txt": "untracked user work, edited after staging\n"})
    return calc_project


def repository_state(project: Project) -> dict[str, Any]:
    """Everything of the user's repository that no run may change."""
    common = project.path / ".git"
    exclude = [line for line in (common / "info" / "exclude").read_text().splitlines() if line]
    exclude.remove("/.data/parallel_explorer/") if "/.data/parallel_explorer/" in exclude else None
    files = {}
    for path in sorted(project.path.rglob("*")):
        relative = path.relative_to(project.path).as_posix()
        if relative.split("/")[0] in (".git", ".data", ".pytest_cache", "stdout", "stderr") or relative.startswith(
            "runpytest-"
        ):
            continue
        if path.is_file():
            files[relative] = hashlib.sha256(path.read_bytes()).hexdigest()
    return {
        "refs": sorted(
            line
            for line in project.git("for-each-ref", "--format=%(refname) %(objectname)").splitlines()
            if not line.startswith("refs/heads/explore/")
        ),
        "HEAD": (common / "HEAD").read_text(),
        "config": (common / "config").read_text(),
        "hooks": sorted(p.name for p in (common / "hooks").iterdir()),
        "exclude": exclude,
        "index": project.git("ls-files", "--stage"),
        "files": files,
    }


def spec_for(project: Project, sandbox: str, attacks: list[str], pwned: Path | None = None) -> dict[str, Any]:
    variants: dict[str, Any] = {"a_honest": BAD_AGENT}
    for name in attacks:
        variants[name] = f"{BAD_AGENT} && {ATTACKS[name][0]}".replace("PWNED_PATH", str(pwned))
    spec = project.calc_spec(**variants)
    spec["sandbox"] = sandbox
    spec["score"].update({"holdout": "holdout", "command": "{python} -m pytest -q -p no:cacheprovider tests holdout"})
    return spec


SANDBOXES = [
    "none",
    pytest.param(
        "bwrap", marks=pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")
    ),
]


@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_no_attack_forges_a_score_or_harms_the_repository(
    victim: Project, sandbox: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pids = tmp_path / "pids"
    pids.mkdir()
    pwned = tmp_path / "pwned"
    monkeypatch.setenv("EXPLORE_PIDS", str(pids))
    monkeypatch.setenv("EXPLORE_ROOT", str(victim.path))
    monkeypatch.setenv("EXPLORE_RESULTS", str(victim.experiment_dir() / "results"))
    variants = victim.variants(spec_for(victim, sandbox, list(ATTACKS), pwned))
    before = repository_state(victim)

    result = victim.explore("--variants", variants)

    trials = victim.trials()
    assert trials["a_honest"]["score"] == pytest.approx(HONEST_SCORE), result.stdout.str()
    assert trials["a_honest"]["tampering"] == []
    for name, (_, named) in ATTACKS.items():
        trial = trials[name]
        assert trial["score"] == pytest.approx(HONEST_SCORE), (name, trial["tampering"], trial["tests"])
        if sandbox == "none" or name not in SANDBOX_STOPS:
            for thing in named:
                assert thing in trial["tampering"], (name, trial["tampering"])
        # Score, branch and patch are one tree: the honest change to calc.py, whatever else the agent did.
        assert "return a * b" in victim.git("show", f"explore/calc/{name}:calc.py")
    # The terminal's ranking marks a trial whose tampering was undone (it has no notes column).
    result.stdout.fnmatch_lines(["* conftest *done *(tampering) *"])
    for name in ("deleted_git_link", "rewritten_git_link"):  # the folder's repository was made again, not left broken
        worktree = trials[name]["worktree"]
        assert victim.git("-C", worktree, "symbolic-ref", "HEAD").strip() == f"refs/heads/explore/calc/{name}"
    # Reading the hold-out tests from the main checkout is stopped only by the sandbox (they are hidden there).
    stolen = victim.git("ls-tree", "--name-only", "explore/calc/steal_holdout").split()
    assert ("stolen_holdout.py" in stolen) == (sandbox == "none")
    after = repository_state(victim)
    changed = {k: (before[k], v) for k, v in after.items() if v != before[k]}
    assert changed == {}, json.dumps(changed, indent=1)[-1500:]
    assert not pwned.exists(), "a hook or filter planted by an agent ran"
    if sandbox == "none":  # the finished record another trial rewrote is kept as its trial reported it
        assert "its record on disk was changed after the trial ended" in " ".join(trials["a_honest"]["flags"])
    for pid_file in pids.iterdir():
        pid = int(pid_file.read_text())
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert list(pids.iterdir()) or sandbox == "bwrap", "the escaping agent did not start its process"


def test_protect_mode_fail_fails_a_tampering_trial(victim: Project) -> None:
    spec = spec_for(victim, "none", ["conftest"])
    spec["score"]["protect_mode"] = "fail"
    result = victim.explore("--variants", victim.variants(spec))

    assert result.ret == 1
    trial = victim.trials()["conftest"]
    assert trial["status"] == "agent_failed" and "tampering" in trial["reason"]
    assert trial["score"] == pytest.approx(HONEST_SCORE)
    result.stdout.fnmatch_lines(["*conftest*agent_failed: tampering*"])


def test_a_rerun_keeps_a_users_commits_on_a_trial_branch_and_a_dirty_worktree(victim: Project) -> None:
    spec = victim.variants(spec_for(victim, "none", []))
    assert victim.explore("--variants", spec).ret == 0
    worktree = victim.experiment_dir() / "worktrees" / "a_honest"
    tree = victim.git("rev-parse", "explore/calc/a_honest^{tree}").strip()
    user_commit = victim.git("commit-tree", tree, "-p", "explore/calc/a_honest", "-m", "the user's commit").strip()
    victim.git("update-ref", "refs/heads/explore/calc/a_honest", user_commit)
    (worktree / "calc.py").write_text("# uncommitted\n")

    result = victim.explore("--variants", spec, "--explore-rerun")

    assert result.ret == 0, result.stdout.str()
    kept = [b for b in victim.git("branch", "--format=%(refname:short)").split() if ".kept-" in b]
    assert [victim.git("rev-parse", b).strip() for b in kept] == [user_commit], result.stdout.str()
    moved = list((victim.experiment_dir() / "kept").iterdir())
    assert len(moved) == 1 and (moved[0] / "calc.py").read_text() == "# uncommitted\n"
    assert any("kept" in flag for flag in victim.trials()["a_honest"]["flags"])


#: Tests an agent adds to read the user's secrets during scoring: from its own environment, and from
#: every process it can see in /proc (the plugin's own process has the whole environment).
LEAK_TESTS = (
    "import os, glob\\n\\n"
    "def test_env():\\n"
    "    assert 'hunter2' not in str(os.environ)\\n\\n"
    "def test_proc():\\n"
    "    seen = []\\n"
    "    for path in glob.glob('/proc/*/environ'):\\n"
    "        try:\\n"
    "            seen.append(open(path, 'rb').read())\\n"
    "        except OSError:\\n"
    "            pass\\n"
    "    assert not any(b'hunter2' in s for s in seen)\\n"
)


@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_the_scoring_run_sees_no_secrets(victim: Project, sandbox: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MY_SERVICE_CREDENTIAL", "hunter2")
    monkeypatch.setenv("PYTEST_ADDOPTS", "--deselect=tests/test_calc.py::test_add")
    spec = spec_for(victim, sandbox, [])
    spec["variants"]["leaky"] = {"agent": {"run": f'{BAD_AGENT} && printf "{LEAK_TESTS}" > tests/test_leak.py'}}
    result = victim.explore("--variants", victim.variants(spec))

    assert "leaky" in victim.trials(), result.stdout.str()
    cases = victim.trials()["leaky"]["tests"]["cases"]
    assert cases["tests/test_leak.py::test_env"]["outcome"] == "passed", result.stdout.str()
    # Reading another process's environment in /proc is stopped only by the sandbox's pid namespace.
    leaked = "failed" if sandbox == "none" else "passed"
    assert cases["tests/test_leak.py::test_proc"]["outcome"] == leaked
    assert len(cases) == 6  # PYTEST_ADDOPTS of the user's shell did not deselect anything
    assert victim.trials()["leaky"]["score"] == pytest.approx(HONEST_SCORE)  # added tests do not count
    assert json.dumps(victim.trials()).count("hunter2") == 0


@pytest.fixture
def without_bwrap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A PATH holding every program of this machine's PATH except bubblewrap."""
    bin_dir = tmp_path / "bin-without-bwrap"
    bin_dir.mkdir()
    for folder in os.environ["PATH"].split(os.pathsep):
        for program in Path(folder).glob("*") if Path(folder).is_dir() else ():
            target = bin_dir / program.name
            if program.name != "bwrap" and not target.exists():
                target.symlink_to(program)
    monkeypatch.setenv("PATH", str(bin_dir))


def test_without_bubblewrap_auto_warns_and_bwrap_is_refused(victim: Project, without_bwrap: None) -> None:
    auto = victim.explore("--variants", victim.variants(spec_for(victim, "auto", [])))

    assert auto.ret == 0, auto.stdout.str()
    auto.stdout.fnmatch_lines(["*warning: no sandbox: bubblewrap (bwrap) is not installed*"])
    summary = (victim.experiment_dir() / "results" / "summary.md").read_text()
    assert "## Warning: no sandbox" in summary and "- sandbox: none (bubblewrap not found)" in summary

    required = victim.explore("--variants", victim.variants(spec_for(victim, "bwrap", []), name="variants-bwrap.yaml"))
    assert required.ret == pytest.ExitCode.USAGE_ERROR
    required.stderr.fnmatch_lines(["*sandbox: 'bwrap' needs bubblewrap, which is not installed*"])
