"""The real agent CLIs the tests drive: where they are, and skipping where they are not.

A CLI is found through ``EXPLORE_TEST_CLAUDE`` / ``EXPLORE_TEST_CODEX`` (a path),
else in the git-ignored ``.cli/node_modules/.bin/`` of this checkout, where
``.ci/run`` installs them with npm.  aider (a Python package too heavy for
CI, see ``test_aider_cli.py``) is found through ``EXPLORE_TEST_AIDER`` or on
``PATH``.  The tests point them at a scripted API server on 127.0.0.1
(``messages_server``, ``responses_server``, ``chat_server``) with a dummy
key, in an empty home, with non-essential traffic off: they never leave the machine.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

_INSTALLED = Path(__file__).resolve().parent.parent / ".cli" / "node_modules" / ".bin"


def find_cli(name: str) -> Path | None:
    given = os.environ.get(f"EXPLORE_TEST_{name.upper()}")
    if given:
        return Path(given)
    found = _INSTALLED / name
    return found if found.exists() else None


CLAUDE = find_cli("claude")
CODEX = find_cli("codex")
_aider = os.environ.get("EXPLORE_TEST_AIDER") or shutil.which("aider")
AIDER = Path(_aider) if _aider else None
_HOW = "npm install --prefix .cli @anthropic-ai/claude-code @openai/codex (.ci/run does), or set EXPLORE_TEST_{}"
needs_claude = pytest.mark.skipif(CLAUDE is None, reason="Claude Code not installed: " + _HOW.format("CLAUDE"))
needs_codex = pytest.mark.skipif(CODEX is None, reason="Codex not installed: " + _HOW.format("CODEX"))
needs_aider = pytest.mark.skipif(
    AIDER is None, reason="aider not installed: pip install aider-chat in a virtualenv, then set EXPLORE_TEST_AIDER"
)
needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap is not installed")


def offline_env(monkeypatch: pytest.MonkeyPatch, home: Path, **variables: str) -> None:
    """No key, URL or config of the developer's reaches the CLI: an empty home and the scripted server's URL."""
    for name in [n for n in os.environ if n.startswith(("ANTHROPIC_", "OPENAI_", "CODEX_", "CLAUDE_", "AIDER_"))]:
        monkeypatch.delenv(name)
    home.mkdir(parents=True, exist_ok=True)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("DISABLE_TELEMETRY", "1")
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
