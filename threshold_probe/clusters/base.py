"""The one small interface every cluster implements. A cluster knows nothing of ladders."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

from pydantic import BaseModel

from threshold_probe.clusters.sshconfig import resolve_target
from threshold_probe.config import ClusterConfigBase, SlurmClusterConfig, SSHClusterConfig
from threshold_probe.models import JobResult, JobSpec, Limits, RemoteWork


class Check(BaseModel):
    """One line of a preflight: what was checked, whether it is fine, and the fix if not."""

    name: str
    status: Literal["ok", "warn", "fail"]
    detail: str
    fix: str | None = None
    #: The failure is the user's input (a partition that does not exist), not the cluster's state.
    bad_input: bool = False


@dataclass(frozen=True)
class JobState:
    """What a scheduler says of one live job: told to Cluster.on_job_state as it changes.

    `probe_id` is the JobSpec's; `job_id` is the scheduler's (`123` or `123_4` for an array
    task); `state` is the scheduler's word (PENDING, RUNNING, COMPLETING, ...), `reason` why a
    job waits (SLURM's Reason), `node` where it runs; `final` once the scheduler is done with it.
    """

    probe_id: str
    job_id: str
    state: str
    reason: str = ""
    node: str = ""
    final: bool = False


#: Free space in a workdir under which preflight warns.
MIN_FREE_BYTES = 100 * 1024**2


def disk_check(free: int, folder: str, fix: str) -> Check:
    """The preflight's `disk` line: a warning, with `fix`, below MIN_FREE_BYTES free in `folder`."""
    low = free < MIN_FREE_BYTES
    return Check(
        name="disk",
        status="warn" if low else "ok",
        detail=f"{free / 1024**2:.0f} MB free in {folder}",
        fix=fix if low else None,
    )


@dataclass(frozen=True)
class SSHEndpoint:
    """Where a cluster's SSH connection goes, resolved as OpenSSH would (the ssh config applied),
    for a runner that opens its own connection (ClustriX)."""

    host: str
    port: int
    user: str
    identity_files: tuple[str, ...] = ()
    known_hosts: str | None = None
    host_key_policy: str = "reject"
    #: The environment variable holding the password, if any (never the password itself).
    password_env: str | None = None
    #: The connection goes through jump hosts (ProxyJump) or a ProxyCommand.
    via_jump: bool = False
    via_proxy_command: bool = False

    @classmethod
    def of(cls, config: SSHClusterConfig | SlurmClusterConfig, base_dir: Path | None) -> SSHEndpoint:
        """The endpoint of a cluster configured with a `host`."""
        if config.host is None:
            raise ValueError("a cluster without a host has no SSH endpoint")
        target = resolve_target(
            config.host,
            user=config.user,
            port=config.port,
            identity_file=config.identity_file,
            ssh_config=config.ssh_config,
            base_dir=base_dir,
        )
        return cls(
            host=target.hostname,
            port=target.port,
            user=target.user,
            identity_files=target.identity_files,
            known_hosts=config.known_hosts or target.known_hosts,
            host_key_policy=config.host_key_policy,
            password_env=config.password_env,
            via_jump=bool(target.jumps),
            via_proxy_command=bool(target.proxy_command),
        )


class Cluster(ABC):
    """Where code runs. Implementations: local, ssh, slurm."""

    kind: str = "abstract"
    #: The pydantic model of this cluster's table in probe.toml; each cluster narrows `config`
    #: to it, so that its fields are typed where they are used.
    config_model: ClassVar[type[ClusterConfigBase]] = ClusterConfigBase
    config: ClusterConfigBase
    #: True when execute_many runs its jobs concurrently (a queue, a job array): a sweep then
    #: sends every level in one batch instead of one at a time.
    concurrent: bool = False
    #: Set by preflight: see far_side().
    _far_side: dict[str, str]

    def __init__(self, name: str, config: ClusterConfigBase) -> None:
        self.name = name
        self.config = config
        #: Told about far-side work as it appears and goes (the run journals it), so that what a
        #: process killed with -9 leaves behind can be cancelled and removed later (reap).
        self.on_remote: Callable[[RemoteWork], None] | None = None
        #: Told when a live job's scheduler state changes (job id, state, reason, node), from
        #: any thread; clusters without a scheduler never call it.
        self.on_job_state: Callable[[JobState], None] | None = None
        #: Told of each job of an execute_many as soon as its result is known, in the caller's
        #: thread, before execute_many returns; a cluster that does not call it leaves every
        #: result to the list that execute_many returns.
        self.on_job_done: Callable[[JobSpec, JobResult], None] | None = None

    @classmethod
    def create(cls, name: str, config: ClusterConfigBase, *, base_dir: Path | None = None) -> Cluster:
        """The cluster of a probe.toml table (an instance of config_model); `base_dir` is the folder
        the config was read from, which relative paths in it are relative to."""
        return cls(name, config)

    def _remote(self, work: RemoteWork) -> None:
        if self.on_remote is not None:
            self.on_remote(work)

    def _job_state(self, state: JobState) -> None:
        if self.on_job_state is not None:
            self.on_job_state(state)

    def _job_done(self, job: JobSpec, result: JobResult) -> None:
        if self.on_job_done is not None:
            self.on_job_done(job, result)

    def reap(self, leftovers: Sequence[RemoteWork]) -> list[tuple[RemoteWork, str]]:
        """Cancel and remove far-side work that a dead process left behind (must not raise).

        Returns each piece of work that is now gone, with one line saying what was done to it.
        """
        return []

    def open(self) -> None:
        """Connect or prepare; called once before the first job. Raises InfraError when unusable."""

    def close(self) -> None:
        """Release connections; safe to call twice."""

    @abstractmethod
    def execute(self, job: JobSpec) -> JobResult:
        """Stage the job's files, run its command under its limits, fetch files back.

        Infrastructure trouble is reported in JobResult.infra_error, not raised.
        """

    def execute_many(self, jobs: Sequence[JobSpec]) -> list[JobResult]:
        """Run several jobs; clusters with a queue run them concurrently (a job array)."""
        return [self.execute(job) for job in jobs]

    def cancel_all(self) -> None:
        """Cancel every job this object started (Ctrl-C). Must not raise."""

    def preflight(self) -> list[Check]:
        """Check that the cluster can run probes; one Check per aspect."""
        return []

    def limit_checks(self, limits: Limits) -> list[Check]:
        """Check the run's limits against what the cluster offers, before the preflight's own
        checks (a memory limit no node has is the user's input: `bad_input`)."""
        return []

    def describe(self) -> dict[str, str]:
        """Short facts for report headers (kind, host, python)."""
        return {"kind": self.kind}

    def far_side(self) -> dict[str, str]:
        """What the last preflight saw of the far side: python, cloudpickle and hostname.

        Empty when no preflight ran. These go into the cluster fingerprint, so that a verdict
        measured under one interpreter is never reused for another.
        """
        return dict(getattr(self, "_far_side", {}))

    def enforcement(self, limits: Limits) -> dict[str, str]:
        """Who enforces each limit that is set: "memory", "time", "cores" -> a mechanism.

        Mechanisms are RLIMIT_AS, cgroup, SLURM, runner (threshold-probe kills the job itself at
        the limit) and CPU affinity. Called while the cluster is open.
        """
        return {}

    def node_cpus(self) -> int | None:
        """CPUs a probe's node offers (the most any node offers), or None when unknown."""
        return None

    def ssh_endpoint(self) -> SSHEndpoint | None:
        """Where this cluster is reached over SSH; None when it is not reached over SSH."""
        return None

    def __enter__(self) -> Cluster:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def enforcers(limits: Limits, *, memory: str, time: str, cores: str) -> dict[str, str]:
    """The mechanism of each limit that is set."""
    out = {}
    if limits.memory_bytes is not None:
        out["memory"] = memory
    if limits.time_s is not None:
        out["time"] = time
    if limits.cores is not None:
        out["cores"] = cores
    return out
