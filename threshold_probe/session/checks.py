"""Checks before a run's first probe: the preflight, the cluster's fingerprint, and the limits."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from threshold_probe import __version__
from threshold_probe.cell import Fingerprint, fingerprint
from threshold_probe.clusters.base import Check, Cluster
from threshold_probe.errors import InfraError, ProbeError, UserError
from threshold_probe.floor import CHECK_BELOW_BYTES, cached_floor, measure_floor
from threshold_probe.models import Limits
from threshold_probe.pipelines.base import Pipeline
from threshold_probe.probe import Prober
from threshold_probe.units import format_memory

Note = Callable[[str], None]


def preflight(cluster: Cluster, pipeline: Pipeline, note: Note, limits: Limits | None = None) -> None:
    """InfraError (exit 3) when the cluster cannot run probes; UserError (exit 2) when only the
    user's input is at fault (a partition that does not exist, more memory than any node has)."""
    if limits is not None:
        # First, and alone: a limit no node offers is the answer, whatever else the preflight says.
        _refuse(cluster, [c for c in cluster.limit_checks(limits) if c.status == "fail"])
    checks = cluster.preflight()
    # Ask only what the chosen pipeline needs: source shipping runs without cloudpickle.
    unneeded = {"cloudpickle"} if not pipeline.needs_cloudpickle else set()
    for c in checks:
        if c.status == "fail" and c.name in unneeded:
            note(f"{c.name} not needed by the {pipeline.name} pipeline: {c.detail}")
    _refuse(cluster, [c for c in checks if c.status == "fail" and c.name not in unneeded])


def _refuse(cluster: Cluster, bad: list[Check]) -> None:
    """Raise for the failed checks: UserError when all are the user's input, else InfraError."""
    if bad:
        lines = "; ".join(f"{c.name}: {c.detail}" + (f" (fix: {c.fix})" if c.fix else "") for c in bad)
        if all(c.bad_input for c in bad):  # e.g. --partition nope: a typo, exit 2
            raise UserError(f"cluster {cluster.name!r}: {lines}")
        raise InfraError(f"cluster {cluster.name!r} is not usable: {lines}")


def settle_fingerprint(
    cluster: Cluster, pipeline: Pipeline, pipeline_arg: str, prober: Prober, note: Note
) -> tuple[Fingerprint, str | None]:
    """Key the cache by the cluster's fingerprint, now that the preflight has seen the far side;
    the fingerprint, and why no verdict is reused when none can be.

    Without a preflight the far side is unknown, so verdicts of other runs are not reused.
    """
    kind = type(pipeline)
    described = {
        "name": pipeline.name,
        "as_given": pipeline_arg,
        "class": f"{kind.__module__}:{kind.__qualname__}",
    }
    fp = fingerprint(cluster.name, cluster.config, cluster.far_side(), described, __version__)
    prober.cluster_key = f"{cluster.name}#{fp.digest}"
    reuse_note = None
    if not fp.checked and prober.use_cache:
        prober.use_cache = False
        reuse_note = "no verdict of an earlier run was reused: without the preflight the far side is unknown"
        note(reuse_note)
    return fp, reuse_note


def check_limits(
    cluster: Cluster,
    pipeline: Pipeline,
    limits: Limits,
    store_root: Path,
    *,
    measure: bool,
    note: Note,
    warn: Note,
) -> dict[str, str]:
    """Who enforces each limit (see Cluster.enforcement). Refuse a memory limit below what a bare
    runner needs there (UserError, exit 2), measuring the floor when `measure`; warn about more
    cores than a node has."""
    enforced_by: dict[str, str] = {}
    try:
        enforced_by = pipeline.enforcement(cluster, limits)
    except ProbeError as exc:  # a report without the mechanism is better than no run
        note(f"could not tell who enforces the limits: {exc}")
    mem = limits.memory_bytes
    enforced = enforced_by.get("memory", "RLIMIT_AS") in ("RLIMIT_AS", "cgroup", "SLURM")
    # A limit nothing enforces cannot be too low; one of a gibibyte or more never is.
    if mem is not None and enforced and mem < CHECK_BELOW_BYTES:
        floor = cached_floor(cluster, store_root)
        if floor is None and measure:
            floor = measure_floor(cluster, store_root)
        enforcer = enforced_by.get("memory")
        need = floor.bytes_for(enforcer) if floor is not None else None
        if need is not None and mem < need:
            what = "peak address space" if enforcer == "RLIMIT_AS" else "peak RSS"
            raise UserError(
                f"memory limit {format_memory(mem)} is below the floor of cluster {cluster.name!r}:"
                f" a bare runner needs {format_memory(need)} there (its measured {what});"
                f" give --memory {format_memory(need)} or more"
            )
    cores = limits.cores
    if cores is not None:
        try:
            cpus = cluster.node_cpus()
        except ProbeError:
            cpus = None
        if cpus is not None and cores > cpus:
            warn(
                f"{cores} cores asked for, but a node of cluster {cluster.name!r} has {cpus} CPUs:"
                " probes share them (a scheduler may refuse the job)"
            )
    return enforced_by
