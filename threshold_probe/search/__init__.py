"""Search strategies as pure logic: they ask an oracle for outcomes and know nothing of clusters.

- :func:`sweep` probes every level of a ladder;
- :func:`bisect` finds the first failing level (git bisect semantics: good, bad, skip);
- :func:`isolate` finds which dimension of a workload drives a failure, and its threshold.
"""

from threshold_probe.search.base import (
    Judgement,
    LevelOutcomes,
    Oracle,
    Outcome,
    Progress,
    Status,
    Summary,
    judge,
)
from threshold_probe.search.bisect import Bisection, BisectResult, bisect
from threshold_probe.search.isolate import DimensionFinding, IsolateResult, SpecOracle, isolate
from threshold_probe.search.sweep import SweepResult, sweep

__all__ = [
    "BisectResult",
    "Bisection",
    "DimensionFinding",
    "IsolateResult",
    "Judgement",
    "LevelOutcomes",
    "Oracle",
    "Outcome",
    "Progress",
    "SpecOracle",
    "Status",
    "Summary",
    "SweepResult",
    "bisect",
    "isolate",
    "judge",
    "sweep",
]
