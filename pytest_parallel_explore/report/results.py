"""The comparison: an experiment's records made into :class:`Results`, written as ``results.json``,
``summary.md`` and ``report.html``."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from ..evidence import counts, racing, stats
from ..model.baseline import Baseline
from ..model.jsonfile import read_json, write_atomic, write_json
from ..model.paths import ExperimentPaths
from ..model.record import TrialRecord
from .fields import ResultsError
from .html import Live, render_report
from .model import ExperimentInfo, Results, baseline_from_json
from .standing import rank
from .statistics import ComparisonEntry, RaceSection, VariantStats
from .text import render_summary


def build_results(info: ExperimentInfo, records: Sequence[TrialRecord], baseline: Baseline | None = None) -> Results:
    """The records ranked, with each variant's statistics, the comparisons and (in a race) the race."""
    ordered = rank(records)
    variants, comparisons = variant_statistics(ordered)
    race = None
    if info.race is not None:
        names = info.variant_names or sorted({r.variant for r in ordered})
        state = racing.race_of(ordered, names, info.race)
        race = RaceSection(info.race, state, sorted(r.name for r in ordered if r.race_skipped))
    return Results(
        info=info,
        updated=dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        trials=ordered,
        baseline=baseline,
        variants=variants,
        comparisons=comparisons,
        race=race,
    )


def variant_statistics(records: Sequence[TrialRecord]) -> tuple[list[VariantStats], list[ComparisonEntry]]:
    """Per variant over its trials: score statistics, the solved rate with its exact interval and pass@k;
    and the best variant against each other, Holm-adjusted (see :func:`stats.compare_to_best`).

    Every finished attempt with an outcome counts (an unscored one as 0): a trial retried after a
    failure counts its failure too, as keeping only the last attempt would pick outcomes by their
    value.  Skipped trials and attempts without an outcome (interrupted, or broken by the pipeline) do
    not.  The variant's entry lists its retried trials in ``retried``, and its comparison says so.
    """
    by_variant: dict[str, list[TrialRecord]] = {}  # in ranking order, so that ties keep it
    for record in records:
        if racing.counted(record):
            by_variant.setdefault(record.variant, []).append(record)
    variants, samples = [], {}
    for name, trials in by_variant.items():
        trials.sort(key=lambda t: t.round)
        runs = [attempt for t in trials for attempt in racing.attempts_counted(t)]
        scores = [attempt.get("score") or 0.0 for attempt in runs]
        n = len(runs)
        solved = sum(bool(attempt.get("solved")) for attempt in runs)
        # Which tests differ is read from the suites' cases, kept for each trial's last attempt only.
        per_test = [_passed_tests(t) for t in trials] if n == len(trials) and all(t.tests.cases for t in trials) else []
        samples[name] = stats.VariantTrials(scores, per_test)
        variants.append(
            VariantStats(
                name=name,
                trials=[t.name for t in trials],
                retried=[t.name for t in trials if t.retried],
                scores=stats.summarize(scores),
                solved=solved,
                solved_ci=counts.clopper_pearson(solved, n),
                pass_at_1=counts.pass_at_k(n, solved, 1),
                pass_at_k=counts.pass_at_k(n, solved, n),
                pass_hat_k=counts.pass_hat_k(n, solved, n),
            )
        )
    variants.sort(key=lambda v: -v.scores.mean)
    if not variants:
        return variants, []
    comparisons = stats.compare_to_best(variants[0].name, {v.name: samples[v.name] for v in variants})
    retried = {v.name: v.retried for v in variants}
    return variants, [
        ComparisonEntry(c, c.sentence() + _retried_note(retried[c.best] + retried[c.other])) for c in comparisons
    ]


def _retried_note(names: Sequence[str]) -> str:
    """Said after a comparison that includes trials retried after a failure (every attempt counts)."""
    if not names:
        return ""
    return f" (includes retried trials, every attempt counted: {', '.join(names)})"


def _passed_tests(record: TrialRecord) -> dict[str, bool]:
    """Test node id -> passed, for the tests that were not flaky at the base commit."""
    flaky = set(record.tests.flaky)
    return {node: case["outcome"] == "passed" for node, case in record.tests.cases.items() if node not in flaky}


def saved_baseline(paths: ExperimentPaths) -> Baseline | None:
    """The baseline the last run saved, to show beside the trials; None when there is none readable."""
    try:
        return baseline_from_json(read_json(paths.baseline_json))
    except ResultsError:
        return None


def write_report(paths: ExperimentPaths, info: ExperimentInfo, records: Sequence[TrialRecord]) -> Results:
    """Write ``results.json``, ``summary.md`` and ``report.html`` (with the saved baseline, if any); return them."""
    results = build_results(info, records, saved_baseline(paths))
    write_json(paths.results_json, results.to_json())
    write_atomic(paths.summary_md, render_summary(results))
    write_atomic(paths.report_html, render_report(results, paths))
    return results


def write_live_report(
    paths: ExperimentPaths, info: ExperimentInfo, records: Sequence[TrialRecord], running: Sequence[str]
) -> None:
    """``report.html`` while the experiment runs: what is finished so far, which trials run, a page that refreshes.

    Only the page: ``results.json`` and ``summary.md`` are written once, when the run ends.
    """
    results = build_results(info, records, saved_baseline(paths))
    names = list(info.trial_names or [r.name for r in records])
    by_name = {r.name: r for r in records}
    live = Live(
        running=[by_name[n] for n in names if n in running and n in by_name],
        waiting=[n for n in names if n not in running and (n not in by_name or not by_name[n].status.finished)],
        refresh_seconds=LIVE_REFRESH_SECONDS,
    )
    write_atomic(paths.report_html, render_report(results, paths, live=live))


#: How often a report of a running experiment reloads itself in the browser.
LIVE_REFRESH_SECONDS = 2
