"""A command's output, drained from a FIFO into a bounded head and tail, never to disk.

``run_command`` gives the model only the head and tail of what a command
wrote, so only those are kept, and a command that writes without end is cut
off by closing its pipe.
"""

from __future__ import annotations

import os
import select
import threading
from pathlib import Path

#: Reads of the output pipe once the command has ended (each up to 1 MB).
_FINAL_READS = 4


class CappedOutput:
    """Drains a FIFO in a thread, keeping the head and tail of what comes through.

    A command's output goes to the FIFO (``run_owned(output=...)``), so it
    takes no disk, and only ``keep`` bytes are kept, half at each end.  After
    ``cap`` bytes the pipe is closed: the command's next write gets SIGPIPE
    (as with ``| head``), so ``yes`` does not run to the timeout.  The thread
    holds a write end of its own, so the pipe reads as empty, not as ended,
    until the command opens it.
    """

    def __init__(self, fifo: Path, cap: int, keep: int) -> None:
        self.cap = cap
        self.keep = keep
        self.size = 0
        self.capped = False
        self.head = bytearray()
        self.tail = bytearray()
        self._read = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        self._write = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._drain, name="explore-command-output", daemon=True)

    def __enter__(self) -> CappedOutput:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._done.set()
        self._thread.join()
        for fd in (self._read, self._write):
            if fd >= 0:
                os.close(fd)

    def _drain(self) -> None:
        while not self.capped:
            if self._done.is_set():
                # The command's group is gone; take what is in the pipe, a bounded number of reads:
                # a writer that escaped the group (setsid) must not keep this thread, and the call, alive.
                for _ in range(_FINAL_READS):
                    if self.capped or not self._read_once():
                        break
                return
            ready, _, _ = select.select([self._read], [], [], 0.05)
            if ready:
                self._read_once()

    def _read_once(self) -> bool:
        """Read what the pipe holds (up to 1 MB); False when it held nothing."""
        try:
            data = os.read(self._read, 1 << 20)
        except BlockingIOError:
            return False
        if not data:
            return False
        self._keep(data)
        if self.size > self.cap:
            # Close both ends: the command's next write fails with EPIPE (SIGPIPE).
            os.close(self._read)
            os.close(self._write)
            self._read = self._write = -1
            self.capped = True
        return True

    def _keep(self, data: bytes) -> None:
        half = self.keep // 2
        self.size += len(data)
        room = half - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        self.tail += data[-half:]
        del self.tail[:-half]

    def text(self) -> str:
        head, tail = self.head.decode(errors="replace"), self.tail.decode(errors="replace")
        hidden = self.size - len(self.head) - len(self.tail)
        if hidden <= 0:
            return head + tail
        return f"{head}\n[... {hidden} bytes not shown ...]\n{tail}"
