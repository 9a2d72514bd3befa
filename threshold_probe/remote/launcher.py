"""The far-side launcher: one job in one command, one round trip, under its limits.

Staged once per cluster session and run as ``python -S launcher.py`` (standard library only,
Python 3.8 or newer). Reads from stdin a JSON header line followed by the job's files, then:

1. writes the shared files that travel with this job (the runner, on a session's first probes)
   to their staged paths, then the job's files into a fresh job folder (stage-in);
2. forks the job in a new session (its own process group) with RLIMIT_AS for memory and CPU
   affinity for cores, stdin from /dev/null, stdout/stderr to stdout.log/stderr.log there
   (the names JobPaths.STDOUT and JobPaths.STDERR: this file cannot import them);
3. waits for it; at the time limit it kills the whole process group with SIGKILL. If the client
   goes away (the SSH channel closes: Ctrl-C, a dropped link) it kills the group as well;
4. writes back, on stdout, framed records: ``pid``, then ``status``, then every fetched file, then
   the full stdout.log and stderr.log, then ``end``;
5. removes the job folder unless asked to keep it.

A record is ``TPREC <json>\\n`` followed by exactly ``json["size"]`` raw bytes.

Start-up time is part of every probe, so the launcher imports only built-in modules: no json
(it pulls in re and enum), typing, socket or shutil. The header it reads is a Python literal
written by our own client (the same party that sends the code to run, so no new trust), and it
writes its records with a small JSON encoder of its own; the client reads JSON only.
"""

from __future__ import annotations

import errno
import os
import select
import sys
import time

MYPY = False
if MYPY:  # type checkers only: importing typing costs milliseconds at every probe
    import signal
    from typing import IO, Any
else:
    import _signal as signal  # the C module: `signal` itself pulls in enum

MAGIC = b"TPREC "


def _json(value: object) -> str:
    """JSON text of None, bool, int, float, str, list/tuple and dict with str keys."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        out = []
        for ch in value:
            code = ord(ch)
            if ch in '"\\':
                out.append("\\" + ch)
            elif code < 0x20 or 0xD800 <= code <= 0xDFFF:
                out.append(f"\\u{code:04x}")
            else:
                out.append(ch)
        return '"' + "".join(out) + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(_json(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ",".join(_json(str(k)) + ":" + _json(v) for k, v in value.items()) + "}"
    return _json(str(value))


def _rmtree(path: str) -> None:
    """Remove a folder and everything in it; errors are ignored (best effort, like rm -rf)."""
    for root, dirs, files in os.walk(path, topdown=False):
        for name in files:
            try:  # noqa: SIM105 - no contextlib: it costs an import at every probe
                os.unlink(os.path.join(root, name))
            except OSError:
                pass
        for name in dirs:
            p = os.path.join(root, name)
            try:
                if os.path.islink(p):
                    os.unlink(p)
                else:
                    os.rmdir(p)
            except OSError:
                pass
    try:  # noqa: SIM105
        os.rmdir(path)
    except OSError:
        pass


CHUNK = 1 << 18


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        n = os.write(fd, view)
        view = view[n:]


def _record(fd: int, kind: str, payload: bytes = b"", **fields: object) -> None:
    head = dict(fields, kind=kind, size=len(payload))
    _write_all(fd, MAGIC + _json(head).encode() + b"\n" + payload)


def _record_file(fd: int, kind: str, name: str, path: str) -> bool:
    try:
        fh = open(path, "rb")  # noqa: SIM115 - closed by the with below
    except OSError:
        return False
    with fh:
        size = os.fstat(fh.fileno()).st_size
        _write_all(fd, MAGIC + _json({"kind": kind, "name": name, "size": size}).encode() + b"\n")
        left = size
        while left > 0:
            chunk = fh.read(min(CHUNK, left))
            if not chunk:
                # Shrunk while we read (a leftover writer): pad so the framing stays valid.
                chunk = b"\0" * min(CHUNK, left)
            _write_all(fd, chunk)
            left -= len(chunk)
    return True


def _read_exact(stream: IO[bytes], n: int) -> bytes:
    parts = []
    while n > 0:
        chunk = stream.read(n)
        if not chunk:
            raise EOFError("stdin ended early")
        parts.append(chunk)
        n -= len(chunk)
    return b"".join(parts)


def _safe_join(base: str, name: str) -> str:
    path = os.path.normpath(os.path.join(base, name))
    if os.path.isabs(name) or not path.startswith(base.rstrip("/") + "/"):
        raise ValueError(f"file name leaves the job folder: {name!r}")
    return path


def _stage_shared(stdin: IO[bytes], path: str, size: int) -> None:
    """A shared file (the runner) that travels with this job: written under a fresh name and
    renamed into place unless an earlier job of the session already put it there."""
    data = _read_exact(stdin, size)
    if os.path.isfile(path):
        return
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        os.makedirs(folder, mode=0o700)
    tmp = f"{path}.{os.getpid()}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        _write_all(fd, data)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def first_cores(n: int) -> set[int]:
    """The first `n` cores this process may use: a job limited to n cores is pinned to them."""
    if not hasattr(os, "sched_getaffinity"):  # pragma: no cover - not Linux
        return set(range(max(1, n)))
    allowed = sorted(os.sched_getaffinity(0))
    return set(allowed[: max(1, n)])


def apply_limits(memory: int | None, cores: set[int] | None) -> None:
    """In the job's process, just before exec: cores by CPU affinity (what `taskset` sets), memory
    by RLIMIT_AS (what `ulimit -v` sets). This machine's local cluster applies its limits with
    this same function; the time limit is `wait_exit` below, then a kill of the process group."""
    if cores is not None and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, cores)
    if memory is not None:
        import resource

        # Last, so that nothing before the exec runs under the limit.
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))


def _child(spec: dict[str, Any], job_dir: str, err_w: int) -> None:
    """In the forked child: limits, new session, redirections, exec. Never returns."""
    try:
        os.setsid()
        os.chdir(job_dir)
        null = os.open(os.devnull, os.O_RDONLY)
        out = os.open("stdout.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        err = os.open("stderr.log", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.dup2(null, 0)
        os.dup2(out, 1)
        os.dup2(err, 2)
        env = dict(os.environ)
        env.update(spec.get("env") or {})
        env.setdefault("PYTHONUNBUFFERED", "1")
        argv = spec["argv"]
        cores = first_cores(int(spec["cores"])) if spec.get("cores") else None
        apply_limits(int(spec["memory"]) if spec.get("memory") else None, cores)
        os.execvpe(argv[0], argv, env)
    except BaseException as exc:
        info = {"type": type(exc).__name__, "message": str(exc), "errno": getattr(exc, "errno", None)}
        try:
            os.write(err_w, repr(info).encode())
        finally:
            os._exit(127)


def _client_gone(fd: int) -> bool:
    """True when the reader of our stdout (sshd, and so the client) has gone away."""
    p = select.poll()
    p.register(fd, select.POLLERR | select.POLLHUP)
    return any(ev & (select.POLLERR | select.POLLHUP) for _, ev in p.poll(0))


def _killpg(pgid: int) -> None:
    try:  # noqa: SIM105 - contextlib costs an import at every probe
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
        pass


def _exited(pid: int) -> bool:
    """pid has exited (it stays a zombie: WNOWAIT), for kernels without pidfd."""
    info = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
    return info is not None and info.si_pid == pid


def wait_exit(pid: int, deadline: float | None, out_fd: int | None = None) -> str:
    """Wait until pid exits without reaping it: 'exited', 'timeout', or 'client_gone' when the
    reader of `out_fd` (our client) went away.

    The process stays a zombie, so its process group id cannot be reused before the caller kills
    what is left of the group."""
    pidfd = -1
    try:  # noqa: SIM105 - contextlib costs an import at every probe
        pidfd = os.pidfd_open(pid)  # type: ignore[attr-defined,unused-ignore]
    except (AttributeError, OSError):
        pass
    poller = select.poll()
    if pidfd >= 0:
        poller.register(pidfd, select.POLLIN)
    if out_fd is not None:
        poller.register(out_fd, select.POLLERR | select.POLLHUP)
    try:
        while True:
            if pidfd < 0 and _exited(pid):
                return "exited"
            now = time.time()
            if deadline is not None and now >= deadline:
                return "timeout"
            # Without pidfd the exit is polled for, every 5 ms.
            wait_ms = 1000 if pidfd >= 0 else 5
            if deadline is not None:
                wait_ms = min(wait_ms, max(1, int((deadline - now) * 1000) + 1))
            for fd, ev in poller.poll(wait_ms):
                if fd == pidfd:
                    return "exited"
                if fd == out_fd and ev & (select.POLLERR | select.POLLHUP):
                    return "client_gone"
    finally:
        if pidfd >= 0:
            os.close(pidfd)


def main() -> int:
    """Run one job as the header on stdin describes; see the module docstring."""
    out_fd = sys.stdout.fileno()
    stdin = sys.stdin.buffer
    # The client may start a launcher before it has a job for it: the header comes when it does,
    # or the input ends (the client closed it unused) and the launcher leaves.
    line = stdin.readline()
    if not line.strip():
        return 0
    t0 = time.time()
    # A Python literal written by our client (see the module docstring), read without json.
    spec = eval(line.decode(), {"__builtins__": {}})
    job_dir = os.path.expanduser(spec["dir"])
    keep = bool(spec.get("keep"))
    status: dict[str, Any] = {"host": os.uname().nodename, "dir": job_dir}
    pid: int | None = None
    if not os.path.isdir(os.path.dirname(job_dir)):
        # The session folder was removed under a launcher that was waiting: nothing staged is left.
        _record(out_fd, "status", _json(dict(status, session_gone=True)).encode())
        _record(out_fd, "end")
        return 0
    try:
        try:
            for path, size in spec.get("shared") or []:
                _stage_shared(stdin, os.path.expanduser(path), int(size))
            os.makedirs(job_dir, mode=0o700)
            for name, size in spec["files"]:
                data = _read_exact(stdin, int(size))
                path = _safe_join(job_dir, name)
                d = os.path.dirname(path)
                if not os.path.isdir(d):
                    os.makedirs(d)
                with open(path, "wb") as fh:
                    fh.write(data)
        except (OSError, ValueError, EOFError) as exc:
            status["stage_error"] = f"{type(exc).__name__}: {exc}"
        t1 = time.time()
        status["stage_in_s"] = t1 - t0
        if "stage_error" not in status:
            err_r, err_w = os.pipe()
            os.set_inheritable(err_w, False)
            launched = time.time()
            pid = os.fork()
            if pid == 0:
                os.close(err_r)
                _child(spec, job_dir, err_w)
            os.close(err_w)
            _record(out_fd, "pid", pid=pid)
            time_s = spec.get("time")
            deadline = launched + float(time_s) if time_s is not None else None
            why = wait_exit(pid, deadline, out_fd)
            # The job may have left children in its group: they go too, before we reap it, so
            # that the group id cannot have been reused.
            _killpg(pid)
            _, wstatus = os.waitpid(pid, 0)
            ended = time.time()
            launch_error = b""
            while True:
                chunk = os.read(err_r, 65536)
                if not chunk:
                    break
                launch_error += chunk
            os.close(err_r)
            status.update(launched_at=launched, ended_at=ended, process_s=ended - launched)
            status["timed_out"] = why == "timeout"
            status["client_gone"] = why == "client_gone"
            # Removed under the job (a purge of the workdir): its files say nothing any more.
            status["dir_gone"] = not os.path.isdir(job_dir)
            if launch_error:
                status["launch_error"] = eval(launch_error.decode("utf-8", "replace"), {"__builtins__": {}})
            elif os.WIFSIGNALED(wstatus):
                status["signal"] = os.WTERMSIG(wstatus)
            else:
                status["exit_code"] = os.WEXITSTATUS(wstatus)
            if why == "client_gone":
                return 1
        _record(out_fd, "status", _json(status).encode())
        for name in spec.get("fetch") or []:
            try:
                path = _safe_join(job_dir, name)
            except ValueError:
                continue
            if os.path.isfile(path):
                _record_file(out_fd, "file", name, path)
        for name in ("stdout.log", "stderr.log"):
            _record_file(out_fd, "log", name, os.path.join(job_dir, name))
        _record(out_fd, "end")
        return 0
    except OSError as exc:
        if exc.errno == errno.EPIPE:
            return 1
        raise
    finally:
        if pid is not None:
            _killpg(pid)
        if not keep:
            _rmtree(job_dir)


def _stop(signum: int, frame: object) -> None:
    # SIGTERM/SIGHUP/SIGINT: leave through main's finally, which kills the job and cleans up.
    raise SystemExit(128 + signum)


def run() -> None:
    """Entry point: run main() and leave at once. Never returns.

    The client imports this module rather than running it as a script, so that its bytecode is
    cached in __pycache__ beside it instead of being compiled again for every probe.
    """
    for sig in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        signal.signal(sig, _stop)
    try:
        code = main()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    # Everything is written and cleaned up: skip the interpreter's teardown, which the client
    # would otherwise wait for (the exit status is sent when this process ends).
    os._exit(code)


if __name__ == "__main__":
    run()
