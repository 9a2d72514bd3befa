"""What a shrink works on: a recorded failure (a run's level) or a user's function, with the
cluster, pipeline and limits it failed under."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from threshold_probe.config import ProbeConfig
from threshold_probe.errors import UserError
from threshold_probe.ladder import load_ladder
from threshold_probe.ladder.workload import Workload
from threshold_probe.models import Limits, ProbeRecord
from threshold_probe.store import Store
from threshold_probe.target import load_target, scaled_ladder
from threshold_probe.units import parse_memory_limit, parse_time_limit

#: The kind of a shrink run in the journal.
KIND = "shrink"


@dataclass
class ShrinkTarget:
    """What to shrink and where: a workload, its cluster, pipeline and limits, and its failure."""

    workload: Workload
    cluster: str
    pipeline: str
    limits: Limits
    #: What the user calls it: "run R level 10" or "app.py:main".
    label: str
    level: int | None = None
    spec: dict[str, Any] = field(default_factory=dict)
    #: The failure to keep, when known beforehand (a recorded run); else the first probe's.
    signature: str | None = None
    from_run: str | None = None
    #: `--function` and `--arg` as given, for the command that runs the reproducer.
    function: str | None = None
    args: dict[str, Any] = field(default_factory=dict)


def limits_for(config: ProbeConfig, cluster: str, memory: str | None, time_limit: str | None) -> Limits:
    """The cluster's configured limits with --memory and --time applied."""
    base = config.cluster(cluster).limits()
    return Limits(
        memory_bytes=parse_memory_limit(memory) if memory is not None else base.memory_bytes,
        time_s=parse_time_limit(time_limit) if time_limit is not None else base.time_s,
        cores=base.cores,
    )


def target_from_function(
    config: ProbeConfig,
    function: str,
    args: Mapping[str, Any] | None = None,
    *,
    cluster: str | None = None,
    pipeline: str | None = None,
    memory: str | None = None,
    time_limit: str | None = None,
    ship_local_modules: bool = False,
) -> ShrinkTarget:
    """A user's function as a shrink target; UserError when it cannot load here."""
    if ":" in function and not Path(function.rpartition(":")[0]).is_absolute():
        spec_part, _, attr = function.rpartition(":")
        if Path(spec_part).exists():
            function = f"{Path(spec_part).resolve()}:{attr}"
    workload = load_target(function, args, ship_local_modules=ship_local_modules)
    cluster_name = cluster or config.defaults.cluster
    spec: dict[str, Any] = {"function": function}
    if args:
        spec["args"] = dict(args)
    return ShrinkTarget(
        workload=workload,
        cluster=cluster_name,
        pipeline=pipeline or config.defaults.pipeline,
        limits=limits_for(config, cluster_name, memory, time_limit),
        label=workload.name,
        spec=spec,
        function=function,
        args=dict(args or {}),
    )


def _failing(records: Sequence[ProbeRecord], level: int | None) -> list[ProbeRecord]:
    return [r for r in records if r.verdict.status == "fail" and (level is None or r.level == level)]


def target_from_run(store: Store, run_id: str, level: int | None = None, *, use: str = "shrink") -> ShrinkTarget:
    """A recorded failure as a shrink target: the run's level (default its first failing one).

    UserError (exit 2) when the level passed, was never probed, or the run has no failure: "nothing
    to `use`" (the command that asked).
    """
    info = store.get_run(run_id)
    if info.kind == KIND:
        raise UserError(f"run {info.run_id} is a shrink; shrink the run it came from ({info.params.get('from_run')})")
    records = store.probes(info.run_id)
    if level is not None:
        at_level = [r for r in records if r.level == level]
        if not at_level:
            raise UserError(f"level {level} was not probed in run {info.run_id}: nothing to {use}")
        if not _failing(at_level, level):
            raise UserError(f"level {level} passed: nothing to {use}")
        chosen = _failing(at_level, level)[0]
    else:
        failed = [r for r in _failing(records, None)]
        if not failed:
            raise UserError(f"run {info.run_id} has no failing probe: nothing to {use}")
        leveled = [r for r in failed if r.level is not None]
        chosen = min(leveled, key=lambda r: r.level or 0) if leveled else failed[0]
    p = info.params
    options = p.get("options", {})
    workload: Workload
    if chosen.level is None:
        function = options.get("function")
        if not function:
            raise UserError(f"run {info.run_id}: its failing probe is not a level or a function")
        workload = load_target(
            function, options.get("args") or {}, ship_local_modules=options.get("ship_local_modules", False)
        )
    elif options.get("scale") and options.get("function"):
        ladder = scaled_ladder(
            options["function"],
            options.get("args") or {},
            options["scale"],
            options.get("steps"),
            options.get("values"),
            ship_local_modules=options.get("ship_local_modules", False),
        )
        workload = ladder.workload(chosen.level)
    else:
        workload = load_ladder(p.get("ladder") or "default").workload(chosen.level)
    if workload.sha256 != chosen.workload_hash:
        raise UserError(
            f"run {info.run_id} level {chosen.level}: its source is not what was probed (the ladder or file changed)"
        )
    obs = chosen.observation
    what = f"level {chosen.level}" if chosen.level is not None else workload.name
    return ShrinkTarget(
        workload=workload,
        cluster=info.cluster,
        pipeline=p.get("pipeline") or info.pipeline,
        limits=obs.limits,
        label=f"run {info.run_id} {what}",
        level=chosen.level,
        spec=dict(chosen.spec),
        signature=chosen.verdict.signature,
        from_run=info.run_id,
        function=options.get("function") if chosen.level is None else None,
        args=dict(options.get("args") or {}) if chosen.level is None else {},
    )


__all__ = ["KIND", "ShrinkTarget", "limits_for", "target_from_function", "target_from_run"]
