"""Differential diagnosis: the same ladder through several pipelines on the same cluster.

The native pipeline tests the cluster; the others test a runner. A level where `native` passes
and another pipeline fails is a threshold of that pipeline, not of the cluster: the same
function, on the same machine, under the same limits, ran when it travelled natively.

Each pipeline gets its own run (a sweep or a bisect, journalled like any other). When a bisect
finds another pipeline's first failing level and the native run never probed it, one extra
native probe of that level settles whom the threshold belongs to.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Literal

from pydantic import BaseModel, Field

from threshold_probe.config import ProbeConfig
from threshold_probe.errors import UserError
from threshold_probe.pipelines import resolve_pipeline_class
from threshold_probe.session import LimitOverrides, ProgressSink, SearchOptions, run_search
from threshold_probe.store import Store
from threshold_probe.summary import VERDICT_WORDS, RunSummary

#: The pipeline whose verdict stands for "the cluster itself".
REFERENCE = "native"

CompareKind = Literal["sweep", "bisect"]
Owner = Literal["pipeline", "cluster", "undecided"]


class Cell(BaseModel):
    """One pipeline at one level: pass, fail (with class), skip, flaky, or not probed (None)."""

    verdict: Literal["pass", "fail", "skip", "flaky"] | None = None
    failure_class: str | None = Field(default=None, alias="class")

    model_config = {"populate_by_name": True}

    def label(self) -> str:
        """`pass`, `fail oom`, `skip`, `flaky` or `-`."""
        if self.verdict is None:
            return "-"
        if self.verdict == "fail" and self.failure_class:
            return f"fail {self.failure_class}"
        return self.verdict


class MatrixRow(BaseModel):
    """One level of the matrix: a cell per pipeline."""

    level: int
    cells: dict[str, Cell]


class Threshold(BaseModel):
    """One pipeline's first failing level and whom it belongs to."""

    pipeline: str
    run_id: str
    last_pass: int | None = None
    first_fail: int | None = None
    failure_class: str | None = Field(default=None, alias="class")
    signature: str | None = None
    evidence: list[str] = Field(default_factory=list)
    #: `pipeline` when native passes at first_fail on this cluster, `cluster` when native fails
    #: there too, `undecided` when native could not say (skipped) or there is no threshold.
    owner: Owner = "undecided"
    statement: str = ""

    model_config = {"populate_by_name": True}


class PipelineComparison(BaseModel):
    """The result of `probe compare-pipelines` (and `probe bisect --pipelines`)."""

    cluster: str
    ladder: str
    kind: CompareKind
    pipelines: list[str]
    matrix: list[MatrixRow] = Field(default_factory=list)
    thresholds: list[Threshold] = Field(default_factory=list)
    #: One line per pipeline threshold that is not the cluster's (the headline of the report).
    findings: list[str] = Field(default_factory=list)
    run_ids: dict[str, list[str]] = Field(default_factory=dict)


def parse_pipelines(text: str) -> list[str]:
    """`native,source,inline` -> a checked list; native is added first when missing."""
    names = [p.strip() for p in text.split(",") if p.strip()]
    if not names:
        raise UserError("--pipelines wants a comma-separated list, e.g. native,source,inline")
    seen: list[str] = []
    for name in names:
        if name not in seen:
            seen.append(name)
    for name in seen:
        resolve_pipeline_class(name)  # an unknown or broken pipeline fails before any probe runs
    if REFERENCE not in seen:
        seen.insert(0, REFERENCE)
    if len(seen) < 2:
        raise UserError("compare at least two pipelines (native and another)")
    return seen


def _cells(summary: RunSummary) -> dict[int, Cell]:
    out: dict[int, Cell] = {}
    for row in summary.levels:
        if row.summary is None:
            continue
        out[row.level] = Cell(verdict=VERDICT_WORDS[row.summary], failure_class=row.failure_class)
    return out


def _merge(into: dict[int, Cell], more: dict[int, Cell]) -> None:
    for level, cell in more.items():
        if level not in into or into[level].verdict is None:
            into[level] = cell


def compare_pipelines(
    *,
    config: ProbeConfig,
    store: Store,
    cluster: str,
    pipelines: Sequence[str],
    ladder: str,
    kind: CompareKind = "sweep",
    overrides: LimitOverrides | None = None,
    options: SearchOptions | None = None,
    progress: ProgressSink | None = None,
) -> PipelineComparison:
    """Run the ladder through every pipeline on `cluster` and say whom each threshold belongs to."""
    names = list(pipelines)
    if REFERENCE not in names:
        names.insert(0, REFERENCE)
    overrides = overrides or LimitOverrides()
    options = options or SearchOptions()
    summaries: dict[str, RunSummary] = {}
    cells: dict[str, dict[int, Cell]] = {}
    run_ids: dict[str, list[str]] = {}
    for name in names:
        summary = run_search(
            kind,
            config=config,
            store=store,
            cluster=cluster,
            pipeline=name,
            ladder=ladder,
            overrides=overrides,
            options=options,
            progress=progress,
        )
        summaries[name] = summary
        cells[name] = _cells(summary)
        run_ids[name] = [summary.run_id]

    # Settle each other pipeline's threshold with native at that very level, when not yet probed.
    native = cells[REFERENCE]
    for name in names:
        level = summaries[name].first_fail
        if name == REFERENCE or level is None or native.get(level, Cell()).verdict in ("pass", "fail"):
            continue
        extra = run_search(
            "run",
            config=config,
            store=store,
            cluster=cluster,
            pipeline=REFERENCE,
            ladder=ladder,
            overrides=overrides,
            options=replace(options, level=level, repeat=1),
            progress=progress,
        )
        _merge(native, _cells(extra))
        run_ids[REFERENCE].append(extra.run_id)

    levels = sorted({lv for per in cells.values() for lv in per})
    matrix = [MatrixRow(level=lv, cells={n: cells[n].get(lv, Cell()) for n in names}) for lv in levels]
    thresholds = [_threshold(name, summaries[name], native, cluster) for name in names]
    findings = [t.statement for t in thresholds if t.pipeline != REFERENCE and t.owner == "pipeline"]
    findings += _passes_past_native(names, summaries[REFERENCE], cells, cluster)
    return PipelineComparison(
        cluster=cluster,
        ladder=summaries[REFERENCE].ladder,
        kind=kind,
        pipelines=names,
        matrix=matrix,
        thresholds=thresholds,
        findings=findings,
        run_ids=run_ids,
    )


def _passes_past_native(
    names: Sequence[str], native: RunSummary, cells: dict[str, dict[int, Cell]], cluster: str
) -> list[str]:
    """Lines for pipelines that pass where native fails: they do not meet the cluster's limit."""
    level = native.first_fail
    if level is None:
        return []
    what = f" ({native.failure.failure_class})" if native.failure else ""
    return [
        f"{name} passes at level {level} where native fails{what} on {cluster!r}: the {name} pipeline"
        " does not run the function under the cluster's limits the way native does"
        for name in names
        if name != REFERENCE and cells[name].get(level, Cell()).verdict == "pass"
    ]


def _threshold(name: str, summary: RunSummary, native: dict[int, Cell], cluster: str) -> Threshold:
    failure = summary.failure
    t = Threshold(
        pipeline=name,
        run_id=summary.run_id,
        last_pass=summary.last_pass,
        first_fail=summary.first_fail,
        failure_class=failure.failure_class if failure else None,
        signature=failure.signature if failure else None,
        evidence=list(failure.evidence[:6]) if failure else [],
    )
    level = summary.first_fail
    if level is None:
        t.statement = f"{name}: no failing level found ({summary.message or summary.search_status})"
        return t
    what = f"level {level}" + (f" ({t.failure_class})" if t.failure_class else "")
    if name == REFERENCE:
        t.owner = "cluster"
        t.statement = f"native fails first at {what}: a threshold of cluster {cluster!r}"
        return t
    ref = native.get(level, Cell()).verdict
    if ref == "pass":
        t.owner = "pipeline"
        t.statement = (
            f"{name} fails first at {what} while native passes at level {level} on {cluster!r}: "
            f"the threshold belongs to the {name} pipeline, not to the cluster"
        )
    elif ref == "fail":
        t.owner = "cluster"
        t.statement = f"{name} fails first at {what} and native fails there too: a threshold of cluster {cluster!r}"
    else:
        t.statement = f"{name} fails first at {what}; native could not be probed there, so the owner is undecided"
    return t


__all__ = [
    "REFERENCE",
    "Cell",
    "MatrixRow",
    "PipelineComparison",
    "Threshold",
    "compare_pipelines",
    "parse_pipelines",
]
