"""Review 9: hostile agents and suites against how a trial's files are recorded, its private repository,
the kept scoring checkout and the baseline reused between trials.

Each test asserts the property that should hold; a failing (red) test is an attack that worked.
All of them were red when written (see each test's comment for the mechanism); all are closed now:

* a default ACL that one suite leaves on the kept scoring checkout's folder (mode and inode unchanged)
  makes the next trial's files unreadable: the innocent trial scores 0 (sandboxed);
* a gitlink (submodule) of the base is recorded as deleted by every trial;
* files in a new folder holding a nested ``.git`` are dropped from the commit without a flag;
* an unsandboxed agent rewrites ``results/baseline.json`` (same key): its own and later trials' scores rise,
  even with ``score.cache: false``;
* a compiled extension module (``calc.<EXT_SUFFIX>``) is imported instead of the source: forged outcomes,
  neither tampering nor suspicious code;
* a ``.gitmodules`` the agent writes is committed into the user's repository, whose ``git fsck`` then fails;
* (root, no sandbox) an immutable file left in the kept checkout makes every later trial of that process an error;
* a symlink committed above a ``worktree.copy`` path makes the plugin copy the user's file outside the
  scoring checkout, with or without the sandbox.
"""

from __future__ import annotations

import base64
import json
import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.explore_testing import BAD_AGENT, Project
from tests.test_attacks import HONEST_SCORE, spec_for, victim  # noqa: F401
from tests.test_attacks_scoring import write_files

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")


def tree_of(project: Project, ref: str) -> dict[str, str]:
    """``path -> mode`` of every entry of ``ref``'s tree (recursively)."""
    listing = project.git("ls-tree", "-r", "-z", ref)
    entries = {}
    for record in filter(None, listing.split("\0")):
        meta, path = record.split("\t", 1)
        entries[path] = meta.split()[0]
    return entries


# --------------------------------------------------------------------------------------------------
# The kept scoring checkout: a folder's default ACL is not part of what the sweep compares.

#: Code under test (trial 1) that gives the scoring checkout's top folder a default ACL granting nothing:
#: the folder's mode and inode stay as noted, so the next trial scored in the same checkout gets it,
#: and every file the plugin writes there for that trial (its changed calc.py, the hold-out folder) is
#: created with no permission for anyone.  Without CAP_DAC_OVERRIDE (the sandbox, or any user but root)
#: the next suite cannot read them.
ACL_CALC = (
    "import os, struct\n"
    "if os.path.isdir('holdout') and os.path.isdir('tests'):  # in a scoring checkout\n"
    "    entries = [(0x01, 0), (0x04, 0), (0x20, 0)]  # ACL_USER_OBJ, ACL_GROUP_OBJ, ACL_OTHER: no permission\n"
    "    acl = struct.pack('<I', 2) + b''.join(struct.pack('<HHI', tag, perm, 0xFFFFFFFF) for tag, perm in entries)\n"
    "    os.setxattr('.', 'system.posix_acl_default', acl)\n"
    "def add(a, b):\n"
    "    return a + b\n"
)


@needs_bwrap
def test_a_default_acl_left_on_the_kept_scoring_checkout_does_not_reach_the_next_trial(
    victim: Project,  # noqa: F811
) -> None:
    spec = spec_for(victim, "bwrap", [])
    spec["variants"] = {
        "acl_1": {"agent": {"run": write_files({"calc.py": ACL_CALC})}},
        "innocent_2": {"agent": {"run": BAD_AGENT}},  # scored next, in the same kept checkout (one process)
    }
    result = victim.explore("--variants", victim.variants(spec), "--explore-no-cache")

    trial = victim.trials()["innocent_2"]
    assert trial["score"] == pytest.approx(HONEST_SCORE), (
        trial["status"],
        trial["reason"],
        trial["tests"]["cases"],
        result.stdout.str()[-2000:],
    )


# --------------------------------------------------------------------------------------------------
# Recording: what the branch holds must be exactly the files the agent left.


def test_a_submodule_of_the_base_is_not_deleted_by_an_innocent_trial(calc_project: Project) -> None:
    project = calc_project
    # A gitlink in the base (a vendored submodule, not checked out): every checkout shows an empty folder.
    commit = project.git("rev-parse", "HEAD").strip()
    project.git("update-index", "--add", "--cacheinfo", f"160000,{commit},vendored")
    project.git("commit", "-q", "-m", "a submodule")
    spec = project.calc_spec(innocent=BAD_AGENT)
    spec["sandbox"] = "none"
    result = project.explore("--variants", project.variants(spec))

    assert "innocent" in project.trials(), result.stdout.str()[-2000:]
    changed = project.git("diff", "--name-status", "main", "explore/calc/innocent").splitlines()
    assert changed == ["M\tcalc.py"], (changed, result.stdout.str()[-2000:])


def test_files_in_a_folder_holding_a_nested_git_are_not_dropped_without_a_word(victim: Project) -> None:  # noqa: F811
    spec = spec_for(victim, "none", [])
    nested = "mkdir -p lib && printf 'VALUE = 1\\n' > lib/helper.py && git init -q lib"
    spec["variants"]["nested_git"] = {"agent": {"run": f"{BAD_AGENT} && {nested}"}}
    result = victim.explore("--variants", victim.variants(spec))

    trial = victim.trials()["nested_git"]
    recorded = "lib/helper.py" in tree_of(victim, "explore/calc/nested_git")
    named = any("lib" in flag for flag in trial["flags"])
    assert recorded or named, (trial["flags"], tree_of(victim, "explore/calc/nested_git"), result.stdout.str()[-1500:])


# --------------------------------------------------------------------------------------------------
# The baseline reused between trials: an unsandboxed agent rewrites results/baseline.json.

#: Waits for the baseline to be saved, then keeps its key and judges only the test ``a * b`` passes.
FORGE_BASELINE = (
    "import json, os, time\n"
    "path = os.path.join(os.environ['EXPLORE_RESULTS'], 'baseline.json')\n"
    "end = time.time() + 120\n"
    "while time.time() < end:\n"
    "    try:\n"
    "        data = json.load(open(path))\n"
    "        break\n"
    "    except (OSError, ValueError):\n"
    "        time.sleep(0.05)\n"
    "data['judged'] = ['tests/test_calc.py::test_add_zero']\n"
    "data['flaky'] = sorted(set(data['cases']) - set(data['judged']))\n"
    "tmp = path + '.tmp'\n"
    "json.dump(data, open(tmp, 'w'))\n"
    "os.replace(tmp, path)\n"
)


def test_a_forged_baseline_file_does_not_raise_a_score(
    victim: Project,  # noqa: F811
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXPLORE_RESULTS", str(victim.experiment_dir() / "results"))
    spec = spec_for(victim, "none", [])
    spec["score"]["cache"] = False  # the README's answer to a score cache an agent could write: not enough here
    spec["variants"]["forger"] = {"agent": {"run": f"{BAD_AGENT} && python3 -c {_quote(FORGE_BASELINE)}"}}
    spec["variants"]["later"] = {"agent": {"run": BAD_AGENT}}
    result = victim.explore("--variants", victim.variants(spec))

    trials = victim.trials()
    scores = {name: trials[name]["score"] for name in ("a_honest", "forger", "later")}
    assert scores == {n: pytest.approx(HONEST_SCORE) for n in scores}, (scores, result.stdout.str()[-2000:])


def _quote(text: str) -> str:
    return shlex.quote(text)


# --------------------------------------------------------------------------------------------------
# The scored run imports a compiled extension module instead of the source that was read and checked.

#: Python run at import of ``calc`` from a C extension: reports every test as passed (what the
#: suspicious-code check finds at once in a .py file), and defines the honest ``add``.
EXTENSION_PAYLOAD = (
    "import _pytest.reports as _r\n"
    "_made = _r.TestReport.from_item_and_call.__func__\n"
    "def _forged(cls, item, call):\n"
    "    report = _made(cls, item, call)\n"
    "    report.outcome, report.longrepr = 'passed', None\n"
    "    return report\n"
    "_r.TestReport.from_item_and_call = classmethod(_forged)\n"
    "def add(a, b):\n"
    "    return a * b\n"
)
EXTENSION_C = (
    "#include <Python.h>\n"
    "static const char CODE[] = PAYLOAD;\n"
    'static struct PyModuleDef calc_module = {PyModuleDef_HEAD_INIT, "calc", NULL, -1, NULL};\n'
    "PyMODINIT_FUNC PyInit_calc(void) {\n"
    "    PyObject *module = PyModule_Create(&calc_module);\n"
    "    if (module == NULL) return NULL;\n"
    "    PyObject *names = PyModule_GetDict(module);\n"
    '    PyDict_SetItemString(names, "__builtins__", PyEval_GetBuiltins());\n'
    "    PyObject *done = PyRun_String(CODE, Py_file_input, names, names);\n"
    "    if (done == NULL) { Py_DECREF(module); return NULL; }\n"
    "    Py_DECREF(done);\n"
    "    return module;\n"
    "}\n"
).replace("PAYLOAD", json.dumps(EXTENSION_PAYLOAD))
#: Run with the scoring interpreter ({python}): builds calc<EXT_SUFFIX> in the worktree; calc.py stays the base's.
BUILD_EXTENSION = (
    "import os, subprocess, sysconfig\n"
    f"open('calc_ext.c', 'w').write({EXTENSION_C!r})\n"
    "include = sysconfig.get_paths()['include']\n"
    "target = 'calc' + sysconfig.get_config_var('EXT_SUFFIX')\n"
    "subprocess.run(['gcc', '-shared', '-fPIC', '-I' + include, 'calc_ext.c', '-o', target], check=True)\n"
    "os.remove('calc_ext.c')\n"
)


@pytest.mark.skipif(shutil.which("gcc") is None, reason="no C compiler")
def test_a_compiled_extension_module_imported_instead_of_the_source_is_not_a_silent_forgery(
    victim: Project,  # noqa: F811
) -> None:
    spec = spec_for(victim, "none", [])
    encoded = base64.b64encode(BUILD_EXTENSION.encode()).decode()
    build = f"{{python}} -c \"import base64; exec(base64.b64decode('{encoded}'))\""
    spec["variants"]["extension"] = {"agent": {"run": build}}
    result = victim.explore("--variants", victim.variants(spec))

    trial = victim.trials()["extension"]
    assert any(p.endswith(".so") for p in tree_of(victim, "explore/calc/extension")), result.stdout.str()[-2000:]
    # It either scores what its files earn, or says why it may not have: tampering or suspicious code.
    detected = bool(trial["tampering"] or trial["suspicious"])
    assert trial["score"] <= HONEST_SCORE or detected, (
        trial["score"],
        trial["tampering"],
        trial["suspicious"],
        trial["tests"]["cases"],
    )


# --------------------------------------------------------------------------------------------------
# The user's repository: objects a trial adds must not fail the user's own `git fsck`.

MALICIOUS_GITMODULES = '[submodule "../../../../.git/hooks"]\n\tpath = lib\n\turl = -u./payload\n'


def test_a_trials_commit_does_not_make_the_users_git_fsck_fail(victim: Project) -> None:  # noqa: F811
    fsck = ["git", "fsck", "--no-progress", "--no-dangling"]
    before = subprocess.run(fsck, cwd=victim.path, capture_output=True, text=True)
    spec = spec_for(victim, "bwrap" if shutil.which("bwrap") else "none", [])
    spec["variants"]["gitmodules"] = {
        "agent": {"run": f"{BAD_AGENT} && {write_files({'.gitmodules': MALICIOUS_GITMODULES})}"}
    }
    result = victim.explore("--variants", victim.variants(spec))

    assert ".gitmodules" in tree_of(victim, "explore/calc/gitmodules") or "gitmodules" in " ".join(
        victim.trials()["gitmodules"]["flags"]
    ), result.stdout.str()[-1500:]
    after = subprocess.run(fsck, cwd=victim.path, capture_output=True, text=True)
    assert (after.returncode, after.stderr) == (before.returncode, before.stderr), after.stderr


# --------------------------------------------------------------------------------------------------
# The kept scoring checkout, without a sandbox and run as root: an immutable file left by one suite.


@pytest.mark.skipif(shutil.which("chattr") is None, reason="no chattr")
def test_an_immutable_file_left_in_the_kept_checkout_does_not_lose_the_next_trials_result(
    victim: Project,  # noqa: F811
    tmp_path: Path,
) -> None:

    if os.geteuid() != 0:
        pytest.skip("only root (CAP_LINUX_IMMUTABLE) can mark a file immutable")
    where = tmp_path / "checkout-of-the-attack"
    calc = (
        "import os, subprocess\n"
        "if os.path.isdir('holdout') and os.path.isdir('tests'):\n"
        f"    open({str(where)!r}, 'w').write(os.getcwd())\n"
        "    subprocess.run(['chattr', '+i', 'calc.py'])\n"
        "def add(a, b):\n"
        "    return a + b\n"
    )
    spec = spec_for(victim, "none", [])
    spec["variants"] = {
        "immutable_1": {"agent": {"run": write_files({"calc.py": calc})}},
        "innocent_2": {"agent": {"run": BAD_AGENT}},
    }
    try:
        result = victim.explore("--variants", victim.variants(spec), "--explore-no-cache")
        trials = victim.trials()
    finally:
        if where.exists():  # let the folder be removed again
            subprocess.run(["chattr", "-R", "-i", where.read_text()], capture_output=True)
            shutil.rmtree(Path(where.read_text()).parent, ignore_errors=True)  # left behind when the removal failed
    assert where.exists(), "the attack did not run"
    trial = trials["innocent_2"]
    assert (trial["status"], trial["score"]) == ("done", pytest.approx(HONEST_SCORE)), (
        trial["status"],
        trial["reason"],
        result.stdout.str()[-1500:],
    )


# --------------------------------------------------------------------------------------------------
# worktree.copy in the scoring checkout: the plugin copies the user's file through a link the agent committed.


@pytest.mark.parametrize("sandbox", ["none", pytest.param("bwrap", marks=needs_bwrap)])
def test_a_committed_link_above_a_copied_file_leads_no_write_outside_the_checkout(
    victim: Project,  # noqa: F811
    tmp_path: Path,
    sandbox: str,
) -> None:
    outside = tmp_path / "outside"  # any folder the user can write: their home, another repository's .git ...
    outside.mkdir()
    victim.write({"conf/local.env": "API_URL=http://localhost\n"})  # the user's untracked set-up file
    victim.write({".gitignore": (victim.path / ".gitignore").read_text() + "conf/\n"})
    victim.git("add", ".gitignore")
    victim.git("commit", "-q", "-m", "ignore conf", "--", ".gitignore")
    spec = spec_for(victim, sandbox, [])
    spec["worktree"] = {"copy": ["conf/local.env"]}
    # The link's target need not exist where the agent runs (in the sandbox it does not): it is only a name.
    spec["variants"]["link_above_copy"] = {"agent": {"run": f"{BAD_AGENT} && rm -rf conf && ln -s {outside} conf"}}
    result = victim.explore("--variants", victim.variants(spec))

    assert tree_of(victim, "explore/calc/link_above_copy").get("conf") == "120000", result.stdout.str()[-1500:]
    assert sorted(p.name for p in outside.iterdir()) == [], result.stdout.str()[-1500:]
