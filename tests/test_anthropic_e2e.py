"""The built-in Anthropic agent inside a real ``pytest --explore`` run, against the scripted Messages API.

The experiment runs in a ``pytester`` subprocess (its xdist workers too); the
scripted server is a thread of this test process on 127.0.0.1, reached through
the variant's ``base_url``.  The server answers requests in the order they come,
whoever sends them, so each experiment here has one anthropic variant: two at
once would need a server each (their own ``base_url``).
"""

from __future__ import annotations

import json
import os
import shlex
import sys
from pathlib import Path
from typing import Any

import pytest
from messages_server import MessagesServer, text, thinking, tokens, tool_use

from pytest_parallel_explore.agents.pricing import PRICES_USD_PER_MTOK
from tests.explore_testing import GOOD_AGENT, Project

MODEL = "claude-opus-5-5"
#: Per turn: input, output, cache read, cache write; the totals are checked against the record.
USAGE = [(2100, 180, 0, 3000), (60, 90, 3000, 400), (50, 70, 3400, 200), (40, 30, 3600, 0)]
TOTALS = tuple(sum(turn[i] for turn in USAGE) for i in range(4))  # (2250, 370, 10000, 3600)
TESTS = f"{shlex.quote(sys.executable)} -m pytest -q -p no:cacheprovider tests"


def clear_anthropic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No Anthropic key, token, profile or base URL from the developer's environment reaches the run."""
    for name in [name for name in os.environ if name.startswith("ANTHROPIC_")]:
        monkeypatch.delenv(name)


@pytest.fixture
def api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    """A dummy key: the scripted server does not check it, the agent's preflight wants one."""
    clear_anthropic_env(monkeypatch)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-dummy")


def claude_variant(server: MessagesServer) -> dict[str, Any]:
    return {
        "description": "Read calc.py, fix add(), run the tests",
        "agent": {"backend": "anthropic", "model": MODEL, "base_url": server.url, "max_cost_usd": 1.0},
    }


def script_a_fix(server: MessagesServer) -> None:
    """A conversation that reads calc.py, edits it, runs the project's tests, then stops."""
    usage = [tokens(*turn) for turn in USAGE]
    server.message(thinking("add() raises; read it first."), tool_use("read_file", path="calc.py"), usage=usage[0])
    server.message(
        tool_use("edit_file", path="calc.py", old_string="raise NotImplementedError", new_string="return a + b"),
        usage=usage[1],
    )
    server.message(tool_use("run_command", command=TESTS), usage=usage[2])
    server.message(text("add() now adds; the three tests pass."), usage=usage[3])


def test_an_anthropic_variant_fixes_the_worktree_and_reports_tokens_and_cost(
    calc_project: Project, messages_server: MessagesServer, api_key: None
) -> None:
    script_a_fix(messages_server)
    spec = calc_project.variants(calc_project.calc_spec(claude=claude_variant(messages_server)))

    result = calc_project.explore("--variants", spec)

    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=1)
    result.stdout.fnmatch_lines(
        ["rank*variant*tokens*cost", "1 *claude *done *1.000 *3/3 *+1/-1 (1 files)*2,620*$0.04"]
    )
    # The tools really worked in the worktree, and the model was told what they did.
    assert len(messages_server.requests) == 4
    first = messages_server.requests[0]
    assert first["model"] == MODEL
    assert "Implement add() in calc.py" in first["messages"][0]["content"]
    assert "Read calc.py, fix add(), run the tests" in first["messages"][0]["content"]
    [read] = messages_server.tool_results(1)
    [edited] = messages_server.tool_results(2)
    [ran] = messages_server.tool_results(3)
    assert "raise NotImplementedError" in read["content"]
    assert (edited["content"], edited["is_error"]) == ("edited calc.py", False)
    assert ran["content"].startswith("exit code 0\n") and "3 passed" in ran["content"], ran["content"]

    trial = calc_project.trials()["claude"]
    assert (trial["status"], trial["score"], trial["tests"]["passed"], trial["tests"]["total"]) == ("done", 1.0, 3, 3)
    assert (Path(trial["worktree"]) / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
    assert "return a + b" in calc_project.git("show", "explore/calc/claude:calc.py")
    agent = trial["agent"]
    assert (agent["backend"], agent["model"], agent["stop_reason"]) == ("anthropic", MODEL, "end_turn")
    assert agent["turns"] == len(agent["per_turn"]) == 4
    counts = ("input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens")
    assert tuple(agent[count] for count in counts) == TOTALS == (2250, 370, 10_000, 3600)
    rates = PRICES_USD_PER_MTOK[MODEL]  # USD per million tokens
    cost = (2250 * rates.input + 370 * rates.output + 10_000 * rates.cache_read + 3600 * rates.cache_write) / 1e6
    assert agent["cost_usd"] == pytest.approx(cost) == pytest.approx(0.0364)
    assert [turn["input_tokens"] for turn in agent["per_turn"]] == [turn[0] for turn in USAGE]

    results_dir = calc_project.experiment_dir() / "results"
    summary = (results_dir / "summary.md").read_text()
    [row] = [line for line in summary.splitlines() if line.startswith("| 1 | claude |")]
    assert row.startswith("| 1 | claude | done | 1.000 | 3/3 |") and row.endswith("| 2,620 | $0.04 |"), row
    assert f"anthropic ({MODEL})" in summary
    assert "4 turns, stopped: end_turn" in summary
    assert "tokens: 2250 input, 370 output, 10000 cache read, 3600 cache write" in summary
    assert "$0.0364" in summary
    # The transcript: one JSON line per request, response and tool call, ending with why it stopped.
    events = [json.loads(line) for line in (results_dir / "claude_agent.log").read_text().splitlines()]
    assert [e["name"] for e in events if e["event"] == "tool"] == ["read_file", "edit_file", "run_command"]
    assert [e["event"] for e in events].count("response") == 4
    assert (events[-1]["event"], events[-1]["stop_reason"]) == ("end", "end_turn")
    # The same, as the report's transcript: the thinking, the tools and the command with its output.
    entries = json.loads((results_dir / "claude_transcript.json").read_text())["entries"]
    assert [(e["kind"], e["title"]) for e in entries] == [
        ("thinking", ""),
        ("tool", "read_file"),
        ("output", ""),
        ("tool", "edit_file"),
        ("output", ""),
        ("command", TESTS),
        ("assistant", ""),
        ("result", "end: end_turn"),
    ]
    assert "3 passed" in entries[5]["text"]
    assert '<details class="transcript">' in (results_dir / "report.html").read_text()


def test_a_missing_api_key_is_a_usage_error_before_anything_is_created(
    calc_project: Project, messages_server: MessagesServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    clear_anthropic_env(monkeypatch)
    spec = calc_project.variants(calc_project.calc_spec(good=GOOD_AGENT, claude=claude_variant(messages_server)))

    result = calc_project.explore("--variants", spec, "-n", "2")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: variants.yaml: variants.claude.agent.backend: anthropic agent: no Anthropic API key; "
         "set ANTHROPIC_API_KEY, or choose another backend*"]
    )  # fmt: skip
    assert "Traceback" not in result.stderr.str()
    # Not even the command variant started: no worktree, no branch, no request.
    assert not calc_project.experiment_dir().exists()
    assert calc_project.git("branch", "--list", "explore/*") == ""
    assert calc_project.git("worktree", "list").count("\n") == 1
    assert messages_server.requests == []


def test_command_and_anthropic_variants_run_side_by_side(
    calc_project: Project, messages_server: MessagesServer, api_key: None
) -> None:
    script_a_fix(messages_server)
    spec = calc_project.variants(calc_project.calc_spec(good=GOOD_AGENT, claude=claude_variant(messages_server)))

    result = calc_project.explore("--variants", spec, "-n", "2")

    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=2)
    # A tie on score: the cheaper run is listed first.
    result.stdout.fnmatch_lines(["1 *good *done *1.000 *3/3*-", "1 *claude *done *1.000 *3/3*$0.04"])
    trials = calc_project.trials()
    assert {name: (t["status"], t["score"], t["tests"]["passed"]) for name, t in trials.items()} == {
        "claude": ("done", 1.0, 3),
        "good": ("done", 1.0, 3),
    }
    assert (trials["good"]["agent"]["backend"], trials["good"]["agent"]["cost_usd"]) == ("command", 0.0)
    assert (trials["claude"]["agent"]["backend"], trials["claude"]["agent"]["turns"]) == ("anthropic", 4)
    assert len(messages_server.requests) == 4
