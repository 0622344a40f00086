"""Agents and suites scheduled apart: ``max_concurrent`` agents, ``score.max_concurrent`` suites, one pool per run.

The issue's reproduction, scaled down: eight variants at ``-n 8`` whose
suites each burn CPU, with a ``score.timeout`` that a suite meets alone but
not after waiting in line.  Every suite logs when its CPU work starts and
ends (outside the checkout: ``sandbox: none``), so the overlap is measured,
not inferred; the baseline's runs log too, since they share the pool.
"""

from __future__ import annotations

import datetime
import json
import os
import textwrap
from pathlib import Path

import pytest

from pytest_parallel_explore.agents.registry import BUILTIN_BACKENDS
from pytest_parallel_explore.config.reading import read_variants
from pytest_parallel_explore.config.settings import resolve_settings, usable_cpus
from pytest_parallel_explore.controller.workers import ReadyFirstScheduling
from tests.agent_clis import needs_bwrap
from tests.explore_testing import BAD_AGENT, GOOD_AGENT, Project

BURN_TEST = """
import os, time

def test_burns_cpu():
    with open(os.environ["BURN_LOG"], "a") as log:
        log.write(f"start {{time.time()}}\\n")
    end = time.process_time() + {seconds}
    while time.process_time() < end:
        pass
    with open(os.environ["BURN_LOG"], "a") as log:
        log.write(f"end {{time.time()}}\\n")
"""


def peak_overlap(log: Path) -> int:
    events = sorted((float(t), kind == "start") for kind, t in (line.split() for line in log.read_text().splitlines()))
    running = peak = 0
    for _, starts in events:
        running += 1 if starts else -1
        peak = max(peak, running)
    return peak


def test_suites_take_turns_and_their_timeout_counts_from_their_turn(
    calc_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = calc_project.path.parent / f"{calc_project.path.name}-burn.log"
    calc_project.write({"tests/test_burn.py": textwrap.dedent(BURN_TEST.format(seconds=0.4))})
    calc_project.commit("a suite that burns CPU")
    spec = calc_project.calc_spec(**{f"v{i}": GOOD_AGENT for i in range(8)})
    spec["score"]["baseline_runs"] = 2  # the baseline's two suites take turns with the trials' too
    spec["max_concurrent"] = 8
    spec["sandbox"] = "none"  # the suites log outside their checkouts
    timeout = 5.0  # one suite's ~1 s, with room for the 8 workers starting beside the baseline's first
    spec["score"].update({"max_concurrent": 1, "timeout": f"{timeout:g}s", "pass_env": ["BURN_LOG"], "cache": False})
    monkeypatch.setenv("BURN_LOG", str(log))
    result = calc_project.explore("--variants", calc_project.variants(spec), "-n", "8")

    assert result.ret == 0, result.stdout.str()
    result.stdout.fnmatch_lines(["*8 workers [[]8 items[]]*"])
    trials = calc_project.trials().values()
    assert [t["status"] for t in trials] == ["done"] * 8
    assert all(t["tests"]["problem"] is None and t["tests"]["passed"] == 4 for t in trials)
    assert len(log.read_text().split()) == 2 * 2 * (8 + 2), "every trial's suite and both baseline runs burned"
    assert peak_overlap(log) == 1, "one suite at a time, the baseline's runs included"
    # Each suite alone is well inside its timeout; with the wait in line most would not be.
    waits = [t["steps"]["score"]["suite_wait"] for t in trials]
    assert all(t["tests"]["seconds"] < timeout for t in trials)
    assert max(w + t["tests"]["seconds"] for w, t in zip(waits, trials, strict=True)) > timeout
    assert all(t["steps"]["score"]["seconds"] >= w for w, t in zip(waits, trials, strict=True))
    assert not any("suite_waiting_since" in t["steps"]["score"] for t in trials)
    result.stdout.re_match_lines([r"explore calc\[v\d\]: score \d+\.\ds, suite waiting for a slot \d+\.\ds"])
    result.stdout.re_match_lines([r"explore calc\[v\d\]: done \d+\.\ds, suite waited \d+\.\ds for a slot"])


def test_suites_at_once_default_to_the_cpus_the_run_may_use(calc_project: Project) -> None:
    spec = calc_project.calc_spec(good=GOOD_AGENT)
    default = resolve_settings(
        calc_project.pytester.parseconfig("--explore", "calc", "--variants", calc_project.variants(spec)),
        BUILTIN_BACKENDS,
    )
    spec["score"]["max_concurrent"] = 5
    chosen = resolve_settings(
        calc_project.pytester.parseconfig("--explore", "calc", "--variants", calc_project.variants(spec)),
        BUILTIN_BACKENDS,
    )
    assert (default.score.max_concurrent, chosen.score.max_concurrent) == (usable_cpus(), 5)
    assert default.trials[0].spec_hash == chosen.trials[0].spec_hash, "how many suites run at once changes no result"


def test_the_baseline_starts_once_the_workers_are_up_and_runs_as_the_trials_do(
    calc_project: Project, tmp_path: Path
) -> None:
    """At the start the CPU goes to the workers; then the baseline's suites run at the trials' priority.

    A suite's timeout counts from its slot: a niced one, starved by the workers starting, timed out.
    """
    seen = tmp_path / "seen"
    seen.mkdir()
    note = (
        "import time\n\n\ndef pytest_xdist_node_collection_finished(node, ids):\n"
        f"    open({str(seen / 'collected')!r}, 'a').write(str(time.time()) + '\\n')\n"
    )
    calc_project.write({"conftest.py": note})
    calc_project.commit("a conftest that notes when each worker has collected")
    record = (
        f"import os, time; open('{seen}/' + os.environ['EXPLORE_TRIAL'], 'w')"
        ".write(str(os.nice(0)) + ' ' + str(time.time()))"
    )
    spec = calc_project.calc_spec(good=GOOD_AGENT, also=GOOD_AGENT)
    spec["score"]["baseline_runs"] = 2
    spec["sandbox"] = "none"
    spec["score"].update({"command": f'{{python}} -c "{record}" && {spec["score"]["command"]}', "cache": False})
    result = calc_project.explore("--variants", calc_project.variants(spec), "-n", "2")

    assert result.ret == 0, result.stdout.str()
    collected = [float(line) for line in (seen / "collected").read_text().split()]
    assert len(collected) == 2
    runs = {name: (seen / name).read_text().split() for name in ("baseline.1", "baseline.2", "good", "also")}
    assert min(float(runs[name][1]) for name in ("baseline.1", "baseline.2")) > max(collected)
    assert {nice for nice, _ in runs.values()} == {str(os.nice(0))}


MEETING = """
import os, pathlib, sys, time

me, folder = os.environ["EXPLORE_TRIAL"], pathlib.Path(sys.argv[1])
(folder / me).write_text(os.getcwd())
other = {"baseline.1": "baseline.2", "baseline.2": "baseline.1"}.get(me)
end = time.monotonic() + 20  # a bound on the wait, not a synchronisation: run one after the other, they never meet
while other and not (folder / other).exists() and time.monotonic() < end:
    time.sleep(0.02)
if other and (folder / other).exists():
    (folder / f"{me}.met").touch()
"""


def test_the_baseline_runs_its_suites_at_once_in_checkouts_of_their_own(calc_project: Project, tmp_path: Path) -> None:
    """Every trial's score waits for the baseline, so its runs take the free slots together."""
    meeting = tmp_path / "meeting.py"
    meeting.write_text(MEETING)
    (tmp_path / "seen").mkdir()
    spec = calc_project.calc_spec(good=GOOD_AGENT)
    spec["sandbox"] = "none"  # the suites write outside their checkouts
    spec["score"].update(max_concurrent=2, baseline_runs=2)
    spec["score"]["command"] = f"{{python}} {meeting} {tmp_path / 'seen'} && {spec['score']['command']}"
    result = calc_project.explore("--variants", calc_project.variants(spec))

    assert result.ret == 0, result.stdout.str()
    seen = tmp_path / "seen"
    assert (seen / "baseline.1.met").exists() and (seen / "baseline.2.met").exists()
    assert (seen / "baseline.1").read_text() != (seen / "baseline.2").read_text(), "two checkouts"
    assert calc_project.trials()["good"]["status"] == "done"


@pytest.mark.parametrize("carried", ["data", "text"])
def test_workers_run_the_variants_the_controller_read_though_the_file_changes_as_they_start(
    calc_project: Project, carried: str
) -> None:
    """The controller hands its workers the variants it read: what the file says later changes nothing.

    ``carried``: the file's data goes to the workers in JSON; where JSON cannot
    carry it (a YAML date in an agent's ``config``), its text does.
    """
    spec, later = (
        calc_project.calc_spec(good=GOOD_AGENT, also=GOOD_AGENT),
        calc_project.calc_spec(good=BAD_AGENT, also=BAD_AGENT),
    )
    if carried == "text":
        spec["agent"]["config"] = {"since": datetime.date(2026, 12, 7)}
    rewrite = (
        "import pathlib\n\n\ndef pytest_configure_node(node):\n"
        f"    pathlib.Path({str(calc_project.path / 'variants.yaml')!r}).write_text({json.dumps(later)!r})\n"
    )
    calc_project.write({"conftest.py": rewrite})
    calc_project.commit("a conftest that rewrites the variants file as each worker starts")
    variants = calc_project.variants(spec)
    assert carried in json.loads(read_variants(variants, calc_project.path).to_json_text())

    result = calc_project.explore("--variants", variants, "-n", "2")

    assert result.ret == 0, result.stdout.str()
    assert "a * b" in (calc_project.path / variants).read_text(), "the file changed as the workers started"
    assert {name: t["score"] for name, t in calc_project.trials().items()} == {"good": 1.0, "also": 1.0}


#: gw1 starts slow: it collects only once a progress record matching $WAIT_FOR has one of the
#: statuses in $WAIT_STATUSES (a trial's agent has started, or it is done), waiting at most 30 s,
#: and notes which happened in $WAIT_NOTE.  The records are the workers' own: it needs nothing of the
#: agents, which work sandboxed (the early hand-out is for runs with nothing unsandboxed).
SLOW_SECOND_WORKER = """
import glob, json, os, pathlib, time


def _ready():
    for path in glob.glob(os.environ["WAIT_FOR"]):
        try:
            if json.loads(pathlib.Path(path).read_text())["status"] in os.environ["WAIT_STATUSES"].split(","):
                return True
        except (OSError, ValueError, KeyError):
            pass
    return False


def pytest_sessionstart(session):
    if os.environ.get("PYTEST_XDIST_WORKER") != "gw1" or "WAIT_FOR" not in os.environ:
        return
    end = time.monotonic() + 30  # a bound, not a synchronisation: without early hand-out nothing comes
    while not _ready() and time.monotonic() < end:
        time.sleep(0.02)
    pathlib.Path(os.environ["WAIT_NOTE"]).write_text(f"{'seen' if _ready() else 'timed out'} {time.time()}")
"""


def slow_second_worker(project: Project, statuses: str, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Commit :data:`SLOW_SECOND_WORKER`; set it waiting for a trial with one of ``statuses``; its note's path."""
    project.write({"conftest.py": SLOW_SECOND_WORKER})
    project.commit("a conftest that holds the second xdist worker back")
    note = project.path.parent / f"{project.path.name}-gw1"
    monkeypatch.setenv("WAIT_FOR", str(project.experiment_dir() / "results" / "*_progress.json"))
    monkeypatch.setenv("WAIT_STATUSES", statuses)
    monkeypatch.setenv("WAIT_NOTE", str(note))
    return note


@needs_bwrap
def test_a_trial_starts_on_the_first_worker_up_without_waiting_for_the_others(
    calc_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The second worker collects only once an agent has started: so one must start before it is up."""
    note = slow_second_worker(calc_project, "agent,score,done", monkeypatch)
    spec = calc_project.calc_spec(good=GOOD_AGENT, also=GOOD_AGENT)

    result = calc_project.explore("--variants", calc_project.variants(spec), "-n", "2")

    assert result.ret == 0, result.stdout.str()
    seen, _, at = note.read_text().rpartition(" ")
    assert seen == "seen", "the second worker waited for an agent that only its own start could let run"
    first_agent = min(t["steps"]["agent"]["started"] for t in calc_project.trials().values())
    assert first_agent < float(at)
    assert {t["status"] for t in calc_project.trials().values()} == {"done"}
    result.stdout.fnmatch_lines(["*2 workers [[]2 items[]]*"])


@needs_bwrap
def test_workers_up_late_retry_the_trials_the_controller_found_failed(
    calc_project: Project, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A retried trial that is done before the second worker collects is still the one the run retries."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    agent = f"test -e ~/state/fixed && {GOOD_AGENT}"  # fails until the flag exists
    spec_data = calc_project.calc_spec(one=agent, two=agent)
    spec_data["sandbox"] = {"home": ["~/state"]}  # the agents see the flag, read-only
    spec = calc_project.variants(spec_data)
    note = slow_second_worker(calc_project, "done", monkeypatch)
    monkeypatch.delenv("WAIT_FOR")  # the first run: no worker waits
    assert calc_project.explore("--variants", spec, "-n", "2").ret == 1
    assert {t["status"] for t in calc_project.trials().values()} == {"agent_failed"}

    (tmp_path / "home" / "state" / "fixed").touch()
    monkeypatch.setenv("WAIT_FOR", str(calc_project.experiment_dir() / "results" / "*_progress.json"))
    retry = calc_project.explore("--variants", spec, "-n", "2", "--explore-retry-failed")

    assert retry.ret == 0, retry.stdout.str()
    assert note.read_text().rpartition(" ")[0] == "seen", "the second worker collected once a retried trial ended"
    trials = calc_project.trials()
    assert {name: [a["status"] for a in t["attempts"]] for name, t in trials.items()} == {
        "one": ["agent_failed", "done"],
        "two": ["agent_failed", "done"],
    }


class FakeWorker:
    """What xdist's schedulers use of a worker: the items sent, and whether it was told no more come."""

    def __init__(self, name: str) -> None:
        self.gateway = type("Gateway", (), {"id": name})()
        self.sent: list[int] = []
        self.shutting_down = False

    def send_runtest_some(self, indices: list[int]) -> None:
        self.sent += indices

    def shutdown(self) -> None:
        self.shutting_down = True


def ready_first(pytester: pytest.Pytester, workers: int) -> tuple[ReadyFirstScheduling, list[FakeWorker]]:
    scheduler = ReadyFirstScheduling(pytester.parseconfig("--tx", f"{workers}*popen", "--dist", "worksteal"))
    nodes = [FakeWorker(f"gw{i}") for i in range(workers)]
    for node in nodes:
        scheduler.add_node(node)
    return scheduler, nodes


def test_each_worker_takes_its_share_as_it_collects_and_one_trial_starts_at_once(pytester: pytest.Pytester) -> None:
    scheduler, (first, second, third) = ready_first(pytester, 3)
    trials = [f"explore::x[t{i}]" for i in range(5)]

    scheduler.add_node_collection(first, trials)
    assert (first.sent, first.shutting_down) == ([0, 1], False), "a share of 5 among 3: the first up takes 2"
    assert not scheduler.has_pending, "xdist still shows 'N workers [M items]' once all are up"
    scheduler.add_node_collection(second, trials)
    assert second.sent == [2, 3]
    scheduler.add_node_collection(third, trials)
    assert scheduler.collection_is_completed
    scheduler.schedule()  # as xdist does once the last worker has collected
    assert (third.sent, third.shutting_down) == ([4], True), "a worker holding one trial is told none follows"
    assert scheduler.has_pending

    scheduler, (one, _) = ready_first(pytester, 2)
    scheduler.add_node_collection(one, trials[:2])
    assert (one.sent, one.shutting_down) == ([0], True), "one trial each: it starts before the other worker is up"


def test_a_worker_that_collected_other_trials_is_reported_and_the_rest_is_not_handed_out(
    pytester: pytest.Pytester,
) -> None:
    failed: list[pytest.CollectReport] = []

    class Reports:
        def pytest_collectreport(self, report: pytest.CollectReport) -> None:
            failed.extend([report] if report.failed else [])

    scheduler, (first, second) = ready_first(pytester, 2)
    scheduler.config.pluginmanager.register(Reports())
    scheduler.add_node_collection(first, ["explore::x[a]", "explore::x[b]"])
    scheduler.add_node_collection(second, ["explore::x[a]"])
    scheduler.schedule()

    assert [r.nodeid for r in failed] == ["gw1"]
    assert (first.sent, second.sent, second.shutting_down) == ([0], [], True)
    scheduler.mark_test_complete(first, 0)
    assert scheduler.tests_finished, "nothing is left waiting for a worker that will never take it"


#: gw1 dies as it starts, once gw0 has collected (so the run knows which trials it was to run).
DIES_AFTER_THE_FIRST_COLLECTS = """
import os, pathlib, time


def pytest_collection_finish(session):
    if os.environ.get("PYTEST_XDIST_WORKER") == "gw0":
        pathlib.Path(os.environ["COLLECTED"]).touch()


if os.environ.get("PYTEST_XDIST_WORKER") == "gw1":
    end = time.monotonic() + 30  # a bound, not a synchronisation
    while not pathlib.Path(os.environ["COLLECTED"]).exists() and time.monotonic() < end:
        time.sleep(0.02)
    os._exit(3)
"""


def test_trials_no_worker_ran_are_named_and_fail_the_run(
    calc_project: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a sandbox a lost worker is not replaced: the trials that never ran are said, and CI hears of it."""
    calc_project.write({"conftest.py": DIES_AFTER_THE_FIRST_COLLECTS})
    calc_project.commit("a conftest with which the second worker dies as it starts")
    monkeypatch.setenv("COLLECTED", str(calc_project.path.parent / f"{calc_project.path.name}-collected"))
    spec = calc_project.calc_spec(good=GOOD_AGENT, also=GOOD_AGENT)
    spec["sandbox"] = "none"

    result = calc_project.explore("--variants", calc_project.variants(spec), "-n", "2")

    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    result.stdout.fnmatch_lines(["*worker gw1 crashed and worker restarting disabled*"])
    result.stdout.fnmatch_lines(["*warning: 2 trials did not run: good, also; run the same command again*"])
    assert calc_project.results()["not_run"] == ["good", "also"]
    summary = (calc_project.experiment_dir() / "results" / "summary.md").read_text()
    assert "## Warning: trials did not run" in summary
    assert "'explore::calc[good]' 'explore::calc[also]'" in summary, "the command that runs them"
