"""Options of a run as the user gave them: limit overrides, search options and the progress sink."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from threshold_probe.clusters.base import JobState
from threshold_probe.config import ProbeConfig, SlurmClusterConfig
from threshold_probe.errors import UserError
from threshold_probe.models import Limits, ProbeRecord
from threshold_probe.units import parse_memory_limit, parse_time_limit

Kind = Literal["run", "sweep", "bisect", "isolate"]


@dataclass
class LimitOverrides:
    """Limits given on the command line; None keeps the cluster's configured value."""

    memory: str | None = None
    time: str | None = None
    cores: int | None = None
    partition: str | None = None


@dataclass
class SearchOptions:
    """Everything about a search that is not where or how it runs."""

    level: int | None = None
    lo: int | None = None
    hi: int | None = None
    parallel: int = 1
    repeat: int = 1
    confirm: int = 1
    match: str | None = None
    fresh: bool = False
    keep_remote: bool = False
    isolate: bool = False
    from_run: str | None = None
    preflight: bool = True
    #: `probe run --function FILE:FUNC`: probe a user's own function.
    function: str | None = None
    #: Keyword arguments of the user's function (`--arg NAME=VALUE`).
    args: dict[str, Any] = field(default_factory=dict)
    #: Pickle the user's sibling modules by value (`--ship-local-modules`).
    ship_local_modules: bool = False
    #: A CI gate: every level up to N must pass (`--expect-pass-through N`); exit 1 otherwise.
    expect_pass_through: int | None = None
    #: `sweep|bisect --function F --scale NAME=LO..HI`: one argument of F scaled into the ladder.
    scale: str | None = None
    steps: int | None = None
    values: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ProgressSink(Protocol):
    """Where a run reports progress (the CLI shows a Rich progress bar)."""

    def begin(self, description: str, total: int | None) -> None: ...

    def probe_done(self, record: ProbeRecord, label: str | None = None) -> None:
        """A probe finished; `label` names it (`level 3`, `memory_mb=266`) when the run can."""

    def job_state(self, label: str, state: JobState) -> None:
        """The scheduler's state of a live probe's job changed (from any thread)."""

    def note(self, message: str) -> None: ...

    def end(self) -> None: ...


def run_limits(config: ProbeConfig, cluster: str, overrides: LimitOverrides) -> Limits:
    """The cluster's configured limits with the command line's overrides applied."""
    base = config.cluster(cluster).limits()
    # `is not None`: a zero is the user's mistake to be told about, not "keep the default".
    if overrides.cores is not None and overrides.cores < 1:
        raise UserError(f"--cores {overrides.cores}: the number of cores must be at least 1")
    return Limits(
        memory_bytes=parse_memory_limit(overrides.memory) if overrides.memory is not None else base.memory_bytes,
        time_s=parse_time_limit(overrides.time) if overrides.time is not None else base.time_s,
        cores=overrides.cores if overrides.cores is not None else base.cores,
    )


def limit_origins(config: ProbeConfig, cluster: str, overrides: LimitOverrides) -> dict[str, str]:
    """Where each limit of run_limits comes from: "option" (the command line), "config" (the
    cluster's table in the config file) or "default" (the cluster type's own default, such as the
    local cluster's 1GB); a limit that is not set has no entry."""
    cfg = config.cluster(cluster)
    given = {"memory": overrides.memory, "time": overrides.time, "cores": overrides.cores}
    origins = {}
    for name, value in given.items():
        if value is not None:
            origins[name] = "option"
        elif getattr(cfg, name, None) is not None:
            origins[name] = "config" if name in cfg.model_fields_set else "default"
    return origins


def with_partition(config: ProbeConfig, cluster: str, partition: str) -> ProbeConfig:
    """The config with one SLURM cluster's partition replaced (--partition)."""
    cfg = config.cluster(cluster)
    if not isinstance(cfg, SlurmClusterConfig):
        raise UserError(f"--partition applies to slurm clusters; {cluster!r} is a {cfg.type} cluster")
    clusters = dict(config.clusters)
    clusters[cluster] = cfg.model_copy(update={"partition": partition})
    return config.model_copy(update={"clusters": clusters})


def absolute_if_file(text: str) -> str:
    """A ladder or function path made absolute, so that a resume from another folder finds it."""
    path_text, sep, func = text.rpartition(":") if ".py:" in text else (text, "", "")
    path = Path(path_text).expanduser()
    if path.is_file():
        return str(path.resolve()) + sep + func
    return text
