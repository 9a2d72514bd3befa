"""SSH clusters: probes on a host reached over one reused SSH connection.

Dispatch of one probe is ONE command on the open connection (one round trip): the launcher
(`remote/launcher.py`, staged once per session and imported, so that its bytecode is cached) reads
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
JobResult.infra_error. `execute` tries a probe up to 1 + `retries` times, with exponential
backoff from `retry_backoff` seconds (clusters/lifecycle.py), and reconnects before each try;
errors that cannot get better (a changed host key, an auth failure, no interpreter) are not retried.

When the host itself is gone - the last try could not even connect (or stage), or the error
cannot get better - the result is marked `cluster_lost`: the run stops there, to be resumed,
instead of skipping level after level of a host that is down. Trouble of one probe on a host
that still answers (its output cut short, its launcher failing) stays a skip.

A probe in flight waits at most its time limit plus PROBE_GRACE_S for its answer (the far side
kills the job at the limit; the grace covers sending its files and fetching its results). A
frozen host is noticed sooner, by keepalives (ssh_transport.KEEPALIVE_INTERVAL_S).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import secrets
import shlex
import threading
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from threshold_probe.clusters.base import Check, Cluster, SSHEndpoint, enforcers
from threshold_probe.clusters.jobpaths import JobPaths, read_tail, resolve_argv, safe_name
from threshold_probe.clusters.launcher_client import RecordReader, cached_script_argv, fill_result, launcher_stdin
from threshold_probe.clusters.lifecycle import JobHooks, JobTry, Retry, run_job
from threshold_probe.clusters.ssh_preflight import check_latency, check_python, check_workdir
from threshold_probe.clusters.ssh_spare import SpareLauncher
from threshold_probe.clusters.ssh_transport import SSHTransport
from threshold_probe.clusters.staging import UNSAFE_WORKDIR, remote_workdir_guard
from threshold_probe.clusters.transport import CommandResult, TransportError, quote_path
from threshold_probe.config import ClusterConfigBase, SSHClusterConfig
from threshold_probe.models import JobResult, JobSpec, Limits, RemoteWork
from threshold_probe.remote import launcher_source

LAUNCHER_NAME = JobPaths.LAUNCHER
#: Seconds a probe in flight may take beyond its time limit before it is given up.
PROBE_GRACE_S = 30.0


#: Exit status of the login shell when a module or setup line fails (before the interpreter runs).
SETUP_FAILED = 97


class _Active:
    """A probe in flight: where it runs and its process group, for cancel_all."""

    def __init__(self, job_dir: str) -> None:
        self.job_dir = job_dir
        self.reader: RecordReader | None = None


@dataclass
class _SSHTry(JobTry):
    """One try over SSH: the session, the command and its stdin, and what came back."""

    session: str = ""
    t_start: float = 0.0
    connect_here: float = 0.0
    argv: list[str] = field(default_factory=list)
    carried: list[tuple[str, bytes]] = field(default_factory=list)
    command: str = ""
    stdin: bytes = b""
    bound: float = 0.0
    reader: RecordReader | None = None
    active: _Active | None = None
    err: bytearray = field(default_factory=bytearray)
    res: CommandResult | None = None
    t_send: float = 0.0
    t_end: float = 0.0


class SSHCluster(Cluster, JobHooks[_SSHTry]):
    """A host over SSH: one connection, reused by every probe; limits enforced on the far side."""

    kind = "ssh"
    config_model = SSHClusterConfig
    config: SSHClusterConfig

    def __init__(
        self,
        name: str,
        config: SSHClusterConfig,
        base_dir: Path | None = None,
        transport: SSHTransport | None = None,
    ) -> None:
        super().__init__(name, config)
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
        #: A launcher started ahead of the next probe (see ssh_spare.py).
        self._spare = SpareLauncher(lambda: self.transport)
        self.python_argv = shlex.split(self.config.python) or ["python3"]

    @classmethod
    def create(cls, name: str, config: ClusterConfigBase, *, base_dir: Path | None = None) -> SSHCluster:
        """The cluster of its probe.toml table; an ssh_config or identity file is relative to base_dir."""
        assert isinstance(config, SSHClusterConfig)
        return cls(name, config, base_dir=base_dir)

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def transport(self) -> SSHTransport:
        """The cluster's one SSH transport (created on first use; config errors raise UserError)."""
        if self._transport is None:
            self._transport = SSHTransport.from_settings(
                self.config, self.base_dir, command_timeout=self.config.command_timeout
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
        self._spare.drop()
        if session is not None and self._transport is not None:
            with contextlib.suppress(TransportError):
                self._remove_session(session, kept)
                self._remote(RemoteWork(kind="ssh-session", folder=session, state="done", keep=bool(kept)))
        if self._transport is not None:
            self._transport.close()

    def cancel_all(self) -> None:
        """Ctrl-C: kill the remote process group of every running probe and remove their folders."""
        self._cancelled.set()
        self._spare.drop()
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
            self.transport.run("; ".join(parts) + "; true", timeout=min(10.0, self.config.connect_timeout))

    def reap(self, leftovers: Sequence[RemoteWork]) -> list[tuple[RemoteWork, str]]:
        """Remove the session folders of dead clients (their launchers ended with the connection)."""
        # Only session folders this cluster makes (WORKDIR/tp-XXXXXXXX), and none kept on purpose.
        folders = [
            w
            for w in leftovers
            if w.kind == "ssh-session"
            and not w.keep
            and re.fullmatch(r"/[^\0]*/tp-[A-Za-z0-9]{8}", w.folder)
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
            cmd = f"find {q} -mindepth 1 -maxdepth 1 {keep} -exec rm -rf -- {{}} +; rmdir -- {q} 2>/dev/null; true"
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
        w = quote_path(self.config.workdir)
        # A workdir another user owns or can write to is refused; a launcher a full disk cut
        # short goes with its session folder, which is never used.
        cmd = (
            f"umask 077 && mkdir -p -- {w} && cd -- {w} && {{ {remote_workdir_guard()}; }} "
            f'&& d=$(mktemp -d tp-XXXXXXXX) && cd -- "$d" && mkdir -p shared/{digest} '
            f'&& {{ cat > {rel} || {{ cd .. && rm -rf -- "$d"; exit 1; }}; }} && pwd -P'
        )
        res = self.transport.run(cmd, stdin=launcher, timeout=self.config.command_timeout)
        if res.exit_code == UNSAFE_WORKDIR:
            raise TransportError(
                f"{self.name}: refusing workdir {self.config.workdir}: {res.error_text()}",
                retryable=False,
                fix=f"set clusters.{self.name}.workdir to a folder that only the user owns and can write",
            )
        if not res.ok:
            raise TransportError(
                f"{self.name}: cannot create a folder in workdir {self.config.workdir!r}: "
                f"{res.error_text() or f'exit {res.exit_code}'}",
                retryable=False,
                fix=f"set clusters.{self.name}.workdir to a folder the user can write",
            )
        self._session = res.text().strip().splitlines()[-1]
        self._staged = {f"{digest}/{LAUNCHER_NAME}": f"{self._session}/{rel}"}
        # Journalled, so that the folder of a session whose client was killed is removed later.
        self._remote(RemoteWork(kind="ssh-session", folder=self._session))
        return took

    def _stage_shared(self, name: str, data: bytes) -> tuple[str, bool]:
        """Where a shared file is staged (once per session, under a content-hashed name), and
        whether it is there yet.

        A file not there yet travels in the probe's own stdin (the launcher writes it before the
        job's files), so staging costs no round trip of its own; once a probe that carried it
        has run, it is known to be there and later probes only name it.
        """
        digest = hashlib.sha256(data).hexdigest()[:16]
        key = f"{digest}/{Path(name).name}"
        with self._lock:
            assert self._session is not None
            there = key in self._staged
            return self._staged.get(key) or f"{self._session}/shared/{key}", there

    def _staged_now(self, session: str, paths: Sequence[str]) -> None:
        """A probe that carried these shared files ran: later probes of the session only name them."""
        with self._lock:
            if self._session != session:
                return
            for path in paths:
                self._staged[path[len(session) + len("/shared/") :]] = path

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
        lines = [f"module load {m}" for m in self.config.modules] + list(self.config.setup)
        if not lines:
            return ""
        body = "\n".join(lines)
        # A failing line ends the shell through the EXIT trap, with a status of its own.
        return f"set -e\ntrap 'exit {SETUP_FAILED}' EXIT\n{{\n{body}\n}} >&2\ntrap - EXIT\nset +e\n"

    def _setup_failed(self, exit_code: int | None) -> bool:
        return exit_code == SETUP_FAILED and bool(self.config.modules or self.config.setup)

    # -- execution --------------------------------------------------------------------------

    def execute(self, job: JobSpec) -> JobResult:
        """Run one probe; infrastructure trouble is retried with backoff, then reported as a skip."""
        retry = Retry(self.config.retries, self.config.retry_backoff)
        return run_job(self, job, retry, self._cancelled)

    def execute_many(self, jobs: Sequence[JobSpec]) -> list[JobResult]:
        """Several probes at once, each on its own channel of the one connection."""
        if len(jobs) <= 1:
            return [self.execute(job) for job in jobs]
        # Connect and stage once, before the threads race for it.
        with self._lock, contextlib.suppress(TransportError):
            self._ensure_session()
        with ThreadPoolExecutor(max_workers=min(len(jobs), 8)) as pool:
            return list(pool.map(self.execute, jobs))

    def new_try(self, job: JobSpec) -> _SSHTry:
        """A try of `job` on this cluster's host."""
        return _SSHTry(job, JobResult(host=self.transport.host))

    def stage(self, t: _SSHTry) -> None:
        """Connect and make the session if needed, then build the one command and its stdin.

        Nothing of the probe travels yet: its files and the shared files not staged before ride
        in the stdin of the round trip that start sends.
        """
        job, result = t.job, t.result
        job.local_dir.mkdir(parents=True, exist_ok=True)
        t.t_start = time.monotonic()
        try:
            with self._lock:
                t.connect_here = self._ensure_session()
                # A connection opened by open() counts for the first probe that uses it.
                connect_s, self._connect_pending = self._connect_pending, 0.0
            staging = {name: self._stage_shared(name, data) for name, data in job.shared.items()}
            launcher = self._launcher_path()
            session = self._session
        except TransportError as exc:
            # The host cannot be reached, logged into or staged on: nothing about this probe.
            result.infra_error = str(exc)
            result.cluster_lost = not self._cancelled.is_set()
            t.stop(retryable=exc.retryable)
            return
        assert session is not None
        t.session = session
        shared = {name: path for name, (path, _) in staging.items()}
        t.carried = [(path, job.shared[name]) for name, (path, there) in staging.items() if not there]
        result.timings["connect"] = connect_s
        job_dir = f"{session}/{safe_name(job.probe_id)}-{secrets.token_hex(3)}"
        result.remote_dir = job_dir
        t.argv = argv = resolve_argv(job.argv, self.python_argv, shared)
        limits = job.limits
        # No limit given: command_timeout bounds the job all the same (every command has one).
        time_s = limits.time_s if limits.time_s is not None else self.config.command_timeout
        t.stdin = launcher_stdin(
            job_dir=job_dir,
            argv=cached_script_argv(argv, self.python_argv, set(shared.values())),
            job=job,
            time_s=time_s,
            carried=t.carried,
        )
        # Imported, not run as a script: its bytecode is then cached (a few ms a probe).
        boot = (
            f"import sys; sys.path.insert(0, {os.path.dirname(launcher)!r}); "
            f"import {LAUNCHER_NAME[:-3]}; {LAUNCHER_NAME[:-3]}.run()"
        )
        # umask 077: the probe's folder, its payload and whatever the job writes stay private.
        t.command = f"umask 077; {self._setup_prefix()}exec {self._python_command()} -S -c {shlex.quote(boot)}"
        # The job's own limit is enforced remotely; this bound only catches a far side that hangs
        # (transfers included, hence the grace). A dead or frozen peer is noticed sooner, by
        # the transport's keepalives.
        t.bound = time_s + PROBE_GRACE_S
        t.reader = RecordReader(job.local_dir, job.fetch)
        t.active = _Active(job_dir)
        t.active.reader = t.reader

    def start(self, t: _SSHTry) -> None:
        """The one round trip: the launcher stages, starts and watches the job under its limits
        on the far side and streams back its status, fetched files and logs (so watch has
        nothing left to do, and fetch reads what came back)."""
        assert t.reader is not None and t.active is not None
        reader, result, key = t.reader, t.result, id(t.active)

        def on_stderr(data: bytes) -> None:
            if len(t.err) < 65536:
                t.err.extend(data[: 65536 - len(t.err)])

        with self._lock:
            self._active[key] = t.active
        if self._cancelled.is_set():
            # cancel_all ran while this probe was staging: do not start it.
            with self._lock:
                self._active.pop(key, None)
            result.infra_error = "cancelled"
            t.stop(retryable=False)
            return
        t.t_send = time.monotonic()
        begun = self._spare.take(t.session, t.command)
        try:
            t.res = self.transport.run_streaming(
                t.command, reader.feed, on_stderr, timeout=t.bound, stdin=t.stdin, begun=begun
            )
        except TransportError as exc:
            with self._lock:
                self._active.pop(key, None)
            reader.abort()
            result.infra_error = str(exc)
            t.stop(retryable=exc.retryable and not self._cancelled.is_set())
            return
        # Any other exception (Ctrl-C) leaves the probe in _active, for cancel_all and close to
        # kill its process group and remove its folder.
        with self._lock:
            self._active.pop(key, None)
        t.t_end = time.monotonic()
        if t.job.keep_remote:
            with self._lock:
                self._kept.append(t.active.job_dir)
                if self._session is not None:
                    self._remote(RemoteWork(kind="ssh-session", folder=self._session, keep=True))

    def watch(self, t: _SSHTry) -> None:
        """Nothing: the launcher watches the job on the far side, within start's round trip."""

    def fetch(self, t: _SSHTry) -> None:
        """The result from the records start's round trip brought back: status, files, logs."""
        assert t.reader is not None and t.res is not None
        job, result, reader, res, session = t.job, t.result, t.reader, t.res, t.session
        status = reader.status
        if res.timed_out and status is None:
            # The host still answers keepalives, yet the probe did not end: trying it again
            # would only wait as long again.
            result.infra_error = (
                f"{self.name}: no answer from the probe within its time limit and a grace of "
                f"{PROBE_GRACE_S:g}s ({t.bound:g}s)"
            )
            t.stop(retryable=False)
            return
        if status is None:
            _, retryable = self._no_status(result, res.exit_code, bytes(t.err), reader, t.argv)
            t.stop(retryable=retryable)
            return
        if status.get("session_gone"):
            # Someone removed the session folder under a launcher that was already waiting.
            with self._lock:
                if self._session == session:
                    self._session = None
                    self._staged.clear()
            result.infra_error = f"{self.name}: the session folder {session} disappeared"
            return
        if not self._cancelled.is_set():
            self._spare.start(session, t.command)
        if t.carried and "stage_error" not in status:
            self._staged_now(session, [path for path, _ in t.carried])
        fill_result(result, status, t.argv, self.python_argv, self.name)
        run_s = float(status.get("process_s", 0.0))
        status_at = reader.status_at or t.t_end
        local_prep = max(0.0, (t.t_send - t.t_start) - t.connect_here)
        result.timings["stage_in"] = max(0.0, (status_at - t.t_send) - run_s) + local_prep
        result.timings["stage_out"] = max(0.0, t.t_end - status_at)
        for name, path in reader.files.items():
            result.files[name] = path
        paths = JobPaths.local(job.local_dir)
        out_log, err_log = paths.stdout, paths.stderr
        for log in (out_log, err_log):
            if log.name not in reader.logs:
                log.write_bytes(b"")  # the job never started: empty logs, as on the local cluster
        result.stdout_path, result.stderr_path = out_log, err_log
        result.stdout_tail = read_tail(out_log)
        result.stderr_tail = read_tail(err_log)
        if not reader.ended and result.infra_error is None:
            result.infra_error = f"{self.name}: the output of the probe was cut short"

    def clean(self, t: _SSHTry) -> None:
        """Nothing: the launcher removes the probe's folder (unless kept) before its round trip
        ends, and a probe interrupted in flight stays in `_active`, where cancel_all and close
        kill its process group and remove its folder."""

    def _no_status(
        self, result: JobResult, exit_code: int | None, err: bytes, reader: RecordReader, argv: list[str]
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
                f"{self.name}: cannot run {self.config.python!r} on the far side: {last}; "
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
            checks.extend(check_workdir(self.transport, self.config.workdir, self.name))
            checks.append(check_latency(self.transport))
        except TransportError as exc:
            checks.append(Check(name="connect", status="fail", detail=exc.problem, fix=exc.fix))
        return checks

    def _check_python(self) -> list[Check]:
        checks, far_side = check_python(
            self.transport,
            f"{self._setup_prefix()}exec {self._python_command()} -",
            name=self.name,
            python=self.config.python,
            setup_failed=self._setup_failed,
        )
        if far_side is not None:
            self._python_version = far_side["python"]
            self._far_side = far_side
        return checks

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
        facts = {"kind": self.kind, "host": self.transport.host, "python": self.config.python}
        if self._python_version:
            facts["python_version"] = self._python_version
        return facts
