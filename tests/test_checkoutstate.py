"""``checkoutstate``: the main checkout kept in a private store when the run starts, and put back."""

from __future__ import annotations

import os
import subprocess
import zlib
from pathlib import Path

import pytest

from pytest_parallel_explore.repo import blobs, checkoutstate, gitops, treefiles
from pytest_parallel_explore.repo.store import open_store


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    (root / "tests").mkdir(parents=True)
    (root / "tests" / "test_a.py").write_text("def test_a():\n    assert True\n")
    (root / ".gitignore").write_text("*.bin\n.data/\n")
    identity = ["-c", "user.name=t", "-c", "user.email=t@l"]
    subprocess.run(["git", "init", "-q"], cwd=root, check=True)
    subprocess.run(["git", "add", "-A"], cwd=root, check=True)
    subprocess.run(["git", *identity, "commit", "-qm", "base"], cwd=root, check=True)
    return root


def capture(root: Path) -> checkoutstate.CheckoutState:
    return checkoutstate.capture(gitops.sealed(root), root, open_store(root / ".data" / "store.git"), [root / ".data"])


def test_an_ignored_file_beyond_the_cap_is_watched_not_kept(checkout: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (checkout / "small.bin").write_bytes(b"1234")
    (checkout / "large.bin").write_bytes(b"0123456789ab")
    monkeypatch.setattr(checkoutstate, "FILE_CAP", 10)
    state = capture(checkout)
    assert "small.bin" in state.kept.entries and "large.bin" in state.watched
    (checkout / "small.bin").write_bytes(b"forged")
    (checkout / "large.bin").write_bytes(b"forged, and long")

    changes = checkoutstate.restore(state, checkout.parent / "aside")

    assert (checkout / "small.bin").read_bytes() == b"1234"
    assert (checkout / "large.bin").read_bytes() == b"forged, and long"
    assert changes == ["large.bin changed (not restored: an ignored file beyond the size kept)", "small.bin changed"]


def test_a_folder_replaced_by_a_link_is_put_back_without_writing_through_it(checkout: Path, tmp_path: Path) -> None:
    state = capture(checkout)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    subprocess.run(["rm", "-r", str(checkout / "tests")], check=True)
    (checkout / "tests").symlink_to(elsewhere)

    changes = checkoutstate.restore(state, tmp_path / "aside")

    assert list(elsewhere.iterdir()) == []
    assert not (checkout / "tests").is_symlink()
    assert (checkout / "tests" / "test_a.py").read_text() == "def test_a():\n    assert True\n"
    assert changes == ["tests created", "tests/test_a.py removed"]
    assert (tmp_path / "aside" / "tests").is_symlink()


def test_a_file_touched_but_not_changed_is_neither_reported_nor_moved(checkout: Path, tmp_path: Path) -> None:
    state = capture(checkout)
    os.utime(checkout / "tests" / "test_a.py", ns=(1, 1))  # its stat changed: it is read again, and is the same

    assert checkoutstate.restore(state, tmp_path / "aside") == []
    assert not (tmp_path / "aside").exists()


def test_a_blob_that_does_not_hash_to_its_id_is_never_written(checkout: Path, tmp_path: Path) -> None:
    """``treefiles.materialize`` hashes each blob again: a loose object written over gives a named fault."""
    blob = subprocess.run(
        ["git", "rev-parse", "HEAD:tests/test_a.py"], cwd=checkout, check=True, capture_output=True, text=True
    ).stdout.strip()
    path = checkout / ".git" / "objects" / blob[:2] / blob[2:]
    body = b"def test_a():\n    pass\n"
    path.chmod(0o644)
    path.write_bytes(zlib.compress(b"blob %d\0" % len(body) + body))

    with pytest.raises(blobs.ForgedObject, match=r"tests/test_a\.py: the object .* \(forged or corrupt\)"):
        treefiles.materialize(gitops.sealed(checkout), "HEAD", tmp_path / "scored")
    assert not (tmp_path / "scored" / "tests" / "test_a.py").exists()


def test_a_fifo_is_neither_kept_nor_moved(checkout: Path, tmp_path: Path) -> None:
    """Someone's channel (a FIFO there before the run, or made during it) stays where it is."""
    os.mkfifo(checkout / "before.fifo")
    state = capture(checkout)
    os.mkfifo(checkout / "during.fifo")

    changes = checkoutstate.restore(state, tmp_path / "aside")

    assert (checkout / "before.fifo").is_fifo() and (checkout / "during.fifo").is_fifo()
    assert changes == ["during.fifo created (not moved: not a file)"]


def test_the_checkout_snapshot_follows_no_link(tmp_path: Path) -> None:
    """An untracked link in your checkout (to /dev/zero, say: an agent without a sandbox can leave one) is not read."""
    from pytest_parallel_explore.repo.checkoutstate import checkout_snapshot
    from tests.test_trees import git

    git(tmp_path, "init", "-q")
    (tmp_path / "a.txt").write_text("a\n")
    git(tmp_path, "add", "a.txt")
    git(tmp_path, "commit", "-q", "-m", "base")
    os.symlink("a.txt", tmp_path / "link")
    (tmp_path / "a.txt").write_text("changed\n")
    state = checkout_snapshot(tmp_path)
    assert state["link"] == "?? link a.txt"
    assert state["a.txt"].startswith(" M ") and len(state["a.txt"]) == 3 + 40
