"""Hostile files: what an agent leaves in its worktree is parsed as hostile input, never trusted.

Each attacker makes the honest change of ``tests.test_attacks`` (``add``
returns ``a * b``: an honest score of 1/4) and then leaves something in its
worktree that the plugin must read without harm: a file name holding a
newline and an absolute path (git's line-based ``--stdin-paths`` read the
path as a file of its own), a name that is not UTF-8, symlinks to secrets
outside, a folder replaced by a symlink, too many files, too big a file, a
patch too big to show.  No secret may reach the user's object store, the
repository must come out as it went in, and each trial ends as it should:
scored honestly and flagged, or failed with the limit it passed while the
others go on.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.explore_testing import BAD_AGENT, Project
from tests.test_attacks import HONEST_SCORE, SANDBOXES, repository_state, spec_for, victim  # noqa: F401

SECRET = "outside-secret-7d3e5a"

#: Python run by the agent: a file whose name is a line, a newline, and an absolute path to read; and the line.
#: (A path into the hold-out folder would be ignored, whatever the name: its folder is named ``holdout``.)
NEWLINE_NAMES = (
    'python3 -c "import os\n'
    "for name in ('x\\n' + os.environ['EXPLORE_SECRET'], 'x'):\n"
    "    os.makedirs(os.path.dirname(name) or '.', exist_ok=True)\n"
    "    open(name, 'w').write('agent')\n"
    '"'
)

#: name -> (shell commands run after the honest change, the variant's own ``limits`` or None).
ATTACKS: dict[str, tuple[str, dict[str, Any] | None]] = {
    "newline_names": (NEWLINE_NAMES, None),
    "non_utf8_name": ("python3 -c \"open(b'latin-\\xe9.py', 'wb').write(b'x = 1\\n')\"", None),
    "symlink_to_secret": ('ln -s "$EXPLORE_SECRET" leak.txt && ln -sf "$EXPLORE_SECRET" data/config.txt', None),
    "symlinked_folder": ('rm -r data && ln -s "$EXPLORE_OUTSIDE" data', None),
    "too_many_files": ('for i in $(seq 30); do echo "MANY-FILES-MARKER $i" > many_$i.txt; done', {"files": 20}),
    # No process of the agent's can write past limits.file_size (RLIMIT_FSIZE): it renames a file the plugin copied in.
    "too_big_file": ("mv big.bin big.txt", {"file_size": "1K"}),
    # Only without the sandbox can an agent reach the results folder; there, its link must not redirect a write.
    "patch_symlink": ('ln -s "$EXPLORE_PRECIOUS" "$EXPLORE_RESULTS/patch_symlink.patch" || true', None),
    "huge_patch": ("python3 -c \"open('huge.txt', 'w').write('HUGE-PATCH-LINE\\n' * 100000)\"", None),
}


@pytest.fixture
def outside(victim: Project, tmp_path: Path) -> Path:  # noqa: F811
    """Secrets outside the repository, and a committed ``data/config.txt`` in it (the user's work stays as it is)."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "secret.txt").write_text(SECRET)
    (folder / "config.txt").write_text(SECRET)
    (folder / "precious.txt").write_text("the user's precious file\n")
    victim.write({"data/config.txt": "config = 1\n", "big.bin": "BIG-FILE-MARKER " * 500})
    victim.git("add", "data/config.txt")
    victim.git("commit", "-q", "-m", "data", "--", "data/config.txt")
    return folder


def every_object(project: Project) -> str:
    """The content of every object in the user's store."""
    listing = subprocess.run(
        ["git", "cat-file", "--batch-all-objects", "--batch"], cwd=project.path, check=True, capture_output=True
    )
    return listing.stdout.decode(errors="replace")


def spec_with_attacks(project: Project, sandbox: str) -> dict[str, Any]:
    spec = spec_for(project, sandbox, [])
    spec["worktree"] = {"copy": ["big.bin"]}  # the user's own untracked file, copied into every trial's folder
    for name, (commands, limits) in ATTACKS.items():
        spec["variants"][name] = {"description": name, "agent": {"run": f"{BAD_AGENT} && {commands}"}}
        if limits is not None:
            spec["variants"][name]["limits"] = limits
    return spec


@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_no_file_an_agent_leaves_harms_the_repository_or_the_run(
    victim: Project,  # noqa: F811
    outside: Path,
    sandbox: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("EXPLORE_SECRET", str(outside / "secret.txt"))
    monkeypatch.setenv("EXPLORE_OUTSIDE", str(outside))
    monkeypatch.setenv("EXPLORE_ROOT", str(victim.path))
    monkeypatch.setenv("EXPLORE_PRECIOUS", str(outside / "precious.txt"))
    monkeypatch.setenv("EXPLORE_RESULTS", str(victim.experiment_dir() / "results"))
    base = victim.git("rev-parse", "HEAD").strip()
    variants = victim.variants(spec_with_attacks(victim, sandbox))
    before = repository_state(victim)

    result = victim.explore("--variants", variants)

    trials = victim.trials()
    output = result.stdout.str()
    honest = ("a_honest", "newline_names", "non_utf8_name", "symlink_to_secret", "symlinked_folder", "patch_symlink")
    for name in (*honest, "huge_patch"):
        trial = trials[name]
        assert (trial["status"], trial["score"]) == ("done", pytest.approx(HONEST_SCORE)), (name, trial, output)
        assert "return a * b" in victim.git("show", f"explore/calc/{name}:calc.py")
    objects = every_object(victim)
    # Names that git would read as lines are left out, and said; nothing they point at was read.
    assert SECRET not in objects
    flags = " ".join(trials["newline_names"]["flags"])
    assert f"'x\\n{outside / 'secret.txt'}'" in flags
    assert victim.git("ls-tree", "--name-only", "explore/calc/newline_names").split() == [
        ".gitignore",
        "calc.py",
        "data",
        "tests",
        "x",
    ]
    assert "b'latin-\\xe9.py'" in " ".join(trials["non_utf8_name"]["flags"])
    # Symlinks are recorded as symlinks, a symlinked folder too; nothing is read through them.
    symlinks = victim.git("ls-tree", "-r", "explore/calc/symlink_to_secret", "leak.txt", "data/config.txt")
    assert [line.split()[0] for line in symlinks.splitlines()] == ["120000", "120000"]
    assert victim.git("ls-tree", "-r", "explore/calc/symlinked_folder", "data").split()[0] == "120000"
    # Past a limit: the trial fails with the limit's reason, its branch holds nothing, its files are in no object.
    assert trials["too_many_files"]["status"] == "agent_failed"
    assert trials["too_many_files"]["reason"] == "limit: 21 files added or changed (limits.files: 20)"
    assert trials["too_big_file"]["status"] == "agent_failed"
    assert trials["too_big_file"]["reason"] == "limit: 'big.txt' has 8000 bytes (limits.file_size: 1024)"
    for name in ("too_many_files", "too_big_file"):
        assert victim.git("rev-parse", f"explore/calc/{name}").strip() == base
    assert "MANY-FILES-MARKER" not in objects and "BIG-FILE-MARKER" not in objects
    # The plugin's own files replace what the agent planted in their place; nothing is written through a link.
    assert (outside / "precious.txt").read_text() == "the user's precious file\n"
    patch = victim.experiment_dir() / "results" / "patch_symlink.patch"
    assert not patch.is_symlink() and "return a * b" in patch.read_text()
    # A patch too big to show is cut in the page, and says where all of it is.
    page = (victim.experiment_dir() / "results" / "report.html").read_text()
    assert "the first 1,048,576 are shown, all of it is in huge_patch.patch" in page
    assert page.count("HUGE-PATCH-LINE") < 2000
    after = repository_state(victim)
    changed = {k: (before[k], v) for k, v in after.items() if v != before[k]}
    assert changed == {}, json.dumps(changed, indent=1)[-1500:]
