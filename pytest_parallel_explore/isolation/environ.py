"""The environment of the commands that must not see the user's secrets.

The scored test suite and the built-in agent's ``run_command`` get
:func:`safe_env`: an allow-list of variable names, not a deny-list of names
that look secret.  A deny-list misses ``MY_SERVICE_CREDENTIAL``, a database
URL with a password in it or a cloud provider's session variables; an
allow-list passes on only what a build or a test run commonly needs and lets
the caller add its own variables (``EXPLORE_*``, ``PYTHONPATH``) explicitly.

What is passed on, and why:

* where things are and who runs them: ``PATH``, ``HOME``, ``USER``,
  ``LOGNAME``, ``SHELL``, ``TMPDIR`` (``TMP``, ``TEMP``), the XDG base
  directories (tools keep caches and configuration there);
* text and time: ``LANG``, ``LANGUAGE``, ``LC_*``, ``TZ``, ``TERM``,
  ``COLORTERM``, ``NO_COLOR``, ``COLUMNS`` (output must decode and sort as in
  the user's shell);
* which Python: ``VIRTUAL_ENV``, ``CONDA_PREFIX``, ``CONDA_DEFAULT_ENV``, and
  the interpreter settings that change no code that runs: ``PYTHONHASHSEED``,
  ``PYTHONUTF8``, ``PYTHONIOENCODING``, ``PYTHONDONTWRITEBYTECODE``;
* the network as the user's shell reaches it: ``SSL_CERT_FILE``,
  ``SSL_CERT_DIR``, ``REQUESTS_CA_BUNDLE``, ``CURL_CA_BUNDLE``, the proxy
  variables in both cases (a proxy URL may carry a password; without it
  nothing reaches the network behind such a proxy);
* ``CI`` (test suites skip or slow down on it), ``EXPLORE_*`` (the plugin's
  own), ``GIT_AUTHOR_*``/``GIT_COMMITTER_*`` (so an agent's commits have an
  author).

Not passed on, though harmless-looking: ``PYTEST_ADDOPTS`` and
``PYTEST_PLUGINS`` (they would load plugins or change options of the scored
run), ``PYTHONPATH`` (the outer one may put the main checkout ahead of the
worktree; scoring sets its own), ``PYTHONSTARTUP``, ``PYTHONINSPECT``,
``PYTHONHOME``, ``PYTHONBREAKPOINT`` (each runs or swaps code),
``PYTHONWARNINGS`` (a filter naming ``pkg.Warning`` imports ``pkg``, and
``error`` changes test outcomes), ``LD_PRELOAD`` and ``LD_LIBRARY_PATH``
(they load other libraries into every process), ``GIT_DIR``,
``GIT_WORK_TREE``, ``GIT_INDEX_FILE`` and ``GIT_CONFIG*`` (they would point git
in the worktree at another repository or configuration), ``SSH_AUTH_SOCK``
(a credential), ``PIP_*`` (an index URL often carries a token).  Any name with
``KEY``, ``TOKEN``, ``SECRET``, ``PASSWORD``, ``PASSWD``, ``CREDENTIAL`` or an
``AUTH`` part is refused even when a prefix would allow it.

Command agents (``backend: command``) and Claude Code keep the whole
environment (see :func:`.procs.clean_env`): they need their own API keys.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

_ALLOWED_NAMES = frozenset(
    {
        # where things are and who runs them
        "PATH",
        "HOME",
        "USER",
        "LOGNAME",
        "SHELL",
        "TMPDIR",
        "TMP",
        "TEMP",
        "XDG_CACHE_HOME",
        "XDG_CONFIG_HOME",
        "XDG_DATA_HOME",
        "XDG_STATE_HOME",
        # text and time
        "LANG",
        "LANGUAGE",
        "TZ",
        "TERM",
        "COLORTERM",
        "NO_COLOR",
        "COLUMNS",
        # which Python, and settings that run no code
        "VIRTUAL_ENV",
        "CONDA_PREFIX",
        "CONDA_DEFAULT_ENV",
        "PYTHONHASHSEED",
        "PYTHONUTF8",
        "PYTHONIOENCODING",
        "PYTHONDONTWRITEBYTECODE",
        # the network, as the user's shell reaches it
        "SSL_CERT_FILE",
        "SSL_CERT_DIR",
        "REQUESTS_CA_BUNDLE",
        "CURL_CA_BUNDLE",
        "http_proxy",
        "https_proxy",
        "no_proxy",
        "all_proxy",
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "NO_PROXY",
        "ALL_PROXY",
        # test suites look at it
        "CI",
    }
)
_ALLOWED_PREFIXES = ("LC_", "EXPLORE_", "GIT_AUTHOR_", "GIT_COMMITTER_")
_SECRET_WORDS = ("KEY", "TOKEN", "SECRET", "PASSWORD", "PASSWD", "CREDENTIAL")


def is_allowed(name: str) -> bool:
    """Whether an inherited variable ``name`` may reach scoring and the built-in agent's commands."""
    if looks_secret(name):
        return False
    return name in _ALLOWED_NAMES or name.startswith(_ALLOWED_PREFIXES)


def looks_secret(name: str) -> bool:
    """A second guard behind the allow-list: ``EXPLORE_API_KEY`` stays out although ``EXPLORE_*`` is allowed."""
    upper = name.upper()
    return any(word in upper for word in _SECRET_WORDS) or "AUTH" in upper.split("_")


def safe_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The allowed part of the current environment, plus ``extra`` (the caller's own variables, kept as given)."""
    env = {name: value for name, value in os.environ.items() if is_allowed(name)}
    env.update(extra or {})
    return env
