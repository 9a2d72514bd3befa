"""The typed view of a recorded run, which every report, compare, history and nightly reads.

A RunView holds a run's summary, its probe records and the stderr of each probe, all read before
any report is drawn; the helpers here answer what every format shows (the level table, the
threshold sentence, the isolate findings), so that the Rich, Markdown, HTML and JUnit reports
never disagree, and renderers stay pure functions of the view.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from threshold_probe.models import STAGES, ProbeRecord
from threshold_probe.search.base import fold
from threshold_probe.store import RunInfo
from threshold_probe.summary import (
    VERDICT_WORDS,
    DimensionSummary,
    IsolateSummary,
    LevelRow,
    ProbeOutcome,
    ProbeSummary,
    RunSummary,
)
from threshold_probe.textsafe import clean, strip_control
from threshold_probe.units import format_memory

#: The static metrics every report shows (FunctionMetrics fields in threshold_probe/metrics.py).
METRIC_COLUMNS: tuple[tuple[str, str], ...] = (
    ("loc", "LOC"),
    ("subprocess_calls", "subprocess calls"),
    ("cc", "CC"),
    ("pickle_bytes", "pickle bytes"),
)

#: The largest stderr log a report embeds in full; a bigger one keeps its head and tail.
MAX_STDERR_BYTES = 512 * 1024

#: A probe's verdict as an outcome, for folding the probes of a level without a summary row.
_OUTCOME_OF_VERDICT: dict[str, ProbeOutcome] = {"pass": "good", "fail": "bad", "skip": "skip"}


@dataclass(frozen=True)
class RunView:
    """One run as every report reads it: its summary, its probes, and each probe's stderr."""

    summary: RunSummary
    records: Sequence[ProbeRecord] = ()
    #: probe id -> the probe's full stderr (or the journal's tail), control sequences stripped.
    stderr: Mapping[str, str] = field(default_factory=dict)

    def stderr_of(self, record: ProbeRecord) -> str:
        """The probe's stderr as read when the view was made."""
        return self.stderr.get(record.probe_id, strip_control(record.observation.job.stderr_tail))


def run_view(summary: RunSummary, records: Sequence[ProbeRecord] = ()) -> RunView:
    """The view of a run: far-side text loses its terminal control sequences here, once for every
    format (each format then escapes its own syntax), and the stderr of every probe is read."""
    summary, clean_records = clean(summary), clean(list(records))
    stderr = {r.probe_id: read_stderr(r) for r in clean_records}
    return RunView(summary, clean_records, stderr)


def metric(metrics: Mapping[str, Any], key: str) -> float | None:
    """The value of one of METRIC_COLUMNS' metrics, or None when it was not measured."""
    value = metrics.get(key)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
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


def verdict_word(outcomes: Sequence[ProbeOutcome]) -> str:
    """pass, fail, skip or flaky: the fold of a level's outcomes, as reports word it."""
    return VERDICT_WORDS[fold(outcomes)]


def _verdict_of(row: LevelRow | None, probes: Sequence[ProbeSummary]) -> str:
    if row is not None and row.summary is not None:
        return VERDICT_WORDS[row.summary]
    if not probes:
        return "-"
    return verdict_word([_OUTCOME_OF_VERDICT[p.verdict] for p in probes])


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


def function_verdict(summary: RunSummary) -> str | None:
    """The verdict of a run of the user's own function at no level (`probe run --function`):
    pass, fail, flaky (repeats disagree) or skip; None for a run over levels."""
    if summary.kind != "run" or not summary.probes or any(p.level is not None for p in summary.probes):
        return None
    verdicts = {p.verdict for p in summary.probes} - {"skip"}
    if not verdicts:
        return "skip"
    return "flaky" if len(verdicts) > 1 else verdicts.pop()


def answer_failed(summary: RunSummary) -> bool:
    """The answer is a failure: a first failing level, or a function whose probe failed."""
    # A run that did not complete has no answer yet, as first_fail says for levels.
    failed = summary.status == "completed" and function_verdict(summary) in ("fail", "flaky")
    return first_fail(summary) is not None or failed


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
    verdict = function_verdict(summary)
    if verdict is not None and summary.status == "completed":
        # A function probed as it is has no level: its verdict is the answer.
        name = strip_control(summary.ladder)
        fails = sum(p.verdict == "fail" for p in summary.probes)
        cls = summary.failure.failure_class if summary.failure else None
        tail = f" ({cls})" if cls else ""
        return {
            "pass": f"{name} passes",
            "fail": f"{name} fails{tail}",
            "flaky": f"{name} is flaky: {fails} of {len(summary.probes)} probes fail{tail}",
            "skip": f"{name} could not be tested: every probe was skipped",
        }[verdict]
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


def limits_text(limits: dict[str, Any], enforced_by: dict[str, str] | None = None) -> str:
    """Limits as people write them, each with who enforced it when known:
    'memory 300MB (RLIMIT_AS), time 3s (runner), cores 2 (CPU affinity)'."""
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


def isolate_dimensions(isolate: IsolateSummary | None) -> list[tuple[str, DimensionSummary]]:
    """(dimension, findings) pairs of an isolate summary, in the order isolation judged them."""
    return [(f.dimension, f) for f in isolate.findings] if isolate is not None else []


def isolate_drivers(isolate: IsolateSummary | None) -> list[str]:
    """The dimensions the isolate run named as drivers of the failure."""
    return list(isolate.drivers) if isolate is not None else []


def isolate_probes(summary: RunSummary) -> list[ProbeSummary]:
    """The probes of workloads off the ladder (isolation's specs), in dispatch order."""
    return [p for p in summary.probes if p.level is None and p.spec]


def spec_label(isolate: IsolateSummary | None, spec: Mapping[str, Any] | None) -> str | None:
    """What an isolate probe tried, as `memory_mb=276`: the dimension values by which its spec
    differs from the passing or the failing level it was made from (whichever it is closer to).
    None when the spec is not an isolation spec."""
    if not spec:
        return None
    if isolate is None or not (isolate.good_spec or isolate.bad_spec):
        function = spec.get("function")
        return str(function) if function else None
    changes = [
        {k: v for k, v in spec.items() if base.get(k) != v} for base in (isolate.good_spec, isolate.bad_spec) if base
    ]
    changed = min(changes, key=len)
    if not changed:
        return None
    return ",".join(f"{k}={_spec_value(v)}" for k, v in changed.items())


def _spec_value(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def probe_label(summary: RunSummary, level: int | None, spec: Mapping[str, Any] | None, probe_id: str) -> str:
    """A probe as reports name it: `level 5` (or `n=1,000` for a scaled function), `memory_mb=276`
    for an isolate probe, else its id."""
    if level is not None:
        return _level_words(summary, level)
    return spec_label(summary.isolate, spec) or probe_id


def threshold_record(summary: RunSummary, records: Sequence[ProbeRecord]) -> ProbeRecord | None:
    """The failing probe whose evidence a report quotes: one at the first failing level (with the
    run's failure signature when one matches), else the first failing probe."""
    fails = failing_records(records)
    ff = first_fail(summary)
    at_threshold = [r for r in fails if ff is not None and r.level == ff]
    signature = summary.failure.signature if summary.failure is not None else None
    for r in at_threshold:
        if signature is None or r.verdict.signature == signature:
            return r
    if at_threshold:
        return at_threshold[0]
    return fails[0] if fails else None


def stored_summary(info: RunInfo) -> RunSummary | None:
    """The summary a run stored, typed; None while it has none, or when it cannot be read."""
    if info.summary is None:
        return None
    try:
        return RunSummary.model_validate(info.summary)
    except ValidationError:
        return None


@dataclass(frozen=True)
class RunListing:
    """One run as `probe runs` lists it: where and what, its status and its threshold."""

    run_id: str
    kind: str
    cluster: str
    pipeline: str
    ladder: str
    #: As a user should read it (a 'running' run no process owns is 'stopped').
    status: str
    started_at: float
    finished_at: float | None
    last_pass: int | None
    first_fail: int | None
    failure_class: str | None
    message: str | None

    def to_json(self) -> dict[str, Any]:
        """The documented JSON of `probe runs --json`, one object per run."""
        return asdict(self)


def run_listing(info: RunInfo, status: str) -> RunListing:
    """The listing of one run, with the status a user should read (see display_status)."""
    summary = stored_summary(info)
    return RunListing(
        run_id=info.run_id,
        kind=info.kind,
        cluster=info.cluster,
        pipeline=info.pipeline,
        ladder=info.ladder,
        status=status,
        started_at=info.started_at,
        finished_at=info.finished_at,
        last_pass=summary.last_pass if summary else None,
        first_fail=summary.first_fail if summary else None,
        failure_class=summary.failure.failure_class if summary and summary.failure else None,
        message=summary.message if summary else None,
    )
