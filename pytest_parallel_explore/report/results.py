"""The comparison: ranking trials, ``results.json``, ``summary.md`` and the terminal table."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

from ..evidence import racing, stats
from ..names import retry_command
from ..paths import ExperimentPaths
from ..record import SCHEMA, Status, TrialRecord, read_json, try_load, write_atomic, write_json
from ..templating import render
from .html import is_failed, render_report, status_text


def load_records(paths: ExperimentPaths, trials: Iterable[str] | None = None) -> list[TrialRecord]:
    """The saved records of ``trials`` (default: every trial with a progress file)."""
    if trials is None:
        trials = sorted(p.name[: -len("_progress.json")] for p in paths.results.glob("*_progress.json"))
    records = []
    for name in trials:
        record = try_load(paths.trial_file(name, "_progress.json"))
        if record is not None:
            records.append(record)
    return records


def rank(records: Sequence[TrialRecord]) -> list[TrialRecord]:
    """Order records best first and number the scored ones.

    Scored trials rank by score, finished before failed; equal ones share a
    rank ("1, 1, 3") and are listed by tests passed, then lower cost and agent
    time.  Trials without a score come last, unranked.
    """

    def standing(r: TrialRecord) -> tuple[Any, ...]:
        return (r.score is None, -(r.score or 0.0), r.status is not Status.DONE)

    ordered = sorted(records, key=lambda r: (*standing(r), -r.tests.passed, r.agent.cost_usd, r.agent.seconds, r.name))
    for position, record in enumerate(ordered, 1):
        previous = ordered[position - 2] if position > 1 else None
        tied = previous is not None and standing(previous) == standing(record)
        record.rank = None if record.score is None else (previous.rank if tied and previous else position)
    return ordered


def build_results(
    experiment: dict[str, Any], records: Sequence[TrialRecord], baseline: dict[str, Any] | None = None
) -> dict[str, Any]:
    ordered = rank(records)
    best = next((r.name for r in ordered if r.rank == 1), None)
    variants, comparisons = variant_statistics(ordered)
    race = racing.race_settings(experiment.get("race"))
    race_section = None
    if race is not None:
        names = experiment.get("variant_names") or sorted({r.variant for r in ordered})
        race_section = racing.race_report(racing.race_of(ordered, names, race), race, ordered)
    return {
        "schema": SCHEMA,
        **experiment,
        "updated": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "best": best,  # the best trial; with repeats, best_variant is the best on average
        "best_variant": variants[0]["name"] if variants else None,
        "status_counts": _status_counts(ordered),
        "baseline": baseline,
        "variants": variants,
        "comparisons": comparisons,
        "race": race_section,
        "missing": [r.name for r in ordered if r.missing],
        "retried": [r.name for r in ordered if r.retried],
        "trials": [r.to_json() for r in ordered],
    }


def variant_statistics(records: Sequence[TrialRecord]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Per variant over its trials: score statistics, the solved rate with its exact interval and pass@k;
    and the best variant against each other, Holm-adjusted (see :func:`stats.compare_to_best`).

    Every trial with an outcome that ran counts (an unscored one as 0); skipped trials and missing
    ones (interrupted, or broken by the pipeline) do not.  A trial retried after a failure counts
    with its last attempt: the variant's entry lists them in ``retried``, and its comparison says so.
    """
    by_variant: dict[str, list[TrialRecord]] = {}  # in ranking order, so that ties keep it
    for record in records:
        if racing.counted(record):
            by_variant.setdefault(record.variant, []).append(record)
    variants, samples = [], {}
    for name, trials in by_variant.items():
        trials.sort(key=lambda t: (len(t.name), t.name))
        scores = [t.score or 0.0 for t in trials]
        n = len(trials)
        solved = sum(t.score is not None and t.tests.pass_rate == 1.0 for t in trials)
        per_test = [_passed_tests(t) for t in trials] if all(t.tests.cases for t in trials) else []
        samples[name] = stats.VariantTrials(scores, per_test)
        solved_low, solved_high = stats.clopper_pearson(solved, n)
        variants.append(
            {
                "name": name,
                "trials": [t.name for t in trials],
                "retried": [t.name for t in trials if t.retried],
                **dataclasses.asdict(stats.summarize(scores)),
                "solved": solved,
                "solved_ci_low": solved_low,
                "solved_ci_high": solved_high,
                "k": n,
                "pass_at_1": stats.pass_at_k(n, solved, 1),
                "pass_at_k": stats.pass_at_k(n, solved, n),
                "pass_hat_k": stats.pass_hat_k(n, solved, n),
            }
        )
    variants.sort(key=lambda v: -v["mean"])
    if not variants:
        return variants, []
    ordered = {v["name"]: samples[v["name"]] for v in variants}
    comparisons = stats.compare_to_best(variants[0]["name"], ordered)
    retried = {v["name"]: v["retried"] for v in variants}
    return variants, [
        {**dataclasses.asdict(c), "sentence": c.sentence() + _retried_note(retried[c.best] + retried[c.other])}
        for c in comparisons
    ]


def _retried_note(names: Sequence[str]) -> str:
    """Said after a comparison that includes trials retried after a failure (their last attempt counts)."""
    if not names:
        return ""
    return f" (includes retried trials, counted by their last attempt: {', '.join(names)})"


def _passed_tests(record: TrialRecord) -> dict[str, bool]:
    """Test node id -> passed, for the tests that were not flaky at the base commit."""
    flaky = set(record.tests.flaky)
    return {node: case["outcome"] == "passed" for node, case in record.tests.cases.items() if node not in flaky}


def _status_counts(records: Iterable[TrialRecord]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for record in records:
        counts[record.status.value] = counts.get(record.status.value, 0) + 1
    return counts


def write_report(paths: ExperimentPaths, experiment: dict[str, Any], records: Sequence[TrialRecord]) -> dict[str, Any]:
    """Write ``results.json``, ``summary.md`` and ``report.html`` (with the saved baseline, if any); return them."""
    results = build_results(experiment, records, read_json(paths.baseline_json))
    write_json(paths.results_json, results)
    write_atomic(paths.summary_md, render_summary(results))
    write_atomic(paths.report_html, render_report(results, paths))
    return results


def write_live_report(
    paths: ExperimentPaths, experiment: dict[str, Any], records: Sequence[TrialRecord], running: Sequence[str]
) -> None:
    """``report.html`` while the experiment runs: what is finished so far, which trials run, a page that refreshes.

    Only the page: ``results.json`` and ``summary.md`` are written once, when the run ends.
    """
    results = build_results(experiment, records, read_json(paths.baseline_json))
    names = list(experiment.get("trial_names") or [r.name for r in records])
    by_name = {r.name: r for r in records}
    live = {
        "running": [by_name[n].to_json() for n in names if n in running and n in by_name],
        "waiting": [n for n in names if n not in running and (n not in by_name or not by_name[n].status.finished)],
        "refresh_seconds": LIVE_REFRESH_SECONDS,
    }
    write_atomic(paths.report_html, render_report(results, paths, live=live))


#: How often a report of a running experiment reloads itself in the browser.
LIVE_REFRESH_SECONDS = 2


def render_summary(results: dict[str, Any]) -> str:
    failed = [t for t in results["trials"] if is_failed(t)]
    missing = [t for t in results["trials"] if t["name"] in results.get("missing", ())]
    return render(
        "summary.md.j2",
        results=results,
        trials=results["trials"],
        failed=failed,
        header=TABLE_HEADER,
        builtin_metrics=BUILTIN_METRICS,
        repeated=is_repeated(results),
        table=table_rows(results),
        missing=missing,
        retry_command=retry_command(results, [t["name"] for t in failed], retry_failed=True),
        rerun_command=retry_command(results, [t["name"] for t in missing]),
    )


def is_repeated(results: dict[str, Any]) -> bool:
    """Whether some variant ran more than once, so that its statistics mean something."""
    return any(v["k"] > 1 for v in results.get("variants", []))


#: Metrics the summary shows in their own words rather than in the metrics line.
BUILTIN_METRICS = ("tests_pass_rate", "tests_passed", "tests_failed", "tests_errors", "tests_skipped")

TABLE_HEADER = ("rank", "variant", "status", "score", "tests", "fixed/broken", "diff", "agent", "tokens", "cost")


def table_rows(results: dict[str, Any]) -> list[tuple[str, ...]]:
    """Display strings: the baseline's row first (when there is one), then one per trial, in order."""
    rows: list[tuple[str, ...]] = []
    baseline = results.get("baseline")
    if baseline:
        tests = baseline["tests"]
        flaky = f" ({len(baseline['flaky'])} flaky)" if baseline["flaky"] else ""
        rows.append(
            ("-", "baseline", "base commit", f"{tests['pass_rate']:.3f}", f"{tests['passed']}/{tests['total']}{flaky}")
            + ("-",) * 5
        )
    for t in results["trials"]:
        tests, agent, diff, verdicts = t["tests"], t["agent"], t["diff"], t["verdicts"]
        status = status_text(t)
        tokens = agent["input_tokens"] + agent["output_tokens"]
        scored = t["score"] is not None
        rows.append(
            (
                str(t["rank"]) if t["rank"] is not None else "-",
                t["name"],
                status,
                f"{t['score']:.3f}" if scored else "-",
                f"{tests['passed']}/{tests['total']}" if scored else "-",
                f"{verdicts['fixed']}/{verdicts['broken']}" if scored and verdicts else "-",
                f"+{diff['insertions']}/-{diff['deletions']} ({diff['files_changed']} files)",
                f"{agent['seconds']:.1f}s",
                f"{tokens:,}" if tokens else "-",
                f"${agent['cost_usd']:.2f}" if agent["cost_usd"] else "-",
            )
        )
    return rows


def format_table(results: dict[str, Any]) -> list[str]:
    """The ranked table as aligned text lines, for the terminal."""
    rows = [TABLE_HEADER, *table_rows(results)]
    widths = [max(len(row[i]) for row in rows) for i in range(len(TABLE_HEADER))]
    return ["  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip() for row in rows]
