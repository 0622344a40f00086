"""``limits: {files, file_size, trial_size}``: sizes read like ``100M``, bad values refused with their key path."""

from __future__ import annotations

from typing import Any

import pytest

from pytest_parallel_explore.checks import parse_size
from pytest_parallel_explore.filelimits import FileLimits, parse_file_limits
from tests.explore_testing import GOOD_AGENT, Project, assert_refused


@pytest.mark.parametrize(
    "value, size",
    [(4096, 4096), ("4096", 4096), ("512K", 512 << 10), ("100M", 100 << 20), ("1G", 1 << 30), ("2 GiB", 2 << 30)],
)
def test_parse_size_reads_bytes_and_binary_units(value: Any, size: int) -> None:
    assert parse_size(value) == size


@pytest.mark.parametrize("value", [0, -1, True, "", "1.5G", "ten", "10X", None, 1.0])
def test_parse_size_refuses_anything_else(value: Any) -> None:
    with pytest.raises(ValueError):
        parse_size(value)


def test_a_variants_limits_override_the_experiments_key_by_key() -> None:
    problems: list[str] = []
    experiment = parse_file_limits({"files": 10, "trial_size": "1M"}, FileLimits(), "limits", problems)
    variant = parse_file_limits({"file_size": "1K"}, experiment, "variants.v.limits", problems)

    assert problems == []
    assert variant == FileLimits(files=10, file_size=1024, trial_size=1 << 20)


def test_bad_limits_are_refused_with_their_key_path(calc_project: Project) -> None:
    spec = calc_project.calc_spec(good=GOOD_AGENT)
    spec["limits"] = {"files": 0, "file_size": "lots", "trial_sise": "1G"}
    spec["variants"]["good"]["limits"] = "1G"

    result = calc_project.explore("--variants", calc_project.variants(spec))

    assert_refused(
        calc_project,
        result,
        "variants.yaml: limits.files: expected a whole number >= 1, got 0",
        "variants.yaml: limits.file_size: expected a size such as 4096, '512K', '100M' or '1G', got 'lots'",
        "variants.yaml: limits.trial_sise: unknown key; did you mean 'trial_size'?",
        "variants.yaml: variants.good.limits: expected a mapping (files, file_size, trial_size), got '1G'",
    )
