"""The other commands (results, list, cleanup), the Python API, resume, concurrency and progress."""

from __future__ import annotations

import fnmatch
import json
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from tests.explore_testing import BAD_AGENT, GOOD_AGENT, Project


@pytest.fixture
def explored(calc_project: Project) -> Project:
    """The calc project after one run of a good and a bad variant."""
    spec = calc_project.variants(calc_project.calc_spec(good=GOOD_AGENT, bad=BAD_AGENT))
    assert calc_project.explore("--variants", spec).ret == 0
    return calc_project


def test_results_prints_the_saved_summary(explored: Project) -> None:
    (explored.experiment_dir() / "results" / "summary.md").unlink()
    result = explored.pytester.runpytest_subprocess("--explore", "calc", "--explore-results")

    assert result.ret == 0
    result.stdout.fnmatch_lines(["# Experiment `calc`", "*| 1 | good | done | 1.000 | 3/3 |*", "1 *good *done *1.000*"])
    assert (explored.experiment_dir() / "results" / "summary.md").is_file()


def test_results_of_an_unknown_experiment_is_a_usage_error(explored: Project) -> None:
    result = explored.pytester.runpytest_subprocess("--explore", "nope", "--explore-results")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--explore nope: no such experiment in *parallel_explorer*"])


def test_list_shows_each_experiment(explored: Project) -> None:
    spec = explored.variants(explored.calc_spec(other=BAD_AGENT), "variants-other.yaml")
    assert explored.explore("--variants", spec, experiment="second").ret == 0
    result = explored.pytester.runpytest_subprocess("--explore-list")

    assert result.ret == 0
    result.stdout.fnmatch_lines(
        [
            "calc: 2 variants; 2 done; best good (1.000); 20*",
            "second: 1 variants; 1 done; best other (0.333); 20*",
        ]
    )


def test_list_names_the_trial_the_table_ranks_first_when_scores_tie(calc_project: Project) -> None:
    # Equal scores: the table ranks the faster agent first, and so must the list (not the first by name).
    spec = calc_project.variants(calc_project.calc_spec(a_slow=f"sleep 0.5; {GOOD_AGENT}", z_fast=GOOD_AGENT))
    assert calc_project.explore("--variants", spec).ret == 0
    assert [t["name"] for t in calc_project.results()["trials"]] == ["z_fast", "a_slow"]

    result = calc_project.pytester.runpytest_subprocess("--explore-list")
    result.stdout.fnmatch_lines(["calc: 2 variants; 2 done; best z_fast (1.000); 20*"])


def test_cleanup_removes_worktrees_and_keeps_branches_and_results(explored: Project) -> None:
    worktrees = explored.experiment_dir() / "worktrees"
    shutil.rmtree(worktrees / "bad")  # one deleted by hand already
    copies = [explored.experiment_dir() / name for name in ("base", "store.git", "pool")]
    assert all(folder.is_dir() for folder in copies)
    result = explored.pytester.runpytest_subprocess("--explore", "calc", "--explore-cleanup")

    assert result.ret == 0, result.stderr.str()
    assert not any(
        folder.exists() for folder in copies
    )  # the shared base objects, the run's private store and its suite slots
    assert not (worktrees / "good").exists()
    assert "calc/good" not in explored.git("worktree", "list") and "calc/bad" not in explored.git("worktree", "list")
    assert explored.git("branch", "--list", "explore/*").split() == ["explore/calc/bad", "explore/calc/good"]
    assert (explored.experiment_dir() / "results" / "good.patch").is_file()

    result = explored.pytester.runpytest_subprocess(
        "--explore", "calc", "--explore-cleanup", "--explore-delete-branches"
    )
    assert result.ret == 0
    assert explored.git("branch", "--list", "explore/*") == ""


def test_a_finished_trial_is_reused_and_a_changed_one_rerun(explored: Project, tmp_path: Path) -> None:
    spec = explored.calc_spec(good=GOOD_AGENT, bad=BAD_AGENT)
    spec["variants"]["bad"]["description"] = "now described differently"
    result = explored.explore("--variants", explored.variants(spec))

    assert result.ret == 0
    trials = explored.trials()
    assert trials["good"]["from_checkpoint"] is True
    assert trials["bad"]["from_checkpoint"] is False
    result.stdout.fnmatch_lines(["*explore calc?good?: done (from checkpoint)*"])
    result.stdout.fnmatch_lines(["*good *done (checkpoint)*"])

    result = explored.explore("--variants", explored.variants(spec), "--explore-rerun")
    assert result.ret == 0
    assert not any(t["from_checkpoint"] for t in explored.trials().values())


def test_python_api(calc_project: Project) -> None:
    from pytest_parallel_explore import cleanup_experiment, list_experiments, run_parallel_experiment_sync

    spec = calc_project.calc_spec(good=GOOD_AGENT, bad=BAD_AGENT)
    results = run_parallel_experiment_sync("api", spec, cwd=calc_project.path)

    assert results.best_trial is not None and results.best_trial.name == "good"
    assert [(t.name, results.ranks[t.name]) for t in results.trials] == [("good", 1), ("bad", 2)]
    assert results.to_json()["best"] == "good"
    [entry] = list_experiments(calc_project.path)
    assert (entry.name, entry.best, entry.variants) == ("api", "good", ["good", "bad"])
    removed = cleanup_experiment("api", calc_project.path, delete_branches=True)
    assert "explore/api/good" in removed
    assert calc_project.git("branch", "--list", "explore/*") == ""


def test_never_more_than_max_concurrent_trials_at_once(calc_project: Project) -> None:
    # Each agent logs when it starts and ends; a slow agent keeps the overlap visible.
    log = calc_project.path.parent / f"{calc_project.path.name}-intervals.log"  # outside: the checkout is put back
    agent = f"echo start $(date +%s.%N) >> {log}; sleep 0.6; echo end $(date +%s.%N) >> {log}; {GOOD_AGENT}"
    spec = calc_project.calc_spec(**{f"v{i}": agent for i in range(4)})
    spec["max_concurrent"] = 2
    spec["sandbox"] = "none"  # the agents log outside their worktrees, which a sandbox forbids
    result = calc_project.explore("--variants", calc_project.variants(spec), "-n", "4")

    assert result.ret == 0
    result.stdout.fnmatch_lines(["*2 workers [[]4 items[]]*"])
    events = sorted((float(t), kind) for kind, t in (line.split() for line in log.read_text().splitlines()))
    running = peak = 0
    for _, kind in events:
        running += 1 if kind == "start" else -1
        peak = max(peak, running)
    assert peak == 2


@pytest.mark.parametrize("workers", [[], ["-n", "2"]], ids=["no-xdist", "xdist"])
def test_progress_shows_each_step_with_elapsed_time(calc_project: Project, workers: list[str]) -> None:
    spec = calc_project.calc_spec(slow=f"sleep 1.2; {GOOD_AGENT}")
    result = calc_project.explore("--variants", calc_project.variants(spec), *workers)

    assert result.ret == 0
    result.stdout.re_match_lines(
        [
            r"explore calc\[slow\]: agent \d+\.\ds",
            r"explore calc\[slow\]: done \d+\.\ds",
        ]
    )


def test_progress_is_written_from_the_main_thread_only(calc_project: Project) -> None:
    # A conftest in the controller records every terminal write made from another thread.
    calc_project.write(
        {
            "conftest.py": textwrap.dedent(
                """
                import pathlib, threading
                from _pytest._io import TerminalWriter

                write = TerminalWriter.write

                def checked(self, msg, **kwargs):
                    if threading.current_thread() is not threading.main_thread():
                        with pathlib.Path("off-main-thread.txt").open("a") as f:
                            f.write(f"{threading.current_thread().name}: {msg!r}\\n")
                    return write(self, msg, **kwargs)

                TerminalWriter.write = checked
                """
            )
        }
    )
    spec = calc_project.calc_spec(slow=f"sleep 1.2; {GOOD_AGENT}")
    result = calc_project.explore("--variants", calc_project.variants(spec), "-n", "2")

    assert result.ret == 0
    result.stdout.re_match_lines([r"explore calc\[slow\]: agent \d+\.\ds", r"explore calc\[slow\]: done"])
    offending = calc_project.path / "off-main-thread.txt"
    assert not offending.exists(), offending.read_text()


def test_progress_hooks_are_called_on_the_trials_thread_only_without_xdist(calc_project: Project) -> None:
    """Without xdist the baseline's commands run beside the trial, in a thread of the same process."""
    calc_project.write(
        {
            "conftest.py": textwrap.dedent(
                """
                import pathlib, threading

                def pytest_explore_trial_progress(trial):
                    if threading.current_thread() is not threading.main_thread():
                        with pathlib.Path("off-main-thread.txt").open("a") as f:
                            f.write(f"{threading.current_thread().name}: {trial.status.value}\\n")
                """
            )
        }
    )
    spec = calc_project.calc_spec(slow=f"sleep 1.2; {GOOD_AGENT}")
    # The baseline's suites end while the trial's agent still runs.
    spec["score"]["command"] = f"sleep 0.5 && {spec['score']['command']}"
    result = calc_project.explore("--variants", calc_project.variants(spec))

    assert result.ret == 0, result.stdout.str()
    result.stdout.re_match_lines([r"explore calc\[slow\]: agent \d+\.\ds", r"explore calc\[slow\]: done"])
    offending = calc_project.path / "off-main-thread.txt"
    assert not offending.exists(), offending.read_text()
    assert calc_project.trials()["slow"]["process_groups"] == []


def test_trial_finished_and_summary_hooks_are_called(calc_project: Project) -> None:
    calc_project.write(
        {
            "conftest.py": textwrap.dedent(
                """
                import json, pathlib

                def pytest_explore_trial_finished(trial):
                    pathlib.Path(f"finished-{trial.name}.txt").write_text(trial.status.value)

                def pytest_explore_summary(results):
                    best = results.best_trial
                    ranks = {t.name: results.ranks[t.name] for t in results.trials}
                    pathlib.Path("summary-hook.json").write_text(json.dumps([best.name, ranks]))
                """
            )
        }
    )
    calc_project.commit("hooks")
    spec = calc_project.variants(calc_project.calc_spec(good=GOOD_AGENT, bad=BAD_AGENT))
    assert calc_project.explore("--variants", spec, "-n", "2").ret == 0
    assert (calc_project.path / "finished-good.txt").read_text() == "done"
    assert (calc_project.path / "finished-bad.txt").read_text() == "done"
    assert json.loads((calc_project.path / "summary-hook.json").read_text()) == ["good", {"good": 1, "bad": 2}]


def test_a_hook_that_assigns_to_what_it_is_given_is_told_so_and_changes_nothing(calc_project: Project) -> None:
    calc_project.write(
        {
            "conftest.py": textwrap.dedent(
                """
                import pathlib

                def pytest_explore_trial_finished(trial):
                    if trial.name == "bad":
                        trial.score = 0.99

                def pytest_explore_summary(results):
                    try:
                        results.trials[0].score = 0.0
                    except AttributeError as exc:
                        pathlib.Path("summary-error.txt").write_text(str(exc))
                """
            )
        }
    )
    calc_project.commit("a hook that cheats")
    spec = calc_project.variants(calc_project.calc_spec(good=GOOD_AGENT, bad=BAD_AGENT))
    result = calc_project.explore("--variants", spec, "-n", "2")
    result.stdout.fnmatch_lines(["*ReadOnlyError: pytest_explore_trial_finished: TrialRecord.score is read-only*"])
    summary_error = (calc_project.path / "summary-error.txt").read_text()
    assert summary_error.startswith("pytest_explore_summary: TrialRecord.score is read-only")
    assert "its record on disk was changed" not in result.stdout.str() + result.stderr.str()
    trials = {t["name"]: t for t in calc_project.results()["trials"]}
    assert (trials["good"]["rank"], trials["bad"]["rank"]) == (1, 2)
    assert trials["bad"]["score"] < 0.99
    assert trials["good"]["tests"]["cases"]


def test_min_score_fails_low_scoring_variants(explored: Project) -> None:
    spec = explored.variants(explored.calc_spec(good=GOOD_AGENT, bad=BAD_AGENT))
    result = explored.explore("--variants", spec, "--explore-min-score", "0.5")
    assert result.ret == 1
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["*score 0.333 is below --explore-min-score 0.5*"])


@pytest.mark.parametrize("squash", [False, True], ids=["merge", "squash"])
def test_adopt_best_leaves_the_winners_code_and_passing_tests(explored: Project, squash: bool) -> None:
    before = explored.git("rev-parse", "HEAD").strip()
    args = ["--explore", "calc", "--explore-adopt", "best", *(["--explore-adopt-squash"] if squash else [])]
    result = explored.pytester.runpytest_subprocess(*args)

    assert result.ret == 0, result.stderr.str()
    result.stdout.fnmatch_lines(["explore calc: adopted good (score 1.000)*"])
    assert "return a + b" in (explored.path / "calc.py").read_text()
    parents = explored.git("rev-list", "--parents", "-n", "1", "HEAD").split()[1:]
    assert parents == ([before] if squash else [before, explored.git("rev-parse", "explore/calc/good").strip()])
    tests = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=explored.path)
    assert tests.returncode == 0


def test_adopt_refuses_a_dirty_tree_and_an_unscored_variant(calc_project: Project) -> None:
    spec = calc_project.variants(calc_project.calc_spec(good=GOOD_AGENT, missing="no-such-agent-anywhere"))
    calc_project.explore("--variants", spec)

    refused = calc_project.pytester.runpytest_subprocess("--explore", "calc", "--explore-adopt", "missing")
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(["*missing was not scored (agent_failed: agent command not found*"])

    (calc_project.path / "calc.py").write_text("# local edits\n")
    dirty = calc_project.pytester.runpytest_subprocess("--explore", "calc", "--explore-adopt", "good")
    assert dirty.ret == pytest.ExitCode.USAGE_ERROR
    dirty.stderr.fnmatch_lines(["*has uncommitted changes; commit or stash them before adopting*"])
    assert (calc_project.path / "calc.py").read_text() == "# local edits\n"


#: A plugin loaded with ``-p``: records that pytest configured and unconfigured it.
RECORDER = """
import pathlib

def pytest_configure(config):
    with pathlib.Path("hooks.log").open("a") as f:
        f.write("configure\\n")

def pytest_unconfigure(config):
    with pathlib.Path("hooks.log").open("a") as f:
        f.write("unconfigure\\n")
"""


def assert_quiet(result: pytest.RunResult) -> None:
    """Exit 0 with only the command's own output: no session banner, no test summary."""
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == 0, output
    assert "test session starts" not in output
    assert "no tests ran" not in output
    assert "rootdir:" not in output and "platform " not in output


def test_each_command_prints_only_its_own_output(explored: Project) -> None:
    explored.write({"recorder.py": RECORDER})
    log = explored.path / "hooks.log"
    results = explored.experiment_dir() / "results"
    commands = [
        ["--explore", "calc", "--explore-results"],
        ["--explore-list"],
        ["--explore", "calc", "--explore-merge", str(results)],
        ["--explore", "calc", "--explore-adopt", "best"],
        ["--explore", "calc", "--explore-cleanup"],
    ]
    expected_first_line = [
        "# Experiment `calc`",
        "calc: 2 variants; 2 done; best good (1.000); 20*",
        "rank *variant *status *score*",
        "explore calc: adopted good (score 1.000)*",
        "explore calc: removed 2 worktrees/branches",
    ]
    for args, first in zip(commands, expected_first_line, strict=True):
        log.unlink(missing_ok=True)
        result = explored.pytester.runpytest_subprocess("-p", "recorder", *args)

        assert_quiet(result)
        result.stdout.fnmatch_lines([first])
        assert fnmatch.fnmatch(result.stdout.lines[0], first), (args, result.stdout.lines[:3])
        assert log.read_text() == "configure\nunconfigure\n", args


def test_commands_read_the_explore_dir_from_the_command_line_and_the_ini_file(explored: Project) -> None:
    data = explored.path / ".data"
    (data / "parallel_explorer").rename(data / "elsewhere")

    default = explored.pytester.runpytest_subprocess("--explore-list")
    assert_quiet(default)
    assert default.stdout.lines == [f"no experiments in {data / 'parallel_explorer'}"]

    option = explored.pytester.runpytest_subprocess("--explore-list", "--explore-dir", ".data/elsewhere")
    assert_quiet(option)
    option.stdout.fnmatch_lines(["calc: 2 variants; 2 done; best good (1.000); 20*"])

    explored.write({"pytest.ini": "[pytest]\nexplore_dir = .data/elsewhere\n"})
    ini = explored.pytester.runpytest_subprocess("--explore", "calc", "--explore-results", "-p", "no:terminal")
    assert_quiet(ini)
    assert ini.stdout.lines[0] == "# Experiment `calc`"


def test_a_refused_command_is_one_error_line_without_a_session(explored: Project) -> None:
    result = explored.pytester.runpytest_subprocess("--explore", "nope", "--explore-results")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert result.stdout.str().strip() == ""
    assert [line for line in result.stderr.lines if line.strip()] == [
        f"ERROR: --explore nope: no such experiment in {explored.path / '.data' / 'parallel_explorer'}"
    ]


#: An agent that writes calc.py and two new files: NOTES.md and local.cfg.
WRITES_NEW_FILES = f"{GOOD_AGENT}; printf 'variant notes\\n' > NOTES.md; printf 'variant=1\\n' > local.cfg"


@pytest.mark.parametrize("kind", ["untracked", "ignored"])
def test_adopt_refuses_to_overwrite_untracked_or_ignored_files(calc_project: Project, kind: str) -> None:
    spec = calc_project.variants(calc_project.calc_spec(good=WRITES_NEW_FILES))
    assert calc_project.explore("--variants", spec).ret == 0
    # After the run, the user has a file of their own where the variant wrote one.
    mine = calc_project.path / ("NOTES.md" if kind == "untracked" else "local.cfg")
    mine.write_bytes(b"the user's own \x00 bytes\n")
    if kind == "ignored":
        with (calc_project.path / ".git" / "info" / "exclude").open("a") as f:
            f.write("local.cfg\n")
    assert (mine.name in calc_project.git("status", "--porcelain", "--ignored")) is True
    head = calc_project.git("rev-parse", "HEAD")
    status = calc_project.git("status", "--porcelain", "--ignored")

    result = calc_project.pytester.runpytest_subprocess("--explore", "calc", "--explore-adopt", "good")

    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    result.stderr.fnmatch_lines(
        [
            "ERROR: --explore-adopt: merging explore/calc/good would overwrite untracked or ignored files"
            f" in *: {mine.name}; move or delete them first; nothing was changed"
        ]
    )
    assert "adopted" not in result.stdout.str()
    assert mine.read_bytes() == b"the user's own \x00 bytes\n"
    assert calc_project.git("rev-parse", "HEAD") == head
    assert calc_project.git("status", "--porcelain", "--ignored") == status
    assert "raise NotImplementedError" in (calc_project.path / "calc.py").read_text()


def test_adopt_refuses_a_moved_branch_and_an_adopted_one(explored: Project) -> None:
    good = explored.git("rev-parse", "explore/calc/good").strip()
    # update-ref: the branch is checked out in its worktree, which `git branch -f` refuses.
    explored.git("update-ref", "refs/heads/explore/calc/good", "explore/calc/bad")
    moved = explored.pytester.runpytest_subprocess("--explore", "calc", "--explore-adopt", "good")
    assert moved.ret == pytest.ExitCode.USAGE_ERROR
    moved.stderr.fnmatch_lines([f"*explore/calc/good points at *, not the scored commit {good[:12]}*"])

    explored.git("update-ref", "refs/heads/explore/calc/good", good)
    assert explored.pytester.runpytest_subprocess("--explore", "calc", "--explore-adopt", "good").ret == 0
    head = explored.git("rev-parse", "HEAD")
    again = explored.pytester.runpytest_subprocess("--explore", "calc", "--explore-adopt", "good")
    assert again.ret == pytest.ExitCode.USAGE_ERROR
    again.stderr.fnmatch_lines(["*explore/calc/good is already merged into HEAD*; nothing to adopt"])
    assert explored.git("rev-parse", "HEAD") == head


def test_cleanup_leaves_worktrees_and_folders_that_are_not_the_experiments(explored: Project) -> None:
    worktrees = explored.experiment_dir() / "worktrees"
    elsewhere = explored.path.parent / f"{explored.path.name}-mine"
    explored.git("worktree", "add", "-q", "-b", "mine", str(elsewhere))
    explored.git("worktree", "add", "-q", "-b", "mine-inside", str(worktrees / "inside"))
    # What an earlier version of the plugin made: a linked worktree on one of the experiment's branches.
    explored.git("worktree", "add", "-q", "-b", "explore/calc/old", str(worktrees / "old"))
    stray = worktrees / "stray"
    stray.mkdir()
    (stray / "keep.txt").write_text("not git's\n")

    result = explored.pytester.runpytest_subprocess("--explore", "calc", "--explore-cleanup")

    assert_quiet(result)
    result.stdout.fnmatch_lines(
        [
            "explore calc: removed 3 worktrees/branches",
            f"  {worktrees / 'bad'}",
            f"  {worktrees / 'good'}",
            f"  {worktrees / 'old'}",
            "explore calc: left 2 in *",
            f"  {worktrees / 'inside'}: on branch mine-inside, not one of explore/calc/*; left alone",
            f"  {stray}: not a trial's folder; left alone*",
        ]
    )
    assert not (worktrees / "good").exists() and not (worktrees / "bad").exists()
    assert not (worktrees / "old").exists() and not (explored.experiment_dir() / "base").exists()
    assert (stray / "keep.txt").read_text() == "not git's\n"
    listed = explored.git("worktree", "list", "--porcelain")
    assert f"worktree {elsewhere}\n" in listed and f"worktree {worktrees / 'inside'}\n" in listed
    assert "explore/calc/" not in listed
    assert (elsewhere / "calc.py").is_file() and (worktrees / "inside" / "calc.py").is_file()


def artifact(project: Project, folder: str, experiment: str, **changes: object) -> Path:
    """A copy of the calc run's results folder as experiment ``experiment``, its first trial record changed."""
    target = project.path / folder
    shutil.copytree(project.experiment_dir() / "results", target)
    data = json.loads((target / "results.json").read_text())
    data["experiment"] = experiment
    for trial in data["trials"]:
        trial["experiment"] = experiment
        trial["branch"] = f"explore/{experiment}/{trial['name']}"
    data["trials"][0].update(changes)
    (target / "results.json").write_text(json.dumps(data))
    return target


SAFE_NAMES = "expected letters, digits, '.', '_' and '-' (names become paths and git refs)"


@pytest.mark.parametrize(
    ("changes", "expected"),
    [
        ({"name": "../../x"}, f"trials[0].name: unsafe name '../../x'; {SAFE_NAMES}"),
        ({"variant": "a/b"}, f"trials[0].variant: unsafe name 'a/b'; {SAFE_NAMES}"),
        ({"name": 7}, f"trials[0].name: unsafe name 7; {SAFE_NAMES}"),
        ({"branch": "explore/other/good"}, "trials[0].branch: expected 'explore/ci/good', got 'explore/other/good'"),
        ({"status": "exploded"}, "trials[0]: not a trial record of this plugin: 'exploded' is not a valid Status"),
    ],
    ids=["name", "variant", "not-text", "branch", "status"],
)
def test_merge_refuses_a_hostile_record_before_writing_anything(
    explored: Project, changes: dict[str, object], expected: str
) -> None:
    good = artifact(explored, "artifact-good", "ci")
    hostile = artifact(explored, "artifact-hostile", "ci", **changes)
    result = explored.pytester.runpytest_subprocess("--explore", "ci", "--explore-merge", str(good), str(hostile))

    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str()
    assert [line for line in result.stderr.lines if line.strip()] == [
        f"ERROR: --explore-merge: {hostile / 'results.json'}: {expected}"
    ]
    assert not (explored.experiment_dir("ci")).exists()
    assert not (explored.path / "x").exists() and not (explored.path.parent / "x").exists()

    # The same folders without the hostile one merge.
    assert_quiet(explored.pytester.runpytest_subprocess("--explore", "ci", "--explore-merge", str(good)))
    assert sorted(t["name"] for t in explored.results("ci")["trials"]) == ["bad", "good"]
