"""Hostile agents against the scored run itself: its plugins, its configuration, its outcomes, and the summary.

Each attacker's code is the one that runs in the scoring pytest process (an
implementation, a planted plugin, a rewritten configuration).  The honest
change scores ``HONEST_SCORE``; no attack may score more, and each is named
where the plugin can see it (tampering, a fault of the run).
"""

from __future__ import annotations

import shlex
import stat
import sys
from pathlib import Path

import pytest

from tests.explore_testing import BAD_AGENT, Project
from tests.test_attacks import HONEST_SCORE, SANDBOXES, spec_for, victim  # noqa: F401

#: A plugin that reports every test as passed, wherever pytest loads it from.
FORGING_PLUGIN = (
    "import pytest\n"
    "@pytest.hookimpl(hookwrapper=True)\n"
    "def pytest_runtest_makereport(item, call):\n"
    "    outcome = yield\n"
    "    outcome.get_result().outcome = 'passed'\n"
)
METADATA = "Metadata-Version: 2.1\nName: evil\nVersion: 1.0\n"
#: ``add`` right only where ``a * b`` is, and a way of not counting everything else.
PARTIAL = "def add(a, b):\n    if (a, b) == (0, 0):\n        return 0\n"
#: Writes a junit report of four passes at the path pytest was given, then leaves before any test runs.
FORGED_JUNIT = (
    "import os, sys\n"
    "CASES = [('tests/test_calc.py', 'tests.test_calc', 'test_add'),\n"
    "         ('tests/test_calc.py', 'tests.test_calc', 'test_add_zero'),\n"
    "         ('tests/test_calc.py', 'tests.test_calc.TestNegative', 'test_negative'),\n"
    "         ('holdout/test_hidden.py', 'holdout.test_hidden', 'test_hidden')]\n"
    "for i, arg in enumerate(sys.argv):\n"
    "    path = arg.split('=', 1)[1] if arg.startswith('--junitxml=') else "
    "sys.argv[i + 1] if arg == '--junitxml' else None\n"
    "    if path:\n"
    '        cases = \'\'.join(f\'<testcase file="{f}" classname="{c}" name="{n}" time="0"/>\' for f, c, n in CASES)\n'
    "        open(path, 'w').write(f'<testsuites><testsuite tests=\"4\">{cases}</testsuite></testsuites>')\n"
    "        os._exit(0)\n"
    "def add(a, b):\n    return a * b\n"
)
#: Keeps a copy of every pipe it can write to, and writes four passes on them when the process exits,
#: after the reporter's own lines.
PIPE_WRITER = (
    "import atexit, json, os\n"
    "def _pipes():\n"
    "    for fd in range(3, 256):\n"
    "        try:\n"
    "            if os.readlink(f'/proc/self/fd/{fd}').startswith('pipe:'):\n"
    "                yield os.dup(fd)\n"
    "        except OSError:\n"
    "            pass\n"
    "COPIES = list(_pipes())\n"
    "TESTS = ['tests/test_calc.py::test_add', 'tests/test_calc.py::test_add_zero',\n"
    "         'tests/test_calc.py::TestNegative::test_negative', 'holdout/test_hidden.py::test_hidden']\n"
    "@atexit.register\n"
    "def _forge():\n"
    "    lines = ''.join(json.dumps({'test': t, 'outcome': 'passed', 'duration': 0}) + '\\n' for t in TESTS)\n"
    "    for fd in COPIES:\n"
    "        try:\n"
    "            os.write(fd, lines.encode())\n"
    "        except OSError:\n"
    "            pass\n"
    "def add(a, b):\n    return a * b\n"
)
HTML_NAME = "<img src=x onerror=alert(1)>.py"
#: Byte code of the right ``add``, imported instead of the source: calc.py's cached byte code with a hash
#: Python never checks, and a module that exists only as byte code (calc.py imports it when it can).
COMPILE = (
    "import importlib.util, os, py_compile\n"
    "open('_right.py', 'w').write('def add(a, b):\\n    return a + b\\n')\n"
    "unchecked = py_compile.PycInvalidationMode.UNCHECKED_HASH\n"
    "py_compile.compile('_right.py', cfile=importlib.util.cache_from_source('calc.py'), invalidation_mode=unchecked)\n"
    "py_compile.compile('_right.py', cfile='calc_fast.pyc')\n"
    "os.remove('_right.py')\n"
)
SOURCELESS = "try:\n    from calc_fast import add\nexcept ImportError:\n    def add(a, b):\n        return a * b\n"


def write_files(files: dict[str, str]) -> str:
    """A shell command that writes ``files`` (path -> text) in the agent's worktree."""
    return " && ".join(
        f"mkdir -p {shlex.quote(str(Path(path).parent))} && printf '%s' {shlex.quote(text)} > {shlex.quote(path)}"
        for path, text in files.items()
    )


#: name -> (the files the agent writes after the honest change, what its tampering must name).
ATTACKS: dict[str, tuple[dict[str, str], list[str]]] = {
    # Autoloaded from the checkout, first on the path; and under the name of a plugin the run loads by name.
    "dist_info": (
        {
            "evil_plugin.py": FORGING_PLUGIN,
            "evil-1.0.dist-info/METADATA": METADATA,
            "evil-1.0.dist-info/entry_points.txt": "[pytest11]\nevil = evil_plugin\n",
        },
        ["evil-1.0.dist-info/entry_points.txt"],
    ),
    "dist_info_named": (
        {
            "evil_plugin.py": FORGING_PLUGIN,
            "Evil-1.0.DIST-INFO/METADATA": METADATA,
            "Evil-1.0.DIST-INFO/entry_points.txt": "[pytest11]\nxdist.plugin = evil_plugin\n",
        },
        ["Evil-1.0.DIST-INFO/entry_points.txt"],
    ),
    # The pytest configuration in forms a line-based reading does not take for [tool.pytest...].
    "pyproject_tool_table": (
        {"evil_plugin.py": FORGING_PLUGIN, "pyproject.toml": '[tool]\npytest.ini_options.addopts = "-p evil_plugin"\n'},
        ["pyproject.toml"],
    ),
    "pyproject_inline_table": (
        {
            "evil_plugin.py": FORGING_PLUGIN,
            "pyproject.toml": 'tool = {pytest = {ini_options = {addopts = "-p evil_plugin"}}}\n',
        },
        ["pyproject.toml"],
    ),
    "pyproject_quoted_keys": (
        {
            "evil_plugin.py": FORGING_PLUGIN,
            "pyproject.toml": '[ "tool" . "pytest" . "ini_options" ]\naddopts = "-p evil_plugin"\n',
        },
        ["pyproject.toml"],
    ),
    # What is not implemented does not count: skipped, or expected to fail.
    "skiptest_subclass": (
        {"calc.py": f"import unittest\nclass Later(unittest.SkipTest):\n    pass\n{PARTIAL}    raise Later('later')\n"},
        [],
    ),
    "xfail": ({"calc.py": f"import pytest\n{PARTIAL}    pytest.xfail('later')\n"}, []),
    "module_skip": (
        {
            "calc.py": f"{PARTIAL}    from calc_todo import add as todo\n    return todo(a, b)\n",
            "calc_todo.py": "import pytest\npytest.skip('not implemented yet', allow_module_level=True)\n",
        },
        [],
    ),
    "forged_junit": ({"calc.py": FORGED_JUNIT}, []),
    "outcome_pipe_written": ({"calc.py": PIPE_WRITER}, []),
    "html_file_name": ({HTML_NAME: "# a file name is agent text too\n"}, []),
}


@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_no_attack_on_the_scored_run_scores_more_than_the_honest_change(victim: Project, sandbox: str) -> None:  # noqa: F811
    spec = spec_for(victim, sandbox, [])
    for name, (files, _) in ATTACKS.items():
        spec["variants"][name] = {"agent": {"run": f"{BAD_AGENT} && {write_files(files)}"}}
    compiled = f"python3 -c {shlex.quote(COMPILE)}"
    spec["variants"]["cached_bytecode"] = {"agent": {"run": f"{BAD_AGENT} && {compiled}"}}
    spec["variants"]["sourceless_module"] = {"agent": {"run": f"{write_files({'calc.py': SOURCELESS})} && {compiled}"}}
    result = victim.explore("--variants", victim.variants(spec))

    trials = victim.trials()
    assert trials["a_honest"]["score"] == pytest.approx(HONEST_SCORE), result.stdout.str()
    attackers = [*ATTACKS, "cached_bytecode", "sourceless_module"]
    forged = {n: trials[n]["score"] for n in attackers if trials[n]["score"] > HONEST_SCORE}
    assert forged == {}, {n: trials[n]["tests"]["cases"] for n in forged}
    # Byte code is never scored: what runs is the source that was read, diffed and checked.
    cached = f"__pycache__/calc.{sys.implementation.cache_tag}.pyc"
    assert cached in trials["cached_bytecode"]["tampering"], trials["cached_bytecode"]
    assert "calc_fast.pyc" in trials["sourceless_module"]["tampering"], trials["sourceless_module"]
    for name, (_, named) in ATTACKS.items():
        for thing in named:
            assert thing in trials[name]["tampering"], (name, trials[name]["tampering"])
    # The forged junit report is kept (for people to read) and named as a fault of the run.
    assert any("junit report disagrees" in flag for flag in trials["forged_junit"]["flags"]), trials["forged_junit"]
    assert any("reported more than once" in flag for flag in trials["outcome_pipe_written"]["flags"])
    # Each judged test that was skipped, xfailed or never ran counts, as not passed.
    for name in ("skiptest_subclass", "xfail", "module_skip", "forged_junit"):
        assert trials[name]["tests"]["verdicts"].get("tests/test_calc.py::test_add") in ("still_failing", "removed")
    results = victim.experiment_dir() / "results"
    summary, report = (results / "summary.md").read_text(), (results / "report.html").read_text()
    assert "<img" not in summary and "&lt;img src=x onerror=alert(1)&gt;.py" in summary
    assert "<img" not in report


#: Code the suite runs in the scoring checkout (at import of calc.py), left for whichever trial is scored in the
#: same folder next: name -> payload. OUTSIDE is a folder of the user's, SECRET a file of theirs.
LEFTOVERS = {
    # Beside the checkout: pytest would load it for a run without configuration (``-c /dev/null``).
    "parent_conftest": f"Path.cwd().parent.joinpath('conftest.py').write_text({FORGING_PLUGIN!r})",
    "edited_tests": (
        f"Path('tests/conftest.py').write_text({FORGING_PLUGIN!r})\n"
        "t = Path('tests/test_calc.py')\n"
        "t.write_text(t.read_text().replace('assert add', 'assert True or add'))"
    ),
    # The checkout's folders after the run: a link for the plugin to follow, a FIFO to block on, depth to recurse.
    "linked_out": "atexit.register(lambda: (os.rename('../out', '../out.old'), os.symlink(OUTSIDE, '../out')))",
    "linked_checkout": (
        "here = os.getcwd()\natexit.register(lambda: (os.rename(here, here + '.old'), os.symlink(OUTSIDE, here)))"
    ),
    "fifo_out": "atexit.register(lambda: (os.rename('../out', '../out.old'), os.mkfifo('../out')))",
    "deep_folders": "here = os.getcwd()\nfor _ in range(1500):\n    os.mkdir('d')\n    os.chdir('d')\nos.chdir(here)",
    # The junit report made a link to a file of the user's, for the plugin to copy into results/.
    "linked_junit": (
        "junit = '../out/junit.xml'\n"
        "atexit.register(lambda: (os.replace(junit, junit + '.real'), os.symlink(SECRET, junit)))"
    ),
}


def test_nothing_a_suite_leaves_in_its_scoring_folder_reaches_the_next_trial_or_your_files(
    victim: Project,  # noqa: F811
    tmp_path: Path,
) -> None:
    outside, secret = tmp_path / "outside", tmp_path / "secret.txt"
    outside.mkdir(mode=0o755)
    (outside / "precious.txt").write_text("the user's\n")
    secret.write_text("SECRET-TOKEN\n")
    spec = spec_for(victim, "none", [])
    # No xdist: the trials are scored one after the other, each attacker's leftovers met by the next one.
    spec["variants"] = {}
    for name, payload in LEFTOVERS.items():
        code = f"import atexit, os\nfrom pathlib import Path\nOUTSIDE, SECRET = {str(outside)!r}, {str(secret)!r}\n"
        calc = f"{code}{payload}\ndef add(a, b):\n    return a * b\n"
        spec["variants"][f"{name}_1"] = {"agent": {"run": write_files({"calc.py": calc})}}
        spec["variants"][f"{name}_2"] = {"agent": {"run": BAD_AGENT}}
    result = victim.explore("--variants", victim.variants(spec), "--explore-no-cache")

    trials = victim.trials()
    scores = {name: trials[name]["score"] for name in trials}
    assert all(scores[f"{n}_2"] == pytest.approx(HONEST_SCORE) for n in LEFTOVERS), (scores, result.stdout.str())
    assert all(scores[f"{n}_1"] <= HONEST_SCORE for n in LEFTOVERS), scores
    assert all(trials[f"{n}_2"]["status"] == "done" for n in LEFTOVERS), {n: t["reason"] for n, t in trials.items()}
    assert sorted(p.name for p in outside.iterdir()) == ["precious.txt"]
    assert stat.S_IMODE(outside.stat().st_mode) == 0o755
    results = victim.experiment_dir() / "results"
    assert not any(b"SECRET-TOKEN" in f.read_bytes() for f in results.iterdir() if f.is_file())


#: calc.py, run by the suite (``tests`` imports it before pytest collects ``holdout``): the hold-out test
#: rewritten to pass (its mtime put back), a base test made to pass, or a forging conftest planted beside it.
IN_RUN_EDITS = {
    "rewrites_the_holdout": (
        "holdout/test_hidden.py",
        "import os\n"
        "from pathlib import Path\n"
        "_t = Path(__file__).parent / 'holdout' / 'test_hidden.py'\n"
        "if _t.exists():\n"
        "    _st = _t.stat()\n"
        "    _t.write_text('def test_hidden():\\n    pass\\n')\n"
        "    os.utime(_t, ns=(_st.st_atime_ns, _st.st_mtime_ns))\n",
    ),
    "plants_a_conftest": (
        "holdout/conftest.py",
        "from pathlib import Path\n"
        "_h = Path(__file__).parent / 'holdout'\n"
        f"if _h.is_dir():\n    (_h / 'conftest.py').write_text({FORGING_PLUGIN!r})\n",
    ),
}


@pytest.mark.parametrize("attack", sorted(IN_RUN_EDITS))
@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_code_under_test_that_edits_the_tests_before_they_are_collected_scores_0(
    victim: Project,  # noqa: F811
    sandbox: str,
    attack: str,
) -> None:
    path, code = IN_RUN_EDITS[attack]
    spec = spec_for(victim, sandbox, [])
    calc = code + "def add(a, b):\n    return a * b\n"
    spec["variants"]["editor"] = {"agent": {"run": write_files({"calc.py": calc})}}

    result = victim.explore("--variants", victim.variants(spec))

    trials = victim.trials()
    assert trials["a_honest"]["score"] == pytest.approx(HONEST_SCORE), result.stdout.str()
    editor = trials["editor"]
    assert editor["score"] == 0, editor["tests"]
    assert editor["reason"] == f"scored 0: the scored run changed its tests: {path}"
    assert f"{path} (changed while the suite ran)" in editor["tampering"]
