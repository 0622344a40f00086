"""Sealed git: every git command the plugin runs while agents may be at work goes through :class:`Git`.

An agent can plant things in the repository that would make an ordinary
``git`` call run its code or read the wrong repository: hooks
(``core.hooksPath``), ``core.fsmonitor``, clean/smudge filters, external
diff drivers, a deleted or rewritten ``.git`` link that makes git climb up to
the user's main repository.  So a sealed call:

* never discovers its repository: ``GIT_DIR`` (and ``GIT_WORK_TREE``) are
  always given, so nothing the worktree's ``.git`` says is consulted;
* reads no system or global configuration, and overrides every repository
  setting that could run a program (hooks, fsmonitor, pager, editor,
  signing, credential helpers; filters unless the caller trusts them);
* runs with a minimal environment: no API keys or other secrets, no
  ``GIT_*`` variables of the outer process, and a fixed identity for commits.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import IO

#: Commits made by the plugin carry this identity, so they work without git config and are recognisable.
IDENTITY = {
    "GIT_AUTHOR_NAME": "pytest-parallel-explore",
    "GIT_AUTHOR_EMAIL": "explore@localhost",
    "GIT_COMMITTER_NAME": "pytest-parallel-explore",
    "GIT_COMMITTER_EMAIL": "explore@localhost",
}

#: Settings that would let repository configuration run a program or change what git reads.
_OVERRIDES = (
    "core.hooksPath=/dev/null",
    "core.fsmonitor=false",
    "core.untrackedCache=false",
    "core.splitIndex=false",
    "core.pager=cat",
    "core.editor=false",
    "core.askPass=",
    "core.sshCommand=false",
    "core.attributesFile=/dev/null",
    "core.excludesFile=/dev/null",
    "core.sparseCheckout=false",
    "credential.helper=",
    "commit.gpgSign=false",
    "tag.gpgSign=false",
    "log.showSignature=false",
    "gc.auto=0",
    "maintenance.auto=false",
    "protocol.allow=never",
    "safe.directory=*",
)
_TRUSTED_ENV = ("PATH", "LANG", "LC_ALL", "TMPDIR", "HOME")


class GitFailed(Exception):
    """A sealed git command exited non-zero; the message has its arguments and stderr."""


def sealed_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The whole environment of a sealed git command: nothing inherited but the basics."""
    env = {k: os.environ[k] for k in _TRUSTED_ENV if k in os.environ}
    env.update(
        {
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": "/dev/null",
            "GIT_TERMINAL_PROMPT": "0",
            "GIT_OPTIONAL_LOCKS": "0",
            "GIT_NO_REPLACE_OBJECTS": "1",
            **IDENTITY,
        }
    )
    env.update(extra or {})
    return env


@dataclasses.dataclass(frozen=True)
class Git:
    """git on an explicit repository: ``git_dir`` and, when files are involved, ``work_tree``.

    ``index`` points git at a private index file, so the agent's index
    (``assume-unchanged``, ``skip-worktree``, staged tricks) is never read.
    ``objects`` is a private object folder that new objects go to (the
    repository's own are still read), so they can be dropped or kept whole.
    ``made_here``: the plugin has just made the repository (``git init``
    without a template) and nothing else has written to it since, so its
    configuration names no filter and none is looked up.
    """

    git_dir: Path
    work_tree: Path | None = None
    index: Path | None = None
    objects: Path | None = None
    trusted_filters: frozenset[str] = frozenset()
    made_here: bool = False

    def with_(self, **changes: object) -> Git:
        return dataclasses.replace(self, **changes)  # type: ignore[arg-type]

    def run(self, *args: str, input: bytes | str | None = None, check: bool = True) -> str:
        """Run ``git args`` sealed; its stdout as text (stripped of one trailing newline)."""
        return self.run_bytes(*args, input=input, check=check).decode(errors="surrogateescape").removesuffix("\n")

    def run_bytes(self, *args: str, input: bytes | str | None = None, check: bool = True) -> bytes:
        argv = ["git", *(a for o in self._overrides() for a in ("-c", o)), *args]
        data = input.encode() if isinstance(input, str) else input
        finished = subprocess.run(
            argv,
            input=data,
            capture_output=True,
            env=self._env(),
            cwd=self._cwd(),
            check=False,
        )
        if check and finished.returncode != 0:
            detail = finished.stderr.decode(errors="replace").strip()
            raise GitFailed(f"git {' '.join(args[:3])} failed (exit {finished.returncode}): {detail}")
        return finished.stdout

    @contextlib.contextmanager
    def stream(self, *args: str, stdin: Path) -> Iterator[IO[bytes]]:
        """Run ``git args`` sealed with ``stdin`` from a file; its stdout to read as it comes.

        For output too large to hold at once (``cat-file --batch`` of a whole
        tree).  The process is waited for (killed if the reader stops early)
        and a non-zero exit raises :class:`GitFailed`.
        """
        argv = ["git", *(a for o in self._overrides() for a in ("-c", o)), *args]
        with stdin.open("rb") as source, tempfile.TemporaryFile() as errors:
            process = subprocess.Popen(
                argv, stdin=source, stdout=subprocess.PIPE, stderr=errors, env=self._env(), cwd=self._cwd()
            )
            assert process.stdout is not None
            try:
                yield process.stdout
            except BaseException:  # the reader stopped early (not: an exception being handled around it)
                process.kill()
                raise
            finally:
                process.stdout.close()
                returncode = process.wait()
            if returncode != 0:
                errors.seek(0)
                detail = errors.read().decode(errors="replace").strip()
                raise GitFailed(f"git {' '.join(args[:3])} failed (exit {returncode}): {detail}")

    @contextlib.contextmanager
    def feed(self, *args: str) -> Iterator[IO[bytes]]:
        """Run ``git args`` sealed; its stdin to write as the caller goes, for input too large to hold at once.

        Closing stdin when the block ends lets git finish; a non-zero exit
        raises :class:`GitFailed`.  When the block raises, git is killed
        instead, so it does not act on half of its input.
        """
        argv = ["git", *(a for o in self._overrides() for a in ("-c", o)), *args]
        with tempfile.TemporaryFile() as errors:
            process = subprocess.Popen(
                argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=errors, env=self._env(), cwd=self._cwd()
            )
            assert process.stdin is not None
            try:
                yield process.stdin
                process.stdin.close()
            except BrokenPipeError:  # git stopped reading: its exit status and stderr say why
                with contextlib.suppress(BrokenPipeError):
                    process.stdin.close()
            except BaseException:
                process.kill()
                with contextlib.suppress(BrokenPipeError):
                    process.stdin.close()
                process.wait()
                raise
            if process.wait() != 0:
                errors.seek(0)
                detail = errors.read().decode(errors="replace").strip()
                raise GitFailed(f"git {' '.join(args[:3])} failed (exit {process.returncode}): {detail}")

    def _env(self) -> dict[str, str]:
        env = {"GIT_DIR": str(self.git_dir)}
        if self.objects is not None:
            env["GIT_OBJECT_DIRECTORY"] = str(self.objects)
            env["GIT_ALTERNATE_OBJECT_DIRECTORIES"] = str(self.git_dir / "objects")
        if self.work_tree is not None:
            env["GIT_WORK_TREE"] = str(self.work_tree)
        if self.index is not None:
            env["GIT_INDEX_FILE"] = str(self.index)
        return sealed_env(env)

    def _cwd(self) -> Path:
        return self.work_tree or self.git_dir

    def ok(self, *args: str) -> bool:
        """Whether ``git args`` succeeds (for questions such as ``merge-base --is-ancestor``)."""
        try:
            self.run(*args)
        except GitFailed:
            return False
        return True

    def _overrides(self) -> Iterable[str]:
        yield from _OVERRIDES
        if self.made_here:
            return
        # Any command may refresh the index and so run a clean filter: every driver is looked up each time.
        for name in filter_drivers(self.git_dir) - self.trusted_filters:
            # An empty command means "no filter"; not required, so git never refuses the file.
            yield from (f"filter.{name}.clean=", f"filter.{name}.smudge=", f"filter.{name}.process=")
            yield f"filter.{name}.required=false"


def filter_drivers(git_dir: Path) -> frozenset[str]:
    """The names of the ``filter.<name>.*`` drivers in ``git_dir``'s configuration, includes followed.

    Asked again only when a file the configuration comes from (or could come
    from: ``config``, ``config.worktree``, the common directory's ``config``)
    changed since the last answer; a planted driver or include changes one of
    them, and its ctime, which no unprivileged process can set back.
    """
    cached = _drivers_seen.get(git_dir)
    if cached is not None and all(_signature(path) == seen for path, seen in cached[0]):
        return cached[1]
    finished = subprocess.run(
        ["git", "config", "--list", "--includes", "--show-origin", "-z"],
        capture_output=True,
        env=sealed_env({"GIT_DIR": str(git_dir)}),
        cwd=git_dir,
        check=False,
    )
    fields = finished.stdout.decode(errors="surrogateescape").split("\0")
    names = set()
    sources = set(_possible_sources(git_dir))
    for origin, entry in zip(fields[0::2], fields[1::2], strict=False):  # the output ends with a lone ""
        source = git_dir / origin.removeprefix("file:")  # absolute paths stay as they are
        sources.add(source)
        key, _, value = entry.partition("\n")
        if key.startswith("filter.") and key.count(".") >= 2:
            names.add(key[len("filter.") : key.rindex(".")])
        elif key == "include.path" or (key.startswith("includeif.") and key.endswith(".path")):
            sources.add(source.parent / Path(value).expanduser())  # even while empty: it may be filled later
    _drivers_seen[git_dir] = (tuple((path, _signature(path)) for path in sources), frozenset(names))
    return frozenset(names)


_drivers_seen: dict[Path, tuple[tuple[tuple[Path, tuple[int, ...] | None], ...], frozenset[str]]] = {}


def _possible_sources(git_dir: Path) -> list[Path]:
    """Configuration files git reads for ``git_dir`` whether or not they exist yet."""
    sources = [git_dir / "config", git_dir / "config.worktree"]
    commondir = git_dir / "commondir"
    if commondir.is_file():
        sources.append((git_dir / commondir.read_text().strip()).resolve() / "config")
    return sources


def _signature(path: Path) -> tuple[int, ...] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return (info.st_mtime_ns, info.st_ctime_ns, info.st_size, info.st_ino)


def common_dir(root: Path) -> Path:
    """The shared git directory of the repository checked out at ``root`` (asked before any agent runs)."""
    finished = subprocess.run(
        ["git", "rev-parse", "--path-format=absolute", "--git-common-dir"],
        capture_output=True,
        text=True,
        env=sealed_env(),
        cwd=root,
        check=False,
    )
    if finished.returncode != 0:
        raise GitFailed(f"{root}: not a git checkout ({finished.stderr.strip()})")
    return Path(finished.stdout.strip())


def lines(text: str, sep: str = "\n") -> Sequence[str]:
    return [line for line in text.split(sep) if line]
