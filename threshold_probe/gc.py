"""`probe gc`: remove old runs (their folders and journal rows), never a baseline nightly still uses.

A run is removed when it is older than `older_than` and not among the `keep` newest runs. Kept
whatever their age:

- a run that is still running;
- a run pinned in [nightly.baseline] (by id, or as `{run = ...}`);
- a run that the last nightly.json of the configured output folder names;
- the newest completed run of every cluster, pipeline, ladder and kind: the run `probe nightly`
  (and `compare`) compares the next one with.

Far-side leftovers of dead runs (SSH session folders, SLURM jobs and array folders that the
journal still lists as live, of a process that is gone) are cancelled and removed on every
cluster they are on, whatever the age of their run; the work of a run that is alive is never
touched (its owner lock is held).
"""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from threshold_probe.config import ProbeConfig
from threshold_probe.errors import ProbeError, UserError
from threshold_probe.models import RemoteWork
from threshold_probe.store import RunInfo, RunLock, Store
from threshold_probe.units import parse_duration

_DAYS = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(d|w)\s*$", re.IGNORECASE)


def parse_age(text: str) -> float:
    """Seconds from '30d', '2w', '12h', '90m' or '45s'."""
    m = _DAYS.match(text)
    if m:
        return float(m.group(1)) * (86400.0 if m.group(2).lower() == "d" else 7 * 86400.0)
    try:
        return parse_duration(text)
    except UserError:
        raise UserError(f"--older-than {text!r}: write it like 30d, 2w or 12h") from None


@dataclass
class GcRun:
    """One run gc looked at: removed (or would be, with --dry-run) or kept, and why."""

    run_id: str
    started_at: float
    bytes: int
    removed: bool
    reason: str


@dataclass
class GcResult:
    """What gc removed and what it kept on purpose."""

    runs: list[GcRun] = field(default_factory=list)
    #: One line per far-side leftover of a dead run that was removed (or would be), or could not be.
    far_side: list[str] = field(default_factory=list)

    @property
    def removed(self) -> list[GcRun]:
        return [r for r in self.runs if r.removed]

    @property
    def freed(self) -> int:
        return sum(r.bytes for r in self.removed)


def _size(path: Path) -> int:
    total = 0
    if not path.exists():
        return 0
    for p in path.rglob("*"):
        try:
            if p.is_file() and not p.is_symlink():
                total += p.stat().st_size
        except OSError:
            continue
    return total


def _pinned(config: ProbeConfig) -> set[str]:
    out: set[str] = set()
    for value in config.nightly.baseline.values():
        if isinstance(value, str):
            out.add(value)
        elif isinstance(value, dict) and isinstance(value.get("run"), str):
            out.add(value["run"])
    return out


def _nightly_runs(config: ProbeConfig) -> set[str]:
    from threshold_probe.nightly import output_dir, previous_cells

    try:
        return set(previous_cells(output_dir(config, None)).values())
    except (OSError, ValueError, UserError):
        return set()


def _newest_of_each_series(runs: Iterable[RunInfo]) -> set[str]:
    newest: dict[tuple[str, str, str, str], RunInfo] = {}
    for r in runs:
        if r.status != "completed":
            continue
        key = (r.cluster, r.pipeline, r.ladder, r.kind)
        if key not in newest or r.started_at > newest[key].started_at:
            newest[key] = r
    return {r.run_id for r in newest.values()}


def collect(
    store: Store,
    config: ProbeConfig,
    *,
    older_than: float | None,
    keep: int = 0,
    dry_run: bool = False,
    now: float | None = None,
) -> GcResult:
    """Remove (or, with dry_run, list) the runs gc may remove; see the module's docstring."""
    now = time.time() if now is None else now
    runs = store.runs()  # newest first
    newest_n = {r.run_id for r in runs[:keep]} if keep > 0 else set()
    pinned = _pinned(config)
    nightly = _nightly_runs(config)
    series = _newest_of_each_series(runs)
    result = GcResult()
    result.far_side = _reap_far_side(store, config, dry_run)
    for r in runs:
        old = older_than is None or r.started_at < now - older_than
        if not old or r.run_id in newest_n:
            continue
        reason = ""
        if r.status == "running":
            reason = "still running"
        elif r.run_id in pinned:
            reason = "pinned in [nightly.baseline]"
        elif r.run_id in nightly:
            reason = "a baseline of the last nightly"
        elif r.run_id in series:
            reason = f"the newest completed {r.kind} of {r.cluster}/{r.pipeline}/{r.ladder} (a baseline)"
        folder = store.run_dir(r.run_id)
        size = _size(folder)
        if reason:
            result.runs.append(GcRun(r.run_id, r.started_at, size, False, reason))
            continue
        if not dry_run:
            store.delete_run(r.run_id)
            shutil.rmtree(folder, ignore_errors=True)
        result.runs.append(GcRun(r.run_id, r.started_at, size, True, "removed"))
    return result


def _reap_far_side(store: Store, config: ProbeConfig, dry_run: bool) -> list[str]:
    """Cancel and remove far-side work of dead runs on every cluster the journal lists it on."""
    from threshold_probe.clusters import make_cluster

    lines: list[str] = []
    for name in config.cluster_names():
        leftovers = store.remote_leftovers(name)
        if not leftovers:
            continue
        locks: list[RunLock] = []
        dead: dict[str, list[RemoteWork]] = {}
        try:
            for run_id, works in leftovers.items():
                got = store.try_own_run(run_id)
                if isinstance(got, RunLock):
                    locks.append(got)
                    dead[run_id] = list(works)
            if not dead:
                continue
            if dry_run:
                for run_id, works in dead.items():
                    for work in works:
                        lines.append(f"{name}: would remove {work.folder} of dead run {run_id}")
                continue
            try:
                cluster = make_cluster(name, config)
                cluster.open()
            except ProbeError as exc:
                lines.append(f"{name}: far-side leftovers kept, cannot reach the cluster: {exc}")
                continue
            try:
                for run_id, works in leftovers.items():
                    if run_id not in dead:
                        continue
                    for work, line in cluster.reap(works):
                        store.record_remote(run_id, name, work.model_copy(update={"state": "done"}))
                        lines.append(f"{name}: {line} (dead run {run_id})")
            finally:
                cluster.close()
        finally:
            for lock in locks:
                lock.release()
    return lines
