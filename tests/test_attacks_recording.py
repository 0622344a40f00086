"""Hostile agents against what is recorded from their files and what a kept scoring checkout hands on.

Each test asserts the property that should hold; a failing test is an attack that worked.

* Recording: the snapshot of a new worktree (read from the index its checkout wrote) lets the plugin
  skip files whose stat is unchanged.  Agents rewrite a tracked file with the same size and put its
  mtime back (in place, truncated, through a hardlink, renamed away and back, through ``mmap``), or
  swap two folders so paths point at other inodes; the branch must hold what the files hold.
* Attributes: ``.gitattributes`` (``ident``, ``eol``, ``working-tree-encoding``) and a filter in the
  trial's ``.git/info/attributes`` and config change nothing of what is recorded, and run nothing.
* Scoring: a suite leaves edits with their stat put back, a replaced tests folder, or a process, for
  the next trial scored in the same kept checkout.

Written by the attack review of the index snapshot; its two attacks that worked are tests elsewhere:
code under test rewriting a test before pytest collects it (``test_attacks_scoring.py``) and names git
will not index dropped without a word (``test_trees.py``).
"""

from __future__ import annotations

import shlex
import subprocess
from pathlib import Path

import pytest

from tests.explore_testing import BAD_AGENT, Project
from tests.test_attacks import HONEST_SCORE, spec_for, victim  # noqa: F401
from tests.test_attacks_scoring import FORGING_PLUGIN, write_files

#: The base's calc.py (45 bytes), and the honest change padded to the same size.
BASE_CALC = b"def add(a, b):\n    raise NotImplementedError\n"
SAME_SIZE = b"def add(a, b):\n    return a * b\n" + b"#" * 12 + b"\n"
assert len(SAME_SIZE) == len(BASE_CALC)


def py(code: str) -> str:
    return f"python3 -c {shlex.quote(code)}"


#: Rewrites ``path`` with SAME_SIZE through ``how``, then puts its atime and mtime back.
RESTORE = "import os\nst = os.stat('calc.py')\n{how}\nos.utime('calc.py', ns=(st.st_atime_ns, st.st_mtime_ns))\n"
WRITES = {
    "in_place": "f = open('calc.py', 'r+b'); f.write(NEW); f.close()",
    "truncated": "f = open('calc.py', 'wb'); f.write(NEW); f.close()",
    "hardlink": "os.link('calc.py', '.h'); f = open('.h', 'r+b'); f.write(NEW); f.close(); os.unlink('.h')",
    "renamed_back": (
        "os.rename('calc.py', '.x'); f = open('.x', 'r+b'); f.write(NEW); f.close(); os.rename('.x', 'calc.py')"
    ),
    "mmap": (
        "import mmap\n"
        "f = open('calc.py', 'r+b'); m = mmap.mmap(f.fileno(), 0); m[:] = NEW; m.flush(); m.close(); f.close()"
    ),
}


@pytest.fixture
def two_folders(victim: Project) -> Project:  # noqa: F811
    """The victim with two folders whose files have the same names and sizes, different content."""
    victim.write({"pa/impl.py": "A = 1\n", "pb/impl.py": "B = 2\n"})
    victim.git("add", "pa/impl.py", "pb/impl.py")
    victim.git("commit", "-q", "-m", "two folders", "--", "pa/impl.py", "pb/impl.py")
    return victim


def test_a_rewrite_with_its_stat_put_back_is_recorded(two_folders: Project) -> None:
    project = two_folders
    spec = spec_for(project, "none", [])  # recording reads the files the same way whatever ran the agent
    for name, how in WRITES.items():
        code = f"NEW = {SAME_SIZE!r}\n" + RESTORE.format(how=how)
        spec["variants"][f"stat_{name}"] = {"agent": {"run": py(code)}}
    spec["variants"]["folder_swap"] = {"agent": {"run": f"{BAD_AGENT} && mv pa .t && mv pb pa && mv .t pb"}}
    result = project.explore("--variants", project.variants(spec))

    trials = project.trials()
    shown = {
        name: subprocess_show(project, f"explore/calc/{name}:calc.py") for name in trials if name.startswith("stat_")
    }
    assert shown == {f"stat_{n}": SAME_SIZE for n in WRITES}, result.stdout.str()
    assert {n: trials[f"stat_{n}"]["score"] for n in WRITES} == {n: pytest.approx(HONEST_SCORE) for n in WRITES}
    swapped = {p: project.git("show", f"explore/calc/folder_swap:{p}/impl.py") for p in ("pa", "pb")}
    assert swapped == {"pa": "B = 2\n", "pb": "A = 1\n"}


def subprocess_show(project: Project, spec: str) -> bytes:
    return subprocess.run(["git", "show", spec], cwd=project.path, capture_output=True).stdout


#: The honest change with an ident keyword, and attributes that would rewrite it if any git applied them.
ATTRIBUTED_CALC = "# $Id$\ndef add(a, b):\n    return a * b\n"
ATTRIBUTES = (
    "common=$(git rev-parse --git-common-dir)"
    " && mkdir -p $common/info"
    " && printf '* filter=evil\\n' > $common/info/attributes"
    " && git config filter.evil.clean 'touch PWNED; sed s/a/b/'"
    " && git config filter.evil.smudge 'touch PWNED; cat'"
    " && git config filter.evil.process 'touch PWNED'"
    " && git config core.fsmonitor 'touch PWNED; false'"
)


def test_attributes_and_filters_in_the_trial_change_nothing_recorded(
    victim: Project,  # noqa: F811
    tmp_path: Path,
) -> None:
    pwned = tmp_path / "pwned"
    spec = spec_for(victim, "none", [])  # the plugin's own git calls run outside any sandbox
    files = {
        "calc.py": ATTRIBUTED_CALC,
        ".gitattributes": "*.py ident text eol=crlf working-tree-encoding=UTF-16 filter=evil diff=evil\n",
    }
    spec["variants"]["attributes"] = {
        "agent": {"run": f"{write_files(files)} && {ATTRIBUTES}".replace("PWNED", str(pwned))}
    }
    result = victim.explore("--variants", victim.variants(spec))

    trial = victim.trials()["attributes"]
    assert subprocess_show(victim, "explore/calc/attributes:calc.py") == ATTRIBUTED_CALC.encode()
    assert trial["score"] == pytest.approx(HONEST_SCORE), (trial["reason"], result.stdout.str())
    assert not pwned.exists()


#: Code run by trial 1's suite in its scoring checkout, for the next trial scored there: name -> payload.
SAME_STAT_LEFTOVERS = {
    # The test file edited to the same size, its mtime put back: only its ctime moved.
    "same_size_edit": (
        "t = 'tests/test_calc.py'\n"
        "st = os.stat(t)\n"
        "data = open(t, 'rb').read().replace(b'assert add', b'pass # add')\n"
        "f = open(t, 'r+b'); f.write(data); f.close()\n"
        "os.utime(t, ns=(st.st_atime_ns, st.st_mtime_ns))"
    ),
    # The same through a hardlink made and removed again, and a mode changed and put back.
    "hardlink_edit": (
        "t = 'tests/test_calc.py'\n"
        "st = os.stat(t)\n"
        "os.link(t, 'tests/.h')\n"
        "data = open(t, 'rb').read().replace(b'assert add', b'pass # add')\n"
        "f = open('tests/.h', 'r+b'); f.write(data); f.close()\n"
        "os.unlink('tests/.h')\n"
        "os.chmod(t, 0o600); os.chmod(t, st.st_mode & 0o777)\n"
        "os.utime(t, ns=(st.st_atime_ns, st.st_mtime_ns))"
    ),
    # The folder of the tests replaced by a copy with a forging conftest, renamed to the old name.
    "folder_replaced": (
        "import shutil\n"
        "shutil.copytree('tests', 'tests.new')\n"
        f"Path('tests.new/conftest.py').write_text({FORGING_PLUGIN!r})\n"
        "shutil.rmtree('tests')\n"
        "os.rename('tests.new', 'tests')"
    ),
    # A process that outlives the suite (new session, double fork) and plants a forging conftest later.
    "late_writer": (
        "if os.fork() == 0:\n"
        "    os.setsid()\n"
        "    if os.fork() == 0:\n"
        "        import time\n"
        "        here = os.getcwd()\n"
        "        end = time.time() + 40\n"
        "        while time.time() < end:\n"
        "            try:\n"
        f"                Path(here, 'tests', 'conftest.py').write_text({FORGING_PLUGIN!r})\n"
        "            except OSError:\n"
        "                pass\n"
        "            time.sleep(0.05)\n"
        "    os._exit(0)"
    ),
}


def test_a_suites_edits_with_their_stat_put_back_do_not_reach_the_next_trial(
    victim: Project,  # noqa: F811
    tmp_path: Path,
) -> None:
    marks = tmp_path / "marks"  # each payload leaves a mark once it ran in a scoring checkout (no sandbox)
    marks.mkdir()
    spec = spec_for(victim, "none", [])
    spec["variants"] = {}
    for name, payload in SAME_STAT_LEFTOVERS.items():
        calc = "import os\nfrom pathlib import Path\nif 'tests' in os.listdir('.'):\n"
        calc += "".join(f"    {line}\n" for line in payload.splitlines())
        calc += f"    Path({str(marks / name)!r}).touch()\n"
        calc += "def add(a, b):\n    return a * b\n"
        spec["variants"][f"{name}_1"] = {"agent": {"run": write_files({"calc.py": calc})}}
        spec["variants"][f"{name}_2"] = {"agent": {"run": BAD_AGENT}}
    result = victim.explore("--variants", victim.variants(spec), "--explore-no-cache")

    trials = victim.trials()
    seconds = {n: trials[f"{n}_2"]["score"] for n in SAME_STAT_LEFTOVERS}
    assert seconds == {n: pytest.approx(HONEST_SCORE) for n in SAME_STAT_LEFTOVERS}, (
        seconds,
        {n: trials[f"{n}_2"]["tests"]["cases"] for n in SAME_STAT_LEFTOVERS},
        result.stdout.str()[-3000:],
    )
    assert sorted(p.name for p in marks.iterdir()) == sorted(SAME_STAT_LEFTOVERS)  # every attack did run
