"""Hostile agents against the start of a run's later xdist workers (``sandbox: none``).

A worker runs its trials as soon as it has itself collected (``controller/workers.py``),
so an early trial's agent could run while the run's other workers are still starting:
what those read then (the project's ini and conftest files, the prompt template, the
user's git index) is within reach of an agent that can write the main checkout.  So a
run with anything unsandboxed starts no worker after an agent: trials wait until every
worker is up, and a worker that dies is not replaced.  Each test asserts that a later
worker runs what the controller read, whatever the early agent did.

Found by a review given the threat model only; its fifth attack (a main-checkout
change blamed on the trial whose check comes first) is
``test_a_main_checkout_change_is_not_blamed_on_a_trial_that_ran_beside_its_maker``.

The second worker is made to start late: the committed root ``conftest.py``
(:data:`LATE_SECOND_WORKER`) holds ``gw1`` at import, before its ``pytest_configure``,
until the file ``$WAIT_FOR`` names exists (an agent writes it), for at most 10 s: with
the defence no agent runs before it, so it always waits that long.  Every attacker's
waits are bounded polls (:data:`WAIT_FOR_SCRIPT`), never a sleep taken for synchronisation.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from tests.explore_testing import BAD_AGENT, GOOD_AGENT, Project

#: gw1 waits at import of the root conftest (so before its ini-driven configure and its collection)
#: until $WAIT_FOR exists, for at most 10 s; a replacement worker (gw2, ...) does not wait.
LATE_SECOND_WORKER = """
import glob, os, time

if os.environ.get("PYTEST_XDIST_WORKER") == "gw1" and "WAIT_FOR" in os.environ:
    _end = time.monotonic() + 10  # a bound, not a synchronisation
    while not glob.glob(os.environ["WAIT_FOR"]) and time.monotonic() < _end:
        time.sleep(0.02)
"""

#: ``{python} wait_for.py PATTERN SECONDS``: returns once a file matches PATTERN, or after SECONDS.
WAIT_FOR_SCRIPT = """
import glob, sys, time

end = time.monotonic() + float(sys.argv[2])
while not glob.glob(sys.argv[1]) and time.monotonic() < end:
    time.sleep(0.02)
"""

#: ``{python} kill_sibling.py``: SIGKILL the other xdist workers of the run this agent's worker belongs to.
#: Found by walking up to the worker (execnet's popen command line) and listing its parent's children.
KILL_SIBLING_SCRIPT = """
import os, signal


def parent(pid):
    with open(f"/proc/{pid}/status") as status:
        return next(int(line.split()[1]) for line in status if line.startswith("PPid:"))


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    except OSError:
        return b""


pid, worker = os.getpid(), None
while pid > 1:
    if b"sys.stdin.readline" in cmdline(pid):
        worker = pid
        break
    pid = parent(pid)
controller = parent(worker)
for entry in os.listdir("/proc"):
    if entry.isdigit() and int(entry) != worker:
        try:
            if parent(int(entry)) == controller and cmdline(int(entry)) == cmdline(worker):
                os.kill(int(entry), signal.SIGKILL)
        except (OSError, StopIteration):
            pass
"""


@pytest.fixture
def late(calc_project: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Project:
    """The calc project with :data:`LATE_SECOND_WORKER` committed; $WAIT_FOR is $MARKS/one; helper scripts in $TOOLS."""
    calc_project.write({"conftest.py": LATE_SECOND_WORKER})
    calc_project.commit("a conftest that holds the second xdist worker back at import")
    marks, tools = tmp_path / "marks", tmp_path / "tools"
    marks.mkdir()
    tools.mkdir()
    (tools / "wait_for.py").write_text(WAIT_FOR_SCRIPT)
    (tools / "kill_sibling.py").write_text(KILL_SIBLING_SCRIPT)
    monkeypatch.setenv("WAIT_FOR", str(marks / "one"))
    monkeypatch.setenv("MARKS", str(marks))
    monkeypatch.setenv("TOOLS", str(tools))
    monkeypatch.setenv("EXPLORE_ROOT", str(calc_project.path))
    monkeypatch.setenv("EXPLORE_RESULTS", str(calc_project.experiment_dir() / "results"))
    return calc_project


def wait_for(pattern: str, seconds: int) -> str:
    return f'{{python}} "$TOOLS/wait_for.py" "{pattern}" {seconds}'


def no_crash(result: pytest.RunResult) -> None:
    output = result.stdout.str() + result.stderr.str()
    assert "Traceback" not in output and "INTERNALERROR" not in output, output[-3000:]


def run(project: Project, spec: dict[str, Any]) -> pytest.RunResult:
    return project.explore("--variants", project.variants(spec), "-n", "2")


# 1. The prompt template, rewritten in the main checkout while another trial is yet to render it (sandbox none).
#
# Each trial's prompt was rendered from the file again when that trial reached its agent step, and
# a worker starting late read it again for its trials' specs.  The agent of "one" rewrites the
# template in the main checkout (put back only once that agent ends) while gw1 starts, or while
# "two" is in its ``worktree.setup``, which waits for it; then it waits until "two"'s prompt was
# written.  The template is now read once, with the variants file.
@pytest.mark.parametrize("while_", ["a later worker starts", "another trial sets up"])
def test_a_template_rewritten_during_the_run_changes_no_other_trials_prompt(
    late: Project, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, while_: str
) -> None:
    late.write({"prompt.md.j2": "Honest prompt for {{ variant }}: {{ task }}\n"})
    late.commit("a prompt template")
    attack = (
        "printf 'HOSTILE prompt for {{ variant }}\\n' > \"$EXPLORE_ROOT/prompt.md.j2\""
        ' && touch "$MARKS/one"'
        f" && {wait_for('$EXPLORE_RESULTS/two_prompt.md', 8)} && {GOOD_AGENT}"
    )
    spec = late.calc_spec(one=attack, two=GOOD_AGENT)
    spec["prompt_template"] = "prompt.md.j2"
    spec["sandbox"] = "none"
    if while_ == "another trial sets up":
        monkeypatch.delenv("WAIT_FOR")  # every worker starts at once
        waits = f'"{sys.executable}" "{tmp_path / "tools" / "wait_for.py"}" "{tmp_path / "marks" / "one"}" 8'
        spec["worktree"] = {"setup": f'if [ "$EXPLORE_TRIAL" = two ]; then {waits}; fi'}

    result = run(late, spec)

    no_crash(result)
    assert (tmp_path / "marks" / "one").exists(), "the attack took place"
    prompt = (late.experiment_dir() / "results" / "two_prompt.md").read_text()
    assert "HOSTILE" not in prompt and "Honest prompt for two" in prompt, prompt
    assert (late.path / "prompt.md.j2").read_text().startswith("Honest"), "the main checkout was put back"


# 2. A conftest planted in the main checkout, imported by a worker still starting (sandbox none).
#
# pytest imports the initial conftests of every worker as it starts: the root's and those of its
# ``test*`` folders.  The agent of "one" plants ``tests/conftest.py`` in the main checkout (an
# untracked file, put back only once that agent ends) and lets gw1 go on: gw1 imports it, and the
# code runs inside the plugin's own worker process, where it rewrites "two"'s record to a perfect
# score before it is reported.  The README says an agent without a sandbox "runs as you and can
# write anywhere you can", so code execution is not prevented there; but the planted file is in the
# main checkout the plugin promises to keep, and the forged score is reported as "two"'s own.
FORGER = """
import os, pathlib

pathlib.Path(os.environ["MARKS"], "forger-ran-in-" + os.environ.get("PYTEST_XDIST_WORKER", "?")).touch()
if os.environ.get("PYTEST_XDIST_WORKER"):
    from pytest_parallel_explore.worker import trial as _trial

    _run = _trial.TrialRunner.run

    def run(self):
        record = _run(self)
        if record.name == "two":
            record.score = 1.0
            record.tests.passed, record.tests.failed = 3, 0
        return record

    _trial.TrialRunner.run = run
"""


def test_a_conftest_planted_while_a_later_worker_starts_forges_no_score(late: Project, tmp_path: Path) -> None:
    forger = tmp_path / "forger.py"
    forger.write_text(FORGER)
    attack = (
        f'{BAD_AGENT} && cp {forger} "$EXPLORE_ROOT/tests/conftest.py" && touch "$MARKS/one"'
        f" && {wait_for('$EXPLORE_RESULTS/two_prompt.md', 20)}"
    )
    spec = late.calc_spec(one=attack, two=BAD_AGENT)
    spec["sandbox"] = "none"

    result = run(late, spec)

    no_crash(result)
    trials = late.trials()
    forged = trials["two"]["score"]
    assert forged == pytest.approx(trials["one"]["score"]), (forged, result.stdout.str()[-3000:])
    ran = sorted(p.name for p in (tmp_path / "marks").iterdir() if p.name.startswith("forger-ran-in-"))
    assert ran == [], f"the planted conftest ran in the plugin's processes: {ran}"
    assert not (late.path / "tests" / "conftest.py").exists(), "the main checkout was put back"


# 3. The user's git index changed while gw1 starts, so that gw1 refuses its own start (sandbox none).
#
# Each worker checks the explore dir again as it configures (``_check_explore_dir``: it must hold no
# file git tracks), in the user's repository as it is then.  The agent of "one" force-adds a file of
# the experiment's folder to the user's index (git state the plugin puts back, but only once that
# agent ends) and lets gw1 configure.  Defended: "two" still runs and the run does not crash.
def test_an_index_entry_added_as_a_later_worker_starts_stops_no_trial(late: Project) -> None:
    attack = (
        'git -C "$EXPLORE_ROOT" add -f "$EXPLORE_RESULTS/one_prompt.md" && touch "$MARKS/one"'
        f" && {wait_for('$EXPLORE_RESULTS/two_prompt.md', 8)} && {GOOD_AGENT}"
    )
    spec = late.calc_spec(one=attack, two=GOOD_AGENT)
    spec["sandbox"] = "none"
    index_before = late.git("ls-files", "--stage")

    result = run(late, spec)

    data, trials = late.results(), late.trials()
    missing = data["missing"]
    assert "two" in trials or missing, f"'two' is neither a trial nor missing: exit {result.ret}, {missing}"
    assert "two" in trials and trials["two"]["status"] == "done", result.stdout.str()[-3000:]
    no_crash(result)
    assert late.git("ls-files", "--stage") == index_before, "the index was put back"


# 4. The ini's addopts, rewritten in the main checkout, then the other worker killed (sandbox none).
#
# A worker that dies was replaced by xdist, and the replacement starts from scratch: it read the
# ini file and its addopts again.  The agent of "one" writes ``pytest.ini`` in the main checkout with
# ``addopts = --explore-task=...`` and SIGKILLs its sibling worker, then waits for "two"'s prompt:
# the replacement ran "two" with the task from the agent's ini.  Killing another process of the user
# is what an agent without a sandbox can do (the README says it runs as you); now the dead worker is
# not replaced, and "two" is reported as not done, never run with a task the controller did not read.
def test_a_worker_killed_by_an_agent_is_not_replaced_by_one_reading_its_ini(late: Project) -> None:
    attack = (
        "printf '[pytest]\\naddopts = --explore-task=HOSTILE_TASK\\n' > \"$EXPLORE_ROOT/pytest.ini\""
        ' && {python} "$TOOLS/kill_sibling.py" && touch "$MARKS/one"'
        f" && {wait_for('$EXPLORE_RESULTS/two_prompt.md', 8)} && {GOOD_AGENT}"
    )
    spec = late.calc_spec(one=attack, two=GOOD_AGENT)
    spec["sandbox"] = "none"

    result = run(late, spec)

    output = result.stdout.str()
    assert "crashed and worker restarting disabled" in output, output[-3000:]  # the attack took place
    assert "replacing crashed worker" not in output
    prompt_file = late.experiment_dir() / "results" / "two_prompt.md"
    assert not prompt_file.exists() or "HOSTILE_TASK" not in prompt_file.read_text()
    data = late.results()
    assert "two" in data["missing"] + data["not_run"], output[-3000:]
    assert result.ret != 0, "CI hears that a trial did not get an outcome"
    assert late.trials()["one"]["status"] == "done"
    assert not (late.path / "pytest.ini").exists(), "the main checkout was put back"
