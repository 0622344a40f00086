"""Outcomes and attempts: a rerun pays only for what has no outcome; every attempt is kept.

Agents log each invocation to a file in the project, so the tests count exactly which trials ran
(the specs say ``sandbox: none``: a sandboxed agent cannot write outside its worktree).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.explore_testing import Project

#: Logs the trial, then does what its variant's name says: fix calc.py, fail, hang until killed, or
#: leave a calc.py whose import hangs (the suite times out: the trial cannot be judged).
AGENT = """\
echo "$EXPLORE_TRIAL" >> {root}/invocations.log
printf 'def add(a, b):\\n    return a + b\\n' > calc.py
case "$EXPLORE_VARIANT" in
    fails) exit 3 ;;
    hangs) exec sleep 60 ;;
    stalls) printf 'import time\ntime.sleep(60)\n' >> calc.py ;;
esac
"""


class Logged:
    """The calc project with the logging agent."""

    def __init__(self, project: Project) -> None:
        self.project = project
        # Outside the project: without a sandbox, what an agent writes in the main checkout is put back.
        self.root = project.path.parent / f"{project.path.name}-agent"
        self.root.mkdir()
        (self.root / "agent.sh").write_text(AGENT.format(root=self.root))

    def spec(self, *names: str, **overrides: Any) -> str:
        spec = self.project.calc_spec(**{name: f"sh {self.root}/agent.sh" for name in names})
        spec["sandbox"] = "none"  # the agent logs into the project
        for name in names:
            if name == "hangs":
                spec["variants"][name]["timeout"] = "2s"
        spec.update(overrides)
        return self.project.variants(spec)

    def invocations(self) -> list[str]:
        log = self.root / "invocations.log"
        return sorted(log.read_text().split()) if log.exists() else []

    def record(self, name: str) -> dict[str, Any]:
        path = self.project.experiment_dir() / "results" / f"{name}_progress.json"
        data: dict[str, Any] = json.loads(path.read_text())
        return data

    def summary(self) -> str:
        return (self.project.experiment_dir() / "results" / "summary.md").read_text()


@pytest.fixture
def logged(calc_project: Project) -> Logged:
    calc_project.write({".gitignore": "variants*.yaml\nrunpytest-*\nstdout\nstderr\n*.log\nagent.sh\nsetup-ok\n"})
    calc_project.commit("ignore the test's files")
    return Logged(calc_project)


def test_a_plain_rerun_keeps_failures_and_retry_failed_reruns_exactly_them(logged: Logged) -> None:
    spec = logged.spec("good", "fails", "hangs")
    first = logged.project.explore("--variants", spec)
    assert first.ret == 1
    assert logged.invocations() == ["fails", "good", "hangs"]
    assert logged.record("fails")["status"] == "agent_failed"
    assert logged.record("hangs")["status"] == "timeout"

    rerun = logged.project.explore("--variants", spec)
    assert rerun.ret == 1  # the failures are still the variants' outcomes, so CI still hears of them
    assert logged.invocations() == ["fails", "good", "hangs"]  # but no agent ran again
    assert all(logged.record(name)["from_checkpoint"] for name in ("good", "fails", "hangs"))
    assert "--explore-retry-failed 'explore::calc[fails]' 'explore::calc[hangs]'" in logged.summary()

    retry = logged.project.explore("--variants", spec, "--explore-retry-failed")
    assert retry.ret == 1  # the agents fail the same way again
    assert logged.invocations() == ["fails", "fails", "good", "hangs", "hangs"]
    for name, status in [("fails", "agent_failed"), ("hangs", "timeout")]:
        attempts = logged.record(name)["attempts"]
        assert [a["status"] for a in attempts] == [status, status]
        assert attempts[0]["finished"] <= attempts[1]["started"]
    assert [a["status"] for a in logged.record("good")["attempts"]] == ["done"]
    results = logged.project.results()
    assert sorted(results["retried"]) == ["fails", "hangs"]
    retry.stdout.fnmatch_lines(["*fails*agent_failed (attempt 2)*"])
    assert "| agent_failed (attempt 2)" in logged.summary()  # "(score cached)" may follow: the same tree


def test_a_trial_of_a_changed_spec_starts_its_attempts_afresh(logged: Logged) -> None:
    assert logged.project.explore("--variants", logged.spec("fails")).ret == 1
    logged.project.write({"README.md": "a new base commit\n"})
    logged.project.commit("move the base")

    again = logged.project.explore("--variants", logged.spec("fails"))
    assert again.ret == 1
    assert logged.invocations() == ["fails", "fails"]  # another base: the trial ran again
    assert [a["status"] for a in logged.record("fails")["attempts"]] == ["agent_failed"]  # not a retry of the old one
    assert logged.project.results()["retried"] == []
    again.stdout.fnmatch_lines(["*fails *agent_failed *"])
    assert "attempt 2" not in again.stdout.str()


def test_an_infrastructure_error_is_missing_not_failed_and_a_plain_rerun_retries_it(logged: Logged) -> None:
    ok = logged.root / "setup-ok"
    spec = logged.spec("good", "other", worktree={"setup": f'test -e {ok} || test "$EXPLORE_VARIANT" != good'})
    first = logged.project.explore("--variants", spec)
    assert first.ret == 1
    first.stdout.fnmatch_lines(["*missing (error): error during worktree: worktree.setup failed*"])
    good = logged.record("good")
    assert good["status"] == "error"
    results = logged.project.results()
    assert results["missing"] == ["good"]
    assert [v["name"] for v in results["variants"]] == ["other"]  # not counted as a failure of good
    summary = logged.summary()
    assert "## Missing trials" in summary and "- **good** (missing: error): error during worktree" in summary
    assert "Failed or unjudged" not in summary
    assert "| missing (error) |" in summary
    assert logged.invocations() == ["other"]  # good never reached its agent

    ok.touch()
    second = logged.project.explore("--variants", spec)
    assert second.ret == 0, second.stdout.str()
    assert logged.invocations() == ["good", "other"]  # good retried, other reused
    good = logged.record("good")
    assert good["status"] == "done"
    assert [a["status"] for a in good["attempts"]] == ["error", "done"]
    assert logged.project.results()["missing"] == []
    assert logged.project.results()["retried"] == []  # retried after an error, not after a failure


def test_a_bad_repeat_option_is_refused(logged: Logged) -> None:
    result = logged.project.explore("--variants", logged.spec("good"), "--explore-repeat", "many")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--explore-repeat: expected a whole number >= 1 or 'auto' (a sequential race), got 'many'"]
    )
    assert not Path(logged.project.experiment_dir()).exists()


def test_retry_failed_reruns_a_trial_whose_suite_could_not_be_judged(logged: Logged) -> None:
    spec = logged.project.calc_spec(good=f"sh {logged.root}/agent.sh", stalls=f"sh {logged.root}/agent.sh")
    spec["sandbox"] = "none"  # the agent logs into the project
    spec["score"]["timeout"] = "3s"
    variants = logged.project.variants(spec)
    assert logged.project.explore("--variants", variants).ret == 1
    stalls = logged.record("stalls")
    assert stalls["status"] == "done" and "timed out" in stalls["tests"]["problem"]
    assert "--explore-retry-failed 'explore::calc[stalls]'" in logged.summary()

    assert logged.project.explore("--variants", variants).ret == 1
    assert logged.invocations() == ["good", "stalls"]  # an outcome: a plain rerun reuses it

    assert logged.project.explore("--variants", variants, "--explore-retry-failed").ret == 1
    assert logged.invocations() == ["good", "stalls", "stalls"]  # the command the summary gives reruns it
    attempts = logged.record("stalls")["attempts"]
    assert [a["failed"] for a in attempts] == [True, True]
