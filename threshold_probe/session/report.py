"""The RunSummary of a run so far, built from its probe records: levels, probes, failure, cell, reuse.

The summary is saved after every probe (status ``running``), so a run killed at any point has a
report that loads; it is replaced by the final one (``completed``, ``interrupted`` or ``error``).
"""

from __future__ import annotations

import platform
import time
from collections.abc import Sequence
from typing import Any, Protocol

import cloudpickle

from threshold_probe import __version__
from threshold_probe.cell import Cell, Fingerprint, ladder_hash
from threshold_probe.clusters.base import Cluster
from threshold_probe.models import Limits, ProbeRecord
from threshold_probe.pipelines.base import Pipeline
from threshold_probe.search.base import fold
from threshold_probe.session.options import Kind, SearchOptions
from threshold_probe.session.outcomes import Oracles, different_failures_text
from threshold_probe.session.searches import SearchResult
from threshold_probe.session.workloads import Workloads
from threshold_probe.signature import matches
from threshold_probe.store import Store
from threshold_probe.summary import FailureSummary, LevelRow, ProbeSummary, ReuseSummary, RunSummary, ScaleSummary
from threshold_probe.target import ScaledLadder


class RunState(Protocol):
    """What a summary is built from: the run's identity, its parts, and what it has learnt so far."""

    run_id: str
    kind: Kind
    started_at: float
    options: SearchOptions
    limits: Limits
    enforced_by: dict[str, str]
    warnings: list[str]
    reuse_note: str | None
    fingerprint: Fingerprint | None
    cluster: Cluster
    pipeline: Pipeline
    workloads: Workloads
    oracles: Oracles
    store: Store

    def params(self) -> dict[str, Any]: ...


def versions() -> dict[str, str]:
    """Versions of this tool, Python, cloudpickle and the platform, for report headers."""
    return {
        "threshold_probe": __version__,
        "python": platform.python_version(),
        "cloudpickle": cloudpickle.__version__,
        "platform": platform.platform(terse=True),
    }


def failure_summary(records: Sequence[ProbeRecord]) -> FailureSummary | None:
    """The first classified failure among these probes."""
    for r in records:
        if r.verdict.status == "fail" and r.verdict.failure_class:
            return FailureSummary(
                failure_class=r.verdict.failure_class,
                signature=r.verdict.signature,
                explanation=r.verdict.explanation,
                evidence=r.verdict.evidence,
            )
    return None


def probe_summary(record: ProbeRecord, match: str | None) -> ProbeSummary:
    """The short form of a probe that reports list."""
    obs = record.observation
    spec = record.spec if record.level is None else None
    return ProbeSummary(
        probe_id=record.probe_id,
        level=record.level,
        attempt=record.attempt,
        verdict=record.verdict.status,
        failure_class=record.verdict.failure_class,
        signature=record.verdict.signature,
        timings=obs.timings,
        wall_s=round(obs.wall_s, 4),
        peak_rss_mb=obs.peak_rss_mb,
        exit_code=obs.job.exit_code,
        signal=obs.job.signal,
        cached=record.cached_from is not None,
        cached_from=record.cached_from,
        cached_from_run=record.cached_from_run,
        spec=spec,
        different_failure=bool(match and record.verdict.status == "fail" and not matches(record.verdict, match)),
        remote_dir=obs.job.remote_dir if obs.remote_kept else None,
    )


def reuse_summary(records: Sequence[ProbeRecord], note: str | None) -> ReuseSummary:
    """How many verdicts came from earlier runs, and from which."""
    reused = [r for r in records if r.cached_from is not None]
    runs: list[str] = []
    for r in reused:
        src = r.cached_from_run or "an earlier run"
        if src not in runs:
            runs.append(src)
    return ReuseSummary(reused=len(reused), probes=len(records), runs=sorted(runs), note=note)


def run_cell(run: RunState, levels: Sequence[int]) -> Cell:
    """What this run's threshold belongs to (threshold_probe/cell.py)."""
    searched = sorted(set(levels))
    ladder = run.workloads.ladder
    function = run.options.function
    function_hash = None
    scaled = isinstance(ladder, ScaledLadder)
    if run.workloads.function is not None:
        # Source, bound arguments and how siblings travel: what the probe really ran.
        function_hash = run.workloads.function.workload.sha256[:16]
    elif isinstance(ladder, ScaledLadder):
        function_hash = ladder.identity[:16]
    # A scaled function's ladder is its argument's values: they and the range searched are the cell.
    by_ladder = not function or scaled
    return Cell(
        cluster=run.cluster.name,
        fingerprint=run.fingerprint,
        pipeline=run.pipeline.name,
        ladder=ladder.name if by_ladder else None,
        ladder_hash=ladder_hash([(lv.number, lv.values) for lv in ladder.levels]) if by_ladder else None,
        limits=run.limits.model_dump(),
        levels=[searched[0], searched[-1]] if searched and by_ladder else None,
        function=function,
        function_hash=function_hash,
    )


#: Up to this many levels searched, the rows of levels never probed carry their static metrics too.
#: Beyond it they carry none: measuring every workload of a 1,000-level ladder would cost minutes,
#: far more than the dozen probes that bisect it.
UNPROBED_METRICS_UP_TO = 100


def level_rows(run: RunState, records: Sequence[ProbeRecord], levels: Sequence[int], partial: bool) -> list[LevelRow]:
    """One row per level searched (`partial`: only those probed yet), with the fold of its outcomes."""
    by_level: dict[int, list[ProbeRecord]] = {}
    for r in records:
        if r.level is not None:
            by_level.setdefault(r.level, []).append(r)
    shown = [n for n in levels if n in by_level] if partial else list(levels)
    rows: list[LevelRow] = []
    measure_all = len(shown) <= UNPROBED_METRICS_UP_TO
    for n in shown:
        recs = by_level.get(n, [])
        outcomes = [run.oracles.outcome(r) for r in recs]
        decided = [o for o in outcomes if o != "skip"]
        fail = next((r for r in recs if r.verdict.status == "fail"), None)
        rows.append(
            LevelRow(
                level=n,
                metrics=run.workloads.level_metrics(n) if recs or measure_all else {},
                summary=fold(outcomes) if recs else None,
                pass_rate=(sum(o == "good" for o in decided) / len(decided)) if decided else None,
                probes=len(recs),
                failure_class=fail.verdict.failure_class if fail else None,
            )
        )
    return rows


def scale_summary(ladder: Any, search: SearchResult) -> ScaleSummary | None:
    """A scaled function's boundary in the values of its argument."""
    if not isinstance(ladder, ScaledLadder):
        return None

    def value(level: int | None) -> Any:
        return ladder.level(int(level)).values[ladder.arg_name] if level is not None else None

    return ScaleSummary(
        name=ladder.arg_name,
        values=list(ladder.values),
        first_fail_value=value(search.first_fail),
        last_pass_value=value(search.last_pass),
    )


def build_summary(
    run: RunState, status: str, search: SearchResult, levels: Sequence[int], partial: bool = False
) -> RunSummary:
    """The RunSummary of the records so far; `partial` lists only the levels probed yet."""
    records = list(run.oracles.prober.records)
    match_of = {r.probe_id: run.oracles.match_of(r) for r in records}
    first_fail = search.first_fail
    hunted = [r for r in records if r.verdict.status == "fail" and run.oracles.outcome(r) == "bad"]
    at_boundary = [r for r in hunted if first_fail is None or r.level == first_fail]
    message = search.message
    different = different_failures_text(records, match_of)
    if different and not partial:
        message = f"{message}; {different}" if message else different
    return RunSummary(
        run_id=run.run_id,
        kind=run.kind,
        status=status,
        cluster=run.cluster.name,
        pipeline=run.pipeline.name,
        ladder=run.workloads.label(),
        limits=run.limits.model_dump(),
        limits_enforced_by=dict(run.enforced_by),
        warnings=list(run.warnings),
        versions=versions(),
        cluster_info=run.cluster.describe(),
        started_at=run.started_at,
        finished_at=time.time(),
        search_status=search.status,
        message=message,
        last_pass=search.last_pass,
        first_fail=first_fail,
        flaky_band=list(search.flaky_band) if search.flaky_band else None,
        search_probes=search.search_probes,
        confirm_probes=search.confirm_probes,
        failure=failure_summary(at_boundary or hunted),
        levels=level_rows(run, records, levels, partial),
        probes=[probe_summary(r, match_of[r.probe_id]) for r in records],
        isolate=search.isolate,
        scale=scale_summary(run.workloads.ladder, search),
        params=run.params(),
        reports_dir=str(run.store.run_dir(run.run_id)),
        cell=run_cell(run, levels).model_dump(mode="json"),
        reuse=reuse_summary(records, run.reuse_note),
    )
