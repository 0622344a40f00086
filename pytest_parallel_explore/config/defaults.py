"""The defaults of the options and ini keys, and their help texts, each default written once.

Free of imports so that loading the plugin, which pytest does in every run
of every suite where it is installed, costs nothing measurable.  The
variants file's own defaults are those of its dataclasses (:mod:`..model.spec`).
"""

from __future__ import annotations

DEFAULT_DIR = ".data/parallel_explorer"
DEFAULT_TIMEOUT = 1800.0
DEFAULT_SCORE_TIMEOUT = 600.0
DEFAULT_MAX_CONCURRENT = 3
DEFAULT_SCORE_COMMAND = "{python} -m pytest -q"

DIR_HELP = f"where experiments live, relative to the repository root (default: {DEFAULT_DIR})"
TIMEOUT_HELP = f"per-trial time limit for the agent, e.g. 1800, 90s, 20m, 1h (default: {DEFAULT_TIMEOUT / 60:g}m)"
MAX_CONCURRENT_HELP = f"upper bound on trials run at once, whatever -n says (default: {DEFAULT_MAX_CONCURRENT})"
SCORE_COMMAND_HELP = f"the project's test suite, run in each worktree (default: {DEFAULT_SCORE_COMMAND})"
AGENT_HELP = "default agent backend (default: anthropic when ANTHROPIC_API_KEY is set)"
