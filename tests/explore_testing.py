"""Throw-away git projects driven through ``pytester``: the plugin's own test fixtures.

Loaded as a plugin by the root ``conftest.py``; tests import ``Project`` and the
agent commands from here (never from a conftest, whose module name is ambiguous).
"""

from __future__ import annotations

import json
import subprocess
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

#: A tiny project: a function, with tests of which the base passes none.
CALC_FILES = {
    "calc.py": "def add(a, b):\n    raise NotImplementedError\n",
    "tests/test_calc.py": textwrap.dedent(
        """
        from calc import add

        def test_add():
            assert add(1, 2) == 3

        def test_add_zero():
            assert add(0, 0) == 0

        class TestNegative:
            def test_negative(self):
                assert add(-1, -2) == -3
        """
    ),
}

#: Shell commands for offline agents that write ``calc.add``, rightly or not.
GOOD_AGENT = "printf 'def add(a, b):\\n    return a + b\\n' > calc.py"
BAD_AGENT = "printf 'def add(a, b):\\n    return a * b\\n' > calc.py"


class Project:
    """A git repository in ``pytester.path`` and the ways a user drives the plugin in it."""

    def __init__(self, pytester: pytest.Pytester) -> None:
        self.pytester = pytester
        self.path = pytester.path
        self.git("init", "-q", "-b", "main")

    def git(self, *args: str) -> str:
        return subprocess.run(["git", *args], cwd=self.path, check=True, capture_output=True, text=True).stdout

    def write(self, files: dict[str, str]) -> None:
        for name, text in files.items():
            target = self.path / name
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)

    def commit(self, message: str = "base") -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "-m", message)
        return self.git("rev-parse", "HEAD").strip()

    def variants(self, spec: dict[str, Any], name: str = "variants.yaml") -> str:
        """Write a variants file (outside git's view: it is not part of the base)."""
        (self.path / name).write_text(yaml.safe_dump(spec, sort_keys=False))
        return name

    def variants_text(self, text: str, name: str = "variants.yaml") -> str:
        """Write a variants file verbatim, for what ``variants()`` cannot produce (duplicate keys, bad YAML)."""
        (self.path / name).write_text(textwrap.dedent(text))
        return name

    def explore(self, *args: str, experiment: str = "calc") -> pytest.RunResult:
        return self.pytester.runpytest_subprocess("--explore", experiment, *args)

    def experiment_dir(self, experiment: str = "calc") -> Path:
        return self.path / ".data" / "parallel_explorer" / experiment

    def results(self, experiment: str = "calc") -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.experiment_dir(experiment) / "results" / "results.json").read_text())
        return data

    def trials(self, experiment: str = "calc") -> dict[str, dict[str, Any]]:
        return {t["name"]: t for t in self.results(experiment)["trials"]}

    @staticmethod
    def calc_spec(**variants: Any) -> dict[str, Any]:
        """A spec for the calc project: each variant is a command agent (or a full mapping)."""
        return {
            "task": "Implement add() in calc.py so that the tests pass.",
            "agent": {"backend": "command"},
            # One baseline run: these suites are not flaky, and a second run is a suite more per test.
            "score": {"command": "{python} -m pytest -q -p no:cacheprovider tests", "baseline_runs": 1},
            "variants": {
                name: {"description": f"variant {name}", "agent": {"run": run}} if isinstance(run, str) else run
                for name, run in variants.items()
            },
        }


def assert_refused(project: Project, result: pytest.RunResult, *fragments: str) -> None:
    """Exit 4 with each fragment on stderr, no traceback, and nothing made: no data dir, branch or worktree."""
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.USAGE_ERROR, output
    for fragment in fragments:
        assert fragment in result.stderr.str(), output
    assert "Traceback" not in output
    assert not (project.path / ".data").exists()
    assert project.git("branch", "--list", "explore/*") == ""
    assert len(project.git("worktree", "list").splitlines()) == 1


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Project:
    """An empty git repository; commits work without any git configuration."""
    for var, value in {
        "GIT_AUTHOR_NAME": "test",
        "GIT_AUTHOR_EMAIL": "test@localhost",
        "GIT_COMMITTER_NAME": "test",
        "GIT_COMMITTER_EMAIL": "test@localhost",
    }.items():
        monkeypatch.setenv(var, value)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    return Project(pytester)


@pytest.fixture
def calc_project(project: Project) -> Project:
    """The calc project, committed; its variants files are ignored by git."""
    project.write(CALC_FILES)
    project.write({".gitignore": "variants*.yaml\nrunpytest-*\nstdout\nstderr\n"})
    project.commit()
    return project
