"""Nothing lost: interrupts, killed workers, timeouts, corrupt files, deleted worktrees, concurrent runs.

Each test runs real ``pytest --explore`` processes and injects the fault from
outside.  Agents record every invocation and the pids they start, so the
tests can check that no process survives and that the next run does only
what was missing.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.explore_testing import BAD_AGENT, GOOD_AGENT, Project
from tests.process_testing import wait_for

#: An agent script: logs its invocation and pids, fixes calc.py, then blocks when asked to.
AGENT_SCRIPT = """\
name=$1
echo "$name" >> {root}/invocations.log
printf 'def add(a, b):\\n    return a + b\\n' > calc.py
if [ -e {root}/block-$name ]; then
    sleep 300 &
    echo $! >> {root}/pids-$name
    echo $$ >> {root}/pids-$name
    touch {root}/started-$name
    wait
fi
"""


def alive(pid: int) -> bool:
    """Whether ``pid`` is a running process (zombies waiting for a reaper count as gone)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


class Faults:
    """The calc project with scripted agents, and ways to run pytest --explore in the background."""

    def __init__(self, project: Project) -> None:
        self.project = project
        # Outside the project: without a sandbox, what an agent writes in the main checkout is put back.
        self.root = project.path.parent / f"{project.path.name}-agents"
        self.root.mkdir()
        (self.root / "agent.sh").write_text(AGENT_SCRIPT.format(root=self.root))

    def spec(self, *names: str, **overrides: Any) -> str:
        spec = self.project.calc_spec(**{name: f"sh {self.root}/agent.sh {name}" for name in names})
        spec["sandbox"] = "none"  # the agents write their logs and pids outside their worktrees
        spec.update(overrides)
        return self.project.variants(spec)

    def block(self, name: str) -> None:
        """The next invocation of ``name``'s agent blocks after its work, with a child process."""
        (self.root / f"block-{name}").touch()

    def unblock(self, name: str) -> None:
        (self.root / f"block-{name}").unlink()

    def started(self, name: str) -> bool:
        return (self.root / f"started-{name}").exists()

    def invocations(self) -> list[str]:
        log = self.root / "invocations.log"
        return log.read_text().split() if log.exists() else []

    def agent_pids(self, name: str) -> list[int]:
        return [int(p) for p in (self.root / f"pids-{name}").read_text().split()]

    def start(self, *args: str) -> subprocess.Popen[bytes]:
        """``pytest --explore calc ARGS`` in the background, output to files, Ctrl-C working as in a terminal.

        A shell without job control starts background commands with SIGINT ignored, and the
        child would inherit that (Python then installs no KeyboardInterrupt handler).
        """
        with (self.root / f"run-{time.monotonic_ns()}.out").open("wb") as out:
            return subprocess.Popen(
                [sys.executable, "-m", "pytest", "--explore", "calc", *args],
                cwd=self.project.path,
                stdout=out,
                stderr=subprocess.STDOUT,
                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
            )

    def record(self, name: str) -> dict[str, Any]:
        data: dict[str, Any] = json.loads(
            (self.project.experiment_dir() / "results" / f"{name}_progress.json").read_text()
        )
        return data


@pytest.fixture
def faults(calc_project: Project) -> Faults:
    ignored = ["variants*.yaml", "runpytest-*", "stdout", "stderr", "*.log", "*.out", "agent.sh", "pids-*", "started-*"]
    calc_project.write({".gitignore": "\n".join([*ignored, "block-*"]) + "\n"})
    calc_project.commit("ignore the test's files")
    return Faults(calc_project)


@pytest.mark.parametrize(
    ("sig", "workers"), [(signal.SIGINT, []), (signal.SIGTERM, ["-n", "2"])], ids=["sigint", "sigterm-xdist"]
)
def test_an_interrupted_run_loses_nothing_and_resumes(faults: Faults, sig: signal.Signals, workers: list[str]) -> None:
    spec = faults.spec("fast", "slow")
    faults.block("slow")
    run = faults.start("--variants", spec, *workers)
    wait_for(lambda: faults.started("slow"), "the slow agent to start")
    wait_for(lambda: faults.record("fast")["status"] == "done", "the fast trial to finish")
    run.send_signal(sig)
    assert run.wait(timeout=60) != 0

    assert not any(alive(pid) for pid in faults.agent_pids("slow"))
    assert faults.record("fast")["status"] == "done"
    slow = faults.record("slow")
    assert slow["status"] == "error" and "interrupted during agent" in slow["reason"]
    summary = (faults.project.experiment_dir() / "results" / "summary.md").read_text()
    assert "**slow** (missing: error): interrupted during agent" in summary  # no outcome: missing, not failed
    assert "Failed or unjudged" not in summary

    faults.unblock("slow")
    assert faults.project.explore("--variants", spec).ret == 0
    assert sorted(faults.invocations()) == ["fast", "slow", "slow"]  # only the interrupted trial ran again
    assert faults.record("fast")["from_checkpoint"] is True


def test_a_killed_xdist_worker_loses_nothing(faults: Faults) -> None:
    spec = faults.spec("fast", "slow")
    faults.block("slow")
    run = faults.start("--variants", spec, "-n", "2")
    wait_for(lambda: faults.started("slow"), "the slow agent to start")
    worker = faults.record("slow")["owner_pid"]
    os.kill(worker, signal.SIGKILL)
    assert run.wait(timeout=60) == 1

    assert not any(alive(pid) for pid in faults.agent_pids("slow"))
    wait_for(lambda: faults.record("fast")["status"] == "done", "the fast trial's record")
    slow = faults.record("slow")
    assert slow["status"] == "error" and "the process running it stopped" in slow["reason"]
    assert slow["process_groups"] == []

    faults.unblock("slow")
    assert faults.project.explore("--variants", spec, "-n", "2").ret == 0
    assert sorted(faults.invocations()) == ["fast", "slow", "slow"]


def test_a_timed_out_agent_is_killed_with_its_children_and_scored(faults: Faults) -> None:
    faults.block("slow")
    spec = faults.project.calc_spec(slow=f"sh {faults.root}/agent.sh slow")
    spec["sandbox"] = "none"  # the agents log into the project
    spec["variants"]["slow"]["timeout"] = "2s"
    result = faults.project.explore("--variants", faults.project.variants(spec))

    assert result.ret == 1
    result.stdout.fnmatch_lines(["*timeout: agent timed out after 2s*"])
    assert not any(alive(pid) for pid in faults.agent_pids("slow"))
    trial = faults.project.trials()["slow"]
    assert trial["status"] == "timeout"
    assert trial["score"] == 1.0  # scored on what it left
    assert "scored after the agent failed" in trial["flags"]

    faults.unblock("slow")
    assert faults.project.explore("--variants", faults.project.variants(spec), "--explore-retry-failed").ret == 0
    assert faults.project.trials()["slow"]["status"] == "done"


def test_a_truncated_progress_file_is_reported_and_that_trial_rerun(faults: Faults) -> None:
    spec = faults.spec("fast", "other")
    assert faults.project.explore("--variants", spec).ret == 0
    progress = faults.project.experiment_dir() / "results" / "fast_progress.json"
    progress.write_text(progress.read_text()[:100])

    result = faults.project.explore("--variants", spec)
    assert result.ret == 0
    assert faults.invocations() == ["fast", "other", "fast"]
    assert any("the saved progress was unreadable" in flag for flag in faults.record("fast")["flags"])
    assert progress.with_name("fast_progress.json.corrupt").is_file()
    assert faults.record("other")["from_checkpoint"] is True


def test_a_run_stopped_while_scoring_resumes_at_scoring_with_a_recreated_worktree(faults: Faults) -> None:
    marker = faults.root / "scoring-started"
    spec = faults.project.calc_spec(fast=f"sh {faults.root}/agent.sh fast")
    spec["sandbox"] = "none"  # the agents log into the project
    # The first scoring blocks (so the run can be stopped there); later ones do not.
    spec["score"]["setup"] = f"test -e {marker} || {{ touch {marker}; sleep 300; }}"
    spec_file = faults.project.variants(spec)
    run = faults.start("--variants", spec_file)
    wait_for(marker.exists, "scoring to start")
    run.send_signal(signal.SIGINT)
    assert run.wait(timeout=60) != 0
    assert "interrupted during score" in faults.record("fast")["reason"]

    worktree = Path(faults.record("fast")["worktree"])
    subprocess.run(["rm", "-rf", str(worktree)], check=True)
    result = faults.project.explore("--variants", spec_file)
    assert result.ret == 0, result.stdout.str()
    assert faults.invocations() == ["fast"]  # the agent's committed work was reused
    fast = faults.record("fast")
    assert fast["status"] == "done" and fast["score"] == 1.0
    assert "resumed after the agent step" in fast["flags"]
    assert (worktree / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"


def test_a_second_run_is_refused_while_the_first_holds_the_lock(faults: Faults) -> None:
    spec = faults.spec("slow")
    faults.block("slow")
    first = faults.start("--variants", spec)
    wait_for(lambda: faults.started("slow"), "the first run's agent to start")

    second = faults.project.explore("--variants", spec)
    assert second.ret == pytest.ExitCode.USAGE_ERROR
    second.stderr.fnmatch_lines([f"*another pytest run (pid {first.pid}) is running this experiment*"])

    first.send_signal(signal.SIGINT)
    first.wait(timeout=60)
    faults.unblock("slow")
    assert faults.project.explore("--variants", spec).ret == 0
    assert faults.invocations() == ["slow", "slow"]


def test_a_stale_lock_of_a_dead_run_is_taken_over(faults: Faults) -> None:
    dead = subprocess.Popen(["true"])
    dead.wait()
    lock = faults.project.experiment_dir() / "run.lock"
    lock.parent.mkdir(parents=True)
    lock.write_text(str(dead.pid))

    result = faults.project.explore("--variants", faults.spec("fast"))
    assert result.ret == 0
    result.stdout.fnmatch_lines([f"*took over the lock of an earlier run that died (pid {dead.pid})*"])


def test_changing_one_variant_reruns_it_alone(faults: Faults) -> None:
    spec = faults.project.calc_spec(**{n: f"sh {faults.root}/agent.sh {n}" for n in ("a", "b", "c")})
    spec["sandbox"] = "none"  # the agents log into the project
    assert faults.project.explore("--variants", faults.project.variants(spec)).ret == 0
    spec["variants"]["b"]["description"] = "b, asked differently"
    assert faults.project.explore("--variants", faults.project.variants(spec)).ret == 0
    assert faults.invocations() == ["a", "b", "c", "b"]


def test_a_ci_matrix_of_one_variant_per_clone_merges_into_the_same_report(
    calc_project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = calc_project.calc_spec(good=GOOD_AGENT, bad=BAD_AGENT, slow=f"sleep 0.1; {GOOD_AGENT}")

    def clone(name: str) -> Path:
        path = tmp_path / name
        subprocess.run(["git", "clone", "-q", str(calc_project.path), str(path)], check=True)
        (path / "variants.yaml").write_text(json.dumps(spec))
        return path

    def explore(path: Path, *args: str) -> None:
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "--explore", "calc", "--variants", "variants.yaml", *args],
            cwd=path,
            capture_output=True,
            text=True,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr

    jobs = {name: clone(f"job-{name}") for name in spec["variants"]}
    for name, path in jobs.items():  # a job selects its variant by node id, or with -k
        explore(path, f"explore::calc[{name}]" if name == "good" else f"-k={name}")
        job_results = json.loads((path / ".data/parallel_explorer/calc/results/results.json").read_text())
        assert [t["name"] for t in job_results["trials"]] == [name]
    everything = clone("all")
    explore(everything, "-n", "2")

    step_summary = tmp_path / "step-summary.md"
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(step_summary))
    merged = calc_project.pytester.runpytest_subprocess(
        "--explore",
        "calc",
        "--explore-merge",
        *[str(path / ".data" / "parallel_explorer" / "calc" / "results") for path in jobs.values()],
    )
    assert merged.ret == 0, merged.stderr.str()

    def comparable(results: dict[str, Any]) -> list[tuple[Any, ...]]:
        return [
            (
                t["name"],
                t["rank"],
                t["status"],
                t["score"],
                t["tests"]["passed"],
                t["tests"]["total"],
                t["diff"]["files"],
            )
            for t in results["trials"]
        ]

    one_run = json.loads((everything / ".data/parallel_explorer/calc/results/results.json").read_text())
    assert comparable(calc_project.results()) == comparable(one_run)
    assert calc_project.results()["base_commit"] == one_run["base_commit"]
    # The jobs' baselines pooled: the same outcomes, and every job's runs.
    merged_baseline = calc_project.results()["baseline"]
    assert merged_baseline["cases"] == one_run["baseline"]["cases"]
    assert (merged_baseline["runs"], merged_baseline["flaky"]) == (3 * one_run["baseline"]["runs"], [])
    merged.stdout.fnmatch_lines(["-*baseline*base commit*"])
    assert (calc_project.experiment_dir() / "results" / "good.patch").is_file()
    assert "# Experiment `calc`" in step_summary.read_text()


def test_two_experiments_at_once_leave_each_others_branches_alone(faults: Faults) -> None:
    spec = faults.project.calc_spec(quick=GOOD_AGENT)
    spec["sandbox"] = "none"
    variants = faults.project.variants(spec, "variants-other.yaml")
    faults.block("slow")
    first = faults.start("--variants", faults.spec("slow"))
    wait_for(lambda: faults.started("slow"), "the first experiment's agent to start")

    # Another experiment runs from start to end meanwhile, making its own branch (and writing no file of
    # its own in the checkout: the first run would take it for an agent's and put the checkout back).
    command = [sys.executable, "-m", "pytest", "--explore", "other", "--variants", variants]
    other = subprocess.run(command, cwd=faults.project.path, capture_output=True, text=True)
    assert other.returncode == 0, other.stdout
    quick = faults.project.git("rev-parse", "explore/other/quick").strip()

    os.kill(faults.agent_pids("slow")[0], signal.SIGKILL)  # the first experiment's agent ends
    assert first.wait(timeout=60) == 0
    # The first run's snapshot of the repository did not take the other's branch for an agent's doing.
    assert faults.project.git("rev-parse", "explore/other/quick").strip() == quick
    assert faults.record("slow")["tampering"] == []


@pytest.mark.parametrize("command", [["--explore-cleanup", "--explore-delete-branches"], ["--explore-adopt", "best"]])
def test_cleanup_and_adopt_wait_for_a_run_of_the_experiment(faults: Faults, command: list[str]) -> None:
    faults.block("slow")
    run = faults.start("--variants", faults.spec("slow"))
    wait_for(lambda: faults.started("slow"), "the run's agent to start")

    refused = faults.project.pytester.runpytest_subprocess("--explore", "calc", *command)
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    busy = f"another pytest run (pid {run.pid}) is running this experiment"
    refused.stderr.fnmatch_lines([f"ERROR: {command[0]}: {busy}*"])
    assert (faults.project.experiment_dir() / "worktrees" / "slow").is_dir()  # the running trial's, untouched

    os.kill(faults.agent_pids("slow")[0], signal.SIGKILL)
    assert run.wait(timeout=60) == 0
    assert faults.record("slow")["status"] == "done"
