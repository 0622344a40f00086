"""``limits:`` and ``sandbox.home``: read, checked, refused with the key and what is expected."""

from __future__ import annotations

import pytest

from pytest_parallel_explore.config.limits import parse_limits, parse_size
from pytest_parallel_explore.config.sections import parse_sandbox
from pytest_parallel_explore.model.limits import Limits, format_size
from pytest_parallel_explore.model.spec import HomePath, SandboxSpec
from tests.explore_testing import GOOD_AGENT, Project, assert_refused


def test_sizes_are_read_in_binary_units_and_written_back_as_a_user_would() -> None:
    assert [parse_size(v) for v in (1024, "512M", "1.5G", "2GiB", "100k", "3 MB")] == [
        1024,
        512 << 20,
        3 << 29,
        2 << 30,
        100 << 10,
        3 << 20,
    ]
    for bad in ("lots", "-1G", "0", 0, True, "1X", 2.5):
        with pytest.raises(ValueError):
            parse_size(bad)
    assert [format_size(n) for n in (8 << 30, 3 << 29, 1000)] == ["8G", "1536M", "1000"]


def test_limits_go_on_top_of_the_defaults_and_null_turns_one_off() -> None:
    problems: list[str] = []
    limits = parse_limits({"memory": "4G", "disk": None}, Limits(), "limits", problems)
    assert problems == []
    assert limits == Limits(memory=4 << 30, disk=None)
    variant = parse_limits({"output": "20M"}, limits, "variants.a.limits", problems)
    assert (variant.memory, variant.disk, variant.output) == (4 << 30, None, 20 << 20)
    assert variant.hit("output") == "output 20M" and variant.hit("processes") == "processes 1024"
    stored = parse_limits({"files": 10, "trial_size": "1M"}, variant, "variants.a.limits", problems)
    assert (stored.files, stored.trial_size, stored.output) == (10, 1 << 20, 20 << 20)
    assert problems == [] and stored.hit("files") == "files 10"


def test_bad_limits_are_each_named() -> None:
    problems: list[str] = []
    raw = {"memmory": "4G", "processes": 0, "output": "lots", "file_size": [1]}
    assert parse_limits(raw, Limits(), "limits", problems) == Limits()
    assert problems == [
        "limits.memmory: unknown key; did you mean 'memory'?",
        "limits.processes: expected a whole number >= 1, or null for no limit, got int 0",
        "limits.output: expected a size such as 512M, 4G or a number of bytes, or null for no limit, got 'lots'",
        "limits.file_size: expected a size such as 512M, 4G or a number of bytes, or null for no limit, got list",
    ]
    parse_limits("4G", Limits(), "variants.a.limits", problems)
    assert problems[-1] == (
        "variants.a.limits: expected a mapping "
        "(disk, file_size, files, memory, output, processes, trial_size), got '4G'"
    )


def test_sandbox_home_lists_paths_read_only_unless_writable_and_writable_is_its_old_name() -> None:
    problems: list[str] = []
    raw = {"home": ["~/.claude", {"path": "~/.config/x", "writable": True}], "writable": ["~/.cache/agent"]}
    spec = parse_sandbox(raw, SandboxSpec(), "sandbox", problems)
    assert problems == []
    assert spec.home == (
        HomePath("~/.claude"),
        HomePath("~/.config/x", writable=True),
        HomePath("~/.cache/agent", writable=True),
    )


HOME_EXPECTED = "expected a path in your home folder such as '~/.claude', or {path: '~/.config/x', writable: true}"


def test_a_bad_sandbox_home_or_limit_is_refused_before_anything_is_made(calc_project: Project) -> None:
    spec = calc_project.calc_spec(good=GOOD_AGENT)
    spec["sandbox"] = {
        "mode": "none",
        "home": ["/etc/passwd", "~/../other", {"path": "~/.x", "writeable": True}, {"path": "~/.y", "writable": "yes"}],
        "writable": ["/var/cache"],
    }
    spec["limits"] = {"memory": "a lot"}
    spec["variants"]["good"]["limits"] = {"processes": -3}
    result = calc_project.explore("--variants", calc_project.variants(spec))
    assert_refused(
        calc_project,
        result,
        f"variants.yaml: sandbox.home[0]: {HOME_EXPECTED}, got '/etc/passwd'",
        f"sandbox.home[1]: {HOME_EXPECTED}, got '~/../other'",
        "sandbox.home[2].writeable: unknown key; did you mean 'writable'?",
        "sandbox.home[3].writable: expected true or false, got 'yes'",
        f"sandbox.writable[0]: {HOME_EXPECTED}, got '/var/cache'",
        "limits.memory: expected a size such as 512M, 4G or a number of bytes, or null for no limit, got 'a lot'",
        "variants.good.limits.processes: expected a whole number >= 1, or null for no limit, got int -3",
    )
