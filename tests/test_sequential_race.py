"""The sequential race end to end: real trials in xdist workers, each deciding at its start whether it is needed.

Three command agents succeed by a fixed table of trials (deterministic per trial, irregular across
them): ``good`` always, ``weak`` in rounds 2 and 9, ``poor`` in round 4.  Replaying those scores
through :func:`race_state` by hand eliminates both weaker variants after 8 rounds, so the run must
stop well short of the 3 x 12 trials it collected.
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


def test_the_hand_replayed_race_stops_after_eight_rounds() -> None:
    state = race_state({name: scores(name, 12) for name in ("good", "weak", "poor")})
    assert state.winner == "good" and dict(state.trials) == {"good": 8, "weak": 8, "poor": 8}


def test_a_race_in_two_workers_picks_the_winner_with_fewer_trials(race_project: Project) -> None:
    spec = race_project.calc_spec(**{name: f"sh {race_project.path}/agent.sh" for name in ("good", "weak", "poor")})
    spec["sandbox"] = "none"  # the agent logs into the project
    spec["repeat"] = {"max": 12, "stop": "decided"}
    spec_file = race_project.variants(spec)
    result = race_project.explore("--variants", spec_file, "-n", "2", "-rs")
    assert result.ret == 0, result.stdout.str()

    ran = invocations(race_project)
    assert len(ran) == len(set(ran)) < 3 * 12
    assert {f"{name}.{k}" for name in ("good", "weak", "poor") for k in range(1, 9)} <= set(ran)
    results = race_project.results()
    race: dict[str, Any] = results["race"]
    assert race["winner"] == "good" and race["decided"] == "one_left"
    assert race["reason"] == "good is the only variant left"
    assert race["trials"] == {"good": 8, "poor": 8, "weak": 8}
    assert [(e["variant"], e["by"], e["trials"]) for e in race["eliminated"]] == [
        ("poor", "good", 8),
        ("weak", "good", 8),
    ]
    assert results["best_variant"] == "good"

    trials = race_project.trials()
    skipped = {name for name, t in trials.items() if t["status"] == "skipped"}
    assert skipped and skipped.isdisjoint(ran) and len(skipped) + len(ran) == 36
    assert all(trials[name]["skipped_by"] == "race" for name in skipped)
    assert set(race["skipped"]) == skipped
    weak_reason = "weak: worse than good, 95% confidence sequence after 8 trials each"
    expected = {
        "weak": weak_reason,
        "poor": "poor: worse than good, 95% confidence sequence after 8 trials each",
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
    assert f"| weak | 8 | eliminated after 8 trials: {weak_reason} |" in summary
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
