"""One SLURM submission (a single job or a job array): its folders, its batch script and its tar."""

from __future__ import annotations

import io
import secrets
import tarfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from threshold_probe.clusters.jobpaths import JobPaths, resolve_argv, safe_name
from threshold_probe.clusters.lifecycle import Try
from threshold_probe.clusters.slurm_script import ScriptTask, render_job_script
from threshold_probe.clusters.slurm_watch import Ticket
from threshold_probe.clusters.staging import content_digest, remote_stage_commands
from threshold_probe.config import SlurmClusterConfig
from threshold_probe.models import JobResult, JobSpec, Limits


@dataclass
class Batch:
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

    @classmethod
    def new(cls, jobs: list[JobSpec], wd: str) -> Batch:
        """A fresh submission of `jobs` under the workdir `wd`, with a folder name of its own."""
        token = secrets.token_hex(3)
        if len(jobs) == 1:
            name = f"{safe_name(jobs[0].probe_id, 48)}-{token}"
            base = f"{wd}/jobs/{name}"
            return cls(jobs, name, base, [base], ["."])
        name = f"array-{safe_name(jobs[0].probe_id, 48)}-{len(jobs)}-{token}"
        base = f"{wd}/jobs/{name}"
        rel = [str(i) for i in range(len(jobs))]
        return cls(jobs, name, base, [f"{base}/{r}" for r in rel], rel)

    @property
    def job_name(self) -> str:
        """SLURM's name of the job: unique to this submission for an array."""
        if self.is_array:
            return f"tp-{self.name}"
        return f"tp-{safe_name(self.jobs[0].probe_id, 48)}"


def batch_script(batch: Batch, config: SlurmClusterConfig, limits: Limits, argvs: list[list[str]]) -> str:
    """The batch script of a submission (see slurm_script)."""
    tasks = [
        ScriptTask(folder=folder, argv=argv, env={"PYTHONUNBUFFERED": "1", **job.env})
        for folder, argv, job in zip(batch.folders, argvs, batch.jobs, strict=True)
    ]
    if batch.is_array:
        output, error = f"{batch.base}/%a/{JobPaths.STDOUT}", f"{batch.base}/%a/{JobPaths.STDERR}"
    else:
        output, error = f"{batch.base}/{JobPaths.STDOUT}", f"{batch.base}/{JobPaths.STDERR}"
    return render_job_script(
        config,
        limits,
        tasks,
        job_name=batch.job_name,
        output=output,
        error=error,
        array_throttle=config.array_throttle if batch.is_array else None,
    )


def build_archive(batch: Batch, wd: str, config: SlurmClusterConfig, limits: Limits) -> tuple[bytes, list[str]]:
    """A tar (paths relative to the workdir) of every job folder, the script and the shared files.

    Shared files go in under a temporary name of this submission; the returned shell lines
    (run in the workdir) put each in place unless a good copy is already there. So a copy
    that a full disk cut short, or that someone changed, is never used again.
    """
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
                path = f"{wd}/shared/{content_digest(data)}/{Path(sname).name}"
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
            argvs.append(resolve_argv(job.argv, [config.python], shared))
        add(tar, JobPaths(batch.base).job_script, batch_script(batch, config, limits, argvs).encode(), 0o700)
    return buf.getvalue(), stage_lines


def stage_error_line(err: str) -> str:
    """The line of a failed unpack that says why (tar's last line only says that it failed)."""
    lines = [line.strip() for line in err.splitlines() if line.strip()]
    for line in lines:
        if "No space left" in line or "quota" in line.lower():
            return line
    meaningful = [line for line in lines if "Exiting with failure status" not in line]
    return (meaningful or lines or ["tar failed"])[-1]


@dataclass
class BatchTry(Try):
    """One submission of a batch of jobs (one job, or one array), from hook to hook."""

    jobs: list[JobSpec]
    #: Tell each array task's result to on_job_done as soon as the task ends.
    stream: bool = True
    batch: Batch | None = None
    limits: Limits | None = None
    #: What sbatch (or staging) said when the batch was not submitted.
    unsubmitted: JobResult | None = None
    results: dict[int, JobResult] = field(default_factory=dict)
    fetched: bool = False
