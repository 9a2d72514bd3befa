"""The threshold of every past run, oldest first, grouped by cell, with sparklines.

A trend is drawn only within one cell (threshold_probe/cell.py: cluster fingerprint, pipeline,
ladder content, limits, level range; or the function): a threshold under other limits or on
another interpreter is another measurement, not a step in the same series.
"""

from __future__ import annotations

from collections.abc import Sequence

from pydantic import BaseModel

from threshold_probe.cell import cell_of
from threshold_probe.store import Store
from threshold_probe.summary import SEARCH_KINDS
from threshold_probe.view import first_fail, last_pass, level_views, stored_summary

SPARK_BLOCKS = "▁▂▃▄▅▆▇█"
#: Sparkline marks for runs without a number: no failure up to the top, and nothing decided.
SPARK_NONE_FOUND = "↑"
SPARK_UNKNOWN = "·"


class HistoryEntry(BaseModel):
    """One past run and the threshold it found."""

    run_id: str
    kind: str
    cluster: str
    pipeline: str
    ladder: str
    #: The run's cell for people: cluster/pipeline/ladder, limits, levels.
    cell: str
    #: Equal keys, same cell: runs are grouped (and trends drawn) by this.
    cell_key: str
    status: str
    started_at: float
    first_fail: int | None
    last_pass: int | None
    #: Highest level that passed: when first_fail is None, the run found no failure up to here.
    highest_pass: int | None
    failure_class: str | None
    limits: dict[str, object]


def history(
    store: Store,
    *,
    cluster: str | None = None,
    pipeline: str | None = None,
    ladder: str | None = None,
    kind: str | None = None,
    limit: int | None = None,
) -> list[HistoryEntry]:
    """Past runs with a summary, oldest first, optionally filtered."""
    infos = store.runs(limit=limit, cluster=cluster, pipeline=pipeline, ladder=ladder, kind=kind)
    entries = []
    for info in reversed(infos):
        s = stored_summary(info) if info.kind in SEARCH_KINDS else None
        if s is None:
            continue  # none yet, or from an incompatible version: leave it out, do not fail the listing
        passed = [v.level for v in level_views(s) if v.verdict == "pass"]
        cell = cell_of(s)
        entries.append(
            HistoryEntry(
                run_id=s.run_id,
                kind=s.kind,
                cluster=s.cluster,
                pipeline=s.pipeline,
                ladder=s.ladder,
                cell=cell.label,
                cell_key=cell.key,
                status=s.status,
                started_at=s.started_at,
                first_fail=first_fail(s),
                last_pass=last_pass(s),
                highest_pass=max(passed) if passed else None,
                failure_class=s.failure.failure_class if s.failure else None,
                limits=dict(s.limits),
            )
        )
    return entries


def sparkline(entries: Sequence[HistoryEntry]) -> str:
    """One character per run: the first failing level scaled to eight heights.

    ↑ marks a run that found no failure (the threshold is above what it tested), · one that
    decided nothing (skips, errors).
    """
    values = [e.first_fail for e in entries if e.first_fail is not None]
    lo, hi = (min(values), max(values)) if values else (0, 0)
    out = []
    for e in entries:
        if e.first_fail is None:
            out.append(SPARK_NONE_FOUND if e.highest_pass is not None else SPARK_UNKNOWN)
        elif hi == lo:
            out.append(SPARK_BLOCKS[len(SPARK_BLOCKS) // 2])
        else:
            idx = round((e.first_fail - lo) / (hi - lo) * (len(SPARK_BLOCKS) - 1))
            out.append(SPARK_BLOCKS[idx])
    return "".join(out)


def by_cell(entries: Sequence[HistoryEntry]) -> dict[str, list[HistoryEntry]]:
    """Entries grouped by cell key, each group oldest first."""
    groups: dict[str, list[HistoryEntry]] = {}
    for e in entries:
        groups.setdefault(e.cell_key, []).append(e)
    return groups
