"""The memory floor of a cluster: what a bare runner needs there, measured, not guessed.

A memory limit below it fails every probe for a reason that has nothing to do with the workload
(`--memory 1KB` once came back as SIGSEGV, exit 0). The preflight measures it by running a no-op
function through the native pipeline under the cluster's own interpreter, with no memory limit,
and reads the runner's own peaks from meta.json:

- where RLIMIT_AS enforces memory, the floor is the runner's peak address space (VmPeak);
- where a cgroup or SLURM does, it is the runner's peak RSS (VmHWM).

Limits of 1 GiB and more are not checked (no bare runner comes near). Measurements are cached
in the reports folder for a day, keyed by the cluster's name, its config and the runner's
source, so a change of interpreter or runner measures again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from threshold_probe.clusters.base import Cluster
from threshold_probe.ladder.workload import Workload
from threshold_probe.models import Limits
from threshold_probe.pipelines import make_pipeline
from threshold_probe.remote import runner_source
from threshold_probe.store import atomic_write

#: Limits at or above this are never below a bare runner's needs (tens of MB: 24 MB of address
#: space for CPython 3.11 with cloudpickle), so they cost no measurement.
CHECK_BELOW_BYTES = 1024**3
CACHE_NAME = "memory-floor.json"
CACHE_TTL_S = 24 * 3600.0
#: The no-op probe's own bound: a far side that cannot run `return None` in this long is broken.
PROBE_TIME_S = 120.0

_NOOP = Workload(name="memory-floor", source="def noop():\n    return None\n", func_name="noop")


@dataclass(frozen=True)
class MemoryFloor:
    """What a bare runner used on one cluster, in KB."""

    vm_peak_kb: int | None
    rss_peak_kb: int | None
    measured_at: float

    def bytes_for(self, enforcer: str | None) -> int | None:
        """The floor for a memory limit enforced by `enforcer` (RLIMIT_AS, cgroup, SLURM)."""
        kb = self.vm_peak_kb if enforcer == "RLIMIT_AS" else self.rss_peak_kb
        if kb is None:
            return None
        # Whole megabytes, rounded up: that is how limits are written and how sbatch takes them.
        return math.ceil(kb / 1024) * 1024**2


def _key(cluster: Cluster) -> str:
    config = cluster.config
    dumped = config.model_dump(mode="json") if hasattr(config, "model_dump") else repr(config)
    text = json.dumps([cluster.name, dumped, hashlib.sha256(runner_source()).hexdigest()], sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:24]


def _read_cache(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):  # a missing or damaged cache only costs a measurement
        return {}
    return data if isinstance(data, dict) else {}


def cached_floor(cluster: Cluster, cache_dir: Path) -> MemoryFloor | None:
    """The cached floor of this cluster, when it was measured less than a day ago."""
    entry = _read_cache(cache_dir / CACHE_NAME).get(_key(cluster))
    if not isinstance(entry, dict):
        return None
    measured_at = entry.get("measured_at")
    if not isinstance(measured_at, (int, float)) or time.time() - measured_at > CACHE_TTL_S:
        return None
    vm, rss = entry.get("vm_peak_kb"), entry.get("rss_peak_kb")
    return MemoryFloor(
        vm_peak_kb=vm if isinstance(vm, int) else None,
        rss_peak_kb=rss if isinstance(rss, int) else None,
        measured_at=float(measured_at),
    )


def measure_floor(cluster: Cluster, cache_dir: Path) -> MemoryFloor | None:
    """Run a no-op function on the (open) cluster and cache what the runner used.

    None when the no-op probe left no meta.json: the preflight has said why, or the first
    probe will.
    """
    with tempfile.TemporaryDirectory(prefix="tp-floor-") as tmp:
        obs = make_pipeline("native").dispatch(
            _NOOP, cluster, f"floor-{int(time.time())}", Limits(time_s=PROBE_TIME_S), Path(tmp)
        )
    meta = obs.meta or {}
    vm, rss = meta.get("vm_peak_kb_self"), meta.get("rss_peak_kb_self")
    if not isinstance(vm, int) and not isinstance(rss, int):
        return None
    floor = MemoryFloor(
        vm_peak_kb=vm if isinstance(vm, int) else None,
        rss_peak_kb=rss if isinstance(rss, int) else None,
        measured_at=time.time(),
    )
    path = cache_dir / CACHE_NAME
    data = _read_cache(path)
    data[_key(cluster)] = {
        "cluster": cluster.name,
        "vm_peak_kb": floor.vm_peak_kb,
        "rss_peak_kb": floor.rss_peak_kb,
        "measured_at": floor.measured_at,
    }
    # A cache that cannot be written costs a measurement next time, nothing more.
    with contextlib.suppress(OSError):
        atomic_write(path, json.dumps(data, indent=1, sort_keys=True))
    return floor


__all__ = ["CHECK_BELOW_BYTES", "MemoryFloor", "cached_floor", "measure_floor"]
