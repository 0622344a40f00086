"""The claude-code backend running the real Claude Code CLI against the scripted Messages API (real HTTP).

Each test scripts the model's replies, runs one trial's agent step in a
throw-away repository, and checks what the backend made of the CLI's output:
stats, failure, flags and transcript.  Without the CLI they are skipped.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from agent_clis import CLAUDE, needs_claude, offline_env
from messages_server import MessagesServer, text, tokens, tool_use

from pytest_parallel_explore.agents import AgentOutcome, AgentTask
from pytest_parallel_explore.agents.claude_code import ClaudeCodeAgent
from pytest_parallel_explore.agents.pricing import price_for

pytestmark = needs_claude


@pytest.fixture
def run_claude(
    messages_server: MessagesServer,
    make_task: Callable[..., AgentTask],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., tuple[AgentOutcome, AgentTask]]:
    """Runs the claude-code backend with the given settings on the scripted server; returns outcome and task."""
    offline_env(
        monkeypatch, tmp_path / "home", ANTHROPIC_BASE_URL=messages_server.url, ANTHROPIC_API_KEY="sk-ant-dummy"
    )

    def run(**settings: Any) -> tuple[AgentOutcome, AgentTask]:
        task = make_task(timeout=settings.pop("timeout", 60.0))
        agent = ClaudeCodeAgent.from_settings({"executable": str(CLAUDE), **settings})
        agent.preflight()
        return agent.run(task), task

    return run


def test_a_solved_task_reports_turns_tokens_the_model_sent_and_one_priced_cost(
    run_claude: Callable[..., tuple[AgentOutcome, AgentTask]],
    messages_server: MessagesServer,
    agent_worktree: Path,
) -> None:
    target = agent_worktree / "calc.py"
    messages_server.message(
        tool_use("Write", file_path=str(target), content="def add(a, b):\n    return a + b\n"),
        usage=tokens(1200, 80, 0, 3000),
    )
    messages_server.message(text("add() now adds."), usage=tokens(40, 30, 3000, 0))

    outcome, task = run_claude()

    assert (outcome.failure, outcome.flags) == (None, [])
    assert target.read_text() == "def add(a, b):\n    return a + b\n"
    stats = outcome.stats
    sent = messages_server.requests[0]["model"]
    assert stats.model == sent and "[" not in sent  # the name sent, not the CLI's "claude-opus-4-8[1m]"
    assert (stats.turns, stats.exit_code, stats.stop_reason) == (2, 0, "success")
    assert (stats.input_tokens, stats.output_tokens, stats.cache_read_tokens, stats.cache_write_tokens) == (
        1240,
        110,
        3000,
        3000,
    )
    price = price_for(sent)
    assert price is not None
    assert stats.cost_usd == pytest.approx(price.cost(1240, 110, 3000, 3000))
    assert stats.cli_cost_usd is None  # the CLI's own figure agrees
    kinds = [(e.kind, e.title) for e in outcome.transcript]
    assert ("tool", "Write") in kinds and ("assistant", "") in kinds and kinds[-1] == ("result", "result: success")
    # The session persists in the trial's private config folder, to resume or inspect.
    state = task.log_path.with_name("t1_claude")
    assert [p.name for p in state.glob("projects/*/*.jsonl")] == [f"{stats.session_id}.jsonl"]
    assert json.loads(task.log_path.read_text().splitlines()[-1])["type"] == "result"


def test_a_write_the_cli_refused_flags_the_trial(
    run_claude: Callable[..., tuple[AgentOutcome, AgentTask]],
    messages_server: MessagesServer,
    agent_worktree: Path,
) -> None:
    target = agent_worktree / "calc.py"
    messages_server.message(tool_use("Write", file_path=str(target), content="x = 1\n"))
    messages_server.message(text("I could not write calc.py."))

    outcome, _ = run_claude(permission_mode="default")

    assert not target.exists()
    assert outcome.failure is None
    [flag] = outcome.flags
    assert flag.startswith(f"claude refused 1 tool call(s) under permission_mode default: Write {target}")
    assert any(e.kind == "output" and e.failed for e in outcome.transcript)


def test_a_401_is_named_and_stops_the_cli_at_once(
    run_claude: Callable[..., tuple[AgentOutcome, AgentTask]], messages_server: MessagesServer
) -> None:
    for _ in range(12):
        messages_server.error(401, "authentication_error")
    started = time.monotonic()

    outcome, _ = run_claude()

    seconds = time.monotonic() - started
    assert seconds < 30, seconds
    assert outcome.failure is not None and outcome.failure.startswith("claude: the API refused the credentials (401")
    assert (outcome.stats.turns, outcome.stats.cost_usd) == (0, 0.0)
    assert len(messages_server.requests) < 12


def test_a_429_is_retried_and_the_task_goes_on(
    run_claude: Callable[..., tuple[AgentOutcome, AgentTask]], messages_server: MessagesServer
) -> None:
    messages_server.error(429, "rate_limit_error", {"retry-after": "1"})
    messages_server.message(text("done"))

    outcome, _ = run_claude()

    assert outcome.failure is None
    assert (outcome.stats.turns, len(messages_server.requests)) == (1, 2)
    assert any(e.kind == "error" and "429" in e.title for e in outcome.transcript)


def test_max_turns_is_named(
    run_claude: Callable[..., tuple[AgentOutcome, AgentTask]], messages_server: MessagesServer
) -> None:
    for _ in range(4):
        messages_server.message(tool_use("Bash", command="echo again", description="loop"))

    outcome, _ = run_claude(max_turns=2, allowed_tools=["Bash"])

    assert outcome.failure == "claude stopped at max_turns (2) before it finished"
    assert outcome.stats.stop_reason == "error_max_turns"
    assert [e.title for e in outcome.transcript if e.kind == "command"] == ["echo again", "echo again"]


def test_an_api_error_says_so_rather_than_success(
    run_claude: Callable[..., tuple[AgentOutcome, AgentTask]],
    messages_server: MessagesServer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("CLAUDE_CODE_MAX_RETRIES", "0")  # the CLI's own retries of a 500 take minutes
    messages_server.error(500, "api_error")

    outcome, _ = run_claude()

    assert outcome.failure is not None and outcome.failure.startswith("claude: API error 500: API Error: 500")
    assert outcome.stats.turns == 0


def test_server_errors_stop_the_cli_within_seconds_not_minutes(
    run_claude: Callable[..., tuple[AgentOutcome, AgentTask]], messages_server: MessagesServer
) -> None:
    for _ in range(12):
        messages_server.error(500, "api_error")
    started = time.monotonic()

    outcome, _ = run_claude()

    assert time.monotonic() - started < 30
    assert outcome.failure is not None
    assert outcome.failure.startswith("claude: the API failed 4 times in a row (500: "), outcome.failure
    assert outcome.stats.stop_reason == "stopped" and len(messages_server.requests) < 12


def test_a_refused_connection_stops_the_cli_within_seconds(
    run_claude: Callable[..., tuple[AgentOutcome, AgentTask]], monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    monkeypatch.setenv("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{port}")  # nothing listens there
    started = time.monotonic()

    outcome, _ = run_claude()

    assert time.monotonic() - started < 30
    assert outcome.failure is not None
    assert outcome.failure.startswith("claude: the API failed 4 times in a row (no connection: "), outcome.failure


def test_settings_reach_the_requests(
    run_claude: Callable[..., tuple[AgentOutcome, AgentTask]], messages_server: MessagesServer
) -> None:
    for _ in range(2):
        messages_server.message(text("ok"))

    run_claude(thinking=0, effort="low", allowed_tools=["Read", "Edit"])
    run_claude(model="claude-sonnet-4-5", thinking=5000)

    off, budget = messages_server.requests
    assert "thinking" not in off and off["output_config"] == {"effort": "low"}
    assert sorted(tool["name"] for tool in off["tools"]) == ["Edit", "Read"]
    assert (budget["model"], budget["thinking"]) == ("claude-sonnet-4-5", {"type": "enabled", "budget_tokens": 5000})


@pytest.mark.skipif(os.geteuid() != 0, reason="the CLI refuses bypassPermissions only to root")
def test_bypass_permissions_runs_as_root(
    run_claude: Callable[..., tuple[AgentOutcome, AgentTask]], messages_server: MessagesServer
) -> None:
    messages_server.message(text("ok"))

    outcome, _ = run_claude(permission_mode="bypassPermissions")

    assert outcome.failure is None and outcome.stats.turns == 1
