"""What SLURM jobs ended as: the fetch of their logs and files, and a JobResult from the scheduler's record."""

from __future__ import annotations

import contextlib
import shlex
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from threshold_probe.clusters.jobpaths import JobPaths, read_tail
from threshold_probe.clusters.slurm_batch import Batch
from threshold_probe.clusters.slurm_script import WATCHDOG_MARK, runner_enforces_time
from threshold_probe.clusters.slurm_state import (
    base_state,
    elapsed_s,
    exceeded_peak_mb,
    memory_mb,
    parse_exit_code,
    scan_evidence,
    slurm_timestamp,
)
from threshold_probe.clusters.slurm_watch import Ticket, record_of
from threshold_probe.clusters.transport import CommandResult, TransportError
from threshold_probe.models import JobResult, JobSpec, Limits

#: Scheduler facts copied into JobResult.scheduler, in this order.
SCHEDULER_KEYS = ("JobId", "JobState", "Reason", "ExitCode", "NodeList", "MaxRSS", "Elapsed")
#: Final states that end a job for reasons outside the workload; an outside `scancel` (CANCELLED
#: with no time limit in sight) is one too.
LOST_STATES = frozenset({"NODE_FAIL", "BOOT_FAIL", "PREEMPTED", "REVOKED"})
#: Fetch errors that say nothing about the workload (its folder vanished, the connection dropped).
FOLDER_GONE = "stage_out: the job folder is gone"
LOST_FETCH = "stage_out: the connection was lost: "
#: How much of the end of each log the fetch brings back (the whole log stays on the far side
#: with keep_remote). Enough for any traceback and for SLURM's own kill messages.
LOG_TAIL_BYTES = 2 * 1024**2


def fetch_command(batch: Batch, indices: list[int] | None = None, *, cleanup: bool = True) -> str:
    """One command: a tar on stdout of the log tails and fetched files of these jobs (default:
    every job); then, with `cleanup`, the removal of the submission's folders.

    Exits 3 when the submission's folder is gone.
    """
    base = shlex.quote(batch.base)
    parts = [f"cd {base} || exit 3"]
    members: list[str] = []
    chosen = range(len(batch.jobs)) if indices is None else indices
    for rel, job in ((batch.rel[i], batch.jobs[i]) for i in chosen):
        d = shlex.quote(rel)
        fd = f"{rel}/{JobPaths.FETCH_DIR}"
        parts.append(
            f"mkdir -p {shlex.quote(fd)} && "
            f"{{ tail -c {LOG_TAIL_BYTES} {d}/{JobPaths.STDOUT} > {shlex.quote(fd)}/{JobPaths.STDOUT}; "
            f"tail -c {LOG_TAIL_BYTES} {d}/{JobPaths.STDERR} > {shlex.quote(fd)}/{JobPaths.STDERR}; }} "
            "2>/dev/null"
        )
        members += [f"{fd}/{JobPaths.STDOUT}", f"{fd}/{JobPaths.STDERR}", f"{rel}/{JobPaths.STARTED}"]
        members += [f"{rel}/{name.lstrip('/')}" for name in job.fetch]
    parts.append("tar -cf - --ignore-failed-read " + " ".join(shlex.quote(m) for m in members) + " 2>/dev/null")
    parts.append("rc=$?")
    removal = removal_command(batch) if cleanup else ""
    if removal:
        parts.append(removal)
    parts.append("exit $rc")
    return "; ".join(parts)


def read_fetched(tar_path: Path, batch: Batch, files: dict[int, dict[str, bytes]]) -> None:
    """Add to `files` (by job index) what the tar that fetch_command wrote holds.

    Raises TarError or OSError for a damaged tar; what was read before the damage is kept.
    """
    index = {rel: i for i, rel in enumerate(batch.rel)}
    with tarfile.open(tar_path, mode="r:") as tar:
        for member in tar:
            if not member.isfile():
                continue
            rel, _, rest = member.name.partition("/")
            if rel not in index:
                continue
            fh = tar.extractfile(member)
            if fh is not None:
                files[index[rel]][rest] = fh.read()


def fetch_outputs(
    sh: Callable[..., CommandResult], batch: Batch, indices: list[int], cleanup: bool
) -> tuple[dict[int, dict[str, bytes]], str | None, float]:
    """One command (run by `sh`): tails of the logs and the fetched files of these jobs, as a tar;
    then, with `cleanup`, the removal of the submission's folders."""
    t0 = time.time()
    command = fetch_command(batch, indices, cleanup=cleanup)
    files: dict[int, dict[str, bytes]] = {i: {} for i in range(len(batch.jobs))}
    with tempfile.NamedTemporaryFile(prefix="tp-fetch-", suffix=".tar") as tmp:
        try:
            res = sh(command, stdout_path=Path(tmp.name))
        except TransportError as exc:
            return files, f"{LOST_FETCH}{exc}", time.time() - t0
        if res.exit_code == 3:
            return files, FOLDER_GONE, time.time() - t0
        try:
            read_fetched(Path(tmp.name), batch, files)
        except (tarfile.TarError, OSError) as exc:
            return files, f"stage_out: cannot read what came back: {exc}", time.time() - t0
    return files, None, time.time() - t0


def removal_command(batch: Batch) -> str:
    """The command that removes a submission's folders (those kept with keep_remote stay)."""
    keep = [job.keep_remote for job in batch.jobs]
    if not any(keep):
        return f"cd / && rm -rf -- {shlex.quote(batch.base)}"
    if batch.is_array and not all(keep):
        gone = [shlex.quote(f) for f, k in zip(batch.folders, keep, strict=True) if not k]
        return f"cd / && rm -rf -- {' '.join(gone)}"
    return f"rm -rf -- {' '.join(shlex.quote(f'{r}/{JobPaths.FETCH_DIR}') for r in batch.rel)}"


def job_result(
    host: str,
    batch: Batch,
    index: int,
    job: JobSpec,
    ticket: Ticket,
    files: dict[str, bytes],
    fetch_error: str | None,
    stage_out_s: float,
    limits: Limits,
) -> JobResult:
    """What job `index` of the batch ended as: its logs and files written to local_dir, the
    scheduler's record, the exit status or signal, the peak memory and the timings."""
    result = JobResult(host=host, remote_dir=batch.folders[index])
    result.timings["connect"] = batch.connect_s
    result.timings["stage_in"] = batch.stage_in_s
    result.timings["stage_out"] = stage_out_s
    local = job.local_dir
    stdout_path, stderr_path = local / JobPaths.STDOUT, local / JobPaths.STDERR
    stdout_path.write_bytes(files.get(f"{JobPaths.FETCH_DIR}/{JobPaths.STDOUT}", b""))
    stderr_path.write_bytes(files.get(f"{JobPaths.FETCH_DIR}/{JobPaths.STDERR}", b""))
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
        result.cluster_lost = ticket.lost
        return result
    fields = record_of(ticket.fields)
    state = base_state(fields.get("JobState", ""))
    stderr_text = files.get(f"{JobPaths.FETCH_DIR}/{JobPaths.STDERR}", b"").decode("utf-8", "replace")
    evidence = scan_evidence(
        stderr_text,
        files.get(f"{JobPaths.FETCH_DIR}/{JobPaths.STDOUT}", b"").decode("utf-8", "replace"),
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
    if fetch_error and fetch_error.startswith((FOLDER_GONE, LOST_FETCH)):
        # The far side lost the job's files (a purge, someone else's rm) or the connection went
        # away while fetching them: nothing is known about the workload, so the probe is a skip.
        result.infra_error = fetch_error
    elif fetch_error and not result.infra_error:
        result.launch_error = fetch_error
    if state in LOST_STATES or (state == "CANCELLED" and not result.timed_out and not _time_limit_said(evidence)):
        # Someone else's scancel, a preemption or a failed node ended the job: that says nothing
        # about the workload, so the probe is a skip (and runs again), never a failing level.
        result.infra_error = (
            f"job {ticket.key.display()} ended {state} (Reason={fields.get('Reason') or 'None'}) before it "
            "could finish: cancelled outside this run, preempted or lost with its node"
        )

    rss = memory_mb(fields.get("MaxRSS", "")) if fields.get("MaxRSS") else None
    if rss is None:
        rss = exceeded_peak_mb(evidence)
    if rss is None and state == "OUT_OF_MEMORY" and limits.memory_bytes:
        # The cgroup kills when usage reaches the limit: the peak was the limit itself (the
        # runner's last record predates the kill and understates it).
        rss = limits.memory_bytes / 1024**2
    result.peak_rss_mb = rss
    _timings(result, batch, ticket, fields, files)
    return result


def _timings(
    result: JobResult,
    batch: Batch,
    ticket: Ticket,
    fields: dict[str, str],
    files: dict[str, bytes],
) -> None:
    started: float | None = None
    with contextlib.suppress(ValueError):
        text = files.get(JobPaths.STARTED, b"").decode().strip()
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


def _time_limit_said(evidence: list[str]) -> bool:
    """Whether SLURM's own lines say the job was cancelled at its time limit."""
    return any("TIME LIMIT" in line.upper() for line in evidence)
