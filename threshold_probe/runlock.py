"""Ownership of a run: the one process that runs it holds an exclusive flock on its owner file.

The file holds "PID HOST" of that process. The kernel drops the lock when the process dies, even
with kill -9, so a lock that can be taken means nobody runs the run.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path

#: In a run's folder: locked by the one process that runs the run, for as long as it runs.
OWNER_FILE = ".owner"


class RunLock:
    """Ownership of one run by this process: an exclusive flock on the run's OWNER_FILE."""

    def __init__(self, path: Path, fd: int) -> None:
        self.path = path
        self._fd: int | None = fd

    def release(self) -> None:
        """Give the run up (closing the file drops the lock); safe to call twice."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def _owner_text(fd: int) -> str:
    """'pid N on HOST' from an owner file, waiting briefly for an owner that is just writing it."""
    deadline = time.monotonic() + 1.0
    while True:
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
        pid, _, host = text.partition(" ")
        if pid.isdigit():
            return f"pid {pid}" + (f" on {host}" if host and host != socket.gethostname() else "")
        if time.monotonic() > deadline:
            return "another process"
        time.sleep(0.02)


def try_lock(run_dir: Path) -> RunLock | str:
    """The lock of the run in `run_dir`, or who holds it ('pid N' or 'pid N on HOST')."""
    path = run_dir / OWNER_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        try:
            return _owner_text(fd)
        finally:
            os.close(fd)
    except BaseException:
        os.close(fd)
        raise
    os.ftruncate(fd, 0)
    os.pwrite(fd, f"{os.getpid()} {socket.gethostname()}\n".encode(), 0)
    return RunLock(path, fd)


def holder(run_dir: Path) -> str | None:
    """Who runs the run in `run_dir` right now ('pid N'), or None when no process does. Never writes."""
    try:
        fd = os.open(run_dir / OWNER_FILE, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _owner_text(fd)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)
