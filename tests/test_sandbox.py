"""The bubblewrap sandbox: real bwrap, real processes, every wall tried from inside."""

from __future__ import annotations

import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from pytest_parallel_explore.isolation import limits, procs
from pytest_parallel_explore.isolation.procs import clean_env, run_owned
from pytest_parallel_explore.isolation.sandbox import Sandbox, SandboxUnavailable
from pytest_parallel_explore.model.limits import Limits
from tests.process_testing import ESCAPING_COMMAND, blocking_on, exists, release, unblock, wait_for, wait_pid

needs_bwrap = pytest.mark.skipif(shutil.which("bwrap") is None, reason="bubblewrap (bwrap) is not installed")


def sandboxed(command: str, sandbox: Sandbox, cwd: Path, env: dict[str, str] | None = None) -> procs.Finished:
    """Run a shell command in ``sandbox``, stdout and stderr captured."""
    return run_owned(
        f"{{ {command}\n}} 2>&1", cwd=cwd, env=env or clean_env(), timeout=60, capture=True, sandbox=sandbox
    )


@needs_bwrap
def test_wrap_puts_hidden_before_writable_before_readonly_parents_first(tmp_path: Path) -> None:
    (tmp_path / "hidden" / "work" / ".git").mkdir(parents=True)
    sandbox = Sandbox(
        readonly=(tmp_path / "hidden" / "work" / ".git",),
        writable=(tmp_path / "hidden" / "work", tmp_path / "missing"),
        hidden=(tmp_path / "hidden",),
        network=False,
    )
    with sandbox.prepare(["echo", "hi"], tmp_path, {}) as prepared:
        args = prepared.argv
    root = tmp_path.resolve()
    mounts = [
        args[i : i + 2]
        for i, arg in enumerate(args)
        if arg in ("--tmpfs", "--bind-try", "--ro-bind-try") and args[i + 1].startswith(str(root))
    ]
    assert mounts == [
        ["--tmpfs", str(root / "hidden")],
        ["--bind-try", str(root / "hidden" / "work")],
        ["--ro-bind-try", str(root / "hidden" / "work" / ".git")],
    ]  # the missing path is left out
    assert "--unshare-net" in args and "--seccomp" not in args  # no network: no need for the socket filter
    assert args[-5:] == ["--chdir", str(tmp_path), "--", "echo", "hi"]


@needs_bwrap
def test_only_writable_paths_can_be_written(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    outside = Path("/usr") / f"sandbox-probe-{uuid.uuid4().hex}"  # a system folder, shown read-only
    try:
        finished = sandboxed(
            f"touch {outside}; touch {tmp_path}/beside; touch {work}/inside && echo wrote inside",
            Sandbox(writable=(work,), readonly=(tmp_path,)),
            cwd=work,
        )
        assert "wrote inside" in finished.stdout
        assert (work / "inside").exists()
        assert not outside.exists()
        assert not (tmp_path / "beside").exists()
        assert finished.stdout.count("Read-only file system") == 2, finished.stdout
    finally:
        outside.unlink(missing_ok=True)


@needs_bwrap
def test_readonly_paths_inside_writable_ones_stay_readonly(tmp_path: Path) -> None:
    (tmp_path / ".git").write_text("gitdir: /somewhere\n")
    finished = sandboxed(
        "echo 'gitdir: /elsewhere' > .git; echo changed > file",
        Sandbox(writable=(tmp_path,), readonly=(tmp_path / ".git",)),
        cwd=tmp_path,
    )
    assert "Read-only file system" in finished.stdout
    assert (tmp_path / ".git").read_text() == "gitdir: /somewhere\n"
    assert (tmp_path / "file").read_text() == "changed\n"


@needs_bwrap
def test_hidden_paths_are_empty_but_writable_paths_inside_them_work(tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    (secret / "inner").mkdir(parents=True)
    (secret / "key.txt").write_text("hunter2\n")
    (tmp_path / "token.txt").write_text("t0ken\n")
    command = f"ls -A {secret}; cat {secret}/key.txt {tmp_path}/token.txt; echo out > {secret}/inner/out"

    seen = sandboxed(command, Sandbox(writable=(tmp_path,)), cwd=tmp_path)
    assert "hunter2" in seen.stdout and "t0ken" in seen.stdout  # visible without hiding

    sandbox = Sandbox(writable=(tmp_path, secret / "inner"), hidden=(secret, tmp_path / "token.txt"))
    hidden = sandboxed(command, sandbox, cwd=tmp_path)
    listing = hidden.stdout.splitlines()[0]
    assert listing == "inner"  # key.txt is gone; the writable path inside is there
    assert "hunter2" not in hidden.stdout
    assert "t0ken" not in hidden.stdout
    assert "token.txt: Permission denied" in hidden.stdout  # a hidden file is an unreadable device node
    assert (secret / "inner" / "out").read_text() == "out\n"
    assert (secret / "key.txt").read_text() == "hunter2\n"


@needs_bwrap
def test_nonexistent_paths_do_not_stop_the_sandbox(tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    sandbox = Sandbox(
        writable=(tmp_path, missing / "w"),
        hidden=(missing / "h",),
        readonly=(missing / "r",),
    )
    finished = sandboxed("echo ran", sandbox, cwd=tmp_path)
    assert finished.returncode == 0, finished.stdout
    assert finished.stdout == "ran\n"


@needs_bwrap
def test_home_and_tmp_are_private_and_empty_but_bound_paths_show(tmp_path: Path) -> None:
    home, tmpdir = tmp_path / "home", tmp_path / "tmpdir"
    (home / ".agent").mkdir(parents=True)
    (home / ".ssh").mkdir()
    (home / ".ssh" / "id_rsa").write_text("private key\n")
    tmpdir.mkdir()
    (tmpdir / "other-trial").write_text("hold-out\n")
    finished = sandboxed(
        "ls -A ~ $TMPDIR; cat ~/.ssh/id_rsa; echo token > ~/.agent/state; echo x > ~/other; echo y > $TMPDIR/mine",
        Sandbox(writable=(home / ".agent",)),
        cwd=Path("/"),
        env=clean_env({"HOME": str(home), "TMPDIR": str(tmpdir)}),
    )
    assert "private key" not in finished.stdout and "other-trial" not in finished.stdout
    assert "No such file or directory" in finished.stdout  # the key is not there at all
    assert (home / ".agent" / "state").read_text() == "token\n"  # a bound path of the home folder is the real one
    assert not (home / "other").exists() and not (tmpdir / "mine").exists(), finished.stdout
    assert sorted(p.name for p in tmpdir.iterdir()) == ["other-trial"]


#: Run in a process whose initial environment holds a secret: runs a command that looks
#: for it everywhere in /proc (with the secret removed from the command's own environment).
_PARENT = """\
import os, sys
from pathlib import Path
from pytest_parallel_explore.isolation.procs import run_owned
from pytest_parallel_explore.isolation.sandbox import Sandbox

env = {k: v for k, v in os.environ.items() if k != "PPE_TEST_SECRET"}
command = (
    f"cat /proc/*/environ /proc/{os.getpid()}/environ /proc/$PPID/environ /proc/1/environ; env"
)
sandbox = Sandbox(readonly=(Path.cwd(),)) if sys.argv[1] == "sandbox" else None
finished = run_owned(command, cwd=Path.cwd(), env=env, timeout=60, capture=True, sandbox=sandbox)
sys.stdout.write(finished.stdout)
"""


@needs_bwrap
@pytest.mark.parametrize("where", ["sandbox", "no sandbox"])
def test_the_parents_environment_is_not_readable(where: str, tmp_path: Path) -> None:
    secret = f"s3cr3t-{uuid.uuid4().hex}"
    result = subprocess.run(
        [sys.executable, "-c", _PARENT, where],
        cwd=tmp_path,
        env={**os.environ, "PPE_TEST_SECRET": secret},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert "PATH=" in result.stdout  # the command ran and could read its own environment
    if where == "sandbox":
        assert secret not in result.stdout
    else:
        assert secret in result.stdout  # what the sandbox prevents: /proc/<parent>/environ


@needs_bwrap
def test_proc_shows_only_the_sandboxs_processes() -> None:
    command = f"test -e /proc/{os.getpid()} && echo parent visible; ls /proc | grep -c '^[0-9]'"
    finished = sandboxed(command, Sandbox(), cwd=Path("/"))
    count = int(finished.stdout.split()[-1])
    assert "parent visible" not in finished.stdout
    assert 2 <= count <= 5, finished.stdout  # bwrap's init, sh, ls, grep (some may have exited)


@needs_bwrap
@pytest.mark.skipif(not Path("/proc/self/autogroup").exists(), reason="the kernel groups no processes by session")
def test_a_command_started_by_a_niced_thread_runs_niced_in_its_own_session() -> None:
    """With sched_autogroup a nice value weighs only within a session, and each command has its own."""

    def run_niced() -> procs.Finished:
        thread = threading.get_native_id()
        os.setpriority(os.PRIO_PROCESS, thread, os.getpriority(os.PRIO_PROCESS, thread) + 7)
        return sandboxed("cat /proc/self/autogroup; ps -o ni= -p $$", Sandbox(), cwd=Path("/"))

    with ThreadPoolExecutor(1) as pool:  # a thread of its own: its nice value is not lowered again
        finished = pool.submit(run_niced).result()
    expected = os.getpriority(os.PRIO_PROCESS, 0) + 7
    autogroup, nice = finished.stdout.split("\n")[:2]
    assert autogroup.endswith(f"nice {expected}"), finished.stdout
    assert int(nice) == expected


@needs_bwrap
def test_the_hosts_sysctls_cannot_be_written() -> None:
    """Each is written its own value (nothing changes if the write goes through); as root it went through."""
    rewrite = (
        "for f in kernel/core_pattern kernel/hostname kernel/sched_autogroup_enabled; do "
        "[ -e /proc/sys/$f ] || continue; v=$(cat /proc/sys/$f); "
        '(printf "%s\\n" "$v" > /proc/sys/$f) 2>/dev/null && echo "wrote $f" || echo "refused $f"; done'
    )
    finished = sandboxed(rewrite, Sandbox(), cwd=Path("/"))
    assert "refused kernel/core_pattern" in finished.stdout
    assert "wrote" not in finished.stdout, finished.stdout


#: Written by a command whose folder holds a tree that makes each walk of it costly, so rare.
BURST = "sleep 1\nhead -c 64M /dev/zero > burst && echo wrote\nsleep 2\nrm burst\necho SURVIVED\n"


@needs_bwrap
def test_a_burst_of_writes_between_two_walks_of_a_big_tree_is_caught(tmp_path: Path) -> None:
    """Walks of the folders are spaced by their cost; the filesystems' own count says when one is due now."""
    work = tmp_path / "work"
    for i in range(40):  # 40,000 empty folders: what an earlier command of the same agent could leave
        for j in range(1000):
            os.makedirs(work / f"t{i}" / str(j))
    sandbox = Sandbox(writable=(work,), limits=Limits(disk=8 << 20, memory=None))
    finished = sandboxed(BURST, sandbox, cwd=work)
    assert finished.limit == "disk 8M", finished.stdout
    assert "SURVIVED" not in finished.stdout


def test_the_first_walk_of_a_commands_folders_waits_for_the_disk_poll(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Most commands, suites included, end within a second: they cost no walk of their folders."""
    walks: list[tuple[Path, ...]] = []
    walk = limits.folder_bytes
    monkeypatch.setattr(limits, "folder_bytes", lambda folders: walks.append(tuple(folders)) or walk(folders))
    monkeypatch.setattr(limits, "DISK_POLL_SECONDS", 5.0)
    # The default 20G: what other processes write meanwhile (the rest of this suite) brings no walk early.
    sandbox = Sandbox(isolated=False, writable=(tmp_path,), limits=Limits(disk=20 << 30, memory=None))
    finished = sandboxed("sleep 0.5; echo done", sandbox, cwd=tmp_path)
    assert finished.stdout == "done\n"
    assert walks == [], "walked before the disk poll was due"


def test_the_first_walk_of_a_command_is_spaced_by_what_the_last_walk_cost(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A walk of a big tree (0.3 s of CPU here) puts the next command's first walk seconds away, not at the poll."""
    walks: list[tuple[Path, ...]] = []
    walk = limits.folder_bytes

    def costly_walk(folders: list[Path]) -> int:
        walks.append(tuple(folders))
        started = time.thread_time()
        while time.thread_time() - started < 0.3:  # the CPU a walk of a big tree takes
            pass
        return walk(folders)

    monkeypatch.setattr(limits, "folder_bytes", costly_walk)
    monkeypatch.setattr(limits, "DISK_POLL_SECONDS", 0.1)
    monkeypatch.setattr(limits, "_last_walk_cost", 0.0)  # as in a new process
    sandbox = Sandbox(isolated=False, writable=(tmp_path,), limits=Limits(disk=20 << 30, memory=None))
    assert sandboxed("sleep 0.5; echo first", sandbox, cwd=tmp_path).stdout == "first\n"
    assert len(walks) == 1, "the first command's folders were walked at the poll"
    assert sandboxed("sleep 0.5; echo second", sandbox, cwd=tmp_path).stdout == "second\n"
    assert len(walks) == 1, "the second command walked its folders at the poll, though a walk costs 0.3 s"


def test_the_polls_of_a_command_are_spaced_by_what_they_cost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """24 agents waiting on a model's API must not take their suites' CPU: a poll that costs more comes less often."""
    looks: list[int] = []
    used = limits.filesystems_used

    def costly_look(folders: list[Path]) -> int:  # the filesystems' use, looked at every poll with a disk limit
        looks.append(len(folders))
        started = time.thread_time()
        while time.thread_time() - started < 0.05:
            pass
        return used(folders)

    monkeypatch.setattr(limits, "filesystems_used", costly_look)
    monkeypatch.setattr(limits, "DISK_POLL_SECONDS", 60.0)  # no walk
    monkeypatch.setattr(limits, "WATCH_SHARE", 0.001)  # 50 ms a poll: seconds apart on up to 60 CPUs
    monkeypatch.setenv("PYTEST_XDIST_WORKER_COUNT", "1")
    sandbox = Sandbox(isolated=False, writable=(tmp_path,), limits=Limits(disk=20 << 30, memory=None, processes=None))
    assert sandboxed("sleep 1.5; echo done", sandbox, cwd=tmp_path).stdout == "done\n"
    assert len(looks) == 2, "looked every POLL_SECONDS, whatever a look cost"  # at the start, and one poll


def test_a_burst_past_the_disk_limit_before_the_first_walk_is_caught(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Until the first walk the folders count as empty: the filesystems growing by the limit brings it at once."""
    monkeypatch.setattr(limits, "DISK_POLL_SECONDS", 60.0)
    sandbox = Sandbox(isolated=False, writable=(tmp_path,), limits=Limits(disk=8 << 20, memory=None))
    finished = sandboxed(BURST.replace("sleep 1\n", ""), sandbox, cwd=tmp_path)
    assert finished.limit == "disk 8M", finished.stdout
    assert "SURVIVED" not in finished.stdout


@needs_bwrap
def test_tmp_is_private(tmp_path: Path) -> None:
    with tempfile.NamedTemporaryFile(dir="/tmp", prefix="ppe-outside-") as outside:
        inside = Path("/tmp") / f"ppe-inside-{uuid.uuid4().hex}"
        finished = sandboxed(
            f"test -e {outside.name} && echo visible || echo hidden; touch {inside} && echo made",
            Sandbox(writable=(tmp_path,)),
            cwd=tmp_path,
        )
    assert finished.stdout == "hidden\nmade\n"
    assert not inside.exists()


_CONNECT = (
    "import socket, sys; socket.create_connection(('127.0.0.1', int(sys.argv[1])), timeout=10); print('connected')"
)
_LOOPBACK = """\
import socket
server = socket.create_server(('127.0.0.1', 0))
socket.create_connection(server.getsockname(), timeout=10)
print('loopback works')
"""


@needs_bwrap
@pytest.mark.parametrize("network", [True, False])
def test_network_can_be_cut_but_loopback_stays(network: bool, tmp_path: Path) -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        (tmp_path / "connect.py").write_text(_CONNECT)
        (tmp_path / "loopback.py").write_text(_LOOPBACK)
        python = sys.executable
        finished = sandboxed(
            f"{python} connect.py {port}; {python} loopback.py",
            # The interpreter stays visible even when its virtualenv is under the private /tmp.
            Sandbox(writable=(tmp_path,), readonly=(Path(sys.prefix), Path(sys.base_prefix)), network=network),
            cwd=tmp_path,
        )
        listener.setblocking(False)
        try:
            listener.accept()[0].close()
            accepted = True
        except BlockingIOError:
            accepted = False
    assert "loopback works" in finished.stdout
    assert accepted is network
    assert ("connected" in finished.stdout.split()) is network
    if not network:
        assert "ConnectionRefusedError" in finished.stdout or "Network is unreachable" in finished.stdout


def _marked_env() -> tuple[str, dict[str, str]]:
    """A unique ``NAME=value`` and an environment holding it, to find sandboxed processes from outside."""
    value = uuid.uuid4().hex
    return f"PPE_SANDBOX_RUN={value}", clean_env({"PPE_SANDBOX_RUN": value})


def _host_pid(inner: int, marker: str) -> int | None:
    """The pid seen from here of the sandboxed process ``inner`` whose environment holds ``marker``."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            status = (entry / "status").read_text()
        except OSError:
            continue
        nspids = next(line.split()[1:] for line in status.splitlines() if line.startswith("NSpid:"))
        if marker.encode() in environ and int(nspids[-1]) == inner:
            return int(entry.name)
    return None


@needs_bwrap
@pytest.mark.parametrize("end", ["normal", "timeout"])
def test_nothing_started_in_the_sandbox_survives(end: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(procs, "KILL_GRACE_SECONDS", 0.5)
    fifo, wait = blocking_on(tmp_path)
    marker, env = _marked_env()
    command = ESCAPING_COMMAND.format(dir=tmp_path, then=wait)
    with ThreadPoolExecutor(1) as pool:
        future = pool.submit(
            run_owned,
            command,
            cwd=tmp_path,
            env=env,
            timeout=60 if end == "normal" else 5,
            sandbox=Sandbox((tmp_path,)),
        )
        try:
            inner = [wait_pid(tmp_path / "escaped.pid"), wait_pid(tmp_path / "stubborn.pid")]
            pids = [_host_pid(pid, marker) for pid in inner]
            assert None not in pids, f"sandboxed processes {inner} not found from outside"
            if end == "normal":
                release(fifo)
            finished = future.result(timeout=60)
        finally:
            unblock(fifo)
    assert finished.timed_out is (end == "timeout")
    assert not any(exists(pid) for pid in pids if pid is not None), "a sandboxed process survived"


@needs_bwrap
def test_the_sandbox_dies_with_its_parent(tmp_path: Path) -> None:
    """SIGKILL of the process that ran bwrap (an xdist worker, say) takes the sandbox with it."""
    marker, env = _marked_env()
    command = ["sh", "-c", ESCAPING_COMMAND.format(dir=tmp_path, then="exec sleep 300")]
    script = "import subprocess, sys; subprocess.run(sys.argv[1:])"
    with Sandbox((tmp_path,), network=False).prepare(command, tmp_path, env) as prepared:
        parent = subprocess.Popen([sys.executable, "-c", script, *prepared.argv], env=env)
        try:
            pids = [_host_pid(wait_pid(tmp_path / name), marker) for name in ("escaped.pid", "stubborn.pid")]
            assert None not in pids
        finally:
            parent.kill()
            parent.wait()
        # The sandbox is torn down asynchronously once its parent is gone.
        wait_for(lambda: not any(exists(pid) for pid in pids if pid is not None), "the sandbox to go")


@needs_bwrap
def test_the_sandbox_has_no_capabilities(tmp_path: Path) -> None:
    finished = sandboxed("grep CapEff /proc/self/status; umount /tmp", Sandbox(), cwd=Path("/"))
    assert "CapEff:\t0000000000000000" in finished.stdout
    assert "must be superuser" in finished.stdout or "ermission denied" in finished.stdout, finished.stdout


def test_run_owned_without_bwrap_refuses_a_sandbox(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no bwrap there
    with pytest.raises(SandboxUnavailable, match="bubblewrap"):
        run_owned(["true"], cwd=tmp_path, env=clean_env(), timeout=10, sandbox=Sandbox())


_UNIX_SOCKETS = """\
import socket
a, b = socket.socketpair()
print('socketpair works')
socket.socket(socket.AF_INET).close()
print('internet sockets work')
try:
    socket.socket(socket.AF_UNIX).close()
    print('unix sockets work')
except PermissionError:
    print('unix sockets refused')
"""


@needs_bwrap
@pytest.mark.skipif(platform.machine() != "x86_64", reason="the seccomp filter is built for x86_64 only")
@pytest.mark.parametrize("network", [True, False])
def test_with_the_hosts_network_no_unix_socket_can_be_made(network: bool, tmp_path: Path) -> None:
    """Abstract unix sockets belong to the network namespace: shared, the filter refuses them (and path ones)."""
    (tmp_path / "sockets.py").write_text(_UNIX_SOCKETS)
    finished = sandboxed(
        f"{sys.executable} sockets.py",
        Sandbox(writable=(tmp_path,), readonly=(Path(sys.prefix), Path(sys.base_prefix)), network=network),
        cwd=tmp_path,
    )
    expected = "unix sockets refused" if network else "unix sockets work"  # without: a namespace of its own
    assert finished.stdout == f"socketpair works\ninternet sockets work\n{expected}\n"


def test_the_seccomp_program_is_whole_instructions_ending_in_returns() -> None:
    from pytest_parallel_explore.isolation.seccomp import unix_socket_filter

    program = unix_socket_filter()
    if platform.machine() != "x86_64":
        assert program is None
        return
    assert program is not None and len(program) % 8 == 0
    codes = [int.from_bytes(program[i : i + 2], "little") for i in range(0, len(program), 8)]
    assert codes[0] == 0x20 and codes[-3:] == [0x06, 0x06, 0x06]  # loads the arch first; allow, deny, absent
