"""Fixtures for the agent backends' tests."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from messages_server import MessagesServer

from pytest_parallel_explore.agents import AgentTask


@pytest.fixture
def messages_server() -> Iterator[MessagesServer]:
    """A scripted Messages API on 127.0.0.1 (see ``messages_server.py``)."""
    server = MessagesServer()
    yield server
    server.close()


@pytest.fixture
def agent_worktree(tmp_path: Path) -> Path:
    """A throw-away git repository with one commit, for an agent to edit."""
    worktree = tmp_path / "worktree"
    worktree.mkdir()
    (worktree / "README.md").write_text("# demo\n")
    git = ["git", "-c", "user.name=test", "-c", "user.email=test@example.com", "-c", "commit.gpgsign=false"]
    for args in (["init", "-q"], ["add", "-A"], ["commit", "-q", "-m", "base"]):
        subprocess.run([*git, *args], cwd=worktree, check=True)
    return worktree


@pytest.fixture
def make_task(agent_worktree: Path, tmp_path: Path) -> Callable[..., AgentTask]:
    """Builds the AgentTask of one trial on ``agent_worktree``; keyword arguments override fields."""

    def make(**overrides: Any) -> AgentTask:
        fields: dict[str, Any] = {
            "experiment": "demo",
            "trial": "t1",
            "variant": "v1",
            "settings": {},
            "prompt": "Make calc.add add.",
            "prompt_file": tmp_path / "prompt.md",
            "worktree": agent_worktree,
            "log_path": tmp_path / "results" / "t1_agent.log",
            "timeout": 30.0,
            "env": {"EXPLORE_VARIANT": "v1"},
        }
        return AgentTask(**{**fields, **overrides})

    return make
