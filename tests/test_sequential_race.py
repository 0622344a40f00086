"""The sequential race end to end: real trials in xdist workers, each deciding at its start whether it is needed.

Three command agents succeed by a fixed table of trials (deterministic per trial, irregular across
them): ``good`` always, ``weak`` in rounds 2 and 9, ``poor`` in round 4.  Replaying those scores
through :func:`race_state` by hand eliminates both weaker variants after 6 rounds, so the run must
stop well short of the 3 x 12 trials it collected.  Two more races, of two variants, show the issue's
cases end to end: one that always solves the task against one that never does (decided by round 4),
and one that fails a test every time against one that passes all (``by: tests``, decided by round 7).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from pytest_parallel_explore.evidence.race import race_state
from tests.explore_testing import Project

WINS = {"weak.2", "weak.9", "poor.4"}

#: Logs the trial; writes a correct add() for good and the winning trials, else one that fails every test.
AGENT = """\
echo "$EXPLORE_TRIAL" >> {root}/invocations.log
case "$EXPLORE_VARIANT $EXPLORE_TRIAL" in
    good\\ *|*\\ {wins}) printf 'def add(a, b):\\n    return a + b\\n' > calc.py ;;
    *) printf 'def add(a, b):\\n    return None\\n' > calc.py ;;
esac
"""


def scores(variant: str, rounds: int) -> list[float]:
    return [1.0 if variant == "good" or f"{variant}.{k}" in WINS else 0.0 for k in range(1, rounds + 1)]


@pytest.fixture
def race_project(calc_project: Project) -> Project:
    calc_project.write({".gitignore": "variants*.yaml\nrunpytest-*\nstdout\nstderr\n*.log\nagent.sh\n"})
    calc_project.commit("ignore the test's files")
    wins = "|*\\ ".join(sorted(WINS))
    # It logs outside the project: without a sandbox, what an agent writes in the main checkout is put back.
    logs = calc_project.path.parent / f"{calc_project.path.name}-log"
    logs.mkdir()
    (calc_project.path / "agent.sh").write_text(AGENT.format(root=logs, wins=wins))
    return calc_project


def invocations(project: Project) -> list[str]:
    return (project.path.parent / f"{project.path.name}-log" / "invocations.log").read_text().split()


def test_the_hand_replayed_race_stops_after_six_rounds() -> None:
    state = race_state({name: scores(name, 12) for name in ("good", "weak", "poor")})
    assert state.winner == "good" and dict(state.trials) == {"good": 6, "weak": 6, "poor": 6}


def test_a_race_in_two_workers_picks_the_winner_with_fewer_trials(race_project: Project) -> None:
    spec = race_project.calc_spec(**{name: f"sh {race_project.path}/agent.sh" for name in ("good", "weak", "poor")})
    spec["sandbox"] = "none"  # the agent logs into the project
    spec["repeat"] = {"max": 12, "stop": "decided"}
    spec_file = race_project.variants(spec)
    result = race_project.explore("--variants", spec_file, "-n", "2", "-rs")
    assert result.ret == 0, result.stdout.str()

    ran = invocations(race_project)
    assert len(ran) == len(set(ran)) < 3 * 12
    assert {f"{name}.{k}" for name in ("good", "weak", "poor") for k in range(1, 7)} <= set(ran)
    results = race_project.results()
    race: dict[str, Any] = results["race"]
    assert race["winner"] == "good" and race["decided"] == "one_left"
    assert race["reason"] == "good is the only variant left"
    assert race["trials"] == {"good": 6, "poor": 6, "weak": 6}
    assert [(e["variant"], e["by"], e["trials"]) for e in race["eliminated"]] == [
        ("poor", "good", 6),
        ("weak", "good", 6),
    ]
    assert race["by"] == "score" and race["method"] == "two-sample product bets, threshold simulated for 12 rounds, 95%"
    assert results["best_variant"] == "good"

    trials = race_project.trials()
    skipped = {name for name, t in trials.items() if t["status"] == "skipped"}
    assert skipped and skipped.isdisjoint(ran) and len(skipped) + len(ran) == 36
    assert all(trials[name]["skipped_by"] == "race" for name in skipped)
    assert set(race["skipped"]) == skipped
    weak_reason = "weak: mean score 0.17 against 1.00 for good after 6 trials each"
    expected = {
        "weak": weak_reason,
        "poor": "poor: mean score 0.17 against 1.00 for good after 6 trials each",
        "good": "race decided: good is the only variant left",
    }
    assert {name: trials[name]["reason"] for name in skipped} == {
        name: expected[trials[name]["variant"]] for name in skipped
    }
    assert {"good.12", "weak.12", "poor.12"} <= skipped
    result.stdout.fnmatch_lines([f"SKIPPED*{weak_reason}"])
    result.stdout.fnmatch_lines(["SKIPPED*race decided: good is the only variant left"])
    result.stdout.fnmatch_lines(["race: * of at most 36 trials; stopped: good is the only variant left"])
    # The skipped trials are not trials of their variants in the statistics.
    by_variant = {v["name"]: v for v in results["variants"]}
    assert sum(v["k"] for v in by_variant.values()) == len(ran)
    summary = (race_project.experiment_dir() / "results" / "summary.md").read_text()
    assert "## Sequential race" in summary and "**Stopped:** good is the only variant left." in summary
    assert f"| weak | 6 | eliminated after 6 trials: {weak_reason} |" in summary
    html = (race_project.experiment_dir() / "results" / "report.html").read_text()
    assert "Sequential race" in html and weak_reason in html

    # A plain rerun recomputes the race from the saved records: it runs nothing and decides the same.
    again = race_project.explore("--variants", spec_file, "-n", "2")
    assert again.ret == 0, again.stdout.str()
    assert invocations(race_project) == ran
    assert race_project.results()["race"] == race

    # The merge of the results (a CI matrix's last job) shows the same race.
    results_dir = race_project.experiment_dir() / "results"
    merged = race_project.pytester.runpytest_subprocess("--explore", "calc", "--explore-merge", str(results_dir))
    assert merged.ret == 0, merged.stderr.str()
    assert json.loads((results_dir / "results.json").read_text())["race"] == race


def test_repeat_auto_collects_up_to_twelve_trials_per_variant_round_by_round(race_project: Project) -> None:
    spec = race_project.calc_spec(good="true", weak="true")
    result = race_project.explore("--variants", race_project.variants(spec), "--explore-repeat", "auto", "--co", "-q")
    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    ids = [line for line in result.stdout.lines if line.startswith("explore::")]
    assert ids == [f"explore::calc[{name}.{k}]" for k in range(1, 13) for name in ("good", "weak")]


#: Writes add() right for ``solves``; wrong for ``never``; wrong only for negative numbers for ``one_test``.
TWO_AGENT = """\
echo "$EXPLORE_TRIAL" >> {root}/invocations.log
case "$EXPLORE_VARIANT" in
    solves) printf 'def add(a, b):\\n    return a + b\\n' > calc.py ;;
    never) printf 'def add(a, b):\\n    return None\\n' > calc.py ;;
    one_test) printf 'def add(a, b):\\n    return a + b if a >= 0 else 0\\n' > calc.py ;;
esac
"""


def _two_variant_race(project: Project, names: tuple[str, str], by: str) -> tuple[list[str], dict[str, Any]]:
    logs = project.path.parent / f"{project.path.name}-log"
    (project.path / "agent.sh").write_text(TWO_AGENT.format(root=logs))
    spec = project.calc_spec(**{name: f"sh {project.path}/agent.sh" for name in names})
    spec["sandbox"] = "none"  # the agent logs outside the project
    spec["repeat"] = {"max": 12, "stop": "decided", "by": by}
    # One trial at a time: every agent run is one the race asked for (with -n 2 a worker may start round 5
    # while round 4 is scored, as the three-variant race above shows).
    result = project.explore("--variants", project.variants(spec))
    assert result.ret == 0, result.stdout.str()
    return invocations(project), project.results()["race"]


def test_always_solving_against_never_is_decided_within_four_rounds(race_project: Project) -> None:
    ran, race = _two_variant_race(race_project, ("solves", "never"), "score")
    assert race["winner"] == "solves" and race["trials"] == {"never": 4, "solves": 4}
    assert sorted(ran) == sorted(f"{n}.{k}" for n in ("solves", "never") for k in range(1, 5))  # 8 agent runs
    assert race["eliminated"][0]["sentence"] == "never: mean score 0.00 against 1.00 for solves after 4 trials each"


def test_a_test_failed_every_time_is_decided_by_tests_within_seven_rounds(race_project: Project) -> None:
    ran, race = _two_variant_race(race_project, ("solves", "one_test"), "tests")
    assert race["winner"] == "solves" and race["trials"]["one_test"] <= 7
    rounds = race["trials"]["one_test"]
    assert len(ran) == 2 * rounds
    test = "tests/test_calc.py::TestNegative::test_negative"
    assert race["eliminated"][0]["sentence"] == (
        f"one_test fails {test} in {rounds}/{rounds} trials; solves passes it in {rounds}/{rounds}"
    )
    summary = (race_project.experiment_dir() / "results" / "summary.md").read_text()
    assert f"one_test fails {test} in {rounds}/{rounds} trials" in summary and "deciding by tests" in summary
