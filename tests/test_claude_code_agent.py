"""The claude-code backend, against a stand-in ``claude`` executable on PATH."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from pytest_parallel_explore.agents import AgentTask, AgentUnavailable
from pytest_parallel_explore.agents.claude_code import ClaudeCodeAgent, validate_settings

#: Records how it was called next to itself, edits the worktree, then prints a
#: result in the shape of ``claude -p --output-format json``.  STUB_SUBTYPE picks
#: the result's subtype; STUB_SLEEP makes it hang.
STUB = """\
#!{python}
import json, os, sys, time
from pathlib import Path

record = {{
    "argv": sys.argv[1:],
    "stdin": sys.stdin.read(),
    "cwd": os.getcwd(),
    "thinking": os.environ.get("MAX_THINKING_TOKENS"),
    "adaptive_off": os.environ.get("CLAUDE_CODE_DISABLE_ADAPTIVE_THINKING"),
}}
Path(sys.argv[0]).with_name("record.json").write_text(json.dumps(record))
time.sleep(float(os.environ.get("STUB_SLEEP", "0")))
Path("feature.py").write_text("VALUE = 42\\n")
print("a progress note on stderr", file=sys.stderr)
subtype = os.environ.get("STUB_SUBTYPE", "success")
print(json.dumps({{
    "type": "result",
    "subtype": subtype,
    "is_error": subtype != "success",
    "duration_ms": 5400,
    "duration_api_ms": 4100,
    "num_turns": 7,
    "result": "Added feature.py" if subtype == "success" else "",
    "session_id": "4f1d0c3e-5b7a-4e21-9a0e-2c1f6f1d9b11",
    "total_cost_usd": 0.0831,
    "usage": {{
        "input_tokens": 35,
        "cache_creation_input_tokens": 9120,
        "cache_read_input_tokens": 61200,
        "output_tokens": 1480,
        "server_tool_use": {{"web_search_requests": 0}},
        "service_tier": "standard",
    }},
    "modelUsage": {{"claude-sonnet-5-5": {{"inputTokens": 35, "outputTokens": 1480, "costUSD": 0.0831}}}},
    "permission_denials": [],
}}))
"""


@pytest.fixture
def claude_stub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fake ``claude`` first on PATH; returns the file where it records its call."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    claude = bin_dir / "claude"
    claude.write_text(STUB.format(python=sys.executable))
    claude.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    return bin_dir / "record.json"


def test_runs_claude_in_print_mode_and_reads_its_json_result(
    claude_stub: Path, make_task: Callable[..., AgentTask], agent_worktree: Path
) -> None:
    settings = {
        "backend": "claude-code",
        "thinking": 8000,
        "allowed_tools": ["Read", "Edit", "Bash(python -m pytest:*)"],
        "max_turns": 12,
    }
    task = make_task()
    agent = ClaudeCodeAgent.from_settings(settings)

    agent.preflight()
    outcome = agent.run(task)

    assert (outcome.failure, outcome.timed_out) == (None, False)
    assert (agent_worktree / "feature.py").read_text() == "VALUE = 42\n"
    record: dict[str, Any] = json.loads(claude_stub.read_text())
    assert record == {
        "argv": [
            "-p",
            "--output-format",
            "json",
            "--permission-mode",
            "acceptEdits",
            "--allowedTools",
            "Read,Edit,Bash(python -m pytest:*)",
            "--max-turns",
            "12",
        ],
        "stdin": task.prompt,
        "cwd": str(agent_worktree),
        "thinking": "8000",
        "adaptive_off": "1",
    }
    stats = outcome.stats
    assert (stats.backend, stats.model, stats.exit_code, stats.turns) == ("claude-code", "claude-sonnet-5-5", 0, 7)
    assert (stats.input_tokens, stats.output_tokens) == (35, 1480)
    assert (stats.cache_read_tokens, stats.cache_write_tokens) == (61200, 9120)
    assert (stats.cost_usd, stats.stop_reason) == (0.0831, "success")
    assert stats.session_id == "4f1d0c3e-5b7a-4e21-9a0e-2c1f6f1d9b11"
    log = task.log_path.read_text()
    assert log.startswith("$ claude -p --output-format json")
    assert "a progress note on stderr" in log
    assert '"session_id": "4f1d0c3e-5b7a-4e21-9a0e-2c1f6f1d9b11"' in log


def test_an_error_result_fails_the_trial_and_keeps_the_stats(
    claude_stub: Path, make_task: Callable[..., AgentTask], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STUB_SUBTYPE", "error_max_turns")

    outcome = ClaudeCodeAgent.from_settings({"model": "claude-opus-5", "thinking": "adaptive"}).run(make_task())

    assert outcome.failure == "claude reported error_max_turns: "
    assert (outcome.stats.stop_reason, outcome.stats.turns, outcome.stats.model) == (
        "error_max_turns",
        7,
        "claude-opus-5",
    )
    record = json.loads(claude_stub.read_text())
    assert record["argv"][-2:] == ["--model", "claude-opus-5"]
    assert (record["thinking"], record["adaptive_off"]) == (None, None)


def test_the_trial_timeout_kills_claude(
    claude_stub: Path, make_task: Callable[..., AgentTask], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STUB_SLEEP", "30")

    outcome = ClaudeCodeAgent().run(make_task(timeout=1.0))

    assert (outcome.failure, outcome.timed_out) == ("agent timed out after 1s", True)
    assert outcome.stats.stop_reason == "timeout"


def test_preflight_says_how_to_get_claude_when_it_is_missing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(
        AgentUnavailable, match=r"'claude' is not on PATH; install Claude Code .* choose another backend"
    ):
        ClaudeCodeAgent().preflight()


def test_validate_settings_names_each_bad_key() -> None:
    where = "variants.cc.agent"
    assert validate_settings({"backend": "claude-code", "allowed_tools": ["Read"], "thinking": 0}, where) == []
    assert validate_settings(
        {"permission_mode": "yolo", "allowed_tools": "Read", "allowed_tool": [], "max_turns": 0}, where
    ) == [
        f"{where}.allowed_tool: unknown key; did you mean 'allowed_tools'?",
        f"{where}.max_turns: expected a positive integer, got 0",
        f"{where}.permission_mode: expected one of acceptEdits, bypassPermissions, default, dontAsk, plan, got 'yolo'",
    ]
