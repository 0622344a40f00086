"""Hostile agents and scored tests against the sandbox's walls and the resource limits (issue #17, points 3 and 4).

The secrets and the host's services live where the old sandbox showed them
(``--ro-bind / /`` with a private ``/tmp``): under ``/var/tmp``, as a real
home folder or ``$TMPDIR`` outside ``/tmp`` would be.  Every attacker makes
the honest change of ``tests.test_attacks`` too, so a trial that is not
stopped scores as usual; after each run the user's repository is as it was
and no process the agents started is left.

What stops what: the home folder's keys, another trial's scoring checkout
under ``$TMPDIR`` and the host's path sockets are not on the allow-list
(``$HOME`` and ``$TMPDIR`` are private); the main checkout's ``.env`` and
``.pytest_cache`` are left off although pytest puts the checkout on the
import path; ``/etc/shadow`` is hidden; abstract sockets are refused by the
seccomp filter to an agent (it shares the host's network) and belong to
another network namespace in a scoring run.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.explore_testing import BAD_AGENT, Project
from tests.test_attacks import repository_state, spec_for, victim  # noqa: F401

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")

#: What an attacker tries, as a module: ``attack()`` maps each target to ``read ...``, ``connected`` or ``refused ...``.
STEAL = """\
import os, socket
from pathlib import Path

TARGETS = {targets!r}
SOCKETS = {sockets!r}


def attack():
    found = {{}}
    for name, path in TARGETS.items():
        try:
            found[name] = "read " + Path(path).read_text()
        except OSError as exc:
            found[name] = "refused " + type(exc).__name__
    for name, address in SOCKETS.items():
        try:
            with socket.socket(socket.AF_UNIX) as client:
                client.settimeout(10)
                client.connect(address)
            found[name] = "connected"
        except OSError as exc:
            found[name] = "refused " + type(exc).__name__
    return found
"""

#: The scored test an attacker adds: one case per target, passed when the target is out of reach.
STEAL_TEST = """
import pytest

@pytest.mark.parametrize("name", sorted([*TARGETS, *SOCKETS]))
def test_unreachable(name):
    assert attack()[name].startswith("refused")
"""

#: The agent: attack, keep what it found in loot.json, add the scored test, write ~/.agentstate/written.
STEAL_AGENT = """
import json
Path("loot.json").write_text(json.dumps(attack()))
Path("tests/test_steal.py").write_text(os.environ["PPE_STEAL_TEST"])
Path("~/.agentstate/written").expanduser().write_text("kept")
"""


class Listener:
    """Unix sockets of a host service: a path socket and an abstract one, counting who connected."""

    def __init__(self, folder: Path) -> None:
        self.path = str(folder / "service.sock")
        self.abstract = f"\0ppe-{uuid.uuid4().hex}"
        self.sockets = []
        for address in (self.path, self.abstract):
            server = socket.socket(socket.AF_UNIX)
            server.bind(address)
            server.listen(16)
            server.setblocking(False)
            self.sockets.append(server)

    def connections(self) -> int:
        """How many clients connected (a unix connect completes in the backlog, accepted or not)."""
        count = 0
        for server in self.sockets:
            while True:
                try:
                    server.accept()[0].close()
                except BlockingIOError:
                    break
                count += 1
        return count

    def close(self) -> None:
        for server in self.sockets:
            server.close()


@pytest.fixture
def outside(monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder outside ``/tmp`` holding the run's home folder and ``$TMPDIR``, as on a user's machine."""
    base = Path(tempfile.mkdtemp(prefix="ppe-", dir="/var/tmp"))
    for name in ("home", "tmp"):
        (base / name).mkdir()
    monkeypatch.setenv("HOME", str(base / "home"))
    monkeypatch.setenv("TMPDIR", str(base / "tmp"))
    try:
        yield base
    finally:
        shutil.rmtree(base, ignore_errors=True)


def marked_processes(marker: str) -> list[int]:
    """Processes whose environment holds ``marker``: what the run started and left behind."""
    found = []
    for entry in Path("/proc").iterdir():
        try:
            if entry.name.isdigit() and marker.encode() in (entry / "environ").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


@pytest.fixture
def marker(monkeypatch: pytest.MonkeyPatch) -> str:
    """A variable in the run's environment, to find the processes it leaves."""
    value = f"PPE_RUN_MARK={uuid.uuid4().hex}"
    monkeypatch.setenv("PPE_RUN_MARK", value.split("=", 1)[1])
    return value


def secrets(victim: Project, outside: Path) -> dict[str, Path]:  # noqa: F811
    """Plant what no agent may read: keys in the home folder, the checkout's .env, its pytest cache, another
    trial's scoring checkout with its hold-out."""
    home = outside / "home"
    other = outside / "tmp" / "explore-calc-other-x1y2z3" / "checkout" / "holdout" / "test_hidden.py"
    files = {
        "ssh": home / ".ssh" / "id_rsa",
        "aws": home / ".aws" / "credentials",
        "dotenv": victim.path / ".env",
        "pytest_cache": victim.path / ".pytest_cache" / "v" / "cache" / "nodeids",
        "other_checkout": other,
    }
    for name, path in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(f"SECRET-{name}\n")
    with (victim.path / ".git" / "info" / "exclude").open("a") as exclude:
        exclude.write(".env\n.pytest_cache/\n")
    return files


@needs_bwrap
def test_no_secret_or_host_socket_is_reachable_from_an_agent_or_a_scored_test(
    victim: Project,  # noqa: F811
    outside: Path,
    marker: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    targets = {name: str(path) for name, path in secrets(victim, outside).items()}
    targets["shadow"] = "/etc/shadow"  # the system's password hashes (readable by root, even without capabilities)
    targets["agentcli"] = str(outside / "home" / ".agentcli" / "config")  # listed in sandbox.home: readable
    Path(targets["agentcli"]).parent.mkdir()
    Path(targets["agentcli"]).write_text("cli settings\n")
    # Beside the CLI's install folder in the home folder: not shown with it.
    targets["keyring"] = str(outside / "home" / ".local" / "share" / "keyrings" / "login.keyring")
    Path(targets["keyring"]).parent.mkdir(parents=True)
    Path(targets["keyring"]).write_text("SECRET-keyring\n")
    listener = Listener(outside)
    module = STEAL.format(targets=targets, sockets={"path_socket": listener.path, "abstract_socket": listener.abstract})
    monkeypatch.setenv("PPE_STEAL_TEST", module + STEAL_TEST)
    monkeypatch.setenv("PPE_STEAL_AGENT", module + STEAL_AGENT)
    # An agent CLI installed in the home folder, found on PATH: it must still run.
    cli = outside / "home" / ".local" / "bin" / "ppe-agent-cli"
    cli.parent.mkdir(parents=True)
    cli.write_text("#!/bin/sh\necho 'the CLI ran' > cli.txt\n")
    cli.chmod(0o755)
    monkeypatch.setenv("PATH", f"{cli.parent}{os.pathsep}{os.environ['PATH']}")
    spec = spec_for(victim, "bwrap", [])
    spec["sandbox"] = {"mode": "bwrap", "home": ["~/.agentcli", {"path": "~/.agentstate", "writable": True}]}
    spec["variants"]["thief"] = {"agent": {"run": f'ppe-agent-cli && {{python}} -c "$PPE_STEAL_AGENT" && {BAD_AGENT}'}}
    variants = victim.variants(spec)
    before = repository_state(victim)
    try:
        result = victim.explore("--variants", variants)
        connections = listener.connections()
    finally:
        listener.close()

    trial = victim.trials()["thief"]
    assert trial["status"] == "done", result.stdout.str()
    loot = json.loads(victim.git("show", "explore/calc/thief:loot.json"))
    assert loot.pop("agentcli") == "read cli settings\n"  # what sandbox.home lists is there
    assert {name: found.split()[0] for name, found in loot.items()} == dict.fromkeys(loot, "refused"), loot
    assert set(loot) == {
        *("ssh", "aws", "dotenv", "pytest_cache", "other_checkout", "shadow", "keyring"),
        *("path_socket", "abstract_socket"),
    }
    assert victim.git("show", "explore/calc/thief:cli.txt") == "the CLI ran\n"
    assert (outside / "home" / ".agentstate" / "written").read_text() == "kept"  # a writable home path
    cases = trial["tests"]["cases"]
    stolen = {
        case.split("[")[1].rstrip("]"): outcome["outcome"]
        for case, outcome in cases.items()
        if "test_steal.py" in case and "agentcli" not in case
    }
    assert stolen == dict.fromkeys(loot, "passed"), stolen  # the scored test reached nothing either
    assert connections == 0
    assert trial["score"] == pytest.approx(0.25)
    assert repository_state(victim) == before
    assert marked_processes(marker) == []


#: name -> (its limits, its agent's command after the honest change, the reason the trial must end with).
LIMIT_ATTACKS: dict[str, tuple[dict[str, Any], str, str]] = {
    "memory": (
        {"memory": "100M"},
        "{python} -c \"import time; hog = b'x' * (200 << 20); time.sleep(60)\"",
        "limit: memory 100M",
    ),
    "output": ({"output": "1M"}, "timeout 3 yes", "limit: output 1M"),
    "file_size": ({"file_size": "5M"}, "head -c 20M /dev/zero > big.bin", "limit: file_size 5M"),
    "processes": (
        {"processes": 20},
        "for i in $(seq 60); do sleep 60 & done; wait",
        "limit: processes 20",
    ),
    "disk": (
        {"disk": "10M"},
        "for i in $(seq 20); do head -c 1M /dev/urandom > f$i.bin; done; sleep 60",
        "limit: disk 10M",
    ),
}

SANDBOXES = [
    "none",
    pytest.param("bwrap", marks=needs_bwrap),
]


@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_an_agent_that_hits_a_limit_fails_alone_with_the_limit_named(
    victim: Project,  # noqa: F811
    sandbox: str,
    marker: str,
) -> None:
    spec = spec_for(victim, sandbox, [])
    spec["timeout"] = "30s"  # a limit not enforced would end in a timeout instead
    for name, (limits, command, _) in LIMIT_ATTACKS.items():
        spec["variants"][name] = {"agent": {"run": f"{BAD_AGENT} && {command}"}, "limits": limits}
    # A scored test that hogs memory: the suite is stopped and not judged.
    hog_test = "def test_hog():\\n    import time\\n    hog = b'x' * (300 << 20)\\n    time.sleep(60)\\n"
    spec["variants"]["scoring_memory"] = {
        "agent": {"run": f'{BAD_AGENT} && printf "{hog_test}" > tests/test_hog.py'},
        "limits": {"memory": "150M"},
    }
    spec["score"]["timeout"] = "30s"
    variants = victim.variants(spec)
    before = repository_state(victim)

    result = victim.explore("--variants", variants, "-n", "2")

    trials = victim.trials()
    assert trials["a_honest"]["status"] == "done", result.stdout.str()  # the others carry on
    assert trials["a_honest"]["score"] == pytest.approx(0.25)
    for name, (_, _, reason) in LIMIT_ATTACKS.items():
        assert (trials[name]["status"], trials[name]["reason"]) == ("agent_failed", reason), name
    result.stdout.fnmatch_lines(["agent_failed: limit: memory 100M"])
    log = victim.experiment_dir() / "results" / "output_agent.log"
    assert log.stat().st_size < (1 << 20) + 4096
    assert log.read_text().endswith("[explore: output limit 1M reached; command stopped]\n")
    scored = trials["scoring_memory"]
    assert scored["status"] == "done" and scored["score"] == 0, scored
    assert scored["reason"].startswith("scored 0: the test suite hit a resource limit: memory 150M"), scored
    assert repository_state(victim) == before
    assert marked_processes(marker) == []


# Memory held behind a thread-group leader that ended alone.
#
# /proc/<pid>/statm reads the memory of the thread-group leader's task.  When the leader thread alone ends
# (SYS_exit, not exit_group) the process lives on in its other threads, but the leader has no mm any more:
# statm reads "0 0 0 0 0 0 0" however much the other threads hold.  The memory limit sums statm over the tree.

HIDDEN_HOG = textwrap.dedent(
    """
    import ctypes, os, sys, threading, time

    def hog():
        while sys.argv[1] == "hide" and not open("/proc/self/stat").read().split(") ")[1].startswith("Z"):
            time.sleep(0.01)  # the leader thread is gone first
        held = bytearray(400 << 20)
        for i in range(0, len(held), 4096):
            held[i] = 1
        time.sleep(4)  # some 16 polls of the memory limit
        with open("calc.py", "w") as f:
            f.write("def add(a, b):\\n    return a + b\\n")
        os._exit(0)

    threading.Thread(target=hog).start()
    if sys.argv[1] == "hide":
        ctypes.CDLL(None).syscall(60, 0)  # SYS_exit (x86_64): the main thread alone ends
    time.sleep(60)
    """
)


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="SYS_exit's number is x86_64's")
@pytest.mark.parametrize("sandbox", SANDBOXES)
def test_memory_held_behind_an_exited_leader_thread_still_hits_the_memory_limit(
    calc_project: Project, sandbox: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PPE_HIDDEN_HOG", HIDDEN_HOG)
    spec = calc_project.calc_spec(
        plain={"agent": {"run": '{python} -c "$PPE_HIDDEN_HOG" plain'}, "limits": {"memory": "100M"}},
        hidden={"agent": {"run": '{python} -c "$PPE_HIDDEN_HOG" hide'}, "limits": {"memory": "100M"}},
    )
    spec["sandbox"] = sandbox
    spec["timeout"] = "60s"
    result = calc_project.explore("--variants", calc_project.variants(spec))

    trials = calc_project.trials()
    out = result.stdout.str()
    # The control: the same 400M held by the main thread is stopped.
    assert (trials["plain"]["status"], trials["plain"]["reason"]) == ("agent_failed", "limit: memory 100M"), out
    assert "changed after the trial ended" not in out  # no false alarm: the other trial's commands were its own
    # The attack: the same memory held while the leader thread is gone.
    hidden = trials["hidden"]
    assert (hidden["status"], hidden.get("reason")) == ("agent_failed", "limit: memory 100M"), (
        hidden["status"],
        hidden.get("reason"),
        hidden.get("score"),
        out,
    )
