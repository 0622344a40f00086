"""The built-in agent (``backend: anthropic``): the Messages API loop, its worktree tools and its prices.

:mod:`.agent` is the loop, :mod:`.settings` its settings, :mod:`.retries` its retry policy,
:mod:`.schemas` what the model is told of its tools, :mod:`.tools` the confined tools,
:mod:`.output` a command's bounded output, :mod:`._search` the search tool's child process,
:mod:`..pricing` the price table.
"""

from .agent import AnthropicAgent
from .settings import DEFAULT_MODEL, validate_settings

__all__ = ["DEFAULT_MODEL", "AnthropicAgent", "validate_settings"]
