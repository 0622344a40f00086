"""The codex backend running the real Codex CLI against the scripted Responses API (real HTTP).

Codex is pointed at the server as a model provider of its own (``config``);
``exec_command`` is the shell tool it gives ``gpt-5.1-codex``.  Its own sandbox
(bubblewrap with a helper it refuses to keep under the temporary folder) is
off here except where a test is about it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from agent_clis import CODEX, needs_codex, offline_env
from responses_server import ResponsesServer, function_call, message, usage

from pytest_parallel_explore.agents import AgentOutcome, AgentTask
from pytest_parallel_explore.agents.codex import CodexAgent, toml_value, validate_settings
from pytest_parallel_explore.agents.pricing import price_for

MODEL = "gpt-5.1-codex"


def provider(server: ResponsesServer) -> dict[str, Any]:
    """The ``config`` that points Codex at ``server``."""
    return {
        "model_provider": "scripted",
        "model_providers.scripted": {
            "name": "scripted",
            "base_url": f"{server.url}/v1",
            "env_key": "OPENAI_API_KEY",
            "wire_api": "responses",
        },
    }


@pytest.fixture
def responses_server() -> Any:
    server = ResponsesServer()
    yield server
    server.close()


@pytest.fixture
def run_codex(
    responses_server: ResponsesServer,
    make_task: Callable[..., AgentTask],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Callable[..., tuple[AgentOutcome, AgentTask]]:
    offline_env(monkeypatch, tmp_path / "home", OPENAI_API_KEY="sk-dummy")

    def run(**settings: Any) -> tuple[AgentOutcome, AgentTask]:
        task = make_task(timeout=60.0)
        values = {"executable": str(CODEX), "model": MODEL, "sandbox_mode": "danger-full-access", **settings}
        agent = CodexAgent.from_settings({**values, "config": provider(responses_server)})
        agent.preflight()
        return agent.run(task), task

    return run


@needs_codex
def test_a_solved_task_reports_turns_tokens_model_cost_and_the_commands(
    run_codex: Callable[..., tuple[AgentOutcome, AgentTask]],
    responses_server: ResponsesServer,
    agent_worktree: Path,
) -> None:
    command = "printf 'def add(a, b):\\n    return a + b\\n' > calc.py && echo wrote"
    responses_server.respond(function_call("exec_command", cmd=command), tokens=usage(1000, 50, 0))
    responses_server.respond(message("add() now adds."), tokens=usage(1100, 20, 1000))

    outcome, task = run_codex()

    assert (outcome.failure, outcome.flags) == (None, [])
    assert (agent_worktree / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
    stats = outcome.stats
    assert (stats.backend, stats.model, stats.turns, stats.exit_code) == ("codex", MODEL, 2, 0)
    # OpenAI counts cached tokens inside the input; the record keeps them apart, as Anthropic's usage does.
    assert (stats.input_tokens, stats.cache_read_tokens, stats.output_tokens) == (1100, 1000, 70)
    price = price_for(MODEL)
    assert price is not None and stats.cost_usd == pytest.approx(price.cost(1100, 70, 1000, 0))
    assert stats.session_id
    [ran] = [e for e in outcome.transcript if e.kind == "command"]
    assert ran.title == command
    [output] = [e for e in outcome.transcript if e.kind == "output"]
    assert "wrote" in output.text and not output.failed
    assert outcome.transcript[-1].text == "add() now adds."
    assert list(task.log_path.with_name("t1_codex").glob(f"sessions/**/rollout-*{stats.session_id}.jsonl"))


@needs_codex
def test_a_write_codex_refused_flags_the_trial(
    run_codex: Callable[..., tuple[AgentOutcome, AgentTask]],
    responses_server: ResponsesServer,
    agent_worktree: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Codex will not set up its sandbox helper under the temporary folder: give it a state folder elsewhere.
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.setenv("TMPDIR", str(tmp_path / "elsewhere"))
    responses_server.respond(function_call("exec_command", cmd="printf 'x = 1\\n' > calc.py"))
    responses_server.respond(message("I could not write calc.py."))

    outcome, _ = run_codex(sandbox_mode="read-only")

    assert not (agent_worktree / "calc.py").exists()
    assert outcome.failure is None
    [flag] = outcome.flags
    assert flag.startswith("codex's sandbox (read-only) refused 1 command(s) a write:"), flag


@needs_codex
def test_a_401_is_named_and_stops_codex(
    run_codex: Callable[..., tuple[AgentOutcome, AgentTask]], responses_server: ResponsesServer
) -> None:
    for _ in range(8):
        responses_server.error(401, "invalid_api_key")
    started = time.monotonic()

    outcome, _ = run_codex()

    assert time.monotonic() - started < 30
    assert outcome.failure is not None and outcome.failure.startswith("codex: the API refused the credentials:")
    assert "401" in outcome.failure and outcome.stats.turns == 0


@needs_codex
def test_a_429_is_retried_and_the_task_goes_on(
    run_codex: Callable[..., tuple[AgentOutcome, AgentTask]], responses_server: ResponsesServer
) -> None:
    responses_server.error(429, "rate_limit_exceeded", {"retry-after": "1"})
    responses_server.respond(message("done"))

    outcome, _ = run_codex()

    assert outcome.failure is None
    assert (outcome.stats.turns, len(responses_server.requests)) == (1, 2)


@needs_codex
def test_max_turns_stops_codex_and_is_named(
    run_codex: Callable[..., tuple[AgentOutcome, AgentTask]], responses_server: ResponsesServer
) -> None:
    # More turns scripted than Codex could take between the third turn's event and the plugin's stop:
    # it is stopped while it still has work, not when the script runs out (it took all of 6 once).
    scripted = 40
    for _ in range(scripted):
        responses_server.respond(function_call("exec_command", cmd="echo again"))

    outcome, _ = run_codex(max_turns=2)

    assert outcome.failure == "codex stopped at max_turns (2) before it finished"
    assert outcome.stats.stop_reason == "stopped"
    assert len(responses_server.requests) < scripted


def test_config_values_become_toml() -> None:
    assert toml_value({"name": "x", "retries": 2, "on": True, "ids": ["a"]}) == (
        '{"name" = "x", "retries" = 2, "on" = true, "ids" = ["a"]}'
    )
    assert CodexAgent(model="m", reasoning_effort="high").argv(sandboxed=True) == [
        "codex", "exec", "--json", "--skip-git-repo-check", "--color", "never", "--model", "m",
        "--dangerously-bypass-approvals-and-sandbox", "-c", 'model_reasoning_effort="high"', "-",
    ]  # fmt: skip


def test_validate_settings_names_each_bad_key() -> None:
    assert validate_settings({"backend": "codex", "sandbox_mode": "read-only", "config": {}}, "v.agent") == []
    assert validate_settings({"sandbox_mode": "none", "config": [], "max_turn": 3}, "v.agent") == [
        "v.agent.max_turn: unknown key; did you mean 'max_turns'?",
        "v.agent.sandbox_mode: expected one of read-only, workspace-write, danger-full-access, got 'none'",
        'v.agent.config: expected a mapping of Codex config keys to values (e.g. {model_provider: "mine"}), got []',
    ]
