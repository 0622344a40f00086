"""A seccomp filter that keeps a sandboxed command from making unix sockets: host services stay out of reach.

Path sockets (``/run/...``, ``/tmp/tmux-0/default``) are out of reach once
the sandbox shows none of their folders, but *abstract* unix sockets
(``@/tmp/.X11-unix/X0``, D-Bus, some tmux builds) have no path: they belong
to the network namespace.  A scoring run gets a network namespace of its own;
an agent keeps the host's (it talks to a model's API), so for it, and for a
scoring run given the network, ``socket(AF_UNIX, ...)`` fails with EACCES.
``socketpair`` still works (node and Python use it between a process and its
children), as do internet sockets.

The filter is classic BPF, built here by hand for x86_64 (the 64-bit ABI; the
x32 ABI's system calls are refused whole; the i386 ABI's ``socket`` is
checked like the 64-bit one and its ``socketcall`` multiplexer refused).
``io_uring`` is refused too: it creates sockets without the ``socket`` system
call.  Elsewhere :func:`unix_socket_filter` returns None and agents can reach
abstract sockets; the sandbox says so.
"""

from __future__ import annotations

import errno
import platform
import struct

# <linux/filter.h>, <linux/seccomp.h>, <linux/audit.h>
_LD_W_ABS = 0x20
_JEQ, _JGE, _JGT = 0x15, 0x35, 0x25
_RET = 0x06
_ALLOW = 0x7FFF0000
_ERRNO = 0x00050000
_ARCH_X86_64 = 0xC000003E
_ARCH_I386 = 0x40000003
_X32_BIT = 0x40000000
# struct seccomp_data: int nr; __u32 arch; __u64 instruction_pointer; __u64 args[6] (little-endian: low half first)
_NR, _ARCH, _ARG0 = 0, 4, 16
_AF_UNIX = 1
_X86_64_SOCKET, _I386_SOCKET, _I386_SOCKETCALL = 41, 359, 102
_IO_URING_FIRST, _IO_URING_LAST = 425, 427  # io_uring_setup, _enter, _register: the same on both ABIs

_DENY = _ERRNO | errno.EACCES
_ABSENT = _ERRNO | errno.ENOSYS

#: (label, ...) instructions: ("ld", offset), (jump, k, if-true label, if-false label), ("ret", value).
_PROGRAM: list[tuple[object, ...]] = [
    ("ld", _ARCH),
    (_JEQ, _ARCH_X86_64, "x86_64", "other"),
    ("x86_64",),
    ("ld", _NR),
    (_JGE, _X32_BIT, "absent", "x86_64 nr"),
    ("x86_64 nr",),
    (_JEQ, _X86_64_SOCKET, "socket", "io_uring"),
    ("other",),
    (_JEQ, _ARCH_I386, "i386", "absent"),
    ("i386",),
    ("ld", _NR),
    (_JEQ, _I386_SOCKETCALL, "deny", "i386 nr"),
    ("i386 nr",),
    (_JEQ, _I386_SOCKET, "socket", "io_uring"),
    ("io_uring",),
    (_JGE, _IO_URING_FIRST, "io_uring range", "allow"),
    ("io_uring range",),
    (_JGT, _IO_URING_LAST, "allow", "absent"),
    ("socket",),
    ("ld", _ARG0),
    (_JEQ, _AF_UNIX, "deny", "allow"),
    ("allow",),
    ("ret", _ALLOW),
    ("deny",),
    ("ret", _DENY),
    ("absent",),
    ("ret", _ABSENT),
]


def _assemble(program: list[tuple[object, ...]]) -> bytes:
    """``struct sock_filter`` array from labelled instructions (jumps are forward, as BPF requires)."""
    labels: dict[object, int] = {}
    instructions: list[tuple[object, ...]] = []
    for item in program:
        if len(item) == 1:
            labels[item[0]] = len(instructions)
        else:
            instructions.append(item)
    code = b""
    for index, item in enumerate(instructions):
        if item[0] == "ld":
            code += struct.pack("=HBBI", _LD_W_ABS, 0, 0, item[1])
        elif item[0] == "ret":
            code += struct.pack("=HBBI", _RET, 0, 0, item[1])
        else:
            op, k, if_true, if_false = item
            jt, jf = labels[if_true] - index - 1, labels[if_false] - index - 1
            assert 0 <= jt < 256 and 0 <= jf < 256, item
            code += struct.pack("=HBBI", op, jt, jf, k)
    return code


def unix_socket_filter() -> bytes | None:
    """The filter for bubblewrap's ``--seccomp FD`` on x86_64; None on other machines."""
    if platform.machine() != "x86_64":
        return None
    return _assemble(_PROGRAM)
