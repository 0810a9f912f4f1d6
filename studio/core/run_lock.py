"""One worker per run folder: an exclusive lock taken before anything in the folder is written.

Two workers on one run (two resumes pressed half a second apart, the window and a terminal)
would both train and write the same checkpoints and events. The worker therefore locks
``RUN_DIR/worker.lock`` first: an operating-system lock on the open file (``flock`` on POSIX,
``msvcrt.locking`` on Windows), which is atomic and ends with the process however it ends, so
a worker killed with ``kill -9`` never leaves a stale lock behind. The file holds the holder's
process id and host, for the message that refuses the second worker.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path

from studio.core.errors import RunError

LOCK_FILE = "worker.lock"


class RunLock:
    """The lock of one run folder, held by this process until :meth:`release` (or its exit).

    Args:
        run_dir: the run folder.

    Raises:
        RunError: another process holds the lock (the message names its pid), or the
            folder cannot hold a lock file.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK_FILE
        try:
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            from studio.core.errors import disk_error

            raise disk_error(self.path, exc, "take the run's lock") from None
        if not _try_lock(self._fd):
            holder = _holder(self._fd)
            os.close(self._fd)
            self._fd = -1
            raise RunError(f"{self.path.parent} is already being trained by worker pid {holder}",
                           "wait for that run to end or stop it (the window's Stop, or kill -TERM "
                           "that pid), then resume")
        os.ftruncate(self._fd, 0)
        os.lseek(self._fd, 0, os.SEEK_SET)
        os.write(self._fd, json.dumps({"pid": os.getpid(), "host": socket.gethostname()}).encode())

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing the file drops the lock; the file stays for the next worker
            self._fd = -1


def _try_lock(fd: int) -> bool:
    try:
        import fcntl
    except ImportError:  # Windows
        import msvcrt

        try:  # a byte far past the text: Windows locks are mandatory and would hide the pid
            os.lseek(fd, 1 << 20, os.SEEK_SET)
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
            return True
        except OSError:
            return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False


def _holder(fd: int) -> str:
    """``"1234 on host"`` from the lock file (the holder writes it just after locking)."""
    for _ in range(20):
        os.lseek(fd, 0, os.SEEK_SET)
        try:
            info = json.loads(os.read(fd, 4096) or b"null")
        except (ValueError, OSError):
            info = None
        if isinstance(info, dict) and "pid" in info:
            host = info.get("host")
            return f"{info['pid']}" + (f" on {host}" if host and host != socket.gethostname() else "")
        time.sleep(0.05)  # caught between the holder's lock and its write
    return "(unknown)"
