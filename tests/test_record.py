"""The trial record's JSON: what a newer plugin writes, and what it reads of an older one."""

from __future__ import annotations

import pytest

from pytest_parallel_explore.model.record import TrialRecord


def test_a_record_keeps_its_round() -> None:
    record = TrialRecord(experiment="e", name="fast.3", variant="fast", round=3)
    assert record.to_json()["round"] == 3
    assert TrialRecord.from_json(record.to_json()).round == 3


@pytest.mark.parametrize(
    ("name", "variant", "expected"),
    [("fast.3", "fast", 3), ("fast", "fast", 1), ("fast.x", "fast", 1), ("v1.2.10", "v1.2", 10), ("b.2", "a", 1)],
)
def test_a_record_written_without_a_round_takes_the_one_its_name_gave(name: str, variant: str, expected: int) -> None:
    old = TrialRecord(experiment="e", name=name, variant=variant).to_json()
    del old["round"]  # plugin 0.2.0 and older wrote none
    assert TrialRecord.from_json(old).round == expected
