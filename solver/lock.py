"""One process per run directory: an advisory lock (``fcntl.flock``) on ``<output>/.lock``.

``meanfield pde`` and ``run`` take it on rank 0 before they look at or change the run
directory and hold it to the end; a second run into the same directory (another
terminal, a requeued job while the first still runs, a sweep started twice) is refused
with ``RunLockedError`` (exit 3) naming the process that holds it, instead of doing the
work twice and overwriting the first one's files. The kernel drops the lock when its
process ends, however it ends (SIGKILL, a crash, a node that reboots), so a stale lock
cannot block a ``--resume``. The file stays (removing it would race with a waiting
process); it holds the pid, host and start time of the last holder.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

from solver.errors import RunLockedError

LOCK_NAME = ".lock"


class RunLock:
    """The lock of one run directory; ``acquire`` or RunLockedError, ``release`` at the end."""

    def __init__(self, directory: str | os.PathLike | None = None):
        self.path = None if directory is None else Path(directory) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self, directory: str | os.PathLike | None = None) -> RunLock:
        """Take the lock (of ``directory``, else the one given to the constructor) or raise
        RunLockedError naming its holder."""
        if directory is not None:
            self.path = Path(directory) / LOCK_NAME
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(fd, 512, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunLockedError(
                f"{self.path.parent} is in use by {holder} (lock {self.path}); wait for it "
                "to end, or give this run another output (--output DIR)") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()} since "
                      f"{time.strftime('%Y-%m-%d %H:%M:%S')}\n".encode(), 0)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()
