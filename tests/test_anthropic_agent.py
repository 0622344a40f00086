"""The built-in Anthropic agent, driven through the real SDK against a scripted Messages API."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from messages_server import MessagesServer, text, thinking, tokens, tool_use

from pytest_parallel_explore.agents import AgentTask, AgentUnavailable
from pytest_parallel_explore.agents.anthropic import DEFAULT_MODEL, AnthropicAgent, validate_settings
from pytest_parallel_explore.agents.pricing import PRICES_USD_PER_MTOK, Price, price_for

MakeAgent = Callable[..., AnthropicAgent]


@pytest.fixture
def make_agent(messages_server: MessagesServer, monkeypatch: pytest.MonkeyPatch) -> MakeAgent:
    """An agent talking to the scripted server with a dummy key; keyword arguments are settings."""
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-dummy")

    def make(**settings: Any) -> AnthropicAgent:
        return AnthropicAgent.from_settings({"backend": "anthropic", "base_url": messages_server.url, **settings})

    return make


@pytest.fixture
def outside(tmp_path: Path, agent_worktree: Path) -> Path:
    """A folder next to the worktree holding a secret, and a symlink ``link`` to it inside the worktree."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text("TOP SECRET\n")
    (agent_worktree / "link").symlink_to(folder)
    return folder


def transcript(task: AgentTask) -> list[dict[str, Any]]:
    return [json.loads(line) for line in task.log_path.read_text().splitlines()]


def test_a_scripted_conversation_edits_the_worktree_and_accounts_for_every_token(
    messages_server: MessagesServer, make_agent: MakeAgent, make_task: Callable[..., AgentTask], agent_worktree: Path
) -> None:
    first = [
        thinking("Write calc.py, fix it, then check it."),
        text("Writing the module."),
        tool_use("write_file", path="calc.py", content="def add(a, b):\n    return a - b\n"),
    ]
    messages_server.message(*first, usage=tokens(1200, 300, cache_write=4000))
    messages_server.message(
        tool_use("edit_file", path="calc.py", old_string="a - b", new_string="a + b"),
        tool_use("read_file", path=str(agent_worktree / "calc.py"), start_line=2, end_line=2),
        usage=tokens(80, 150, cache_read=4000, cache_write=500),
    )
    messages_server.message(
        tool_use("list_directory"),
        tool_use("run_command", command="python -c 'import calc; print(calc.add(2, 3))'"),
        tool_use("search", pattern=r"def \w+\(", glob="*.py"),
        usage=tokens(90, 120, cache_read=4500, cache_write=300),
    )
    messages_server.message(text("calc.add now adds."), usage=tokens(70, 40, cache_read=4800))
    reported: list[int] = []
    task = make_task(report=lambda stats: reported.append(stats.turns))

    outcome = make_agent().run(task)

    assert (outcome.failure, outcome.timed_out) == (None, False)
    assert (agent_worktree / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
    first_request, second_request = messages_server.requests[:2]
    assert first_request["model"] == DEFAULT_MODEL
    assert first_request["thinking"] == {"type": "adaptive"}
    assert first_request["system"][0]["cache_control"] == {"type": "ephemeral"}
    assert first_request["tools"][-1]["cache_control"] == {"type": "ephemeral"}
    assert first_request["cache_control"] == {"type": "ephemeral"}
    assert first_request["messages"] == [{"role": "user", "content": task.prompt}]
    # The assistant turn, thinking block and signature included, goes back exactly as received.
    assert second_request["messages"][1] == {"role": "assistant", "content": first}
    [written] = messages_server.tool_results(1)
    assert written == {
        "type": "tool_result",
        "tool_use_id": first[2]["id"],
        "content": "wrote 32 characters to calc.py",
        "is_error": False,
    }
    edited, read = (result["content"] for result in messages_server.tool_results(2))
    assert (edited, read) == ("edited calc.py", "     2\t    return a + b")
    listed, ran, found = (result["content"] for result in messages_server.tool_results(3))
    assert listed == "README.md\ncalc.py"
    assert ran == "exit code 0\n5\n"
    assert found == "calc.py:1: def add(a, b):"

    stats = outcome.stats
    assert (stats.backend, stats.model, stats.turns, stats.stop_reason) == ("anthropic", DEFAULT_MODEL, 4, "end_turn")
    assert (stats.input_tokens, stats.output_tokens) == (1440, 610)
    assert (stats.cache_read_tokens, stats.cache_write_tokens) == (13300, 4800)
    sonnet = PRICES_USD_PER_MTOK["claude-sonnet-5-5"]
    expected = (1440 * sonnet.input + 610 * sonnet.output + 13300 * sonnet.cache_read + 4800 * sonnet.cache_write) / 1e6
    assert stats.cost_usd == pytest.approx(expected)
    assert sum(turn["cost_usd"] for turn in stats.per_turn) == pytest.approx(expected)
    assert [turn["input_tokens"] for turn in stats.per_turn] == [1200, 80, 90, 70]
    assert reported[:4] == [1, 2, 3, 4]

    events = transcript(task)
    assert [e["event"] for e in events].count("response") == 4
    assert [e["name"] for e in events if e["event"] == "tool"] == [
        "write_file", "edit_file", "read_file", "list_directory", "run_command", "search"
    ]  # fmt: skip
    assert events[-1]["event"] == "end" and events[-1]["stop_reason"] == "end_turn"


OUT = "refused, it is outside the worktree"
CONFINEMENT_CASES = {
    "absolute path outside": ("read_file", {"path": "{outside}/secret.txt"}, OUT),
    "dot-dot escape": ("read_file", {"path": "../outside/secret.txt"}, OUT),
    "symlink out, read": ("read_file", {"path": "link/secret.txt"}, OUT),
    "symlink out, edit": ("edit_file", {"path": "link/secret.txt", "old_string": "TOP", "new_string": "NO"}, OUT),
    "symlink out, write": ("write_file", {"path": "link/planted.txt", "content": "x"}, OUT),
    "dot-dot write": ("write_file", {"path": "../outside/planted.txt", "content": "x"}, OUT),
    "list the parent": ("list_directory", {"path": ".."}, OUT),
    "search through a symlink": ("search", {"pattern": "SECRET", "path": "link"}, OUT),
    "git's own files": ("write_file", {"path": ".git/hooks/pre-commit", "content": "x"}, "git's own files"),
}


@pytest.mark.parametrize("tool, tool_input, refusal", CONFINEMENT_CASES.values(), ids=CONFINEMENT_CASES.keys())
def test_tools_refuse_paths_that_lead_out_of_the_worktree(
    messages_server: MessagesServer,
    make_agent: MakeAgent,
    make_task: Callable[..., AgentTask],
    outside: Path,
    agent_worktree: Path,
    tool: str,
    tool_input: dict[str, str],
    refusal: str,
) -> None:
    tool_input = {key: value.format(outside=outside) for key, value in tool_input.items()}
    messages_server.message(tool_use(tool, **tool_input))
    messages_server.message(text("Giving up."))

    outcome = make_agent().run(make_task())

    assert outcome.failure is None
    [result] = messages_server.tool_results(1)
    assert result["is_error"] is True
    assert refusal in result["content"]
    assert "TOP SECRET" not in result["content"]
    assert sorted(p.name for p in outside.iterdir()) == ["secret.txt"]
    assert not (agent_worktree / ".git" / "hooks" / "pre-commit").exists()
    assert (outside / "secret.txt").read_text() == "TOP SECRET\n"


def test_search_of_the_whole_worktree_skips_symlinks_that_lead_out(
    messages_server: MessagesServer, make_agent: MakeAgent, make_task: Callable[..., AgentTask], outside: Path
) -> None:
    messages_server.message(tool_use("search", pattern="SECRET"))
    messages_server.message(text("Nothing there."))

    make_agent().run(make_task())

    assert messages_server.tool_results(1)[0]["content"] == "no matches"


def test_commands_run_in_the_worktree_without_api_keys(
    messages_server: MessagesServer, make_agent: MakeAgent, make_task: Callable[..., AgentTask], agent_worktree: Path
) -> None:
    messages_server.message(
        tool_use("run_command", command='echo "key=${ANTHROPIC_API_KEY:-none} $EXPLORE_VARIANT"; pwd')
    )
    messages_server.message(text("Done."))

    make_agent().run(make_task())

    assert os.environ["ANTHROPIC_API_KEY"] == "sk-ant-dummy"
    assert messages_server.tool_results(1)[0]["content"] == f"exit code 0\nkey=none v1\n{agent_worktree}\n"


def test_long_command_output_is_cut_to_its_head_and_tail(
    messages_server: MessagesServer, make_agent: MakeAgent, make_task: Callable[..., AgentTask]
) -> None:
    messages_server.message(tool_use("run_command", command="seq 1 200000"))
    messages_server.message(text("Done."))

    make_agent().run(make_task())

    output = messages_server.tool_results(1)[0]["content"]
    assert output.startswith("exit code 0\n1\n2\n3\n")
    assert output.endswith("\n199999\n200000\n")
    assert "bytes not shown" in output
    assert len(output) < 31_000


def test_max_turns_stops_a_model_that_keeps_asking_for_tools(
    messages_server: MessagesServer, make_agent: MakeAgent, make_task: Callable[..., AgentTask]
) -> None:
    for _ in range(3):
        messages_server.message(tool_use("list_directory"))

    outcome = make_agent(max_turns=2).run(make_task())

    assert outcome.failure == "agent stopped after max_turns=2 turns, before it finished"
    assert (outcome.stats.turns, outcome.stats.stop_reason, outcome.timed_out) == (2, "max_turns", False)
    assert len(messages_server.requests) == 2


def test_max_cost_usd_stops_the_agent_once_the_estimate_reaches_it(
    messages_server: MessagesServer, make_agent: MakeAgent, make_task: Callable[..., AgentTask]
) -> None:
    for _ in range(3):  # $1 a turn at the overridden price
        messages_server.message(tool_use("list_directory"), usage=tokens(input=500, output=50))
    prices = {"claude-sonnet": {"input": 1000.0, "output": 10_000.0}}

    outcome = make_agent(max_cost_usd=1.5, prices=prices).run(make_task())

    assert outcome.stats.cost_usd == pytest.approx(2.0)
    assert outcome.stats.stop_reason == "max_cost_usd"
    assert outcome.failure == "agent stopped at an estimated $2.00, over its max_cost_usd of $1.50"
    assert len(messages_server.requests) == 2


def test_the_trial_timeout_kills_a_command_and_ends_the_run(
    messages_server: MessagesServer, make_agent: MakeAgent, make_task: Callable[..., AgentTask]
) -> None:
    messages_server.message(tool_use("run_command", command="sleep 30"))
    started = time.monotonic()

    outcome = make_agent().run(make_task(timeout=1.0))

    assert time.monotonic() - started < 10
    assert outcome.timed_out
    assert (outcome.failure, outcome.stats.stop_reason) == ("agent timed out after 1s", "timeout")
    assert len(messages_server.requests) == 1


@pytest.mark.parametrize("status, kind", [(429, "rate_limit_error"), (529, "overloaded_error")])
def test_rate_limits_and_overload_are_retried_and_logged(
    messages_server: MessagesServer,
    make_agent: MakeAgent,
    make_task: Callable[..., AgentTask],
    status: int,
    kind: str,
) -> None:
    messages_server.error(status, kind, headers={"retry-after": "0"})
    messages_server.message(text("Done."))
    task = make_task()

    outcome = make_agent().run(task)

    assert outcome.failure is None
    assert len(messages_server.requests) == 2
    [retry] = [event for event in transcript(task) if event["event"] == "retry"]
    assert (retry["attempt"], retry["delay"]) == (1, 0)
    assert retry["error"] == f"{status} {kind}: scripted {kind}"


def test_a_rejected_key_fails_at_once_with_a_clear_message(
    messages_server: MessagesServer, make_agent: MakeAgent, make_task: Callable[..., AgentTask]
) -> None:
    messages_server.error(401, "authentication_error")

    outcome = make_agent().run(make_task())

    assert outcome.failure == (
        "the Anthropic API refused the credentials (401 authentication_error: scripted authentication_error); "
        "check ANTHROPIC_API_KEY and the account's access to the model"
    )
    assert (outcome.stats.stop_reason, outcome.timed_out) == ("api_error", False)
    assert len(messages_server.requests) == 1


def test_preflight_needs_credentials_but_makes_no_request(
    messages_server: MessagesServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    for name in [name for name in os.environ if name.startswith("ANTHROPIC_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(tmp_path))  # no Anthropic profile on disk either
    agent = AnthropicAgent(base_url=messages_server.url)

    with pytest.raises(AgentUnavailable, match="set ANTHROPIC_API_KEY, or choose another backend"):
        agent.preflight()
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-dummy")
    agent.preflight()
    assert messages_server.requests == []


def test_preflight_wants_a_price_when_a_budget_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-dummy")

    with pytest.raises(AgentUnavailable, match="no price for model 'my-proxy-model'"):
        AnthropicAgent(model="my-proxy-model", max_cost_usd=1.0, base_url="http://127.0.0.1:9").preflight()


@pytest.mark.parametrize(
    "settings, expected, max_tokens",
    [
        ({"model": "claude-sonnet-5-5"}, {"type": "adaptive"}, 32_000),
        ({"model": "claude-sonnet-4-5"}, {"type": "enabled", "budget_tokens": 16_000}, 32_000),
        ({"model": "claude-haiku-4-5", "max_tokens": 8000}, {"type": "enabled", "budget_tokens": 4000}, 8000),
        ({"model": "claude-opus-4-6", "thinking": 40_000}, {"type": "enabled", "budget_tokens": 40_000}, 56_000),
        ({"model": "claude-opus-4-6", "thinking": 0}, {"type": "disabled"}, 32_000),
    ],
)
def test_thinking_is_adaptive_where_the_model_has_it_else_a_budget(
    settings: dict[str, Any], expected: dict[str, Any], max_tokens: int
) -> None:
    agent = AnthropicAgent.from_settings(settings)

    assert (agent.thinking_config(), agent.output_tokens()) == (expected, max_tokens)


def test_prices_match_the_longest_model_prefix_and_settings_come_first() -> None:
    assert price_for("claude-opus-5-20260724") == PRICES_USD_PER_MTOK["claude-opus-5"]
    assert price_for("claude-opus-5-5") == Price(4.0, 20.0, 0.20, 5.00)
    assert price_for("claude-opus-5-5", {"claude-opus": {"input": 1.0, "output": 2.0}}) == Price(1.0, 2.0, 0.1, 1.25)
    assert price_for("gpt-9") is None


def test_validate_settings_names_each_bad_key() -> None:
    where = "variants.fast.agent"
    good = {
        "backend": "anthropic",
        "model": "claude-opus-5",
        "thinking": 2048,
        "max_turns": 10,
        "max_cost_usd": 2.5,
        "max_tokens": 8000,
        "command_timeout": "5m",
        "prices": {"claude-opus-5": {"input": 5, "output": 25, "cache_read": 0.5}},
        "base_url": "http://localhost:8080",
        "system": "Be brief.",
    }
    assert validate_settings(good, where) == []
    bad = {
        "thinking": "lots",
        "max_turn": 3,
        "max_cost_usd": -1,
        "command_timeout": "soon",
        "prices": {"claude-opus-5": {"input": "cheap"}},
        "base_url": "localhost",
    }
    assert validate_settings(bad, where) == [
        f"{where}.max_turn: unknown key; did you mean 'max_turns'?",
        f"{where}.base_url: expected an http:// or https:// URL, got 'localhost'",
        f"{where}.thinking: expected \"adaptive\", a token budget (int >= 1024) or 0, got 'lots'",
        f"{where}.max_cost_usd: expected a positive number of US dollars, got -1",
        f"{where}.command_timeout: expected a duration such as 120, '90s' or '5m', got 'soon'",
        f"{where}.prices.claude-opus-5.output: required",
        f"{where}.prices.claude-opus-5.input: expected a number >= 0, got 'cheap'",
    ]
