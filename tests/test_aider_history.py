"""The aider backend's reading of aider's files, on files captured from real runs, and its settings.

``aider_runs/`` holds the chat history and analytics log of real aider 0.86.2
runs against the scripted Chat Completions server (``test_aider_cli.py``'s
solved task, 401 and reflection limit, with the price list seeded), so the
parser is checked where aider is not installed, as in CI.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pytest_parallel_explore.agents import aider_history
from pytest_parallel_explore.agents.aider import AiderAgent, _remove_caches, validate_settings
from pytest_parallel_explore.agents.cli import parse_events, read_bounded
from pytest_parallel_explore.agents.pricing import price_for

RUNS = Path(__file__).parent / "aider_runs"
MODEL = "openai/gpt-4.1-mini"


def captured(name: str) -> tuple[list[dict[str, object]], str]:
    """The analytics events and the chat history of the captured run ``name``."""
    return parse_events((RUNS / name / "analytics.jsonl").read_text()), (RUNS / name / "chat.md").read_text()


def test_a_solved_run_gives_turns_tokens_model_cost_and_the_transcript() -> None:
    events, history = captured("solved")

    stats = aider_history.stats_of(events, aider_history.model_of(history), None)

    assert (stats.backend, stats.model, stats.turns) == ("aider", MODEL, 1)
    assert (stats.input_tokens, stats.output_tokens) == (1200, 60)
    price = price_for("gpt-4.1-mini")
    assert price is not None and stats.cost_usd == pytest.approx(price.cost(1200, 60, 0, 0))
    assert stats.cli_cost_usd is None  # aider's figure agrees with the table
    assert aider_history.failure_of(events, history, 0) is None
    assert [(e.kind, e.title) for e in aider_history.transcript_of(history)] == [
        ("assistant", ""),
        ("output", "aider"),
    ]
    answer, said = aider_history.transcript_of(history)
    assert answer.text.startswith("I will write calc.py.") and "def add(a, b):" in answer.text
    # The start-up banner and the usage line are left out; what aider did is kept.
    assert said.text == "calc.py\nCreate new file? (Y)es/(N)o [Yes]: y\nApplied edit to calc.py"


def test_aider_s_own_cost_is_kept_beside_the_table_s_when_they_differ() -> None:
    events, _ = captured("solved")

    stats = aider_history.stats_of(events, MODEL, {"gpt-4.1-mini": {"input": 1.0, "output": 2.0}})

    assert stats.cost_usd == pytest.approx((1200 * 1.0 + 60 * 2.0) / 1e6)
    assert stats.cli_cost_usd == pytest.approx(0.000576)


def test_a_401_is_named_as_refused_credentials() -> None:
    events, history = captured("auth")

    failure = aider_history.failure_of(events, history, 0)

    assert failure == (
        "aider: the API refused the credentials: "
        "litellm.AuthenticationError: AuthenticationError: OpenAIException - scripted invalid_api_key"
    )
    assert aider_history.stats_of(events, MODEL, None).turns == 0
    first = aider_history.transcript_of(history)[0]
    assert (first.kind, first.failed) == ("error", True) and first.title.startswith("litellm.AuthenticationError")


def test_the_reflection_limit_is_named_and_each_failed_edit_shown() -> None:
    events, history = captured("reflections")

    assert aider_history.failure_of(events, history, 0) == (
        "aider stopped at its limit of 3 reflections (requests after the first), unfinished"
    )
    assert aider_history.stats_of(events, MODEL, None).turns == 4
    entries = aider_history.transcript_of(history)
    assert [e.kind for e in entries].count("assistant") == 4
    # A message of several lines (aider quotes only its first) stays aider's, not the model's.
    failed = [e for e in entries if e.kind == "error" and "SearchReplaceNoExactMatch" in e.text]
    assert len(failed) == 4 and all("SearchReplaceNoExactMatch" not in e.text for e in entries if e.kind == "assistant")
    assert entries[-1].title == "Only 3 reflections allowed, stopping."


def test_a_request_that_got_no_answer_and_a_run_that_sent_none_are_named() -> None:
    started = [{"event": "message_send_starting", "properties": {}}]
    assert aider_history.failure_of(started, "> litellm.InternalServerError: down  \n", 0) == (
        "aider: its request to the model failed: litellm.InternalServerError: down"
    )
    assert aider_history.failure_of([{"event": "exit", "properties": {"reason": "Exit flag set"}}], "", 0) == (
        "aider sent nothing to the model (Exit flag set)"
    )
    assert aider_history.failure_of([], "", 2) == "aider exited with status 2"


def test_max_turns_counts_requests() -> None:
    watch = aider_history.Watch(max_turns=2)
    verdicts = [watch({"event": name}) for name in ["launched", *["message_send_starting", "message_send"] * 3]]
    assert verdicts[-2:] == ["aider stopped at max_turns (2) before it finished", None]
    assert all(v is None for v in verdicts[:-2])


def test_a_history_file_swapped_for_a_link_is_not_read(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("> litellm.AuthenticationError: the user's secret  \n")
    (tmp_path / "chat.md").symlink_to(secret)
    assert read_bounded(tmp_path / "chat.md") == b""
    assert read_bounded(secret, 2, limit=8) == b"litellm."


def test_aider_s_cache_is_removed_from_the_worktree_but_a_link_of_that_name_is_left(tmp_path: Path) -> None:
    worktree, outside = tmp_path / "worktree", tmp_path / "outside"
    (worktree / ".aider.tags.cache.v4").mkdir(parents=True)
    (worktree / ".aider.tags.cache.v4" / "cache.db").write_text("x")
    outside.mkdir()
    (outside / "keep").write_text("x")
    os.symlink(outside, worktree / ".aider.tags.cache.v3")

    _remove_caches(worktree)

    assert sorted(p.name for p in worktree.iterdir()) == [".aider.tags.cache.v3"]
    assert (outside / "keep").exists()


def test_the_command_line_keeps_aider_s_files_in_the_state_folder(tmp_path: Path) -> None:
    agent = AiderAgent.from_settings(
        {"model": MODEL, "edit_format": "whole", "test_command": "pytest -q", "args": ["--map-tokens", "0"]}
    )
    argv = agent.argv(tmp_path / "prompt.md", tmp_path / "state")
    assert argv[:4] == ["aider", "--message-file", str(tmp_path / "prompt.md"), "--yes-always"]
    for flag, value in (
        ("--analytics-log", "analytics.jsonl"),
        ("--chat-history-file", "chat.md"),
        ("--llm-history-file", "llm-history.txt"),
        ("--input-history-file", "input-history"),
    ):
        assert argv[argv.index(flag) + 1] == str(tmp_path / "state" / value)
    assert {"--no-auto-commits", "--no-gitignore", "--no-stream", "--no-check-update"} <= set(argv)
    assert argv[-9:-2] == ["--model", MODEL, "--edit-format", "whole", "--test-cmd", "pytest -q", "--auto-test"]
    assert argv[-2:] == ["--map-tokens", "0"]


def test_validate_settings_names_each_bad_key() -> None:
    assert validate_settings({"backend": "aider", "model": MODEL, "args": ["--map-tokens", "0"]}, "v.agent") == []
    assert validate_settings({"edit_format": "free", "args": "--x", "max_turn": 2, "model": ""}, "v.agent") == [
        "v.agent.max_turn: unknown key; did you mean 'max_turns'?",
        "v.agent.edit_format: expected one of whole, diff, diff-fenced, udiff, udiff-simple, patch, architect, "
        "got 'free'",
        "v.agent.model: expected a model name in aider's form, e.g. openai/gpt-4.1 or anthropic/claude-sonnet-4-5, "
        "got ''",
        'v.agent.args: expected a list of aider options such as ["--map-tokens", "0"], got \'--x\'',
    ]
