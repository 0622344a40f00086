"""What an agent and a scoring run may see and write, as bubblewrap policies (see ``sandbox``).

An agent writes its own worktree and that worktree's admin folder in the
shared git directory (its index and HEAD); it reads its prompt.  It does not
see the experiment's other folders (other trials' worktrees, ``results/``),
other trials' admin folders, or the hold-out tests in the main checkout; the
rest of the machine, the main checkout and the shared git directory
included, is read-only.  A scoring run writes only its own folder and sees
none of the experiment's folders or the shared git directory.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .sandbox import Sandbox, wanted
from .sections import SandboxSpec
from .settings import Settings
from .spec import VariantSpec


def sandbox_spec(settings: Settings, variant: VariantSpec | None) -> SandboxSpec:
    return (variant.sandbox if variant is not None else None) or settings.spec.sandbox


def for_agent(
    settings: Settings, variant: VariantSpec, worktree: Path, admin: Path, prompt_file: Path
) -> Sandbox | None:
    spec = sandbox_spec(settings, variant)
    if not wanted(spec.mode):
        return None
    common = admin.parent.parent
    return Sandbox(
        writable=(worktree, admin),
        hidden=(settings.workspace.explore_dir, common / "worktrees", *_holdout(settings)),
        # Explicitly: the repository and the interpreter may live where /tmp is made private.
        readonly=(common, prompt_file, *_interpreter()),
        extra_writable=tuple(Path(p) for p in spec.writable),
        network=True,
    )


def for_scoring(settings: Settings, folder: Path, git_dir: Path) -> Sandbox | None:
    spec = settings.spec.sandbox
    if not wanted(spec.mode):
        return None
    return Sandbox(
        writable=(folder,),
        hidden=(settings.workspace.explore_dir, git_dir, *_holdout(settings)),
        readonly=_interpreter(),
        network=spec.scoring_network,
    )


def _interpreter() -> tuple[Path, ...]:
    """The Python environment that runs ``{python}``: it must stay visible inside the sandbox."""
    return tuple(Path(p) for p in {sys.prefix, sys.base_prefix})


def _holdout(settings: Settings) -> list[Path]:
    return [settings.workspace.repo_root / h for h in settings.spec.score.holdout]
