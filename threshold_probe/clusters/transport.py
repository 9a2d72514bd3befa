"""Run shell commands and move files on some host: this machine, or one reached over SSH.

Clusters talk to their hosts only through a Transport, so that the same cluster logic (SLURM
submission, for example) works on this machine and through a login node alike. This module is the
interface; local_transport.py and ssh_transport.py implement it. A Transport:

- runs a POSIX shell command with an optional stdin, draining stdout and stderr concurrently
  (paramiko deadlocks once a stream exceeds its ~2 MiB window if the other one is not read), into
  memory or straight into files so that memory stays bounded;
- bounds every command and transfer with a timeout;
- raises TransportError (an InfraError) for infrastructure trouble - a refused or dropped
  connection, an auth failure, a banner timeout - so that clusters can report it as a skip.

A command that runs and exits non-zero is not an error here: it is a CommandResult.
"""

from __future__ import annotations

import shlex
from abc import ABC, abstractmethod
from collections.abc import Callable
from pathlib import Path
from typing import IO

from pydantic import BaseModel

from threshold_probe.errors import InfraError

#: How much of a stream a CommandResult holds when no file is given. Past this the rest is dropped
#: and `truncated` is set, so a runaway command cannot exhaust this machine's memory.
MEMORY_LIMIT = 64 * 1024 * 1024
#: How much a transport reads at once.
CHUNK = 256 * 1024


class TransportError(InfraError):
    """The host could not be reached or used: a skip, not a failure of the probe.

    `retryable` is False when trying again cannot help (a changed host key, an auth failure),
    so that callers stop instead of backing off.
    """

    def __init__(self, message: str, *, retryable: bool = True, fix: str | None = None) -> None:
        super().__init__(message if fix is None else f"{message}; fix: {fix}")
        self.problem = message
        self.retryable = retryable
        #: What the user can do about it, when we know (shown by preflight as its own field).
        self.fix = fix


class HostKeyError(TransportError):
    """The server's host key is unknown (policy `reject`) or has changed: never retried."""

    def __init__(self, message: str, fix: str | None = None) -> None:
        super().__init__(message, retryable=False, fix=fix)


class CommandResult(BaseModel):
    """What one shell command did. `exit_code` is None when it was killed or timed out."""

    exit_code: int | None
    signal: int | None = None
    stdout: bytes = b""
    stderr: bytes = b""
    timed_out: bool = False
    duration_s: float = 0.0
    #: A stream held in memory was cut at MEMORY_LIMIT.
    truncated: bool = False

    @property
    def ok(self) -> bool:
        """The command exited 0."""
        return self.exit_code == 0

    def text(self) -> str:
        """stdout decoded leniently, for commands that print text."""
        return self.stdout.decode("utf-8", "replace")

    def error_text(self) -> str:
        """stderr decoded leniently, stripped; for one-line error messages."""
        return self.stderr.decode("utf-8", "replace").strip()


class _Sink:
    """Where one stream goes: a file on disk, a callback, or a bounded in-memory buffer."""

    def __init__(self, path: Path | None = None, callback: Callable[[bytes], None] | None = None) -> None:
        self._file: IO[bytes] | None = None
        self._callback = callback
        self._parts: list[bytes] = []
        self._size = 0
        self.truncated = False
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._file = open(path, "wb")  # noqa: SIM115 - closed in close()

    def write(self, data: bytes) -> None:
        if self._file is not None:
            self._file.write(data)
        elif self._callback is not None:
            self._callback(data)
        else:
            room = MEMORY_LIMIT - self._size
            if room <= 0:
                self.truncated = True
                return
            if len(data) > room:
                data = data[:room]
                self.truncated = True
            self._parts.append(data)
            self._size += len(data)

    def value(self) -> bytes:
        return b"".join(self._parts)

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class Transport(ABC):
    """Runs shell commands and moves files on one host."""

    #: Short name of the host for reports ("localhost", "jdoe@tensor01:22").
    host: str = "localhost"

    def run(
        self,
        command: str,
        *,
        timeout: float | None = None,
        stdin: bytes | None = None,
        stdout_path: Path | None = None,
        stderr_path: Path | None = None,
    ) -> CommandResult:
        """Run a POSIX shell command; streams go to the files when paths are given, else are returned.

        Raises TransportError when the host cannot be reached or the connection drops.
        """
        out = _Sink(stdout_path)
        err = _Sink(stderr_path)
        try:
            result = self.run_streaming(command, out.write, err.write, timeout=timeout, stdin=stdin)
        finally:
            out.close()
            err.close()
        result.stdout = out.value()
        result.stderr = err.value()
        result.truncated = out.truncated or err.truncated
        return result

    @abstractmethod
    def run_streaming(
        self,
        command: str,
        on_stdout: Callable[[bytes], None],
        on_stderr: Callable[[bytes], None],
        *,
        timeout: float | None = None,
        stdin: bytes | None = None,
    ) -> CommandResult:
        """Run a command, handing each chunk of stdout and stderr to the callbacks as it arrives.

        The returned CommandResult has empty stdout and stderr. On timeout the command is
        stopped (its process group killed where the transport can) and `timed_out` is set.
        """

    @abstractmethod
    def put(self, data: bytes, remote_path: str, mode: int = 0o644) -> None:
        """Write `data` to `remote_path` atomically (a temporary name, then a rename)."""

    @abstractmethod
    def get(self, remote_path: str, local_path: Path) -> bool:
        """Copy `remote_path` to `local_path`; False when the remote file does not exist."""

    def close(self) -> None:
        """Release connections; safe to call twice."""

    def __enter__(self) -> Transport:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def quote_path(path: str) -> str:
    """Shell-quote a remote path, keeping a leading `~` or `~/` meaning the remote home folder."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)
