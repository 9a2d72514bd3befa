"""What every report format shares: the level table, the threshold sentence, the stderr evidence.

Each format reads a RunSummary (and, when it has them, the run's ProbeRecords for full stderr)
through these helpers, so that the Rich, Markdown, HTML and JUnit reports never disagree.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from threshold_probe.models import STAGES, ProbeRecord
from threshold_probe.summary import LevelRow, ProbeSummary, RunSummary
from threshold_probe.textsafe import strip_control

#: The static metrics every report shows, with the keys metrics.py may use for each (first wins).
METRIC_COLUMNS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    ("loc", "LOC", ("loc", "sloc", "lines")),
    ("subprocess_calls", "subprocess calls", ("subprocess_calls", "subprocess_call_sites", "subprocess")),
    ("cc", "CC", ("cc", "cyclomatic_complexity", "complexity", "cc_total", "cc_max")),
    ("pickle_bytes", "pickle bytes", ("pickle_bytes", "pickled_bytes", "pickle_size", "pickled_size")),
)

#: The largest stderr log a report embeds in full; a bigger one keeps its head and tail.
MAX_STDERR_BYTES = 512 * 1024

VERDICT_WORDS = {"good": "pass", "bad": "fail", "skip": "skip", "flaky": "flaky"}


def metric(metrics: dict[str, Any], key: str) -> float | None:
    """The value of one of METRIC_COLUMNS' metrics, whatever name metrics.py gave it."""
    for column, _label, names in METRIC_COLUMNS:
        if column != key:
            continue
        for name in names:
            value = metrics.get(name)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                return float(value)
            if isinstance(value, dict):
                # radon-style nested results, e.g. {"cc": {"total": 7, "rank": "B"}}.
                for sub in ("total", "value", "max"):
                    inner = value.get(sub)
                    if isinstance(inner, (int, float)) and not isinstance(inner, bool):
                        return float(inner)
    return None


@dataclass
class LevelView:
    """One level as reports show it: metrics, verdict, and the measurements of its probes."""

    level: int
    verdict: str  # pass, fail, skip, flaky or "-" (not probed)
    metrics: dict[str, Any]
    failure_class: str | None
    probes: list[ProbeSummary] = field(default_factory=list)

    @property
    def wall_s(self) -> float | None:
        """Median wall time of the level's probes (cached ones included: they are real measurements)."""
        vals = [p.wall_s for p in self.probes if p.wall_s is not None]
        return statistics.median(vals) if vals else None

    @property
    def peak_mb(self) -> float | None:
        """Highest peak memory any probe of the level reached."""
        vals = [p.peak_rss_mb for p in self.probes if p.peak_rss_mb is not None]
        return max(vals) if vals else None

    @property
    def signature(self) -> str | None:
        """The signature of the level's first failing probe."""
        for p in self.probes:
            if p.verdict == "fail" and p.signature:
                return p.signature
        return None


def _verdict_of(row: LevelRow | None, probes: Sequence[ProbeSummary]) -> str:
    if row is not None and row.summary is not None:
        return VERDICT_WORDS.get(row.summary, row.summary)
    kinds = {p.verdict for p in probes}
    if "pass" in kinds and "fail" in kinds:
        return "flaky"
    for word in ("fail", "pass", "skip"):
        if word in kinds:
            return word
    return "-"


def level_views(summary: RunSummary) -> list[LevelView]:
    """Every level the run knows of, in order, joined with the probes that ran at that level.

    Isolate probes whose spec differs from the ladder's level are left out: they measured a
    different workload, and show up in the isolate section instead.
    """
    by_level: dict[int, list[ProbeSummary]] = {}
    for p in summary.probes:
        if p.level is None or p.spec:
            continue
        by_level.setdefault(p.level, []).append(p)
    rows = {r.level: r for r in summary.levels}
    views = []
    for level in sorted(set(rows) | set(by_level)):
        row = rows.get(level)
        probes = by_level.get(level, [])
        fclass = row.failure_class if row is not None else None
        if fclass is None:
            fclass = next((p.failure_class for p in probes if p.verdict == "fail"), None)
        views.append(
            LevelView(
                level=level,
                verdict=_verdict_of(row, probes),
                metrics=row.metrics if row is not None else {},
                failure_class=fclass,
                probes=probes,
            )
        )
    return views


def first_fail(summary: RunSummary) -> int | None:
    """The first failing level: the search's answer, or the lowest level that failed in a sweep.

    A run that did not complete, or whose search could not decide (untested levels below a
    failure), has no first failing level: its lowest failure is not a threshold.
    """
    if summary.first_fail is not None:
        return summary.first_fail
    if summary.status != "completed" or summary.search_status in ("inconclusive", "interrupted"):
        return None
    bad = [v.level for v in level_views(summary) if v.verdict == "fail"]
    return min(bad) if bad else None


def last_pass(summary: RunSummary) -> int | None:
    """The highest passing level below the first failure (or the highest passing level)."""
    if summary.last_pass is not None:
        return summary.last_pass
    ff = first_fail(summary)
    good = [v.level for v in level_views(summary) if v.verdict == "pass" and (ff is None or v.level < ff)]
    return max(good) if good else None


def level_name(summary: RunSummary, level: int | None) -> str:
    """A level as the user thinks of it: `17`, or the scaled argument's value (`n=3,162,278`)."""
    if level is None:
        return "-"
    scale = summary.scale
    if scale is not None and 1 <= level <= len(scale.values):
        value = scale.values[level - 1]
        shown = f"{value:,}" if isinstance(value, int) else f"{value:,.6g}"
        return f"{scale.name}={shown}"
    return str(level)


def _level_words(summary: RunSummary, level: int | None) -> str:
    name = level_name(summary, level)
    return name if summary.scale is not None else f"level {name}"


def threshold_sentence(summary: RunSummary) -> str:
    """One plain sentence: where the run broke, or that it did not."""
    if summary.scale is not None and summary.status == "completed":
        ff, lp = first_fail(summary), last_pass(summary)
        if ff is not None and lp is not None:
            cls = summary.failure.failure_class if summary.failure else None
            tail = f" ({cls})" if cls else ""
            return f"fails from {_level_words(summary, ff)}{tail}; {_level_words(summary, lp)} passes"
        if ff is not None:
            return f"already fails at {_level_words(summary, ff)}, the lowest value tested"
    if summary.status in ("running", "interrupted"):
        # A partial run has no answer yet: its failing levels are not a threshold.
        return f"{summary.status}: no answer yet ({len(summary.probes)} probes so far)"
    if summary.search_status == "flaky" and summary.flaky_band:
        # The band's edges are not a threshold: say flaky first.
        lo, hi = summary.flaky_band[0], summary.flaky_band[-1]
        return f"no clean threshold: {f'level {lo} is' if lo == hi else f'levels {lo}..{hi} are'} flaky"
    if summary.search_status == "inconclusive" and summary.first_fail is None:
        # The search's own sentence says between which levels it could not decide, and why.
        return summary.message or "undecided: too many levels were skipped"
    ff, lp = first_fail(summary), last_pass(summary)
    if summary.search_status == "lowest_fails" or (ff is not None and lp is None):
        return f"level {ff} already fails: the lowest level tested does not pass"
    if ff is not None:
        cls = summary.failure.failure_class if summary.failure else None
        tail = f" ({cls})" if cls else ""
        return f"level {ff} is the first to fail{tail}; level {lp} is the last to pass"
    if summary.search_status == "flaky" and summary.flaky_band:
        return f"no clean threshold: levels {summary.flaky_band[0]}..{summary.flaky_band[-1]} are flaky"
    tested = [v.level for v in level_views(summary) if v.verdict == "pass"]
    if tested:
        return f"no failure up to {_level_words(summary, max(tested))}"
    return "no level was tested to completion"


def cell_name(summary: RunSummary) -> str:
    """cluster/pipeline/ladder: the name of the matrix cell a run belongs to."""
    return f"{summary.cluster}/{summary.pipeline}/{summary.ladder}"


def read_stderr(record: ProbeRecord) -> str:
    """The probe's full stderr log when it is still on disk, else the tail the journal kept."""
    path: Path | None = record.observation.job.stderr_path
    if path is not None:
        try:
            data = path.read_bytes()
        except OSError:
            data = b""
        if data:
            if len(data) > MAX_STDERR_BYTES:
                half = MAX_STDERR_BYTES // 2
                cut = len(data) - MAX_STDERR_BYTES
                data = data[:half] + f"\n[... {cut} bytes left out ...]\n".encode() + data[-half:]
            return strip_control(data.decode("utf-8", errors="replace"))
    return strip_control(record.observation.job.stderr_tail)


def failing_records(records: Sequence[ProbeRecord]) -> list[ProbeRecord]:
    """Probes whose verdict is fail, in dispatch order."""
    return [r for r in records if r.verdict.status == "fail"]


def stage_order(probes: Sequence[ProbeSummary]) -> list[str]:
    """The stages seen in these probes, in STAGES order, then any others alphabetically."""
    seen = {k for p in probes for k in p.timings}
    known = [s for s in STAGES if s in seen]
    return known + sorted(seen - set(known))


def fmt_seconds(value: float | None) -> str:
    """0.123 s as '123 ms', 12.3 s as '12.3 s'; '-' for unknown."""
    if value is None:
        return "-"
    if value < 1:
        return f"{value * 1000:.0f} ms"
    return f"{value:.2f} s" if value < 10 else f"{value:.1f} s"


def fmt_number(value: float | None) -> str:
    """An integer-looking metric without decimals; '-' for unknown."""
    if value is None:
        return "-"
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,.1f}"


def fmt_mb(value: float | None) -> str:
    """Megabytes with one decimal; '-' for unknown."""
    return "-" if value is None else f"{value:.1f}"


def isolate_dimensions(isolate: dict[str, Any] | None) -> list[tuple[str, dict[str, Any]]]:
    """(dimension, findings) pairs from an isolate summary, whichever of the usual shapes it has."""
    if not isolate:
        return []
    dims = isolate.get("dimensions") or isolate.get("findings") or isolate.get("per_dimension")
    pairs: list[tuple[str, dict[str, Any]]] = []
    if isinstance(dims, dict):
        pairs = [(str(k), v if isinstance(v, dict) else {"value": v}) for k, v in dims.items()]
    elif isinstance(dims, list):
        for item in dims:
            if isinstance(item, dict):
                name = str(item.get("dimension") or item.get("name") or "?")
                pairs.append((name, item))
    return pairs


def isolate_drivers(isolate: dict[str, Any] | None) -> list[str]:
    """The dimensions the isolate run named as drivers of the failure."""
    if not isolate:
        return []
    drivers = isolate.get("drivers") or []
    return [str(d) for d in drivers] if isinstance(drivers, list) else [str(drivers)]


def attribution_score(findings: dict[str, Any]) -> float:
    """How strongly one dimension drives the failure, 0..1: an explicit score, else the findings.

    Sufficient (raising it alone fails) and necessary (lowering it alone passes) each count half.
    """
    for key in ("score", "attribution", "weight"):
        v = findings.get(key)
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            return max(0.0, min(1.0, float(v)))
    return 0.5 * bool(findings.get("sufficient")) + 0.5 * bool(findings.get("necessary"))


def limits_text(limits: dict[str, Any], enforced_by: dict[str, str] | None = None) -> str:
    """Limits as people write them, each with who enforced it when known:
    'memory 300MB (RLIMIT_AS), time 3s (runner), cores 2 (CPU affinity)'."""
    from threshold_probe.units import format_memory

    by = enforced_by or {}
    parts = []
    for key, value in limits.items():
        if value is None:
            continue
        if key == "memory_bytes" and isinstance(value, int):
            text, name = f"memory {format_memory(value)}", "memory"
        elif key == "time_s" and isinstance(value, (int, float)):
            text, name = f"time {value:g}s", "time"
        else:
            text, name = f"{key} {value}", key
        parts.append(f"{text} ({by[name]})" if by.get(name) else text)
    return ", ".join(parts)


def reuse_text(summary: RunSummary) -> str:
    """How many verdicts the run reused and from which runs, e.g. '3 of 10 verdicts reused from
    run A'; every report says it, so a cached answer is never taken for a fresh one."""
    reuse = summary.reuse
    total = reuse.probes if reuse is not None else len(summary.probes)
    if reuse is None or reuse.reused == 0:
        text = f"none of {total} verdicts reused: every probe ran" if total else "no probes"
        if reuse is not None and reuse.note:
            text += f" ({reuse.note})"
        return text
    runs = ", ".join(reuse.runs)
    word = "run" if len(reuse.runs) == 1 else "runs"
    return f"{reuse.reused} of {total} verdicts reused from {word} {runs} (same cache key; --fresh runs them again)"
