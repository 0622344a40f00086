"""What an agent and a scoring run may see and write, as bubblewrap policies (see ``sandbox``).

An agent writes its own private repository (see ``repo.private``); it reads
its prompt and the base objects that repository borrows.  It does not see
the experiment's other folders (other trials' worktrees, ``results/``), the
user's git directory, or the hold-out tests in the main checkout; the rest
of the machine, the main checkout included, is read-only.  A scoring run writes only its own folder and sees
none of the experiment's folders or the shared git directory.
"""

from __future__ import annotations

import functools
import importlib.metadata
import json
import sys
import urllib.parse
from pathlib import Path

from ..sections import SandboxSpec
from ..settings import Settings
from ..spec import VariantSpec
from .sandbox import Sandbox, wanted


def sandbox_spec(settings: Settings, variant: VariantSpec | None) -> SandboxSpec:
    return (variant.sandbox if variant is not None else None) or settings.sandbox


def for_agent(
    settings: Settings, variant: VariantSpec, worktree: Path, shared: Path, git_dir: Path, prompt_file: Path
) -> Sandbox | None:
    spec = sandbox_spec(settings, variant)
    if not wanted(spec.mode):
        return None
    return Sandbox(
        writable=(worktree,),
        hidden=(settings.workspace.explore_dir, git_dir, *_holdout(settings)),
        # Explicitly: the shared base objects and the interpreter may live where /tmp is made private.
        readonly=(shared, prompt_file, *_interpreter()),
        extra_writable=tuple(Path(p) for p in spec.writable),
        network=True,
    )


def for_scoring(settings: Settings, folder: Path, git_dir: Path) -> Sandbox | None:
    spec = settings.sandbox
    if not wanted(spec.mode):
        return None
    return Sandbox(
        writable=(folder,),
        hidden=(settings.workspace.explore_dir, git_dir, *_holdout(settings)),
        readonly=_interpreter(),
        network=spec.scoring_network,
    )


def _interpreter() -> tuple[Path, ...]:
    """The Python environment that runs ``{python}``: it must stay visible (read-only) inside the sandbox.

    Its prefix and every folder on its import path: an editable install of
    the project or of this plugin lives outside site-packages, possibly
    under ``/tmp``, which the sandbox replaces with a private one.
    """
    folders = {sys.prefix, sys.base_prefix, *(p for p in sys.path if p and Path(p).is_dir())}
    folders.update(_editable_sources())
    return tuple(sorted(Path(p) for p in folders))


@functools.lru_cache(maxsize=1)
def _editable_sources() -> frozenset[str]:
    """Where editable installs (this plugin's included) keep their code: not on ``sys.path``, but imported."""
    sources = {str(Path(__file__).resolve().parent.parent)}
    for distribution in importlib.metadata.distributions():
        try:
            direct = json.loads(distribution.read_text("direct_url.json") or "{}")
        except ValueError:
            continue
        url = direct.get("url", "")
        if direct.get("dir_info", {}).get("editable") and url.startswith("file://"):
            sources.add(urllib.parse.unquote(url.removeprefix("file://")))
    return frozenset(p for p in sources if Path(p).is_dir())


def _holdout(settings: Settings) -> list[Path]:
    return [settings.workspace.repo_root / h for h in settings.score.holdout]
