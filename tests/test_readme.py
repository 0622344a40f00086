"""The README is read as a user would: every ``yaml`` block it shows is a variants file the plugin accepts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pytest_parallel_explore.agents.registry import BUILTIN_BACKENDS
from pytest_parallel_explore.config.variants import SpecError, load_spec

README = Path(__file__).resolve().parent.parent / "README.md"
YAML_BLOCKS = re.findall(r"^```yaml\n(.*?)^```", README.read_text(encoding="utf-8"), re.DOTALL | re.MULTILINE)


def test_the_readme_shows_variants_files() -> None:
    assert YAML_BLOCKS, "no yaml block found in README.md"


@pytest.mark.parametrize("block", YAML_BLOCKS, ids=[f"block{i}" for i in range(len(YAML_BLOCKS))])
def test_each_yaml_block_of_the_readme_is_a_valid_variants_file(block: str, tmp_path: Path) -> None:
    (tmp_path / "variants.yaml").write_text(block, encoding="utf-8")
    try:
        spec = load_spec("variants.yaml", invocation_dir=tmp_path, backends=BUILTIN_BACKENDS)
    except SpecError as exc:
        pytest.fail(f"README.md's yaml block is refused:\n{block}\n{exc}")
    assert spec.variants


def test_ci_runs_the_readme_s_two_commands() -> None:
    # The README's first console block sets up and runs; CI must run the very same pytest commands.
    console = re.search(r"^```console\n(.*?)^```", README.read_text(encoding="utf-8"), re.DOTALL | re.MULTILINE)
    assert console is not None, "no console block in README.md"
    commands = [line.rpartition("&& ")[2] for line in console.group(1).splitlines() if line.strip()]
    assert len(commands) == 2 and all(c.startswith("pytest ") for c in commands), commands
    ci = (README.parent / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert [c for c in commands if c not in ci] == []
