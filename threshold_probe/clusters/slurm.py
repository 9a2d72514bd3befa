"""SLURM clusters: real sbatch, a shared watcher, job arrays, faithful final states.

The cluster talks to SLURM only through a Transport: LocalTransport for a SLURM on this machine
(`host` unset), SSHTransport for a login node. One probe costs a few round trips:

1. stage and submit: one command extracts a tar of the job folder and the shared files (the
   runner), moves each shared file to its content-hashed name unless a good copy is already
   there (see clusters/staging.py), and runs `sbatch --parsable`, all under umask 077;
2. watch: the cluster's one watcher asks `squeue` about every live job at once per poll, then
   `scontrol show job -o` (and `sacct`/`sacct -c`) once they are final;
3. fetch: one command streams back a tar of meta.json, result.json and the log tails, then
   removes the job folder (unless keep_remote).

A sweep's levels go out as one `sbatch --array=0-(N-1)[%K]`; each array task finds its job
folder from SLURM_ARRAY_TASK_ID. A job that sbatch refuses becomes a `scheduler` failure with
sbatch's own line; a controller that cannot be reached becomes an infrastructure error (a skip).
"""

from __future__ import annotations

import contextlib
import io
import secrets
import shlex
import socket
import tarfile
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, cast

from threshold_probe.clusters import pickle_check
from threshold_probe.clusters.base import Check, Cluster, SSHEndpoint, enforcers
from threshold_probe.clusters.local import read_tail
from threshold_probe.clusters.slurm_script import (
    STARTED_NAME,
    STDERR_NAME,
    STDOUT_NAME,
    WATCHDOG_MARK,
    ScriptTask,
    effective_limits,
    render_job_script,
    runner_enforces_time,
)
from threshold_probe.clusters.slurm_state import (
    REJECTED,
    JobKey,
    base_state,
    controller_down,
    elapsed_s,
    exceeded_peak_mb,
    memory_mb,
    parse_exit_code,
    sbatch_error_line,
    scan_evidence,
    slurm_timestamp,
)
from threshold_probe.clusters.slurm_watch import SlurmWatcher, Ticket, record_of
from threshold_probe.clusters.staging import (
    WorkdirError,
    content_digest,
    remote_stage_commands,
    remote_verify_script,
)
from threshold_probe.clusters.transport import (
    CommandResult,
    LocalTransport,
    SSHSettings,
    SSHTransport,
    Transport,
    TransportError,
    quote_path,
)
from threshold_probe.config import SlurmClusterConfig
from threshold_probe.errors import InfraError
from threshold_probe.interrupts import held
from threshold_probe.models import PYTHON, JobResult, JobSpec, Limits, RemoteWork, shared_ref

#: How much of the end of each log the fetch brings back (the whole log stays on the far side
#: with keep_remote). Enough for any traceback and for SLURM's own kill messages.
LOG_TAIL_BYTES = 2 * 1024**2
#: Folder (in a job folder) where the fetch puts the log tails before streaming them.
_FETCH_DIR = ".tp-fetch"
#: Exit status of the stage-and-submit command when staging (not sbatch) failed.
_STAGE_FAILED = 97
#: How long cancel_all waits for cancelled jobs to leave the queue.
CANCEL_WAIT_S = 90.0
#: Scheduler facts copied into JobResult.scheduler, in this order.
SCHEDULER_KEYS = ("JobId", "JobState", "Reason", "ExitCode", "NodeList", "MaxRSS", "Elapsed")


@dataclass
class _Batch:
    """One submission: a single job or an array, its remote folders and its tickets."""

    jobs: list[JobSpec]
    name: str
    base: str  # absolute remote folder of the submission
    folders: list[str]  # absolute remote job folder of each job
    rel: list[str]  # each job folder relative to `base` ("." for a single job)
    job_id: str = ""
    submit_stamp: float | None = None
    submitted_at: float = 0.0
    tickets: list[Ticket] = field(default_factory=list)
    stage_in_s: float = 0.0
    connect_s: float = 0.0
    #: Names this submission's shared files while they are unpacked (`.<name>.<token>.part`).
    token: str = field(default_factory=lambda: secrets.token_hex(4))

    @property
    def is_array(self) -> bool:
        return len(self.jobs) > 1


def _safe_name(text: str) -> str:
    keep = "".join(c if c.isalnum() or c in "-_." else "_" for c in text)
    return keep[:48] or "job"


def _stage_error_line(err: str) -> str:
    """The line of a failed unpack that says why (tar's last line only says that it failed)."""
    lines = [line.strip() for line in err.splitlines() if line.strip()]
    for line in lines:
        if "No space left" in line or "quota" in line.lower():
            return line
    meaningful = [line for line in lines if "Exiting with failure status" not in line]
    return (meaningful or lines or ["tar failed"])[-1]


class SlurmCluster(Cluster):
    """A SLURM cluster: through its login node over SSH, or on this machine."""

    kind = "slurm"
    #: Jobs wait in a queue: probes of one round go out together (a job array).
    concurrent = True

    def __init__(self, name: str, config: SlurmClusterConfig, base_dir: Path | None = None) -> None:
        super().__init__(name, config)
        self.cfg: SlurmClusterConfig = config
        self.base_dir = base_dir
        self._transport: Transport | None = None
        self._workdir: str | None = None
        self._unreported_connect_s = 0.0
        self._lock = threading.Lock()
        self._transport_lock = threading.Lock()
        self._watcher: SlurmWatcher | None = None
        #: Job ids this object submitted that may still be live (for cancel_all).
        self._active: set[str] = set()
        #: Values of `scontrol show config` read so far (None: could not be read).
        self._slurm_config: dict[str, str | None] = {}
        #: Every sbatch this object ran, and how many jobs each held (tests and benchmark read it).
        self.submissions: list[tuple[str, int]] = []

    def ssh_endpoint(self) -> SSHEndpoint | None:
        """Where the login node's SSH connection goes; None for SLURM on this machine."""
        return SSHEndpoint.of(self.config, self.base_dir) if self.config.host else None

    # -- plumbing -------------------------------------------------------------------------------

    @property
    def transport(self) -> Transport:
        """The transport to the submit host, made on first use."""
        with self._transport_lock:
            if self._transport is None:
                if self.cfg.host is None:
                    self._transport = LocalTransport()
                else:
                    # host is set here, which is all SSHSettings asks beyond the shared fields.
                    self._transport = SSHTransport.from_settings(
                        cast("SSHSettings", self.cfg),
                        base_dir=self.base_dir,
                        command_timeout=self.cfg.command_timeout,
                    )
            return self._transport

    def _env_prefix(self) -> str:
        # Every SLURM command sees the configured SLURM_CONF, on a login node as here.
        if self.cfg.slurm_conf:
            return f"export SLURM_CONF={quote_path(self.cfg.slurm_conf)}; "
        return ""

    def _sh(
        self,
        command: str,
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,
        stdout_path: Path | None = None,
    ) -> CommandResult:
        """Run a shell command on the submit host with SLURM's environment."""
        return self.transport.run(
            self._env_prefix() + command,
            stdin=stdin,
            timeout=timeout if timeout is not None else self.cfg.command_timeout,
            stdout_path=stdout_path,
        )

    @property
    def watcher(self) -> SlurmWatcher:
        """The cluster's one watcher (made on first use)."""
        with self._lock:
            if self._watcher is None:
                self._watcher = SlurmWatcher(
                    lambda cmd: self._sh(cmd),
                    poll_interval=self.cfg.poll_interval,
                    max_poll_interval=self.cfg.max_poll_interval,
                    controller_timeout=self.cfg.controller_timeout,
                )
            return self._watcher

    def _resolve_workdir(self) -> str:
        if self._workdir is not None:
            return self._workdir
        if isinstance(self.transport, SSHTransport):
            # Counted in the first probe's timings: later probes reuse the connection.
            self._unreported_connect_s += self.transport.connect()
        res = self.transport.run('printf "%s" "$HOME"', timeout=self.cfg.command_timeout)
        home = res.text().strip()
        if not res.ok or not home.startswith("/"):
            raise InfraError(f"{self.name}: cannot find the home folder on {self.transport.host}")
        wd = self.cfg.workdir
        if wd == "~":
            wd = home
        elif wd.startswith("~/"):
            wd = f"{home}/{wd[2:]}"
        elif not wd.startswith("/"):
            wd = f"{home}/{wd}"
        wd = wd.rstrip("/") or "/"
        self._check_workdir(wd)
        self._workdir = wd
        return self._workdir

    def _check_workdir(self, wd: str) -> None:
        """Create the workdir private; WorkdirError when another user owns it or others can write to it."""
        q = shlex.quote(wd)
        res = self.transport.run(
            f"umask 077; mkdir -p -- {q} && stat -L -c '%u %a %U' -- {q} && id -u && id -un",
            timeout=self.cfg.command_timeout,
        )
        lines = res.text().split("\n")
        if not res.ok or len(lines) < 3:
            raise WorkdirError(f"{self.name}: cannot create workdir {wd}: {res.error_text() or res.exit_code}")
        try:
            uid_text, mode_text, owner = lines[0].split(maxsplit=2)
            owner_uid, mode, me = int(uid_text), int(mode_text, 8), int(lines[1])
        except ValueError:
            raise WorkdirError(f"{self.name}: cannot read the owner of workdir {wd}: {lines[0]!r}") from None
        if owner_uid != me:
            raise WorkdirError(f"{self.name}: refusing workdir {wd}: owned by {owner}, not by {lines[2].strip()}")
        if mode & 0o022:
            raise WorkdirError(f"{self.name}: refusing workdir {wd}: writable by others (mode {mode:o})")

    def open(self) -> None:
        """Connect (SSH) and find the workdir; raises InfraError when the host is unusable."""
        self._resolve_workdir()

    def close(self) -> None:
        """Stop the watcher and release the connection; safe to call twice."""
        if self._watcher is not None:
            self._watcher.stop()
        if self._transport is not None:
            self._transport.close()

    # -- building a submission --------------------------------------------------------------------

    def _shared_path(self, name: str, data: bytes) -> str:
        return f"{self._resolve_workdir()}/shared/{content_digest(data)}/{Path(name).name}"

    def _resolve_argv(self, job: JobSpec, shared: dict[str, str]) -> list[str]:
        out = []
        for item in job.argv:
            if item == PYTHON:
                out.append(self.cfg.python)
                continue
            for name, path in shared.items():
                item = item.replace(shared_ref(name), path)
            out.append(item)
        return out

    def _new_batch(self, jobs: list[JobSpec]) -> _Batch:
        wd = self._resolve_workdir()
        token = secrets.token_hex(3)
        if len(jobs) == 1:
            name = f"{_safe_name(jobs[0].probe_id)}-{token}"
            base = f"{wd}/jobs/{name}"
            return _Batch(jobs, name, base, [base], ["."])
        name = f"array-{_safe_name(jobs[0].probe_id)}-{len(jobs)}-{token}"
        base = f"{wd}/jobs/{name}"
        rel = [str(i) for i in range(len(jobs))]
        return _Batch(jobs, name, base, [f"{base}/{r}" for r in rel], rel)

    @staticmethod
    def _job_name(batch: _Batch) -> str:
        if batch.is_array:
            return f"tp-{batch.name}"
        return f"tp-{_safe_name(batch.jobs[0].probe_id)}"

    def job_script(self, batch: _Batch, limits: Limits, argvs: list[list[str]]) -> str:
        """The batch script of a submission (see slurm_script)."""
        tasks = [
            ScriptTask(folder=folder, argv=argv, env={"PYTHONUNBUFFERED": "1", **job.env})
            for folder, argv, job in zip(batch.folders, argvs, batch.jobs, strict=True)
        ]
        job_name = self._job_name(batch)
        if batch.is_array:
            output, error = f"{batch.base}/%a/{STDOUT_NAME}", f"{batch.base}/%a/{STDERR_NAME}"
        else:
            output, error = f"{batch.base}/{STDOUT_NAME}", f"{batch.base}/{STDERR_NAME}"
        return render_job_script(
            self.cfg,
            limits,
            tasks,
            job_name=job_name,
            output=output,
            error=error,
            array_throttle=self.cfg.array_throttle if batch.is_array else None,
        )

    def _archive(self, batch: _Batch, limits: Limits) -> tuple[bytes, list[str]]:
        """A tar (paths relative to the workdir) of every job folder, the script and the shared files.

        Shared files go in under a temporary name of this submission; the returned shell lines
        (run in the workdir) put each in place unless a good copy is already there. So a copy
        that a full disk cut short, or that someone changed, is never used again.
        """
        wd = self._resolve_workdir()
        buf = io.BytesIO()
        stage_lines: list[str] = []
        shipped: set[str] = set()
        argvs: list[list[str]] = []
        now = time.time()

        def add(tar: tarfile.TarFile, path: str, data: bytes, mode: int = 0o600) -> None:
            info = tarfile.TarInfo(path[len(wd) + 1 :])
            info.size, info.mode, info.mtime = len(data), mode, int(now)
            tar.addfile(info, io.BytesIO(data))

        def add_dir(tar: tarfile.TarFile, path: str) -> None:
            info = tarfile.TarInfo(path[len(wd) + 1 :])
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o700, int(now)
            tar.addfile(info)

        with tarfile.open(fileobj=buf, mode="w") as tar:
            add_dir(tar, f"{wd}/jobs")
            add_dir(tar, batch.base)
            for job, folder in zip(batch.jobs, batch.folders, strict=True):
                shared: dict[str, str] = {}
                for sname, data in job.shared.items():
                    path = self._shared_path(sname, data)
                    shared[sname] = path
                    if path not in shipped:
                        shared_dir, base = path.rsplit("/", 1)
                        incoming = f"{shared_dir}/.{base}.{batch.token}.part"
                        add_dir(tar, shared_dir)
                        add(tar, incoming, data)
                        rel = path[len(wd) + 1 :]
                        stage_lines.append(remote_stage_commands(incoming[len(wd) + 1 :], rel, data))
                        shipped.add(path)
                if folder != batch.base:
                    add_dir(tar, folder)
                for fname, data in job.files.items():
                    add(tar, f"{folder}/{fname.lstrip('/')}", data)
                argvs.append(self._resolve_argv(job, shared))
            add(tar, f"{batch.base}/job.sh", self.job_script(batch, limits, argvs).encode(), 0o700)
        return buf.getvalue(), stage_lines

    # -- submit ---------------------------------------------------------------------------------

    def _submit(self, batch: _Batch, limits: Limits) -> JobResult | None:
        """Stage and sbatch in one round trip; a JobResult for every job when that failed."""
        if isinstance(self.transport, SSHTransport):
            try:
                # Zero when the connection is reused, as it is for every probe after the first.
                batch.connect_s = self.transport.connect() + self._unreported_connect_s
                self._unreported_connect_s = 0.0
            except TransportError as exc:
                return JobResult(infra_error=f"connect: {exc}")
        t0 = time.time()
        try:
            data, stage_lines = self._archive(batch, limits)
        except InfraError as exc:
            return JobResult(infra_error=str(exc))
        wd = quote_path(self._resolve_workdir())
        # umask 077: every folder and file made here, and by the job itself (sbatch passes the
        # umask on), is private. A shared file is replaced only by a rename, so a job of
        # another run reading it never sees it half written.
        staging = " && ".join(["cd -- " + wd, *stage_lines])
        cmd = (
            f"umask 077; {{ mkdir -p {wd} && tar --no-same-owner --no-same-permissions -xf - -C {wd} "
            f"&& {staging} && cd {shlex.quote(batch.base)}; }} "
            # A failed unpack (a full disk) leaves no part of a shared file behind.
            f"|| {{ cd -- {wd} 2>/dev/null && rm -f -- shared/*/.*.{batch.token}.part; exit {_STAGE_FAILED}; }}; "
            'printf "submit %s\\n" "$(date +%s.%N)"; '
            "sbatch --parsable job.sh"
        )
        # Journalled before sbatch runs: a client killed with -9 at any later point leaves a job
        # that a resume finds (by id, or by its unique name if the id never came back).
        self._remote(self._work(batch))
        # A signal between "sbatch answered" and "job recorded" would leave a job nobody cancels:
        # hold it until the job id is in _active, where cancel_all finds it.
        with held():
            return self._sbatch(batch, cmd, data, t0)

    def _work(self, batch: _Batch, state: Literal["live", "done"] = "live") -> RemoteWork:
        return RemoteWork(
            kind="slurm-job",
            folder=batch.base,
            job_name=self._job_name(batch),
            job_id=batch.job_id or None,
            state=state,
            keep=any(job.keep_remote for job in batch.jobs),
        )

    def _sbatch(self, batch: _Batch, cmd: str, data: bytes, t0: float) -> JobResult | None:
        try:
            res = self._sh(cmd, stdin=data)
        except TransportError as exc:
            return JobResult(infra_error=f"submit: {exc}")
        batch.stage_in_s = time.time() - t0
        batch.submitted_at = t0
        err = res.error_text()
        if res.exit_code == _STAGE_FAILED:
            return JobResult(launch_error=f"stage_in: {_stage_error_line(err)}")
        if res.timed_out:
            return JobResult(
                infra_error=f"submit: sbatch did not answer within {self.cfg.command_timeout:g}s"
            )
        job_id = ""
        for line in res.text().splitlines():
            if line.startswith("submit "):
                with contextlib.suppress(ValueError):
                    batch.submit_stamp = float(line.split()[1])
            elif line.strip():
                job_id = line.strip().split(";")[0]
        if not res.ok or not job_id.isdigit():
            line = sbatch_error_line(err or res.text())
            if controller_down(err) or res.exit_code in (126, 127):
                return JobResult(infra_error=f"sbatch: {line}")
            return JobResult(
                launch_error=line,
                stderr_tail=err[-4096:],
                scheduler={"JobState": REJECTED, "Reason": line},
            )
        batch.job_id = job_id
        with self._lock:
            self._active.add(job_id)
        self._remote(self._work(batch))
        self.submissions.append((job_id, len(batch.jobs)))
        return None

    # -- run ------------------------------------------------------------------------------------

    def execute(self, job: JobSpec) -> JobResult:
        """Stage, `sbatch --parsable`, watch until final, fetch; never raises for far-side trouble."""
        return self._run_batch([job])[0]

    def execute_many(self, jobs: Sequence[JobSpec]) -> list[JobResult]:
        """Every job at once: one `sbatch --array` per group of jobs with the same limits."""
        jobs = list(jobs)
        if len(jobs) <= 1:
            return [self._run_batch(jobs)[0]] if jobs else []
        groups: dict[Limits, list[int]] = {}
        for i, job in enumerate(jobs):
            groups.setdefault(effective_limits(self.cfg, job.limits), []).append(i)
        results: list[JobResult | None] = [None] * len(jobs)
        if len(groups) == 1:
            for i, r in zip(range(len(jobs)), self._run_batch(jobs), strict=True):
                results[i] = r
        else:
            # Different limits cannot share one array: one array per group, watched together.
            outcome: dict[int, list[JobResult]] = {}
            errors: list[BaseException] = []

            def run(key: int, idx: list[int]) -> None:
                try:
                    outcome[key] = self._run_batch([jobs[i] for i in idx])
                except BaseException as exc:  # re-raised below, in the caller's thread
                    errors.append(exc)

            threads = [
                threading.Thread(target=run, args=(k, idx), daemon=True)
                for k, idx in enumerate(groups.values())
            ]
            for t in threads:
                t.start()
            try:
                for t in threads:
                    while t.is_alive():
                        t.join(0.25)
            except BaseException:
                self.cancel_all()
                raise
            if errors:
                raise errors[0]
            for k, idx in enumerate(groups.values()):
                for i, r in zip(idx, outcome[k], strict=True):
                    results[i] = r
        return [r if r is not None else JobResult(infra_error="job was not run") for r in results]

    def _run_batch(self, jobs: list[JobSpec]) -> list[JobResult]:
        for job in jobs:
            job.local_dir.mkdir(parents=True, exist_ok=True)
        try:
            batch = self._new_batch(jobs)
        except TransportError as exc:
            return [JobResult(infra_error=str(exc)) for _ in jobs]
        except InfraError as exc:
            return [JobResult(infra_error=str(exc)) for _ in jobs]
        limits = effective_limits(self.cfg, jobs[0].limits)
        try:
            failed = self._submit(batch, limits)
        except BaseException:
            # Interrupted while sbatch ran: the job may exist without our knowing its id.
            # Its name is unique to this submission, so cancel it by name.
            with contextlib.suppress(Exception):
                self._sh(f"scancel --name={shlex.quote(self._job_name(batch))}", timeout=30)
            raise
        if failed is not None:
            if failed.infra_error is None:
                self._remove_remote(batch)
                self._remote(self._work(batch, "done"))
            return [self._finish_unsubmitted(failed, job, batch) for job in jobs]
        keys = (
            [JobKey(batch.job_id, i) for i in range(len(jobs))] if batch.is_array else [JobKey(batch.job_id)]
        )
        watcher = self.watcher
        batch.tickets = watcher.track(keys, submitted_at=batch.submitted_at)
        try:
            self._wait(batch)
        except BaseException:
            # Ctrl-C or a timeout of the caller: nothing of ours stays in the queue.
            watcher.forget(batch.tickets)
            self._cancel([batch.job_id])
            raise
        with self._lock:
            self._active.discard(batch.job_id)
        results = self._collect(batch, limits)
        self._remote(self._work(batch, "done"))
        return results

    def _wait(self, batch: _Batch) -> None:
        """Wait for every ticket; past queue_timeout, cancel what has not started (a skip)."""
        watcher = self.watcher
        limit = self.cfg.queue_timeout
        if limit is None:
            watcher.wait(batch.tickets)
            return
        cancelled: set[JobKey] = set()
        while not watcher.wait(batch.tickets, timeout=1.0):
            waited = time.time() - batch.submitted_at
            stuck = [
                t
                for t in batch.tickets
                if not t.done.is_set() and t.seen_running_at is None and t.key not in cancelled
            ]
            if waited <= limit or not stuck:
                continue
            for t in stuck:
                t.error = (
                    f"job {t.key.display()} still pending after {waited:.0f}s "
                    f"(Reason={t.reason or 'unknown'}); queue_timeout is {limit:g}s"
                )
                cancelled.add(t.key)
            with contextlib.suppress(TransportError):
                self._sh(f"scancel {' '.join(t.key.display() for t in stuck)}", timeout=30)

    def _finish_unsubmitted(self, failed: JobResult, job: JobSpec, batch: _Batch) -> JobResult:
        result = failed.model_copy(deep=True)
        result.host = self.transport.host if self._transport is not None else self.cfg.host
        result.timings["stage_in"] = batch.stage_in_s
        if result.stderr_tail:
            path = job.local_dir / STDERR_NAME
            path.write_text(result.stderr_tail)
            result.stderr_path = path
        return result

    # -- fetch and results ------------------------------------------------------------------------

    def _fetch(self, batch: _Batch) -> tuple[dict[int, dict[str, bytes]], str | None, float]:
        """One command: tails of the logs and the fetched files of every job, as a tar; then cleanup."""
        t0 = time.time()
        base = shlex.quote(batch.base)
        parts = [f"cd {base} || exit 3"]
        members: list[str] = []
        for rel, job in zip(batch.rel, batch.jobs, strict=True):
            d = shlex.quote(rel)
            fd = f"{rel}/{_FETCH_DIR}"
            parts.append(
                f"mkdir -p {shlex.quote(fd)} && "
                f"{{ tail -c {LOG_TAIL_BYTES} {d}/{STDOUT_NAME} > {shlex.quote(fd)}/{STDOUT_NAME}; "
                f"tail -c {LOG_TAIL_BYTES} {d}/{STDERR_NAME} > {shlex.quote(fd)}/{STDERR_NAME}; }} "
                "2>/dev/null"
            )
            members += [f"{fd}/{STDOUT_NAME}", f"{fd}/{STDERR_NAME}", f"{rel}/{STARTED_NAME}"]
            members += [f"{rel}/{name.lstrip('/')}" for name in job.fetch]
        parts.append(
            "tar -cf - --ignore-failed-read " + " ".join(shlex.quote(m) for m in members) + " 2>/dev/null"
        )
        parts.append("rc=$?")
        removal = self._removal_command(batch)
        if removal:
            parts.append(removal)
        parts.append("exit $rc")
        files: dict[int, dict[str, bytes]] = {i: {} for i in range(len(batch.jobs))}
        with tempfile.NamedTemporaryFile(prefix="tp-fetch-", suffix=".tar") as tmp:
            try:
                res = self._sh("; ".join(parts), stdout_path=Path(tmp.name))
            except TransportError as exc:
                return files, f"stage_out: {exc}", time.time() - t0
            if res.exit_code == 3:
                return files, "stage_out: the job folder is gone", time.time() - t0
            index = {rel: i for i, rel in enumerate(batch.rel)}
            try:
                with tarfile.open(tmp.name, mode="r:") as tar:
                    for member in tar:
                        if not member.isfile():
                            continue
                        rel, _, rest = member.name.partition("/")
                        if rel not in index:
                            continue
                        fh = tar.extractfile(member)
                        if fh is not None:
                            files[index[rel]][rest] = fh.read()
            except (tarfile.TarError, OSError) as exc:
                return files, f"stage_out: cannot read what came back: {exc}", time.time() - t0
        return files, None, time.time() - t0

    def _removal_command(self, batch: _Batch) -> str:
        keep = [job.keep_remote for job in batch.jobs]
        if not any(keep):
            return f"cd / && rm -rf -- {shlex.quote(batch.base)}"
        if batch.is_array and not all(keep):
            gone = [shlex.quote(f) for f, k in zip(batch.folders, keep, strict=True) if not k]
            return f"cd / && rm -rf -- {' '.join(gone)}"
        return f"rm -rf -- {' '.join(shlex.quote(f'{r}/{_FETCH_DIR}') for r in batch.rel)}"

    def _remove_remote(self, batch: _Batch) -> None:
        cmd = self._removal_command(batch)
        if cmd:
            with contextlib.suppress(TransportError):
                self._sh(cmd)

    def _collect(self, batch: _Batch, limits: Limits) -> list[JobResult]:
        files, fetch_error, stage_out_s = self._fetch(batch)
        results = []
        for i, (job, ticket) in enumerate(zip(batch.jobs, batch.tickets, strict=True)):
            results.append(self._result(batch, i, job, ticket, files[i], fetch_error, stage_out_s, limits))
        return results

    def _result(
        self,
        batch: _Batch,
        index: int,
        job: JobSpec,
        ticket: Ticket,
        files: dict[str, bytes],
        fetch_error: str | None,
        stage_out_s: float,
        limits: Limits,
    ) -> JobResult:
        result = JobResult(host=self.transport.host, remote_dir=batch.folders[index])
        result.timings["connect"] = batch.connect_s
        result.timings["stage_in"] = batch.stage_in_s
        result.timings["stage_out"] = stage_out_s
        local = job.local_dir
        stdout_path, stderr_path = local / STDOUT_NAME, local / STDERR_NAME
        stdout_path.write_bytes(files.get(f"{_FETCH_DIR}/{STDOUT_NAME}", b""))
        stderr_path.write_bytes(files.get(f"{_FETCH_DIR}/{STDERR_NAME}", b""))
        result.stdout_path, result.stderr_path = stdout_path, stderr_path
        result.stdout_tail, result.stderr_tail = read_tail(stdout_path), read_tail(stderr_path)
        for name in job.fetch:
            data = files.get(name.lstrip("/"))
            if data is not None:
                dst = local / name.lstrip("/")
                dst.parent.mkdir(parents=True, exist_ok=True)
                dst.write_bytes(data)
                result.files[name] = dst

        if ticket.error is not None:
            result.infra_error = ticket.error
            return result
        fields = record_of(ticket.fields)
        state = base_state(fields.get("JobState", ""))
        stderr_text = files.get(f"{_FETCH_DIR}/{STDERR_NAME}", b"").decode("utf-8", "replace")
        evidence = scan_evidence(
            stderr_text,
            files.get(f"{_FETCH_DIR}/{STDOUT_NAME}", b"").decode("utf-8", "replace"),
        )
        # The job's own watchdog (a limit shorter than SLURM's minutes) says so on stderr.
        watchdog: str | None = None
        if runner_enforces_time(limits.time_s):
            watchdog = next((ln.strip() for ln in stderr_text.splitlines() if ln.startswith(WATCHDOG_MARK)), None)
        if watchdog:
            evidence.append(watchdog)
        sched: dict[str, str] = {"JobId": ticket.key.display()}
        for key in SCHEDULER_KEYS[1:]:
            value = fields.get(key)
            if key == "Elapsed" and not value:
                value = fields.get("RunTime")
            if value:
                sched[key] = value
        for key in ("SubmitTime", "StartTime", "EndTime", "Partition"):
            if fields.get(key):
                sched[key] = fields[key]
        if fields.get("JobId") and fields["JobId"] != ticket.key.display():
            sched["RawJobId"] = fields["JobId"]
        if evidence:
            sched["Evidence"] = "\n".join(evidence)
        result.scheduler = sched

        exit_code, sig = parse_exit_code(fields.get("ExitCode", ""))
        if sig:
            # SLURM's 0:125 (cgroup OOM) is a marker, not a signal: only real signal numbers count.
            result.signal = sig if sig < 65 else None
        elif exit_code is not None:
            result.exit_code = exit_code
        result.timed_out = state in ("TIMEOUT", "DEADLINE") or watchdog is not None
        if fetch_error and not result.infra_error:
            result.launch_error = fetch_error

        rss = memory_mb(fields.get("MaxRSS", "")) if fields.get("MaxRSS") else None
        if rss is None:
            rss = exceeded_peak_mb(evidence)
        if rss is None and state == "OUT_OF_MEMORY" and limits.memory_bytes:
            # The cgroup kills when usage reaches the limit: the peak was the limit itself (the
            # runner's last record predates the kill and understates it).
            rss = limits.memory_bytes / 1024**2
        result.peak_rss_mb = rss
        self._timings(result, batch, ticket, fields, files)
        return result

    def _timings(
        self,
        result: JobResult,
        batch: _Batch,
        ticket: Ticket,
        fields: dict[str, str],
        files: dict[str, bytes],
    ) -> None:
        started: float | None = None
        with contextlib.suppress(ValueError):
            text = files.get(STARTED_NAME, b"").decode().strip()
            started = float(text) if text else None
        submit = slurm_timestamp(fields.get("SubmitTime", ""))
        start = slurm_timestamp(fields.get("StartTime", ""))
        end = slurm_timestamp(fields.get("EndTime", ""))
        if started is not None and batch.submit_stamp is not None:
            # Both stamps are far-side clocks (login node and compute node), to the microsecond.
            result.timings["queue"] = max(0.0, started - batch.submit_stamp)
        elif submit is not None and start is not None:
            result.timings["queue"] = max(0.0, start - submit)
        elif ticket.seen_running_at is not None:
            result.timings["queue"] = max(0.0, ticket.seen_running_at - ticket.submitted_at)
        if started is not None:
            # The runner's stamps use this clock too: `startup` is measured from here.
            result.timings["launched_at"] = started
        run = elapsed_s(fields.get("RunTime", "")) or elapsed_s(fields.get("Elapsed", ""))
        if start is not None and end is not None and end >= start:
            run = end - start
        if run is not None:
            result.timings["process"] = float(run)

    # -- cancel ---------------------------------------------------------------------------------

    def _cancel(self, job_ids: list[str], wait_s: float = CANCEL_WAIT_S) -> None:
        """scancel the jobs and wait until none of them is live. Never raises."""
        ids = [j for j in job_ids if j]
        if not ids:
            return
        with contextlib.suppress(TransportError, InfraError):
            self._sh(f"scancel {' '.join(ids)}", timeout=30)
        deadline = time.monotonic() + wait_s
        while time.monotonic() < deadline:
            try:
                res = self._sh(f"squeue -h -r -j {','.join(ids)} -o '%i %T'", timeout=30)
            except (TransportError, InfraError):
                break
            if res.ok and not res.text().strip():
                break
            if not res.ok and "Invalid job id" in res.error_text():
                break
            time.sleep(0.2)
        with self._lock:
            self._active.difference_update(ids)

    def reap(self, leftovers: Sequence[RemoteWork]) -> list[tuple[RemoteWork, str]]:
        """Cancel the jobs a dead process left (by id, else by their unique name), wait until none
        is live, then remove their folders (those kept with keep_remote stay)."""
        jobs = [w for w in leftovers if w.kind == "slurm-job"]
        if not jobs:
            return []
        try:
            wd = self._resolve_workdir()
            ids: dict[str, str] = {}
            for w in jobs:
                if w.job_id:
                    ids[w.folder] = w.job_id
                elif w.job_name:
                    # Killed between sbatch and its answer: the name is unique to that submission.
                    res = self._sh(f"squeue -h --name={shlex.quote(w.job_name)} -o %F", timeout=30)
                    found = res.text().split() if res.ok else []
                    if found:
                        ids[w.folder] = found[0]
            live: set[str] = set()
            if ids:
                res = self._sh(f"squeue -h -j {','.join(sorted(set(ids.values())))} -o %F", timeout=30)
                live = set(res.text().split()) if res.ok else set()
            self._cancel(sorted(live))
            # Only folders this cluster makes: a journal row never removes anything else.
            gone = [w for w in jobs if not w.keep and w.folder.startswith(f"{wd}/jobs/") and "/.." not in w.folder]
            if gone:
                res = self._sh("cd / && rm -rf -- " + " ".join(shlex.quote(w.folder) for w in gone), timeout=120)
                if not res.ok:
                    gone = []
        except (TransportError, InfraError):
            return []
        out = []
        for w in jobs:
            job_id = ids.get(w.folder)
            did = f"cancelled SLURM job {job_id}" if job_id in live else f"SLURM job {job_id or w.job_name} had ended"
            if w in gone:
                out.append((w, f"{did}; removed {w.folder}"))
            elif w.keep:
                out.append((w, f"{did}; kept {w.folder} (--keep-remote)"))
        return out

    def cancel_all(self) -> None:
        """scancel every job this object submitted that may still be live, and wait until gone."""
        with self._lock:
            ids = sorted(self._active)
        # The watcher keeps polling: it sees the jobs end as CANCELLED and releases their waiters.
        with contextlib.suppress(Exception):
            self._cancel(ids)

    # -- preflight and facts ----------------------------------------------------------------------

    def preflight(self) -> list[Check]:
        """Controller reachable, partition known, Python and cloudpickle on a compute node, workdir."""
        checks: list[Check] = []
        try:
            wd = self._resolve_workdir()
        except WorkdirError as exc:
            return [
                Check(
                    name="workdir",
                    status="fail",
                    detail=str(exc),
                    fix=f"set clusters.{self.name}.workdir to a folder that only the user owns and can write",
                )
            ]
        except (TransportError, InfraError) as exc:
            return [Check(name="reach", status="fail", detail=str(exc), fix="check host, user and key in the config")]
        try:
            res = self._sh("sinfo -h -o '%P|%a|%D|%T'", timeout=60)
        except TransportError as exc:
            return [Check(name="controller", status="fail", detail=str(exc), fix="check the login node")]
        if not res.ok:
            line = sbatch_error_line(res.error_text())
            return [
                Check(
                    name="controller",
                    status="fail",
                    detail=f"sinfo failed: {line}",
                    fix="check that SLURM runs and slurm_conf points at its slurm.conf",
                )
            ]
        partitions = {}
        for line in res.text().splitlines():
            p = line.split("|")
            if len(p) >= 2:
                partitions[p[0].rstrip("*")] = (p[0].endswith("*"), p[1])
        checks.append(
            Check(name="controller", status="ok", detail=f"sinfo lists {len(partitions)} partition(s)")
        )
        if self.cfg.partition:
            if self.cfg.partition not in partitions:
                checks.append(
                    Check(
                        name="partition",
                        status="fail",
                        detail=f"partition {self.cfg.partition!r} does not exist",
                        fix=f"use one of: {', '.join(sorted(partitions)) or 'none'}",
                    )
                )
                # A test job would only be refused for the same reason.
                return checks
            elif partitions[self.cfg.partition][1] != "up":
                checks.append(
                    Check(
                        name="partition",
                        status="warn",
                        detail=f"partition {self.cfg.partition!r} is {partitions[self.cfg.partition][1]}",
                    )
                )
            else:
                checks.append(
                    Check(name="partition", status="ok", detail=f"partition {self.cfg.partition!r} is up")
                )
        q = shlex.quote
        check_dir = f"{wd}/jobs/preflight-{secrets.token_hex(3)}"
        res = self._sh(
            f"umask 077; mkdir -p {q(check_dir)} && touch {q(check_dir)}/.w && df -Pk {q(wd)} | tail -1",
            timeout=60,
        )
        if not res.ok:
            checks.append(
                Check(
                    name="workdir",
                    status="fail",
                    detail=f"{wd}: {res.error_text() or 'not writable'}",
                    fix="set clusters.<name>.workdir to a writable folder on a shared filesystem",
                )
            )
            return checks
        checks.append(Check(name="workdir", status="ok", detail=f"{wd} is writable and private"))
        checks.extend(self._check_staged(wd))
        # A real pickle made here, loaded and run on a compute node (see pickle_check).
        code = pickle_check.check_script()
        script = render_job_script(
            self.cfg,
            Limits(memory_bytes=256 * 1024**2, time_s=120, cores=1),
            [ScriptTask(folder=check_dir, argv=[self.cfg.python, "-c", code])],
            job_name="tp-preflight",
            output=f"{check_dir}/out.log",
            error=f"{check_dir}/out.log",
        )
        res = self._sh(
            f"umask 077; cd {q(check_dir)} && cat > job.sh && sbatch --wait --quiet job.sh >/dev/null; "
            f"rc=$?; cat out.log 2>/dev/null; cd / && rm -rf -- {q(check_dir)}; exit $rc",
            stdin=script.encode(),
            timeout=max(180.0, self.cfg.command_timeout),
        )
        out = res.text()
        facts, outcome = pickle_check.parse_output(out)
        if facts is None:
            detail = sbatch_error_line(res.error_text() or out) if (res.error_text() or out) else "no output"
            checks.append(
                Check(
                    name="python",
                    status="fail",
                    detail=f"{self.cfg.python} on a compute node: {detail}",
                    fix="set clusters.<name>.python (and modules/setup) to a Python 3.8+ with cloudpickle",
                )
            )
            return checks
        # The submit host as its shell names itself: a job may land on any node of the partition
        # (the partition is in the config), so the compute node would change the fingerprint at random.
        named = self._sh("hostname", timeout=30)
        host = named.text().strip() if named.ok else ""
        self._far_side = {
            "python": str(facts.get("python")),
            "cloudpickle": str(facts.get("cloudpickle")),
            "hostname": host,
        }
        checks.extend(
            pickle_check.version_checks(
                facts,
                outcome,
                python_label=self.cfg.python,
                where="on a compute node",
                ended=f"the job failed: sbatch --wait exit status {res.exit_code}",
            )
        )
        return checks

    def _check_staged(self, wd: str) -> list[Check]:
        """Every staged shared file against its content hash; damaged ones are removed (restaged)."""
        try:
            res = self._sh(remote_verify_script(f"{wd}/shared"), timeout=120)
        except TransportError as exc:
            return [Check(name="staged", status="warn", detail=f"cannot check the staged files: {exc}")]
        checks: list[Check] = []
        total = "0"
        for line in res.text().splitlines():
            if line.startswith("BAD "):
                parts = line.split(maxsplit=3)
                if len(parts) < 4:
                    continue
                _, rel, size, why = parts
                checks.append(
                    Check(
                        name="staged",
                        status="warn",
                        detail=f"{wd}/shared/{rel} was damaged ({size} bytes, {why}): removed, "
                        "it is staged again by the next probe",
                    )
                )
            elif line.startswith("OK "):
                total = line.split()[1]
        if not checks:
            checks.append(
                Check(name="staged", status="ok", detail=f"{total} staged file(s) in {wd}/shared match their hashes")
            )
        return checks

    def _config_value(self, key: str) -> str | None:
        """One value of `scontrol show config` (None when it cannot be read)."""
        if key not in self._slurm_config:
            value = None
            try:
                res = self._sh(f"scontrol show config | grep -E '^{key} +='", timeout=60)
                if res.ok and "=" in res.text():
                    value = res.text().split("=", 1)[1].strip()
            except (TransportError, InfraError):
                pass
            self._slurm_config[key] = value
        return self._slurm_config[key]

    def enforcement(self, limits: Limits) -> dict[str, str]:
        """Memory by the cgroup (task/cgroup) or SLURM's own sampling; time by SLURM, or by the
        job's watchdog (the runner) when the limit is not whole minutes; cores by SLURM."""
        lim = effective_limits(self.cfg, limits)
        task_plugin = self._config_value("TaskPlugin") or ""
        return enforcers(
            lim,
            memory="cgroup" if "cgroup" in task_plugin else "SLURM",
            time="runner" if runner_enforces_time(lim.time_s) else "SLURM",
            cores="SLURM",
        )

    def node_cpus(self) -> int | None:
        """The most CPUs a node of the partition offers (`sinfo %c`)."""
        part = f" -p {shlex.quote(self.cfg.partition)}" if self.cfg.partition else ""
        try:
            res = self._sh(f"sinfo -h{part} -o '%c'", timeout=60)
        except (TransportError, InfraError):
            return None
        counts = [int(t.rstrip("+")) for t in res.text().split() if t.rstrip("+").isdigit()] if res.ok else []
        return max(counts) if counts else None

    def describe(self) -> dict[str, str]:
        """Kind, submit host, partition and interpreter, for report headers."""
        facts = {"kind": self.kind, "host": self.cfg.host or socket.gethostname(), "python": self.cfg.python}
        if self.cfg.partition:
            facts["partition"] = self.cfg.partition
        return facts


__all__ = ["SlurmCluster"]
