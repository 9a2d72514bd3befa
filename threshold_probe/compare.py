"""What changed between two runs: the threshold, levels that flipped, metric and timing shifts.

Noise rule (documented in docs/report-schema.md). Timings and peak memory vary from probe to
probe, so a change counts only when it is larger than both an absolute and a relative floor:

- a stage time or wall time: |median_b - median_a| > 50 ms and > 20 % of median_a, and, when
  both runs have at least three probes of that level, also > 3 x the larger median absolute
  deviation (MAD) of the two runs;
- peak memory: > 10 MB and > 20 %.

Static metrics (LOC, CC, subprocess calls, pickle bytes) are computed from the source and do not
vary, so any change is reported.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Literal

from pydantic import BaseModel, Field

from threshold_probe.cell import cell_of, differences
from threshold_probe.summary import ProbeSummary, RunSummary
from threshold_probe.view import METRIC_COLUMNS, LevelView, first_fail, last_pass, level_views, metric

#: Absolute and relative floors of the noise rule (see the module docstring).
TIME_FLOOR_S = 0.050
TIME_REL = 0.20
MAD_FACTOR = 3.0
MEM_FLOOR_MB = 10.0
MEM_REL = 0.20

Moved = Literal["down", "up", "same", "appeared", "disappeared", "unknown"]


class LevelFlip(BaseModel):
    """A level whose verdict changed between the two runs."""

    level: int
    before: str
    after: str
    class_before: str | None = None
    class_after: str | None = None
    #: pass -> fail: the regression a nightly cares about.
    regression: bool


class MetricChange(BaseModel):
    """A static metric or peak memory of one level that changed."""

    level: int
    metric: str
    before: float
    after: float
    delta: float


class TimingChange(BaseModel):
    """A stage (or the wall time) of one level whose time changed beyond noise."""

    level: int
    stage: str
    before_s: float
    after_s: float
    delta_s: float
    ratio: float | None
    samples: tuple[int, int]


class Comparison(BaseModel):
    """The difference between run A (before) and run B (after)."""

    run_a: str
    run_b: str
    #: Each run's cell, for people: cluster/pipeline/ladder, limits, levels (threshold_probe/cell.py).
    cell_a: str
    cell_b: str
    #: Whether the runs belong to one cell. When not, nothing is called a regression: a threshold
    #: under other limits, another range, interpreter or config is another measurement.
    same_cell: bool
    #: What differs between the two cells, most telling first (limits, range, versions, config).
    differences: list[str] = Field(default_factory=list)
    first_fail_a: int | None
    first_fail_b: int | None
    last_pass_a: int | None
    last_pass_b: int | None
    failure_class_a: str | None
    failure_class_b: str | None
    #: down: B fails earlier (or fails where A found no failure: "appeared"); up: the reverse.
    threshold_moved: Moved
    flipped: list[LevelFlip] = Field(default_factory=list)
    metric_changes: list[MetricChange] = Field(default_factory=list)
    timing_changes: list[TimingChange] = Field(default_factory=list)
    #: True when, within one cell, the threshold moved down or a level that passed in A fails in B.
    regressed: bool = False
    #: One plain sentence per regression, naming the levels.
    regressions: list[str] = Field(default_factory=list)


def _mad(values: Sequence[float]) -> float:
    med = statistics.median(values)
    return statistics.median(abs(v - med) for v in values)


def beyond_noise(a: Sequence[float], b: Sequence[float]) -> bool:
    """Whether the timing samples b differ from a by more than the documented noise rule."""
    if not a or not b:
        return False
    ma, mb = statistics.median(a), statistics.median(b)
    delta = abs(mb - ma)
    if delta <= TIME_FLOOR_S or delta <= TIME_REL * ma:
        return False
    if len(a) >= 3 and len(b) >= 3:
        return delta > MAD_FACTOR * max(_mad(a), _mad(b))
    return True


def _highest_tested(views: Sequence[LevelView]) -> int | None:
    tested = [v.level for v in views if v.verdict not in ("-", "skip")]
    return max(tested) if tested else None


def _threshold_move(a: RunSummary, b: RunSummary, ffa: int | None, ffb: int | None) -> Moved:
    if ffa is not None and ffb is not None:
        return "down" if ffb < ffa else "up" if ffb > ffa else "same"
    if ffa is None and ffb is not None:
        return "appeared"
    if ffa is not None and ffb is None:
        return "disappeared" if _highest_tested(level_views(b)) is not None else "unknown"
    return "same"


def _samples(probes: Sequence[ProbeSummary], stage: str) -> list[float]:
    if stage == "wall":
        return [p.wall_s for p in probes if p.wall_s is not None]
    return [p.timings[stage] for p in probes if stage in p.timings]


def _at(summary: RunSummary, level: int | None, *, bare: bool = False) -> str:
    """`level 5` (`5` when bare), or for a scaled function the value it stands for: `kib=400,000`."""
    scale = summary.scale
    if level is not None and scale is not None and 1 <= level <= len(scale.values):
        value = scale.values[level - 1]
        shown = f"{value:,}" if isinstance(value, int) else f"{value:,.6g}"
        return f"{scale.name}={shown}"
    return str(level) if bare else f"level {level}"


def compare_runs(a: RunSummary, b: RunSummary, *, same_function: bool = False) -> Comparison:
    """Compare run A (the earlier one, or the baseline) with run B.

    `same_function`: runs of one user function whose source changed in between are one series
    (a nightly watches the source), so their flips and a lower threshold are regressions.
    """
    ffa, ffb = first_fail(a), first_fail(b)
    ca, cb = cell_of(a), cell_of(b)
    if same_function and ca.function is not None and ca.function == cb.function:
        ca, cb = (c.model_copy(update={"function_hash": None}) for c in (ca, cb))
    diff = differences(ca, cb)
    same = not diff
    moved = _threshold_move(a, b, ffa, ffb)
    va = {v.level: v for v in level_views(a)}
    vb = {v.level: v for v in level_views(b)}
    flips: list[LevelFlip] = []
    metric_changes: list[MetricChange] = []
    timing_changes: list[TimingChange] = []
    decided = ("pass", "fail", "flaky")
    for level in sorted(set(va) & set(vb)):
        x, y = va[level], vb[level]
        if x.verdict in decided and y.verdict in decided and x.verdict != y.verdict:
            flips.append(
                LevelFlip(
                    level=level,
                    before=x.verdict,
                    after=y.verdict,
                    class_before=x.failure_class,
                    class_after=y.failure_class,
                    regression=same and x.verdict == "pass" and y.verdict in ("fail", "flaky"),
                )
            )
        for key, label in METRIC_COLUMNS:
            ma, mb = metric(x.metrics, key), metric(y.metrics, key)
            if ma is not None and mb is not None and ma != mb:
                metric_changes.append(MetricChange(level=level, metric=label, before=ma, after=mb, delta=mb - ma))
        pa, pb = x.peak_mb, y.peak_mb
        if pa is not None and pb is not None and abs(pb - pa) > max(MEM_FLOOR_MB, MEM_REL * pa):
            metric_changes.append(
                MetricChange(level=level, metric="peak MB", before=pa, after=pb, delta=round(pb - pa, 3))
            )
        stages = [*sorted({s for p in (*x.probes, *y.probes) for s in p.timings}), "wall"]
        for stage in stages:
            sa, sb = _samples(x.probes, stage), _samples(y.probes, stage)
            if beyond_noise(sa, sb):
                ma2, mb2 = statistics.median(sa), statistics.median(sb)
                timing_changes.append(
                    TimingChange(
                        level=level,
                        stage=stage,
                        before_s=round(ma2, 4),
                        after_s=round(mb2, 4),
                        delta_s=round(mb2 - ma2, 4),
                        ratio=round(mb2 / ma2, 3) if ma2 > 0 else None,
                        samples=(len(sa), len(sb)),
                    )
                )
    regressions: list[str] = []
    if same and moved in ("down", "appeared"):
        if ffa is None:
            regressions.append(f"a failure appeared: {_at(b, ffb)} now fails, where {a.run_id} found none")
        else:
            regressions.append(f"threshold moved down: first failing {_at(a, ffa)} -> {_at(b, ffb, bare=True)}")
    newly = [f.level for f in flips if f.regression]
    if newly:
        what = "values" if b.scale is not None else "levels"
        regressions.append(f"{what} that passed now fail: " + ", ".join(_at(b, n, bare=True) for n in newly))
    return Comparison(
        run_a=a.run_id,
        run_b=b.run_id,
        cell_a=ca.label,
        cell_b=cb.label,
        same_cell=same,
        differences=diff,
        first_fail_a=ffa,
        first_fail_b=ffb,
        last_pass_a=last_pass(a),
        last_pass_b=last_pass(b),
        failure_class_a=a.failure.failure_class if a.failure else None,
        failure_class_b=b.failure.failure_class if b.failure else None,
        threshold_moved=moved,
        flipped=flips,
        metric_changes=metric_changes,
        timing_changes=timing_changes,
        regressed=bool(regressions),
        regressions=regressions,
    )


def compare_threshold(pinned: int, b: RunSummary) -> Comparison:
    """Compare a run with a pinned first failing level (a nightly baseline given as a number)."""
    ffb = first_fail(b)
    moved: Moved = "same"
    regressions: list[str] = []
    if ffb is not None and ffb < pinned:
        moved = "down"
        regressions.append(f"threshold moved down: first failing level {pinned} (pinned) -> {ffb}")
    elif ffb is None or ffb > pinned:
        moved = "up"
    return Comparison(
        run_a=f"pinned:{pinned}",
        run_b=b.run_id,
        cell_a=cell_of(b).label,
        cell_b=cell_of(b).label,
        same_cell=True,
        first_fail_a=pinned,
        first_fail_b=ffb,
        last_pass_a=None,
        last_pass_b=last_pass(b),
        failure_class_a=None,
        failure_class_b=b.failure.failure_class if b.failure else None,
        threshold_moved=moved,
        regressed=bool(regressions),
        regressions=regressions,
    )
