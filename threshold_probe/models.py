"""Plain data that flows between the parts: limits, jobs, observations, verdicts, probe records.

Every arrow in the data flow carries one of these. They are pydantic models so that they
round-trip through the SQLite journal and the JSON reports unchanged.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

#: Names of the stages of one probe, in order. Timings are seconds; a stage a cluster or
#: pipeline cannot tell apart is simply absent from the dict.
STAGES: tuple[str, ...] = (
    "connect",  # opening the transport (SSH), zero when reused
    "stage_in",  # uploading runner and payload
    "queue",  # waiting in a scheduler queue (SLURM)
    "startup",  # interpreter start until the runner's first line
    "deserialize",  # loading the function on the far side
    "execute",  # running the function
    "serialize",  # writing the result summary
    "stage_out",  # fetching meta.json, result.json and logs
)

#: Placeholder in JobSpec.argv that a cluster replaces with its own Python interpreter.
PYTHON = "{python}"


def shared_ref(name: str) -> str:
    """Placeholder in JobSpec.argv for the staged path of JobSpec.shared[name]."""
    return "{shared:" + name + "}"


VerdictStatus = Literal["pass", "fail", "skip"]


class Limits(BaseModel):
    """Real resource limits a cluster enforces on one probe."""

    model_config = ConfigDict(frozen=True)

    memory_bytes: int | None = None
    time_s: float | None = None
    cores: int | None = None


class JobSpec(BaseModel):
    """What a pipeline asks a cluster to run: files to stage, a command, files to fetch back.

    The command runs with the job folder as its working directory. `argv` items equal to
    PYTHON are replaced by the cluster's interpreter. A cluster never looks inside the files.
    """

    probe_id: str
    files: dict[str, bytes] = Field(default_factory=dict)
    #: Files that are the same for many jobs (the runner). A cluster stages each once, under a
    #: content-hashed name, and replaces shared_ref(name) in argv with its path.
    shared: dict[str, bytes] = Field(default_factory=dict)
    argv: list[str]
    env: dict[str, str] = Field(default_factory=dict)
    limits: Limits = Field(default_factory=Limits)
    fetch: list[str] = Field(default_factory=lambda: ["meta.json", "result.json"])
    #: Local folder where the cluster writes stdout.log, stderr.log and fetched files.
    local_dir: Path
    keep_remote: bool = False


class JobResult(BaseModel):
    """What a cluster saw of one job. Filled by clusters; read by pipelines and diagnosis."""

    exit_code: int | None = None
    #: The signal that ended the process (positive number), if any.
    signal: int | None = None
    #: The cluster killed the job because `limits.time_s` ran out.
    timed_out: bool = False
    #: The job could not start: for example "OSError: [Errno 7] Argument list too long".
    launch_error: str | None = None
    #: Infrastructure trouble (refused connection, dropped link, dead controller): a skip.
    infra_error: str | None = None
    #: The infrastructure trouble will not go away by itself (the host stayed unreachable through
    #: the retry budget, a changed host key, refused login): the run cannot go on.
    cluster_lost: bool = False
    stdout_path: Path | None = None
    stderr_path: Path | None = None
    stdout_tail: str = ""
    stderr_tail: str = ""
    #: Fetched files: name in the job folder -> local path. Missing names were not there.
    files: dict[str, Path] = Field(default_factory=dict)
    timings: dict[str, float] = Field(default_factory=dict)
    #: Peak memory the cluster itself measured (SLURM MaxRSS, cgroup peak), in MB.
    peak_rss_mb: float | None = None
    #: Scheduler facts: JobId, JobState, Reason, ExitCode, NodeList, MaxRSS, Elapsed.
    scheduler: dict[str, str] = Field(default_factory=dict)
    host: str | None = None
    remote_dir: str | None = None


class Observation(BaseModel):
    """Everything one probe saw: the cluster's JobResult plus what the runner reported."""

    probe_id: str
    level: int | None = None
    workload: str
    cluster: str
    pipeline: str
    limits: Limits = Field(default_factory=Limits)
    started_at: float
    wall_s: float
    job: JobResult
    #: The runner's meta.json, when it was written (stage timestamps, exception, versions).
    meta: dict[str, Any] | None = None
    #: The runner's result.json, when it was written (type, size, repr, sha256).
    result: dict[str, Any] | None = None
    #: Timings of every stage, merged from the cluster and the runner (see STAGES).
    timings: dict[str, float] = Field(default_factory=dict)
    peak_rss_mb: float | None = None
    #: A pipeline's own failure before or after the job (for example pickling failed on the client).
    client_error: str | None = None
    client_error_type: str | None = None
    #: The probe's remote folder (job.remote_dir) was left in place (--keep-remote).
    remote_kept: bool = False
    #: Extra evidence a pipeline found (for example lines from a wrapper library's job folder).
    notes: list[str] = Field(default_factory=list)
    #: The far side's "python" and "cloudpickle" versions as measured before the job, for
    #: pipelines whose far side runs no runner of ours to report them (meta.json wins).
    far_side: dict[str, str | None] = Field(default_factory=dict)


class Verdict(BaseModel):
    """pass, fail(class, signature, evidence) or skip(cause)."""

    model_config = ConfigDict(populate_by_name=True)

    status: VerdictStatus
    failure_class: str | None = Field(default=None, alias="class")
    signature: str | None = None
    explanation: str | None = None
    evidence: list[str] = Field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status == "pass"


class ProbeRecord(BaseModel):
    """One probe as stored in the journal and the run folder."""

    run_id: str
    probe_id: str
    level: int | None
    attempt: int = 1
    #: The dimension values of the probed workload (for isolate runs they differ from the ladder).
    spec: dict[str, Any] = Field(default_factory=dict)
    workload_hash: str
    metrics: dict[str, Any] = Field(default_factory=dict)
    observation: Observation
    verdict: Verdict
    #: The probe id of an earlier identical probe whose verdict this record reuses.
    cached_from: str | None = None
    #: The run of that earlier probe.
    cached_from_run: str | None = None


class RemoteWork(BaseModel):
    """Far-side work that must not outlive the process that made it.

    A SLURM job (or job array) with its folder, or an SSH session folder. A cluster reports each
    one when it appears (before sbatch, so that a job is never unknown to the journal), when its
    job id is known, and when it is gone; what a killed process leaves `live` is cancelled and
    removed later (Cluster.reap).
    """

    kind: Literal["slurm-job", "ssh-session"]
    #: Absolute folder on the far side, unique on its cluster.
    folder: str
    #: The scheduler's job name, unique to the submission: cancels a job whose id never came back.
    job_name: str | None = None
    job_id: str | None = None
    #: `live` until the job is gone and its folder removed (or kept on purpose: `keep`).
    state: Literal["live", "done"] = "live"
    #: Folders run with --keep-remote: the job is cancelled, the folder stays.
    keep: bool = False
