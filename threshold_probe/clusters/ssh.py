"""SSH clusters: probes on a host reached over one reused SSH connection.

Dispatch of one probe is ONE command on the open connection (one round trip): the launcher
(`ssh_launcher.py`, staged once per session and imported, so that its bytecode is cached) reads
the job's files from stdin, runs the job under its limits, and streams back its status, the
fetched files and the full logs. So a probe costs the far side's interpreter start-ups plus one
network round trip, not a login. `bench/dispatch.py` measures it.

Remote layout, all under `workdir`::

    WORKDIR/tp-XXXXXXXX/                  one session: one cluster object (one run)
        shared/<sha256[:16]>/<name>       the launcher and JobSpec.shared files (the runner)
        <probe_id>-<hex>/                 one probe's folder, removed after the probe unless kept

close() removes the session folder (keeping only the folders of probes run with keep_remote),
so a run without --keep-remote leaves nothing in the workdir.

Limits are enforced on the far side: memory as RLIMIT_AS (what `ulimit -v` sets), time by
killing the job's process group (it runs in its own session) with SIGKILL at the deadline,
cores by CPU affinity (what `taskset` sets).

Infrastructure trouble (refused connection, auth failure, dropped link, banner timeout) becomes
JobResult.infra_error. THE RETRY LIVES HERE: `execute` tries a probe up to 1 + `retries` times,
with exponential backoff from `retry_backoff` seconds, and reconnects before each try; errors
that cannot get better (a changed host key, an auth failure, no interpreter) are not retried.

When the host itself is gone - the last try could not even connect (or stage), or the error
cannot get better - the result is marked `cluster_lost`: the run stops there, to be resumed,
instead of skipping level after level of a host that is down. Trouble of one probe on a host
that still answers (its output cut short, its launcher failing) stays a skip.

A probe in flight waits at most its time limit plus PROBE_GRACE_S for its answer (the far side
kills the job at the limit; the grace covers sending its files and fetching its results). A
frozen host is noticed sooner, by keepalives (transport.KEEPALIVE_INTERVAL_S).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import re
import secrets
import shlex
import statistics
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO, Any

from threshold_probe.clusters import pickle_check
from threshold_probe.clusters.base import Check, Cluster, SSHEndpoint, enforcers
from threshold_probe.clusters.staging import UNSAFE_WORKDIR, remote_workdir_guard
from threshold_probe.clusters.transport import SSHTransport, TransportError, quote_path
from threshold_probe.config import SSHClusterConfig
from threshold_probe.models import PYTHON, JobResult, JobSpec, Limits, RemoteWork, shared_ref

#: How much of the end of stdout and stderr a JobResult keeps in memory.
TAIL_BYTES = 4096
#: Free space in the workdir under which preflight warns.
MIN_FREE_BYTES = 100 * 1024**2
#: Round trip above which preflight warns: every probe pays it at least once.
SLOW_RTT_S = 0.25
LAUNCHER_NAME = "ssh_launcher.py"
#: Seconds a probe in flight may take beyond its time limit before it is given up.
PROBE_GRACE_S = 30.0
_MAGIC = b"TPREC "


def launcher_source() -> bytes:
    """The far-side launcher's source, as staged."""
    return (Path(__file__).with_name(LAUNCHER_NAME)).read_bytes()


def read_tail(path: Path, n_bytes: int = TAIL_BYTES) -> str:
    """The last `n_bytes` of a file, decoded leniently; empty when it does not exist."""
    try:
        with path.open("rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - n_bytes))
            data = fh.read()
    except OSError:
        return ""
    return data.decode("utf-8", "replace")


def _safe_name(text: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
    return keep[:60] or "job"


class _RecordReader:
    """Parses the launcher's framed stdout as it streams in, writing bodies to their files.

    Memory stays bounded: only headers, `pid` and `status` bodies are held; files and logs go
    straight to disk under local_dir.
    """

    def __init__(self, local_dir: Path, fetch: Sequence[str]) -> None:
        self.local_dir = local_dir
        self.fetch = set(fetch)
        self._buf = bytearray()
        self._head: dict[str, Any] | None = None
        self._left = 0
        self._sink: IO[bytes] | None = None
        self._mem: bytearray | None = None
        self._part: Path | None = None
        self._final: Path | None = None
        self.pid: int | None = None
        self.status: dict[str, Any] | None = None
        self.status_at: float | None = None
        self.files: dict[str, Path] = {}
        self.logs: dict[str, Path] = {}
        self.ended = False
        self.garbage = b""

    def feed(self, data: bytes) -> None:
        """Take the next chunk of the stream."""
        view = memoryview(data)
        while view:
            if self._head is None:
                self._buf += view
                view = memoryview(b"")
                nl = self._buf.find(b"\n")
                if nl < 0:
                    if len(self._buf) > 65536:
                        self._garbage()
                    return
                line = bytes(self._buf[:nl])
                rest = bytes(self._buf[nl + 1 :])
                self._buf.clear()
                if not line.startswith(_MAGIC):
                    self.garbage += line[:2000]
                    view = memoryview(rest)
                    continue
                try:
                    head = json.loads(line[len(_MAGIC) :])
                except ValueError:
                    self.garbage += line[:2000]
                    view = memoryview(rest)
                    continue
                self._begin(head)
                view = memoryview(rest)
                if self._left == 0:
                    self._finish()
            else:
                take = min(self._left, len(view))
                chunk = view[:take]
                if self._sink is not None:
                    self._sink.write(chunk)
                elif self._mem is not None:
                    self._mem += chunk
                self._left -= take
                view = view[take:]
                if self._left == 0:
                    self._finish()

    def _garbage(self) -> None:
        self.garbage += bytes(self._buf[:2000])
        self._buf.clear()

    def _begin(self, head: dict[str, Any]) -> None:
        self._head = head
        self._left = int(head.get("size", 0))
        kind = head.get("kind")
        name = str(head.get("name", ""))
        if kind in ("file", "log") and name and ".." not in Path(name).parts and not Path(name).is_absolute():
            if kind == "file" and name not in self.fetch:
                self._mem = None  # not asked for: drop its bytes
                self._sink = None
                return
            self._final = self.local_dir / name
            self._final.parent.mkdir(parents=True, exist_ok=True)
            self._part = self._final.with_name(f".{self._final.name}.part")
            self._sink = open(self._part, "wb")  # noqa: SIM115 - closed in _finish
        else:
            self._mem = bytearray()

    def _finish(self) -> None:
        head = self._head or {}
        kind = head.get("kind")
        if self._sink is not None:
            self._sink.close()
            self._sink = None
            assert self._part is not None and self._final is not None
            os.replace(self._part, self._final)
            (self.logs if kind == "log" else self.files)[str(head["name"])] = self._final
        elif self._mem is not None:
            body = bytes(self._mem)
            if kind == "pid":
                self.pid = int(head.get("pid", 0)) or None
            elif kind == "status":
                with contextlib.suppress(ValueError):
                    self.status = json.loads(body)
                self.status_at = time.monotonic()
        if kind == "end":
            self.ended = True
        self._head = None
        self._mem = None
        self._part = self._final = None

    def abort(self) -> None:
        """Close and remove a half-written file after a broken stream."""
        if self._sink is not None:
            self._sink.close()
            self._sink = None
            if self._part is not None:
                self._part.unlink(missing_ok=True)


#: Exit status of the login shell when a module or setup line fails (before the interpreter runs).
SETUP_FAILED = 97


class _Active:
    """A probe in flight: where it runs and its process group, for cancel_all."""

    def __init__(self, job_dir: str) -> None:
        self.job_dir = job_dir
        self.reader: _RecordReader | None = None


class SSHCluster(Cluster):
    """A host over SSH: one connection, reused by every probe; limits enforced on the far side."""

    kind = "ssh"

    def __init__(
        self,
        name: str,
        config: SSHClusterConfig,
        base_dir: Path | None = None,
        transport: SSHTransport | None = None,
    ) -> None:
        super().__init__(name, config)
        self.cfg: SSHClusterConfig = config
        self.base_dir = base_dir
        self._transport = transport
        self._lock = threading.RLock()
        self._session: str | None = None
        self._staged: dict[str, str] = {}
        self._active: dict[int, _Active] = {}
        self._kept: list[str] = []
        self._cancelled = threading.Event()
        self._python_version: str | None = None
        self._connect_pending = 0.0
        self.python_argv = shlex.split(self.cfg.python) or ["python3"]

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def transport(self) -> SSHTransport:
        """The cluster's one SSH transport (created on first use; config errors raise UserError)."""
        if self._transport is None:
            self._transport = SSHTransport.from_settings(
                self.cfg, self.base_dir, command_timeout=self.cfg.command_timeout
            )
        return self._transport

    def open(self) -> None:
        """Connect and prepare the session folder; raises TransportError (InfraError) when unusable."""
        self._cancelled.clear()
        with self._lock:
            self._ensure_session()

    def close(self) -> None:
        """Stop what still runs, remove the session folder (but kept probes), disconnect."""
        self._cancel_active()
        with self._lock:
            session, kept = self._session, list(self._kept)
            self._session = None
            self._staged.clear()
        if session is not None and self._transport is not None:
            with contextlib.suppress(TransportError):
                self._remove_session(session, kept)
                self._remote(RemoteWork(kind="ssh-session", folder=session, state="done", keep=bool(kept)))
        if self._transport is not None:
            self._transport.close()

    def cancel_all(self) -> None:
        """Ctrl-C: kill the remote process group of every running probe and remove their folders."""
        self._cancelled.set()
        self._cancel_active()

    def _cancel_active(self) -> None:
        with self._lock:
            active = list(self._active.values())
            self._active.clear()
        if not active or self._transport is None:
            return
        # Closing the channels makes each launcher see its client gone: it kills the job's group
        # and removes the folder. The explicit kill below covers a launcher that is itself stuck.
        self._transport.close_channels()
        parts = []
        for a in active:
            pid = a.reader.pid if a.reader is not None else None
            if pid:
                parts.append(f"kill -KILL -- -{int(pid)} 2>/dev/null")
            parts.append(f"rm -rf -- {shlex.quote(a.job_dir)}")
        with contextlib.suppress(Exception):
            self.transport.run("; ".join(parts) + "; true", timeout=min(10.0, self.cfg.connect_timeout))

    def reap(self, leftovers: Sequence[RemoteWork]) -> list[tuple[RemoteWork, str]]:
        """Remove the session folders of dead clients (their launchers ended with the connection)."""
        # Only session folders this cluster makes (WORKDIR/tp-XXXXXXXX), and none kept on purpose.
        folders = [
            w
            for w in leftovers
            if w.kind == "ssh-session" and not w.keep and re.fullmatch(r"/[^\0]*/tp-[A-Za-z0-9]{8}", w.folder)
            and "/.." not in w.folder
        ]
        if not folders:
            return []
        try:
            res = self.transport.run(
                "cd / && rm -rf -- " + " ".join(shlex.quote(w.folder) for w in folders), timeout=60
            )
        except TransportError:
            return []
        if not res.ok:
            return []
        return [(w, f"removed SSH session folder {w.folder}") for w in folders]

    def _remove_session(self, session: str, kept: list[str]) -> None:
        q = shlex.quote(session)
        if not kept:
            cmd = f"rm -rf -- {q}"
        else:
            keep = " ".join(f"! -name {shlex.quote(os.path.basename(k))}" for k in kept)
            cmd = (
                f"find {q} -mindepth 1 -maxdepth 1 {keep} -exec rm -rf -- {{}} +; "
                f"rmdir -- {q} 2>/dev/null; true"
            )
        # The workdir itself stays (empty): it may be a folder the user made.
        self.transport.run(cmd, timeout=60)

    # -- session and staging ----------------------------------------------------------------

    def _ensure_session(self) -> float:
        """Connect if needed, create the session folder and stage the launcher (under the lock).

        Returns the seconds spent connecting in this call.
        """
        took = self.transport.connect()
        if took:
            self._connect_pending += took
        if self._session is not None:
            return took
        launcher = launcher_source()
        digest = hashlib.sha256(launcher).hexdigest()[:16]
        rel = f"shared/{digest}/{LAUNCHER_NAME}"
        # One round trip: make the workdir and a fresh session folder, write the launcher.
        w = quote_path(self.cfg.workdir)
        # A workdir another user owns or can write to is refused; a launcher a full disk cut
        # short goes with its session folder, which is never used.
        cmd = (
            f"umask 077 && mkdir -p -- {w} && cd -- {w} && {{ {remote_workdir_guard()}; }} "
            f"&& d=$(mktemp -d tp-XXXXXXXX) && cd -- \"$d\" && mkdir -p shared/{digest} "
            f"&& {{ cat > {rel} || {{ cd .. && rm -rf -- \"$d\"; exit 1; }}; }} && pwd -P"
        )
        res = self.transport.run(cmd, stdin=launcher, timeout=self.cfg.command_timeout)
        if res.exit_code == UNSAFE_WORKDIR:
            raise TransportError(
                f"{self.name}: refusing workdir {self.cfg.workdir}: {res.error_text()}",
                retryable=False,
                fix=f"set clusters.{self.name}.workdir to a folder that only the user owns and can write",
            )
        if not res.ok:
            raise TransportError(
                f"{self.name}: cannot create a folder in workdir {self.cfg.workdir!r}: "
                f"{res.error_text() or f'exit {res.exit_code}'}",
                retryable=False,
                fix=f"set clusters.{self.name}.workdir to a folder the user can write",
            )
        self._session = res.text().strip().splitlines()[-1]
        self._staged = {f"{digest}/{LAUNCHER_NAME}": f"{self._session}/{rel}"}
        # Journalled, so that the folder of a session whose client was killed is removed later.
        self._remote(RemoteWork(kind="ssh-session", folder=self._session))
        return took

    def _stage_shared(self, name: str, data: bytes) -> str:
        """Stage a shared file once per session under a content-hashed name; returns its path."""
        digest = hashlib.sha256(data).hexdigest()[:16]
        key = f"{digest}/{Path(name).name}"
        with self._lock:
            path = self._staged.get(key)
            if path is None:
                assert self._session is not None
                path = f"{self._session}/shared/{key}"
                self.transport.put(data, path, mode=0o600)
                self._staged[key] = path
        return path

    def _launcher_path(self) -> str:
        assert self._session is not None
        return next(p for k, p in self._staged.items() if k.endswith("/" + LAUNCHER_NAME))

    def _python_command(self) -> str:
        """The configured interpreter as a shell word list (a leading ~/ stays the remote home)."""
        return " ".join(quote_path(a) if i == 0 else shlex.quote(a) for i, a in enumerate(self.python_argv))

    def _setup_prefix(self) -> str:
        """The module and setup lines, run in the login shell before the interpreter is exec'd.

        Their output goes to stderr (stdout carries the launcher's records); a failing line stops
        the command, so a probe never runs in a half-prepared environment.
        """
        lines = [f"module load {m}" for m in self.cfg.modules] + list(self.cfg.setup)
        if not lines:
            return ""
        body = "\n".join(lines)
        # A failing line ends the shell through the EXIT trap, with a status of its own.
        return f"set -e\ntrap 'exit {SETUP_FAILED}' EXIT\n{{\n{body}\n}} >&2\ntrap - EXIT\nset +e\n"

    def _setup_failed(self, exit_code: int | None) -> bool:
        return exit_code == SETUP_FAILED and bool(self.cfg.modules or self.cfg.setup)

    def _resolve_argv(self, argv: list[str], shared: dict[str, str]) -> list[str]:
        out: list[str] = []
        for item in argv:
            if item == PYTHON:
                out.extend(self.python_argv)
                continue
            for name, path in shared.items():
                item = item.replace(shared_ref(name), path)
            out.append(item)
        return out

    # -- execution --------------------------------------------------------------------------

    def execute(self, job: JobSpec) -> JobResult:
        """Run one probe; infrastructure trouble is retried with backoff, then reported as a skip."""
        attempts = 1 + max(0, self.cfg.retries)
        result = JobResult()
        for attempt in range(attempts):
            if self._cancelled.is_set():
                result.infra_error = result.infra_error or "cancelled"
                return result
            result, retryable = self._execute_once(job)
            if result.infra_error is None:
                return result
            if not retryable:
                if result.cluster_lost:
                    result.infra_error = f"{result.infra_error} (not retried: it cannot get better by itself)"
                return result
            if attempt + 1 < attempts:
                self._cancelled.wait(self.cfg.retry_backoff * (2**attempt))
        if self._cancelled.is_set():
            result.cluster_lost = False  # Ctrl-C: the run says so itself
        if attempts > 1 and result.infra_error:
            # "problem (after N attempts); fix: ...": the count belongs to the problem.
            problem, sep, fix = result.infra_error.partition("; fix: ")
            result.infra_error = f"{problem} (after {attempts} attempts){sep}{fix}"
        return result

    def execute_many(self, jobs: Sequence[JobSpec]) -> list[JobResult]:
        """Several probes at once, each on its own channel of the one connection."""
        if len(jobs) <= 1:
            return [self.execute(job) for job in jobs]
        # Connect and stage once, before the threads race for it.
        with self._lock, contextlib.suppress(TransportError):
            self._ensure_session()
        with ThreadPoolExecutor(max_workers=min(len(jobs), 8)) as pool:
            return list(pool.map(self.execute, jobs))

    def _execute_once(self, job: JobSpec) -> tuple[JobResult, bool]:
        """One try: (result, whether an infra_error in it is worth retrying)."""
        result = JobResult(host=self.transport.host)
        local_dir = job.local_dir
        local_dir.mkdir(parents=True, exist_ok=True)
        t_start = time.monotonic()
        try:
            with self._lock:
                connect_here = self._ensure_session()
                # A connection opened by open() counts for the first probe that uses it.
                connect_s, self._connect_pending = self._connect_pending, 0.0
            shared = {name: self._stage_shared(name, data) for name, data in job.shared.items()}
            launcher = self._launcher_path()
            session = self._session
        except TransportError as exc:
            # The host cannot be reached, logged into or staged on: nothing about this probe.
            result.infra_error = str(exc)
            result.cluster_lost = not self._cancelled.is_set()
            return result, exc.retryable
        assert session is not None
        result.timings["connect"] = connect_s
        job_dir = f"{session}/{_safe_name(job.probe_id)}-{secrets.token_hex(3)}"
        result.remote_dir = job_dir
        argv = self._resolve_argv(job.argv, shared)
        limits = job.limits
        # No limit given: command_timeout bounds the job all the same (every command has one).
        time_s = limits.time_s if limits.time_s is not None else self.cfg.command_timeout
        names = list(job.files)
        header = {
            "dir": job_dir,
            "argv": argv,
            "env": job.env,
            "memory": limits.memory_bytes,
            "time": time_s,
            "cores": limits.cores,
            "fetch": job.fetch,
            "keep": job.keep_remote,
            "files": [[n, len(job.files[n])] for n in names],
        }
        # A Python literal on one line: the launcher reads it without importing json (see there).
        stdin = repr(header).encode() + b"\n" + b"".join(job.files[n] for n in names)
        # Imported, not run as a script: its bytecode is then cached (a few ms a probe).
        boot = (
            f"import sys; sys.path.insert(0, {os.path.dirname(launcher)!r}); "
            f"import {LAUNCHER_NAME[:-3]}; {LAUNCHER_NAME[:-3]}.run()"
        )
        # umask 077: the probe's folder, its payload and whatever the job writes stay private.
        command = f"umask 077; {self._setup_prefix()}exec {self._python_command()} -S -c {shlex.quote(boot)}"
        # The job's own limit is enforced remotely; this bound only catches a far side that hangs
        # (transfers included, hence the grace). A dead or frozen peer is noticed sooner, by
        # the transport's keepalives.
        bound = time_s + PROBE_GRACE_S
        reader = _RecordReader(local_dir, job.fetch)
        err = bytearray()

        def on_stderr(data: bytes) -> None:
            if len(err) < 65536:
                err.extend(data[: 65536 - len(err)])

        active = _Active(job_dir)
        active.reader = reader
        key = id(active)
        with self._lock:
            self._active[key] = active
        if self._cancelled.is_set():
            # cancel_all ran while this probe was staging: do not start it.
            with self._lock:
                self._active.pop(key, None)
            result.infra_error = "cancelled"
            return result, False
        t_send = time.monotonic()
        try:
            res = self.transport.run_streaming(command, reader.feed, on_stderr, timeout=bound, stdin=stdin)
        except TransportError as exc:
            with self._lock:
                self._active.pop(key, None)
            reader.abort()
            result.infra_error = str(exc)
            return result, exc.retryable and not self._cancelled.is_set()
        # Any other exception (Ctrl-C) leaves the probe in _active, for cancel_all and close to
        # kill its process group and remove its folder.
        with self._lock:
            self._active.pop(key, None)
        t_end = time.monotonic()
        if job.keep_remote:
            with self._lock:
                self._kept.append(job_dir)
                if self._session is not None:
                    self._remote(RemoteWork(kind="ssh-session", folder=self._session, keep=True))
        status = reader.status
        if res.timed_out and status is None:
            # The host still answers keepalives, yet the probe did not end: trying it again
            # would only wait as long again.
            result.infra_error = (
                f"{self.name}: no answer from the probe within its time limit and a grace of "
                f"{PROBE_GRACE_S:g}s ({bound:g}s)"
            )
            return result, False
        if status is None:
            return self._no_status(result, res.exit_code, bytes(err), reader, argv)
        self._fill(result, status, argv)
        run_s = float(status.get("process_s", 0.0))
        status_at = reader.status_at or t_end
        local_prep = max(0.0, (t_send - t_start) - connect_here)
        result.timings["stage_in"] = max(0.0, (status_at - t_send) - run_s) + local_prep
        result.timings["stage_out"] = max(0.0, t_end - status_at)
        for name, path in reader.files.items():
            result.files[name] = path
        out_log = local_dir / "stdout.log"
        err_log = local_dir / "stderr.log"
        for log in (out_log, err_log):
            if log.name not in reader.logs:
                log.write_bytes(b"")  # the job never started: empty logs, as on the local cluster
        result.stdout_path, result.stderr_path = out_log, err_log
        result.stdout_tail = read_tail(out_log)
        result.stderr_tail = read_tail(err_log)
        if not reader.ended and result.infra_error is None:
            result.infra_error = f"{self.name}: the output of the probe was cut short"
            return result, True
        return result, True

    def _fill(self, result: JobResult, status: dict[str, Any], argv: list[str]) -> None:
        """JobResult fields from the launcher's status record."""
        result.host = str(status.get("host") or result.host)
        if "stage_error" in status:
            result.launch_error = f"stage_in: {status['stage_error']}"
            return
        launch = status.get("launch_error")
        if isinstance(launch, dict):
            text = f"{launch.get('type')}: {launch.get('message')}"
            no_python = argv and argv[0] == self.python_argv[0]
            if no_python and launch.get("errno") in (errno.ENOENT, errno.EACCES):
                result.infra_error = (
                    f"{self.name}: cannot run {argv[0]} on {result.host}: {launch.get('message')}"
                )
            else:
                result.launch_error = text
            return
        result.exit_code = status.get("exit_code")
        result.signal = status.get("signal")
        result.timed_out = bool(status.get("timed_out"))
        if "launched_at" in status:
            # The far side's clock, like the runner's stamps it is compared with.
            result.timings["launched_at"] = float(status["launched_at"])
            result.timings["process"] = float(status.get("process_s", 0.0))

    def _no_status(
        self, result: JobResult, exit_code: int | None, err: bytes, reader: _RecordReader, argv: list[str]
    ) -> tuple[JobResult, bool]:
        """The launcher did not report: no interpreter, launcher gone, or the link dropped."""
        text = err.decode("utf-8", "replace").strip() or reader.garbage.decode("utf-8", "replace").strip()
        last = text.splitlines()[-1] if text else f"exit status {exit_code}"
        if self._setup_failed(exit_code):
            result.infra_error = (
                f"{self.name}: a setup line failed on the far side: {last}; "
                f"fix: correct clusters.{self.name}.modules / setup"
            )
            return result, False
        if exit_code == 127:
            result.infra_error = (
                f"{self.name}: cannot run {self.cfg.python!r} on the far side: {last}; "
                f"fix: set clusters.{self.name}.python to an interpreter there"
            )
            return result, False
        if exit_code == 1 and f"No module named '{LAUNCHER_NAME[:-3]}'" in text:
            # Someone removed the session folder: start a new session on the next try.
            with self._lock:
                self._session = None
                self._staged.clear()
            result.infra_error = f"{self.name}: the staged launcher disappeared ({last})"
            return result, True
        result.infra_error = f"{self.name}: the launcher failed: {last}"
        return result, True

    # -- preflight --------------------------------------------------------------------------

    def preflight(self) -> list[Check]:
        """Reachability and auth, Python, cloudpickle (and whether it loads our pickles), workdir, latency."""
        checks: list[Check] = []
        try:
            t0 = time.monotonic()
            self.transport.connect()
            took = time.monotonic() - t0
        except TransportError as exc:
            fix = exc.fix or "check host, port and keys in probe.toml"
            return [Check(name="connect", status="fail", detail=exc.problem, fix=fix)]
        checks.append(
            Check(
                name="connect",
                status="ok",
                detail=f"{self.transport.host}: connected and authenticated"
                + (f" in {took * 1000:.0f} ms" if took > 0.0005 else " (connection reused)"),
            )
        )
        try:
            checks.extend(self._check_python())
            checks.extend(self._check_workdir())
            checks.append(self._check_latency())
        except TransportError as exc:
            checks.append(Check(name="connect", status="fail", detail=exc.problem, fix=exc.fix))
        return checks

    def _check_python(self) -> list[Check]:
        res = self.transport.run(
            f"{self._setup_prefix()}exec {self._python_command()} -",
            stdin=pickle_check.check_script().encode(),
            timeout=60,
        )
        facts, outcome = pickle_check.parse_output(res.text())
        if facts is None:
            last = (res.error_text().splitlines() or [f"exit status {res.exit_code}"])[-1]
            if self._setup_failed(res.exit_code):
                return [
                    Check(
                        name="setup",
                        status="fail",
                        detail=f"a module or setup line fails on the far side: {last}",
                        fix=f"correct clusters.{self.name}.modules / setup (they run before {self.cfg.python})",
                    )
                ]
            return [
                Check(
                    name="python",
                    status="fail",
                    detail=f"{self.cfg.python} does not run on the far side: {last}",
                    fix=f"set clusters.{self.name}.python to an interpreter there (e.g. /usr/bin/python3)",
                )
            ]
        self._python_version = str(facts.get("python"))
        self._far_side = {
            "python": self._python_version,
            "cloudpickle": str(facts.get("cloudpickle")),
            "hostname": str(facts.get("hostname")),
        }
        # paramiko does not pass on the signal that ended a command: a crash shows as no status.
        ended = f"exit status {res.exit_code}" if res.exit_code is not None else "killed by a signal"
        return pickle_check.version_checks(
            facts, outcome, python_label=str(self.cfg.python), where="there", ended=ended
        )

    def _check_workdir(self) -> list[Check]:
        w = quote_path(self.cfg.workdir)
        res = self.transport.run(
            f"umask 077 && mkdir -p -- {w} && cd -- {w} && {{ {remote_workdir_guard()}; }} "
            f"&& t=$(mktemp .tp-check-XXXXXXXX) && rm -f -- \"$t\" && df -Pk . | tail -n 1",
            timeout=60,
        )
        if res.exit_code == UNSAFE_WORKDIR:
            return [
                Check(
                    name="workdir",
                    status="fail",
                    detail=f"{self.cfg.workdir} there is {res.error_text()}",
                    fix=f"set clusters.{self.name}.workdir to a folder that only the user owns and can write",
                )
            ]
        if not res.ok:
            return [
                Check(
                    name="workdir",
                    status="fail",
                    detail=f"{self.cfg.workdir} is not writable there: {res.error_text() or res.exit_code}",
                    fix=f"set clusters.{self.name}.workdir to a folder the user can write",
                )
            ]
        checks = [Check(name="workdir", status="ok", detail=f"{self.cfg.workdir} is writable")]
        fields = res.text().split()
        try:
            free = int(fields[3]) * 1024
        except (IndexError, ValueError):
            return checks
        checks.append(
            Check(
                name="disk",
                status="ok" if free >= MIN_FREE_BYTES else "warn",
                detail=f"{free / 1024**2:.0f} MB free in {self.cfg.workdir}",
                fix=None if free >= MIN_FREE_BYTES else "free some space there or set a different workdir",
            )
        )
        return checks

    def _check_latency(self) -> Check:
        times = [self.transport.run("true", timeout=30).duration_s for _ in range(5)]
        rtt = statistics.median(times)
        return Check(
            name="latency",
            status="ok" if rtt <= SLOW_RTT_S else "warn",
            detail=f"round trip {rtt * 1000:.1f} ms (median of 5 commands on the open connection)",
            fix=None if rtt <= SLOW_RTT_S else "probes will be slow; a closer host or a faster link helps",
        )

    def enforcement(self, limits: Limits) -> dict[str, str]:
        """Memory by RLIMIT_AS and cores by affinity, set by the launcher; time by the launcher."""
        return enforcers(limits, memory="RLIMIT_AS", time="runner", cores="CPU affinity")

    def ssh_endpoint(self) -> SSHEndpoint:
        """Where this cluster's SSH connection goes (the ssh config applied)."""
        return SSHEndpoint.of(self.config, self.base_dir)

    def node_cpus(self) -> int | None:
        """CPUs the host offers (`getconf _NPROCESSORS_ONLN`)."""
        try:
            res = self.transport.run("getconf _NPROCESSORS_ONLN", timeout=30)
        except TransportError:
            return None
        text = res.text().strip()
        return int(text) if res.ok and text.isdigit() else None

    def describe(self) -> dict[str, str]:
        """Kind, host and interpreter, for report headers."""
        facts = {"kind": self.kind, "host": self.transport.host, "python": self.cfg.python}
        if self._python_version:
            facts["python_version"] = self._python_version
        return facts
