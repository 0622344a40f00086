"""The aider backend running the real aider against the scripted Chat Completions API (real HTTP).

aider (``pip install aider-chat``) is too heavy for ``.ci/run`` (about 150 s
and 100 packages): these tests run where it is installed, found through
``EXPLORE_TEST_AIDER`` or ``PATH``, and skip elsewhere.  ``test_aider_history.py``
checks the parser on files captured from these runs, so CI covers it.
aider is pointed at the server as an OpenAI-compatible API
(``OPENAI_API_BASE``); its price list is seeded in the empty home so that it
does not try GitHub at every start.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_clis import AIDER, needs_aider, needs_bwrap, offline_env
from chat_server import ChatServer, edit, usage, whole

from pytest_parallel_explore.agents import AgentOutcome, AgentTask
from pytest_parallel_explore.agents.aider import AiderAgent
from pytest_parallel_explore.agents.pricing import price_for
from tests.explore_testing import Project

MODEL = "openai/gpt-4.1-mini"
GOOD = "def add(a, b):\n    return a + b\n"
#: aider's own price for the model, as litellm's list has it (USD per token).
AIDER_PRICES = {"gpt-4.1-mini": {"input_cost_per_token": 4e-7, "output_cost_per_token": 1.6e-6, "mode": "chat"}}


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    server = ChatServer()
    yield server
    server.close()


@pytest.fixture
def run_aider(
    chat_server: ChatServer, make_task: Callable[..., AgentTask], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., tuple[AgentOutcome, AgentTask]]:
    home = tmp_path / "home"
    offline_env(monkeypatch, home, OPENAI_API_KEY="sk-dummy", OPENAI_API_BASE=f"{chat_server.url}/v1")
    caches = home / ".aider" / "caches"
    caches.mkdir(parents=True)
    (caches / "model_prices_and_context_window.json").write_text(json.dumps(AIDER_PRICES))

    def run(**settings: Any) -> tuple[AgentOutcome, AgentTask]:
        task = make_task(timeout=90.0)
        task.prompt_file.write_text(task.prompt)
        agent = AiderAgent.from_settings({"executable": str(AIDER), "model": MODEL, **settings})
        agent.preflight()
        return agent.run(task), task

    return run


@needs_aider
def test_a_solved_task_reports_turns_tokens_model_cost_and_the_transcript(
    run_aider: Callable[..., tuple[AgentOutcome, AgentTask]], chat_server: ChatServer, agent_worktree: Path
) -> None:
    chat_server.reply("I will write calc.py.\n\n" + edit("calc.py", "", GOOD), usage(1200, 60))

    outcome, task = run_aider()

    assert (outcome.failure, outcome.flags) == (None, [])
    assert (agent_worktree / "calc.py").read_text() == GOOD
    # aider's repository-map cache is not left in the worktree to be taken for the agent's work.
    assert sorted(p.name for p in agent_worktree.iterdir()) == [".git", "README.md", "calc.py"]
    stats = outcome.stats
    assert (stats.backend, stats.model, stats.turns, stats.exit_code) == ("aider", MODEL, 1, 0)
    assert (stats.input_tokens, stats.output_tokens) == (1200, 60)
    price = price_for("gpt-4.1-mini")
    assert price is not None and stats.cost_usd == pytest.approx(price.cost(1200, 60, 0, 0))
    assert stats.cli_cost_usd is None  # aider's own figure agrees
    assert chat_server.requests[0]["model"] == "gpt-4.1-mini" and not chat_server.requests[0].get("stream")
    kinds = [(e.kind, e.title) for e in outcome.transcript]
    assert kinds[0] == ("assistant", "") and "I will write calc.py." in outcome.transcript[0].text
    assert ("output", "aider") in kinds and "Applied edit to calc.py" in outcome.transcript[-1].text
    state = task.log_path.with_name("t1_aider")
    assert {"chat.md", "analytics.jsonl", "llm-history.txt"} <= {p.name for p in state.iterdir()}


@needs_aider
def test_a_401_is_named_and_fails_at_once(
    run_aider: Callable[..., tuple[AgentOutcome, AgentTask]], chat_server: ChatServer
) -> None:
    for _ in range(5):
        chat_server.error(401, "invalid_api_key")
    started = time.monotonic()

    outcome, _ = run_aider()

    assert time.monotonic() - started < 30
    assert outcome.failure is not None
    assert outcome.failure.startswith("aider: the API refused the credentials: litellm.AuthenticationError"), (
        outcome.failure
    )
    assert outcome.stats.turns == 0 and len(chat_server.requests) == 1
    assert outcome.transcript[0].kind == "error" and outcome.transcript[0].failed


@needs_aider
def test_a_429_is_retried_and_the_task_goes_on(
    run_aider: Callable[..., tuple[AgentOutcome, AgentTask]], chat_server: ChatServer, agent_worktree: Path
) -> None:
    chat_server.error(429, "rate_limit_exceeded")
    chat_server.reply(edit("calc.py", "", GOOD))

    outcome, _ = run_aider()

    assert outcome.failure is None
    assert (agent_worktree / "calc.py").read_text() == GOOD
    assert (outcome.stats.turns, len(chat_server.requests)) == (1, 2)


@needs_aider
def test_aider_s_reflection_limit_is_named(
    run_aider: Callable[..., tuple[AgentOutcome, AgentTask]], chat_server: ChatServer
) -> None:
    # An edit that never applies: aider sends the error back three times, then gives up.
    for _ in range(6):
        chat_server.reply(edit("calc.py", "not there\n", "x = 1\n"))

    outcome, _ = run_aider()

    assert outcome.failure == ("aider stopped at its limit of 3 reflections (requests after the first), unfinished")
    assert (outcome.stats.turns, len(chat_server.requests)) == (4, 4)
    assert any(e.kind == "error" and "failed to match" in e.text for e in outcome.transcript)


@needs_aider
def test_max_turns_stops_aider_and_is_named(
    run_aider: Callable[..., tuple[AgentOutcome, AgentTask]], chat_server: ChatServer
) -> None:
    for _ in range(6):  # each answer takes a second, as a model's does: time to stop aider between them
        chat_server.reply(edit("calc.py", "not there\n", "x = 1\n"), delay=1.0)

    outcome, _ = run_aider(max_turns=1)

    assert outcome.failure == "aider stopped at max_turns (1) before it finished"
    assert outcome.stats.stop_reason == "stopped"
    assert len(chat_server.requests) < 4


@needs_aider
@needs_bwrap
def test_aider_solves_the_task_in_the_sandbox_and_its_transcript_reaches_the_report(
    calc_project: Project, chat_server: ChatServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    offline_env(monkeypatch, tmp_path / "home", OPENAI_API_KEY="sk-dummy", OPENAI_API_BASE=f"{chat_server.url}/v1")
    hostile = "<script>document.title='owned'</script>"
    chat_server.reply(f"Fixing calc.py. {hostile}\n\n" + whole("calc.py", GOOD), usage(900, 40))
    agent = {"backend": "aider", "model": MODEL, "executable": str(AIDER), "edit_format": "whole"}
    spec = calc_project.calc_spec(aider={"description": "aider", "agent": agent})
    spec["sandbox"] = "bwrap"

    result = calc_project.explore("--variants", calc_project.variants(spec))

    assert result.ret == 0, result.stdout.str() + result.stderr.str()
    trial = calc_project.trials()["aider"]
    assert (trial["status"], trial["score"], trial["flags"]) == ("done", 1.0, []), trial
    assert (trial["agent"]["backend"], trial["agent"]["model"], trial["agent"]["turns"]) == ("aider", MODEL, 1)
    assert trial["agent"]["input_tokens"] == 900 and trial["agent"]["cost_usd"] > 0
    results = calc_project.experiment_dir() / "results"
    assert (results / "aider_aider" / "chat.md").is_file()
    html = (results / "report.html").read_text()
    assert "Fixing calc.py." in html and hostile not in html
