"""Scoring: the worktree's code is what gets tested; metrics from hooks and commands; unjudgeable suites."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.explore_testing import GOOD_AGENT, Project

PACKAGE_TEST = textwrap.dedent(
    """
    import mypkg

    def test_the_worktree_code_is_imported():
        assert mypkg.where() == "worktree"
    """
)
AGENT_WRITES_WORKTREE = 'sed -i \'s/"main"/"worktree"/\' {module}'


def make_venv_with_editable_install(path: Path, project: Path) -> Path:
    """A venv that sees this environment's packages and has ``project`` installed in editable mode."""
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True)
    venv_python = path / "bin" / "python"
    venv_site = subprocess.run(
        [str(venv_python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # Everything this interpreter can import (this plugin included), without this project.
    Path(venv_site, "outer.pth").write_text("\n".join(p for p in sys.path if p and Path(p).is_dir()) + "\n")
    subprocess.run(
        [
            str(venv_python),
            "-m",
            "pip",
            "install",
            "-q",
            "--no-index",
            "--no-build-isolation",
            "--no-deps",
            "-e",
            str(project),
        ],
        check=True,
        capture_output=True,
    )
    return venv_python


@pytest.mark.parametrize(
    ("layout", "module", "run_tests_from"),
    [
        # src layout: an editable install points at the main checkout's src/.
        ("src", "src/mypkg/__init__.py", "."),
        # flat layout, suite started from a subdirectory so the cwd is no help.
        ("flat", "mypkg/__init__.py", "tests"),
    ],
)
def test_the_worktree_code_is_scored_even_when_the_project_is_installed(
    project: Project, tmp_path_factory: pytest.TempPathFactory, layout: str, module: str, run_tests_from: str
) -> None:
    project.write(
        {
            module: 'def where():\n    return "main"\n',
            "tests/test_where.py": PACKAGE_TEST,
            "pyproject.toml": textwrap.dedent(
                f"""
                [build-system]
                requires = ["setuptools>=64"]
                build-backend = "setuptools.build_meta"
                [project]
                name = "mypkg"
                version = "0"
                [tool.setuptools]
                packages = ["mypkg"]
                {'package-dir = {"" = "src"}' if layout == "src" else ""}
                """
            ),
            ".gitignore": "variants.yaml\nrunpytest-*\nstdout\nstderr\n*.egg-info/\nbuild/\n",
        }
    )
    project.commit()
    venv_python = make_venv_with_editable_install(tmp_path_factory.mktemp("venv"), project.path)
    target = "tests" if run_tests_from == "." else "."
    score = f"cd {run_tests_from} && {venv_python} -m pytest -q -p no:cacheprovider {target}"
    spec = project.calc_spec(fixed=AGENT_WRITES_WORKTREE.format(module=module))
    spec["score"]["command"] = score
    spec["sandbox"] = "none"  # this venv lives in /tmp, which the sandbox makes private
    result = project.explore("--variants", project.variants(spec))

    assert result.ret == 0, result.stdout.str()
    trial = project.trials()["fixed"]
    assert (trial["tests"]["passed"], trial["tests"]["failed"]) == (1, 0)
    # The same command by hand, without the plugin's import path, tests the installed main checkout:
    # so the pass above is the worktree's doing.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    by_hand = subprocess.run(score, shell=True, cwd=trial["worktree"], env=env, capture_output=True, text=True)
    assert by_hand.returncode == 1, by_hand.stdout
    assert "'main' == 'worktree'" in by_hand.stdout


def test_metrics_from_a_conftest_hook_and_a_yaml_command_are_recorded_and_weighted(project: Project) -> None:
    project.write(
        {
            "calc.py": "def add(a, b):\n    raise NotImplementedError\n",
            "tests/test_calc.py": "from calc import add\n\ndef test_add():\n    assert add(1, 2) == 3\n",
            "conftest.py": textwrap.dedent(
                """
                def pytest_explore_score(trial, checkout):
                    return {"calc_bytes": float(len((checkout / "calc.py").read_bytes()))}
                """
            ),
            ".gitignore": "variants.yaml\nrunpytest-*\nstdout\nstderr\n",
        }
    )
    project.commit()
    spec = project.calc_spec(good=GOOD_AGENT)
    spec["score"]["metrics"] = {"lines": {"command": "wc -l < calc.py", "weight": 0.5}}
    # calc_byts: a typo, which counts 0 and is named in the trial's notes.
    spec["score"]["weights"] = {"tests_pass_rate": 1.0, "calc_bytes": 0.01, "calc_byts": 5.0}
    result = project.explore("--variants", project.variants(spec))

    assert result.ret == 0, result.stdout.str()
    trial = project.trials()["good"]
    size = len("def add(a, b):\n    return a + b\n")
    assert trial["metrics"]["calc_bytes"] == size
    assert trial["metrics"]["lines"] == 2
    # The explicit weights, plus the metric's own weight.
    assert trial["score"] == pytest.approx(1.0 + 0.01 * size + 0.5 * 2)
    summary = (project.experiment_dir() / "results" / "summary.md").read_text()
    assert f"calc_bytes = {size}" in summary
    assert "lines = 2" in summary
    [flag] = [f for f in trial["flags"] if f.startswith("score.weights")]
    assert flag.startswith("score.weights: no metric named 'calc_byts'; counted as 0 (the metrics: added, broken, ")
    assert "calc_bytes, " in flag


def test_a_metric_command_that_floods_its_output_is_stopped_at_the_output_limit(calc_project: Project) -> None:
    """It runs the agent's code: what it prints goes through a file, never all into the plugin's memory."""
    spec = calc_project.calc_spec(good=GOOD_AGENT)
    spec["limits"] = {"output": "1M"}
    flood = "import sys; sys.stdout.write('9' * (8 << 20)); print(); print(7)"
    spec["score"]["metrics"] = {"flood": {"command": f'{{python}} -c "{flood}"'}, "fine": {"command": "echo 3"}}
    result = calc_project.explore("--variants", calc_project.variants(spec))

    assert result.ret == 0, result.stdout.str()
    trial = calc_project.trials()["good"]
    assert trial["status"] == "done" and trial["metrics"]["fine"] == 3
    assert "flood" not in trial["metrics"]
    assert "metric 'flood' hit a limit (output 1M)" in trial["flags"]


@pytest.mark.parametrize(
    ("command", "problem"),
    [
        ("{python} -m pytest -q -p no:cacheprovider tests/nothing_here.py", "did not start"),
        ("{python} -m pytest -q -p no:cacheprovider -k no_such_test tests", "collected no tests"),
        # Not pytest: the exit code is the verdict, but the shell's 127 says the command never ran.
        ("no-such-test-runner --all", "did not start (exit 127"),
    ],
)
def test_a_suite_that_cannot_be_judged_scores_zero_and_says_so(
    calc_project: Project, command: str, problem: str
) -> None:
    spec = calc_project.calc_spec(good=GOOD_AGENT)
    spec["score"]["command"] = command
    result = calc_project.explore("--variants", calc_project.variants(spec))

    assert result.ret == 1
    trial = calc_project.trials()["good"]
    assert trial["score"] == 0
    assert problem in trial["tests"]["problem"]
    assert problem in trial["reason"]
    result.stdout.fnmatch_lines([f"*scored 0: the test suite {problem}*"])
    # The base commit's suite could not be judged either, and the run says so.
    result.stdout.fnmatch_lines([f"explore calc: warning: baseline scored at *, but the test suite {problem}*"])


def test_holdout_tests_are_hidden_from_the_agent_and_scored(calc_project: Project) -> None:
    calc_project.write(
        {"holdout/test_hidden.py": "from calc import add\n\ndef test_big():\n    assert add(10**6, 1) == 10**6 + 1\n"}
    )
    calc_project.commit("holdout")
    # The agent records whether it could see the hold-out folder, then does the work.
    spec = calc_project.calc_spec(good=f"ls holdout > saw.txt 2>&1; {GOOD_AGENT}")
    spec["score"]["command"] = "{python} -m pytest -q -p no:cacheprovider tests holdout"
    spec["score"]["holdout"] = "holdout"
    result = calc_project.explore("--variants", calc_project.variants(spec))

    assert result.ret == 0, result.stdout.str()
    trial = calc_project.trials()["good"]
    assert "No such file" in calc_project.git("show", "explore/calc/good:saw.txt")
    assert "holdout/test_hidden.py::test_big" in trial["tests"]["cases"]
    assert trial["tests"]["passed"] == 4
    # The hold-out files are not part of the agent's change.
    assert trial["diff"]["files"] == ["calc.py", "saw.txt"]


def test_the_score_command_comes_from_the_variants_file_then_the_ini(calc_project: Project) -> None:
    suite = "{python} -m pytest -q -p no:cacheprovider tests"
    spec = calc_project.calc_spec(good=GOOD_AGENT)
    del spec["score"]["command"]
    calc_project.pytester.makeini(f"[pytest]\nexplore_score_command = {suite}\n")
    from_ini = calc_project.explore("--variants", calc_project.variants(spec), experiment="ini")
    assert from_ini.ret == 0, from_ini.stdout.str()
    assert calc_project.results("ini")["score_command"] == suite
    assert calc_project.trials("ini")["good"]["score"] == 1.0

    spec["score"]["command"] = suite
    calc_project.pytester.makeini("[pytest]\nexplore_score_command = exit 3\n")
    from_file = calc_project.explore("--variants", calc_project.variants(spec), experiment="file")
    assert from_file.ret == 0, from_file.stdout.str()
    assert calc_project.results("file")["score_command"] == suite
    assert calc_project.trials("file")["good"]["score"] == 1.0
