"""A pytest score command pinned to the base: its configuration, its plugins, and its outcomes as the tests end.

Whatever the agent wrote into ``pytest.ini``, ``pyproject.toml``, ``tox.ini``
or ``setup.cfg`` (in a form the protection may not recognise), a pytest run
reads the base commit's configuration: a copy of the base's configuration
file, written by the plugin next to the code (relative ``paths`` settings
keep their meaning), passed with ``-c``, the rootdir fixed with
``--rootdir``.  Plugins are not loaded from entry points, where a
``*.dist-info`` folder in the checkout would answer: the trials' runs set
``PYTEST_DISABLE_PLUGIN_AUTOLOAD`` and load by module name the plugins the
baseline run (at the base commit, where nothing is the agent's) loaded.
pytest still looks a ``-p`` name up among entry point names first, so a
planted distribution could answer to a module's name: package metadata
folders are protected files (see ``protect``), never in the scored tree.

Outcomes come from :mod:`.reporter`, loaded into the run with ``-p``, over
a pipe this process opened: one line per test as it ends.  The junit report
(the human-readable artefact) is checked against them.  Code under test runs
in the same process and could still write on the pipe (a test reported twice
counts as an error) or patch pytest: hold-out tests and the patch are the
defence there.
"""

from __future__ import annotations

import configparser
import contextlib
import dataclasses
import functools
import json
import os
import threading
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import tomllib

from ..model.record import TestStats
from ..repo import treefiles
from ..repo.gitcmd import Git
from . import reporter

#: The sealed copy of the base's configuration, at the top of the scoring checkout (its suffix is the original's).
SEALED_CONFIG = ".explore-base-config"
#: The reporter plugin's copy in a scoring run's report folder, and the module name it is loaded by.
REPORTER_FOLDER, REPORTER_MODULE = "plugins", "_explore_outcomes"
#: Where the base has no configuration: pytest reads none (a path that is not a file, see ``pytest -c``).
NO_CONFIG = os.devnull
#: What a run may report, at most: a hostile suite cannot make the plugin read without end.
MAX_REPORT_BYTES = 64 * 1024 * 1024
OUTCOMES = ("passed", "failed", "error", "skipped", "xfailed", "xpassed")
#: How junit writes each outcome (xunit1: an expected failure is a skip, an unexpected pass a pass).
_AS_JUNIT = {"xfailed": "skipped", "xpassed": "passed"}
#: pytest's configuration files at the rootdir, in the order pytest prefers them (see ``_pytest.config.findpaths``).
_CONFIG_NAMES = ("pytest.toml", ".pytest.toml", "pytest.ini", ".pytest.ini", "pyproject.toml", "tox.ini", "setup.cfg")


@dataclasses.dataclass(frozen=True)
class Pinned:
    """How a pytest score command runs: the base's configuration file (name, text), and the plugins.

    ``plugins`` None: plugins autoload from entry points (the baseline, at
    the base commit); otherwise autoload is off and these modules are
    loaded with ``-p``.
    """

    config: tuple[str, str] | None
    plugins: tuple[str, ...] | None = None

    def key(self) -> dict[str, Any]:
        """What a run depends on, for the score cache."""
        return {"config": list(self.config) if self.config else None, "plugins": self.plugins}


def base_config(git: Git, base: str) -> tuple[str, str] | None:
    """The file pytest takes its configuration from at the base commit's top folder, and its text.

    Read with ``tomllib`` and ``configparser``, as pytest decides: the first
    file that holds pytest configuration, else a ``pyproject.toml`` (pytest's
    rootdir marker), else None.  Kept for an object id, which names the same files for ever.
    """
    if treefiles.OBJECT_ID.fullmatch(base):
        return _kept_base_config(git, base)
    return _base_config(git, base)


@functools.lru_cache(maxsize=4)
def _kept_base_config(git: Git, base: str) -> tuple[str, str] | None:
    return _base_config(git, base)


def _base_config(git: Git, base: str) -> tuple[str, str] | None:
    entries = treefiles.tree_entries(git, base)
    texts = {
        name: git.run_bytes("cat-file", "blob", entries[name][1]).decode("utf-8", errors="replace")
        for name in _CONFIG_NAMES
        if name in entries and entries[name][0] in ("100644", "100755")
    }
    for name, text in texts.items():
        if holds_pytest_config(name, text):
            return name, text
    return ("pyproject.toml", texts["pyproject.toml"]) if "pyproject.toml" in texts else None


def holds_pytest_config(name: str, text: str) -> bool:
    """Whether pytest would read its configuration from ``text``, a file called ``name``."""
    if name in ("pytest.toml", ".pytest.toml", "pytest.ini", ".pytest.ini"):
        return True  # always the source, even empty
    if name.endswith(".toml"):
        return pytest_table(text) is not None
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(text)
    except configparser.Error:
        return False
    return parser.has_section("tool:pytest" if name.endswith(".cfg") else "pytest")


def pytest_table(text: str) -> object | None:
    """The ``tool.pytest`` value of a TOML document, however it is spelled; None when there is none.

    A document that is not TOML gives the text itself: it cannot be told apart from pytest configuration.
    """
    try:
        document = tomllib.loads(text)
    except tomllib.TOMLDecodeError:
        return text
    tool = document.get("tool")
    return tool.get("pytest") if isinstance(tool, dict) else None


def arguments(pinned: Pinned, checkout: Path, out: Path) -> list[str]:
    """What is appended to a pytest command: the sealed configuration, the rootdir, the plugins, the reporter.

    Writes the configuration's copy into ``checkout`` (replacing whatever
    the tree had at that path) and the reporter into ``out`` (see :func:`environment`).
    """
    config = NO_CONFIG
    if pinned.config is not None:
        name, text = pinned.config
        target = checkout / f"{SEALED_CONFIG}{_suffix(name)}"
        if target.is_dir() and not target.is_symlink():
            treefiles.remove_tree(target)
        else:
            target.unlink(missing_ok=True)
        with target.open("x", encoding="utf-8") as file:
            file.write(text)
        config = str(target)
    # Made again: a set-up command ran in this folder's sandbox, and could have left links there (to a
    # file of yours, for this write to follow); none is followed, all go.
    treefiles.remove_tree(out)
    folder = out / REPORTER_FOLDER
    folder.mkdir(parents=True)
    fd = os.open(folder / f"{REPORTER_MODULE}.py", os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
    with os.fdopen(fd, "wb") as file:
        file.write(Path(reporter.__file__).read_bytes())
    plugins = [arg for module in pinned.plugins or () for arg in ("-p", module)]
    # --confcutdir: no conftest.py above the checkout takes part (one left next to it, or in $TMPDIR).
    return ["-c", config, f"--rootdir={checkout}", f"--confcutdir={checkout}", *plugins, "-p", REPORTER_MODULE]


def _suffix(name: str) -> str:
    """The suffix that makes pytest read the copy as it read the original (``-c`` picks a loader by it)."""
    return ".cfg" if name == "setup.cfg" else ".toml" if name.endswith(".toml") else ".ini"


def environment(pinned: Pinned, out: Path, fd: int, env: Mapping[str, str]) -> dict[str, str]:
    """The environment ``env`` of a pinned run: the reporter's pipe and folder (first on the path), no autoload.

    The reporter is imported from the plugin's own copy, in a folder before
    the checkout on ``PYTHONPATH``: a checkout holding this package (the
    plugin scoring its own repository) cannot replace it.
    """
    pythonpath = os.pathsep.join(p for p in (str(out / REPORTER_FOLDER), env.get("PYTHONPATH")) if p)
    pinned_env = {**env, "PYTHONPATH": pythonpath, reporter.FD_VARIABLE: str(fd)}
    if pinned.plugins is not None:
        pinned_env["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    return pinned_env


@dataclasses.dataclass
class Reported:
    """What the reporter said: the plugins it saw loaded, each test's outcome, and whether pytest finished."""

    plugins: list[str] | None = None
    cases: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    finished: bool = False
    garbled: int = 0  # lines that were not the reporter's
    repeated: set[str] = dataclasses.field(default_factory=set)  # tests reported more than once: not passed

    def stats(self) -> TestStats:
        stats = TestStats(cases=self.cases, plugins=list(self.plugins or []))
        for case in self.cases.values():
            outcome = _AS_JUNIT.get(case["outcome"], case["outcome"])
            if outcome == "error":
                stats.errors += 1
            else:
                setattr(stats, outcome, getattr(stats, outcome) + 1)
        return stats


@contextlib.contextmanager
def outcome_pipe() -> Iterator[tuple[int, Reported]]:
    """A pipe for the reporter: its write end's fd (to pass to the run), and what was read once it ends.

    A thread drains the pipe while the run goes on (a full pipe would stall
    it); the write end is closed here when the block ends, after the run and
    everything it started are gone, so the thread sees the end of it.
    """
    read_fd, write_fd = os.pipe()
    chunks: list[bytes] = []
    thread = threading.Thread(target=_drain, args=(read_fd, chunks), name="explore-outcomes", daemon=True)
    thread.start()
    reported = Reported()
    try:
        yield write_fd, reported
    finally:
        os.close(write_fd)
        thread.join()
        os.close(read_fd)
    _parse(b"".join(chunks), reported)


def _drain(fd: int, chunks: list[bytes]) -> None:
    size = 0
    while chunk := os.read(fd, 65536):
        if size < MAX_REPORT_BYTES:
            chunks.append(chunk[: MAX_REPORT_BYTES - size])
        size += len(chunk)


def _parse(data: bytes, reported: Reported) -> None:
    for line in data.decode("utf-8", errors="replace").splitlines():
        try:
            message = json.loads(line)
        except ValueError:
            reported.garbled += 1
            continue
        if not isinstance(message, dict):
            reported.garbled += 1
        elif _is_case(message):
            # The reporter writes each test once: a second line is someone else's, and the test did not pass.
            node = message["test"]
            if node in reported.cases:
                reported.repeated.add(node)
            outcome = "error" if node in reported.repeated else message["outcome"]
            reported.cases[node] = {"outcome": outcome, "duration": float(message["duration"])}
        elif isinstance(message.get("plugins"), list) and all(isinstance(p, str) for p in message["plugins"]):
            reported.plugins = message["plugins"]
        elif isinstance(message.get("finished"), int):
            reported.finished = True
        else:
            reported.garbled += 1


def _is_case(message: Mapping[str, Any]) -> bool:
    return (
        isinstance(message.get("test"), str)
        and message.get("outcome") in OUTCOMES
        and isinstance(message.get("duration"), int | float)
    )


def disagreements(reported: Reported, junit: Mapping[str, Mapping[str, Any]] | None) -> list[str]:
    """Where the junit report and the reported outcomes differ, as a fault of the run; empty when they agree."""
    faults = []
    if reported.garbled:
        faults.append(f"{reported.garbled} lines on the outcome pipe were not the reporter's")
    if reported.repeated:
        some = ", ".join(sorted(reported.repeated)[:3])
        faults.append(f"{len(reported.repeated)} tests reported more than once, counted as errors: {some}")
    if junit is None:
        if reported.finished:
            faults.append("pytest finished but wrote no junit report")
        return faults
    shown = {node: _AS_JUNIT.get(c["outcome"], c["outcome"]) for node, c in reported.cases.items()}
    differ = sorted(
        node
        for node in shown.keys() | junit.keys()
        if shown.get(node, "missing") != (junit[node]["outcome"] if node in junit else "missing")
    )
    if differ:
        examples = ", ".join(
            f"{node} (junit: {junit[node]['outcome'] if node in junit else 'missing'}, reported: "
            f"{shown.get(node, 'missing')})"
            for node in differ[:3]
        )
        faults.append(
            f"the junit report disagrees with the outcomes reported as the tests ran, on {len(differ)} tests: "
            f"{examples}{' ...' if len(differ) > 3 else ''}"
        )
    return faults
