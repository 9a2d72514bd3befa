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
import shlex
import socket
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal, cast

from threshold_probe.clusters.base import Check, Cluster, SSHEndpoint, enforcers
from threshold_probe.clusters.jobpaths import JobPaths
from threshold_probe.clusters.lifecycle import Lifecycle, drive, retry_lost
from threshold_probe.clusters.local_transport import LocalTransport
from threshold_probe.clusters.slurm_batch import Batch, BatchTry, build_archive, stage_error_line
from threshold_probe.clusters.slurm_live import job_state, wait_for_batch
from threshold_probe.clusters.slurm_preflight import memory_check, slurm_preflight
from threshold_probe.clusters.slurm_result import fetch_outputs, job_result, removal_command
from threshold_probe.clusters.slurm_script import (
    runner_enforces_time,
    slurm_enforced_limits,
)
from threshold_probe.clusters.slurm_state import (
    REJECTED,
    JobKey,
    controller_down,
    sbatch_error_line,
)
from threshold_probe.clusters.slurm_watch import SlurmWatcher
from threshold_probe.clusters.ssh_transport import SSHSettings, SSHTransport
from threshold_probe.clusters.staging import (
    WorkdirError,
)
from threshold_probe.clusters.transport import CommandResult, Transport, TransportError, quote_path
from threshold_probe.config import ClusterConfigBase, SlurmClusterConfig
from threshold_probe.errors import InfraError
from threshold_probe.interrupts import held
from threshold_probe.models import JobResult, JobSpec, Limits, RemoteWork

#: Exit status of the stage-and-submit command when staging (not sbatch) failed.
_STAGE_FAILED = 97
#: How long cancel_all waits for cancelled jobs to leave the queue.
CANCEL_WAIT_S = 90.0


class SlurmCluster(Cluster, Lifecycle[BatchTry]):
    """A SLURM cluster: through its login node over SSH, or on this machine."""

    kind = "slurm"
    config_model = SlurmClusterConfig
    config: SlurmClusterConfig
    #: Jobs wait in a queue: probes of one round go out together (a job array).
    concurrent = True

    def __init__(self, name: str, config: SlurmClusterConfig, base_dir: Path | None = None) -> None:
        super().__init__(name, config)
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

    @classmethod
    def create(cls, name: str, config: ClusterConfigBase, *, base_dir: Path | None = None) -> SlurmCluster:
        """The cluster of its probe.toml table; an ssh_config or identity file is relative to base_dir."""
        assert isinstance(config, SlurmClusterConfig)
        return cls(name, config, base_dir=base_dir)

    def ssh_endpoint(self) -> SSHEndpoint | None:
        """Where the login node's SSH connection goes; None for SLURM on this machine."""
        return SSHEndpoint.of(self.config, self.base_dir) if self.config.host else None

    # -- plumbing -------------------------------------------------------------------------------

    @property
    def transport(self) -> Transport:
        """The transport to the submit host, made on first use."""
        with self._transport_lock:
            if self._transport is None:
                if self.config.host is None:
                    self._transport = LocalTransport()
                else:
                    # host is set here, which is all SSHSettings asks beyond the shared fields.
                    self._transport = SSHTransport.from_settings(
                        cast("SSHSettings", self.config),
                        base_dir=self.base_dir,
                        command_timeout=self.config.command_timeout,
                    )
            return self._transport

    def _env_prefix(self) -> str:
        # Every SLURM command sees the configured SLURM_CONF, on a login node as here.
        if self.config.slurm_conf:
            return f"export SLURM_CONF={quote_path(self.config.slurm_conf)}; "
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
            timeout=timeout if timeout is not None else self.config.command_timeout,
            stdout_path=stdout_path,
        )

    @property
    def watcher(self) -> SlurmWatcher:
        """The cluster's one watcher (made on first use)."""
        with self._lock:
            if self._watcher is None:
                self._watcher = SlurmWatcher(
                    lambda cmd: self._sh(cmd),
                    poll_interval=self.config.poll_interval,
                    max_poll_interval=self.config.max_poll_interval,
                    controller_timeout=self.config.controller_timeout,
                    # What squeue says of a job goes to on_job_state (in the watcher's thread).
                    on_change=lambda ticket: self._job_state(job_state(ticket)) if ticket.tag else None,
                )
            return self._watcher

    def _resolve_workdir(self) -> str:
        if self._workdir is not None:
            return self._workdir
        if isinstance(self.transport, SSHTransport):
            # Counted in the first probe's timings: later probes reuse the connection.
            self._unreported_connect_s += self.transport.connect()
        res = self.transport.run('printf "%s" "$HOME"', timeout=self.config.command_timeout)
        home = res.text().strip()
        if not res.ok or not home.startswith("/"):
            raise InfraError(f"{self.name}: cannot find the home folder on {self.transport.host}")
        wd = self.config.workdir
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
            timeout=self.config.command_timeout,
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

    def _new_batch(self, jobs: list[JobSpec]) -> Batch:
        return Batch.new(jobs, self._resolve_workdir())

    def _archive(self, batch: Batch, limits: Limits) -> tuple[bytes, list[str]]:
        return build_archive(batch, self._resolve_workdir(), self.config, limits)

    # -- submit ---------------------------------------------------------------------------------

    def _submit(self, batch: Batch, limits: Limits) -> JobResult | None:
        """Stage and sbatch in one round trip; a JobResult for every job when that failed."""
        if isinstance(self.transport, SSHTransport):
            try:
                # Zero when the connection is reused, as it is for every probe after the first.
                batch.connect_s = self.transport.connect() + self._unreported_connect_s
                self._unreported_connect_s = 0.0
            except TransportError as exc:
                return JobResult(infra_error=f"connect: {exc}", cluster_lost=True)
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
            f"sbatch --parsable {JobPaths.JOB_SCRIPT}"
        )
        # Journalled before sbatch runs: a client killed with -9 at any later point leaves a job
        # that a resume finds (by id, or by its unique name if the id never came back).
        self._remote(self._work(batch))
        # A signal between "sbatch answered" and "job recorded" would leave a job nobody cancels:
        # hold it until the job id is in _active, where cancel_all finds it.
        with held():
            return self._sbatch(batch, cmd, data, t0)

    def _work(self, batch: Batch, state: Literal["live", "done"] = "live") -> RemoteWork:
        return RemoteWork(
            kind="slurm-job",
            folder=batch.base,
            job_name=batch.job_name,
            job_id=batch.job_id or None,
            state=state,
            keep=any(job.keep_remote for job in batch.jobs),
        )

    def _sbatch(self, batch: Batch, cmd: str, data: bytes, t0: float) -> JobResult | None:
        try:
            res = self._sh(cmd, stdin=data)
        except TransportError as exc:
            return JobResult(infra_error=f"submit: {exc}", cluster_lost=True)
        batch.stage_in_s = time.time() - t0
        batch.submitted_at = t0
        err = res.error_text()
        if res.exit_code == _STAGE_FAILED:
            return JobResult(launch_error=f"stage_in: {stage_error_line(err)}")
        if res.timed_out:
            silent = f"submit: sbatch did not answer within {self.config.command_timeout:g}s"
            return JobResult(infra_error=silent, cluster_lost=True)
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
                return JobResult(infra_error=f"sbatch: {line}", cluster_lost=True)
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
            groups.setdefault(slurm_enforced_limits(self.config, job.limits), []).append(i)
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
                    # Results are told at the end: on_job_done runs in the caller's thread only.
                    outcome[key] = self._run_batch([jobs[i] for i in idx], stream=False)
                except BaseException as exc:  # re-raised below, in the caller's thread
                    errors.append(exc)

            threads = [
                threading.Thread(target=run, args=(k, idx), daemon=True) for k, idx in enumerate(groups.values())
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

    def _run_batch(self, jobs: list[JobSpec], stream: bool = True) -> list[JobResult]:
        """Submit the jobs as one job or one array and wait for them; with `stream`, each array
        task's result goes to on_job_done as soon as the task ends (before the others)."""
        t = drive(self, BatchTry(jobs, stream))
        return [t.results[i] for i in range(len(jobs))]

    def stage(self, t: BatchTry) -> None:
        """The batch's folders named under the workdir (its files travel with start's sbatch)."""
        for job in t.jobs:
            job.local_dir.mkdir(parents=True, exist_ok=True)
        try:
            t.batch = self._new_batch(t.jobs)
        except InfraError as exc:  # TransportError included
            t.results = {i: JobResult(infra_error=str(exc)) for i in range(len(t.jobs))}
            t.stop()
            return
        t.limits = slurm_enforced_limits(self.config, t.jobs[0].limits)

    def start(self, t: BatchTry) -> None:
        """One round trip stages the batch's folders and shared files and runs sbatch."""
        batch, limits = t.batch, t.limits
        assert batch is not None and limits is not None
        try:
            t.unsubmitted = retry_lost(lambda: self._submit(batch, limits))
        except BaseException:
            # Interrupted while sbatch ran: the job may exist without our knowing its id.
            # Its name is unique to this submission, so cancel it by name.
            with contextlib.suppress(Exception):
                self._sh(f"scancel --name={shlex.quote(batch.job_name)}", timeout=30)
            raise
        if t.unsubmitted is not None:
            t.results = {i: self._finish_unsubmitted(t.unsubmitted, job, batch) for i, job in enumerate(t.jobs)}
            t.stop()

    def watch(self, t: BatchTry) -> None:
        """The shared watcher follows the batch until every job is final (Ctrl-C: scancel); with
        streaming, an array task that ends is fetched at once, its folder left for fetch."""
        batch, limits, jobs = t.batch, t.limits, t.jobs
        assert batch is not None and limits is not None
        keys = [JobKey(batch.job_id, i) for i in range(len(jobs))] if batch.is_array else [JobKey(batch.job_id)]
        watcher = self.watcher
        batch.tickets = watcher.track(keys, submitted_at=batch.submitted_at, tags=[job.probe_id for job in jobs])

        def ended(indices: list[int]) -> None:
            # Fetched now, so that the level is known now; the folders go when the array ends.
            for i, result in self._collect(batch, limits, indices, cleanup=False).items():
                t.results[i] = result
                self._job_done(jobs[i], result)

        streaming = t.stream and batch.is_array and self.on_job_done is not None
        try:
            scancel = lambda ids: self._sh(f"scancel {ids}", timeout=30)  # noqa: E731
            wait_for_batch(watcher, batch, self.config.queue_timeout, scancel, ended if streaming else None)
        except BaseException:
            # Ctrl-C or a timeout of the caller: nothing of ours stays in the queue.
            watcher.forget(batch.tickets)
            self._cancel([batch.job_id])
            raise
        with self._lock:
            self._active.discard(batch.job_id)

    def fetch(self, t: BatchTry) -> None:
        """The jobs not fetched yet, in one round trip that also removes the batch's folders."""
        assert t.batch is not None and t.limits is not None
        rest = [i for i in range(len(t.jobs)) if i not in t.results]
        t.results.update(self._collect(t.batch, t.limits, rest, cleanup=True))
        t.fetched = True

    def clean(self, t: BatchTry) -> None:
        """The folders of a batch sbatch refused go now (fetch removed those of a batch that ran);
        after Ctrl-C the journal keeps the batch, for reap to remove."""
        batch, unsubmitted = t.batch, t.unsubmitted
        if t.interrupted or batch is None:
            return
        if unsubmitted is not None and unsubmitted.infra_error is None:
            self._remove_remote(batch)
            self._remote(self._work(batch, "done"))
        elif t.fetched:
            self._remote(self._work(batch, "done"))

    def _finish_unsubmitted(self, failed: JobResult, job: JobSpec, batch: Batch) -> JobResult:
        result = failed.model_copy(deep=True)
        result.host = self.transport.host if self._transport is not None else self.config.host
        result.timings["stage_in"] = batch.stage_in_s
        if result.stderr_tail:
            path = job.local_dir / JobPaths.STDERR
            path.write_text(result.stderr_tail)
            result.stderr_path = path
        return result

    # -- fetch and results ------------------------------------------------------------------------

    def _remove_remote(self, batch: Batch) -> None:
        cmd = removal_command(batch)
        if cmd:
            with contextlib.suppress(TransportError):
                self._sh(cmd)

    def _collect(self, batch: Batch, limits: Limits, indices: list[int], cleanup: bool) -> dict[int, JobResult]:
        """The results of these jobs of the batch (by index), fetched in one round trip."""
        if not indices:
            if cleanup:
                self._remove_remote(batch)
            return {}
        files, error, out_s = fetch_outputs(self._sh, batch, indices, cleanup)
        host = self.transport.host
        return {
            i: job_result(host, batch, i, batch.jobs[i], batch.tickets[i], files[i], error, out_s, limits)
            for i in indices
        }

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
        checks, far_side = slurm_preflight(self._sh, self.config, wd)
        if far_side is not None:
            self._far_side = far_side
        return checks

    def limit_checks(self, limits: Limits) -> list[Check]:
        """A memory limit above every node's memory is the user's input (see memory_check)."""
        return memory_check(self._sh, self.config, slurm_enforced_limits(self.config, limits).memory_bytes)

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
        lim = slurm_enforced_limits(self.config, limits)
        task_plugin = self._config_value("TaskPlugin") or ""
        return enforcers(
            lim,
            memory="cgroup" if "cgroup" in task_plugin else "SLURM",
            time="runner" if runner_enforces_time(lim.time_s) else "SLURM",
            cores="SLURM",
        )

    def node_cpus(self) -> int | None:
        """The most CPUs a node of the partition offers (`sinfo %c`)."""
        part = f" -p {shlex.quote(self.config.partition)}" if self.config.partition else ""
        try:
            res = self._sh(f"sinfo -h{part} -o '%c'", timeout=60)
        except (TransportError, InfraError):
            return None
        counts = [int(t.rstrip("+")) for t in res.text().split() if t.rstrip("+").isdigit()] if res.ok else []
        return max(counts) if counts else None

    def describe(self) -> dict[str, str]:
        """Kind, submit host, partition and interpreter, for report headers."""
        facts = {"kind": self.kind, "host": self.config.host or socket.gethostname(), "python": self.config.python}
        if self.config.partition:
            facts["partition"] = self.config.partition
        return facts


__all__ = ["SlurmCluster"]
