"""The claude-code backend's settings, command line and preflight (the real CLI runs in test_claude_code_cli.py)."""

from __future__ import annotations

import pytest

from pytest_parallel_explore.agents import AgentUnavailable
from pytest_parallel_explore.agents.claude_code import ClaudeCodeAgent, validate_settings


def test_allowed_tools_restrict_the_tools_and_approve_the_rules() -> None:
    agent = ClaudeCodeAgent.from_settings(
        {"allowed_tools": ["Read", "Edit", "Bash(python -m pytest:*)"], "max_turns": 12, "max_cost_usd": 0.5}
    )

    assert agent.argv() == [
        "claude", "-p", "--output-format", "stream-json", "--verbose", "--permission-mode", "acceptEdits",
        "--tools", "Read,Edit,Bash", "--allowedTools", "Read,Edit,Bash(python -m pytest:*)",
        "--max-turns", "12", "--max-budget-usd", "0.5",
    ]  # fmt: skip


def test_preflight_says_how_to_get_claude_when_it_is_missing(
    tmp_path: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(AgentUnavailable, match=r"'claude' is not on PATH; install it \(npm install -g .*\)"):
        ClaudeCodeAgent().preflight()


def test_validate_settings_names_each_bad_key() -> None:
    where = "variants.cc.agent"
    assert validate_settings({"backend": "claude-code", "allowed_tools": ["Read"], "thinking": 0}, where) == []
    assert validate_settings({"model": "claude-sonnet-4-5", "thinking": 8000, "effort": "low"}, where) == []
    assert validate_settings(
        {"permission_mode": "yolo", "allowed_tools": "Read", "allowed_tool": [], "max_turns": 0, "effort": "huge"},
        where,
    ) == [
        f"{where}.allowed_tool: unknown key; did you mean 'allowed_tools'?",
        f"{where}.max_turns: expected a positive integer, got 0",
        f"{where}.permission_mode: expected one of acceptEdits, bypassPermissions, default, dontAsk, plan, got 'yolo'",
        f"{where}.effort: expected one of low, medium, high, xhigh, max, got 'huge'",
    ]


def test_a_thinking_budget_is_refused_where_claude_code_would_ignore_it() -> None:
    [problem] = validate_settings({"model": "claude-opus-4-8", "thinking": 8000}, "v.agent")

    assert problem.startswith("v.agent.thinking: Claude Code thinks adaptively on claude-opus-4-8 and ignores")
    assert "use thinking: adaptive with effort: low | medium | high | xhigh | max, or 0" in problem
    [default] = validate_settings({"thinking": 8000}, "v.agent")
    assert "on its default model" in default
