"""The transport to this machine: commands through `bash -c`, each in its own process group."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import IO

from threshold_probe.clusters.transport import CHUNK, CommandResult, Transport, TransportError


class LocalTransport(Transport):
    """Commands through `bash -c` on this machine, each in its own process group."""

    host = "localhost"

    def __init__(self, env: dict[str, str] | None = None, shell: str = "bash") -> None:
        #: Extra environment for every command (for example SLURM_CONF).
        self.env = dict(env or {})
        self.shell = shell

    def run_streaming(
        self,
        command: str,
        on_stdout: Callable[[bytes], None],
        on_stderr: Callable[[bytes], None],
        *,
        timeout: float | None = None,
        stdin: bytes | None = None,
    ) -> CommandResult:
        """Run `command` with bash in a new session, so that a timeout kills all it started."""
        started = time.monotonic()
        env = {**os.environ, **self.env}
        try:
            proc = subprocess.Popen(
                [self.shell, "-c", command],
                stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=env,
                start_new_session=True,
            )
        except OSError as exc:
            raise TransportError(f"cannot start {self.shell}: {exc.strerror}", retryable=False) from exc
        assert proc.stdout is not None and proc.stderr is not None
        feeder: threading.Thread | None = None
        if stdin is not None:
            assert proc.stdin is not None
            feeder = threading.Thread(target=_feed_pipe, args=(proc.stdin, stdin), daemon=True)
            feeder.start()
        deadline = None if timeout is None else started + timeout
        timed_out = False
        sel = selectors.DefaultSelector()
        sel.register(proc.stdout, selectors.EVENT_READ, on_stdout)
        sel.register(proc.stderr, selectors.EVENT_READ, on_stderr)
        try:
            while sel.get_map():
                wait = None if deadline is None else max(0.0, deadline - time.monotonic())
                if wait == 0.0:
                    timed_out = True
                    _killpg(proc.pid)
                    break
                for key, _ in sel.select(wait):
                    data = os.read(key.fd, CHUNK)
                    if not data:
                        sel.unregister(key.fileobj)
                    else:
                        key.data(data)
            if timed_out:
                # Drain what is left so that the pipes close; the group is already dead.
                for key in list(sel.get_map().values()):
                    with contextlib.suppress(OSError):
                        while chunk := os.read(key.fd, CHUNK):
                            key.data(chunk)
            returncode = proc.wait()
        except BaseException:
            _killpg(proc.pid)
            proc.wait()
            raise
        finally:
            sel.close()
            proc.stdout.close()
            proc.stderr.close()
            if feeder is not None:
                feeder.join(timeout=1)
        # Orphans the command left in its group die with it, as a remote kill -PGID would do.
        _killpg(proc.pid)
        return CommandResult(
            exit_code=None if timed_out or returncode < 0 else returncode,
            signal=-returncode if returncode < 0 else None,
            timed_out=timed_out,
            duration_s=time.monotonic() - started,
        )

    def put(self, data: bytes, remote_path: str, mode: int = 0o644) -> None:
        """Write a file on this machine atomically."""
        path = Path(os.path.expanduser(remote_path))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, mode)
        os.replace(tmp, path)

    def get(self, remote_path: str, local_path: Path) -> bool:
        """Copy a file on this machine."""
        src = Path(os.path.expanduser(remote_path))
        try:
            with open(src, "rb") as fin:
                local_path.parent.mkdir(parents=True, exist_ok=True)
                with open(local_path, "wb") as fout:
                    while chunk := fin.read(CHUNK):
                        fout.write(chunk)
        except FileNotFoundError:
            return False
        return True


def _feed_pipe(pipe: IO[bytes], data: bytes) -> None:
    with contextlib.suppress(BrokenPipeError, OSError):
        pipe.write(data)
    with contextlib.suppress(BrokenPipeError, OSError):
        pipe.close()


def _killpg(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)
