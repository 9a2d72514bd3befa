"""The Rich terminal report: header, level table, verdict panel, timings, flaky band, isolate findings."""

from __future__ import annotations

import datetime as dt
import io
import statistics

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from threshold_probe.render.common import fmt_mb, fmt_number, fmt_seconds
from threshold_probe.summary import RunSummary
from threshold_probe.view import (
    METRIC_COLUMNS,
    RunView,
    failing_records,
    first_fail,
    isolate_dimensions,
    isolate_drivers,
    level_name,
    level_views,
    limits_text,
    metric,
    reuse_text,
    stage_order,
    threshold_sentence,
)

VERDICT_STYLE = {"pass": "green", "fail": "bold red", "skip": "dim", "flaky": "yellow", "-": "dim"}

#: Evidence lines the verdict panel shows at most; the full logs stay in the run folder.
MAX_EVIDENCE_LINES = 12


def _when(ts: float | None) -> str:
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(ts, tz=dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def header(summary: RunSummary) -> RenderableType:
    """Who, where and when: run id, cluster, pipeline, ladder, limits, versions, dates."""
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    # Every value is Text, never Rich markup: names and facts come from user files and the far side.
    grid.add_row("run", Text(f"{summary.run_id}  ({summary.kind}, {summary.status})"))
    cluster = summary.cluster
    if summary.cluster_info:
        cluster += "  " + ", ".join(f"{k}={v}" for k, v in sorted(summary.cluster_info.items()))
    grid.add_row("cluster", Text(cluster))
    grid.add_row("pipeline", Text(summary.pipeline))
    grid.add_row("ladder", Text(summary.ladder))
    if summary.limits:
        grid.add_row("limits", Text(limits_text(summary.limits, summary.limits_enforced_by) or "none"))
    if summary.versions:
        grid.add_row("versions", Text(", ".join(f"{k} {v}" for k, v in sorted(summary.versions.items()))))
    grid.add_row("reused", Text(reuse_text(summary)))
    took = ""
    if summary.finished_at is not None:
        took = f"  (took {fmt_seconds(summary.finished_at - summary.started_at)})"
    grid.add_row("date", _when(summary.started_at) + took)
    return Panel(grid, title="threshold-probe report", title_align="left", border_style="blue")


def level_table(summary: RunSummary) -> Table:
    """One row per level: static metrics, verdict, wall time, peak memory, failure class."""
    table = Table(title="levels", title_justify="left", header_style="bold")
    views = level_views(summary)
    # A level's name is its identity (a scaled value such as n=3,162,278): never cut it.
    widest = max((len(level_name(summary, v.level)) for v in views), default=5)
    table.add_column("level", justify="right", no_wrap=True, min_width=widest)
    for _key, label in METRIC_COLUMNS:
        table.add_column(label, justify="right")
    table.add_column("verdict")
    table.add_column("wall", justify="right")
    table.add_column("peak MB", justify="right")
    table.add_column("failure class")
    ff = first_fail(summary)
    for view in views:
        cells = [level_name(summary, view.level)]
        cells += [fmt_number(metric(view.metrics, key)) for key, _l in METRIC_COLUMNS]
        verdict = Text(view.verdict, style=VERDICT_STYLE.get(view.verdict, ""))
        row: list[str | Text] = [*cells, verdict, fmt_seconds(view.wall_s), fmt_mb(view.peak_mb)]
        row.append(Text(view.failure_class or ""))
        table.add_row(*row, style="on grey15" if view.level == ff else None)
    return table


def verdict_panel(view: RunView) -> Panel:
    """The answer: the threshold, the cause, and the stderr lines that show it."""
    summary = view.summary
    sentence = threshold_sentence(summary)
    lines: list[RenderableType] = [Text(sentence, style="bold")]
    if summary.message and not sentence.startswith(summary.message.rstrip(".")):
        lines.append(Text(summary.message))
    failure = summary.failure
    if failure is not None:
        cause = Text("cause: ", style="bold")
        cause.append(failure.failure_class, style="red")
        if failure.explanation:
            cause.append(f" - {failure.explanation}")
        lines.append(cause)
        if failure.signature:
            lines.append(Text(f"signature: {failure.signature}", style="dim"))
        evidence = list(failure.evidence)
        if not evidence:
            # The summary kept no evidence lines: fall back to the first failing probe's stderr tail.
            fails = failing_records(view.records)
            if fails:
                evidence = fails[0].observation.job.stderr_tail.strip().splitlines()[-MAX_EVIDENCE_LINES:]
        if evidence:
            lines.append(Text("evidence:", style="bold"))
            for line in evidence[:MAX_EVIDENCE_LINES]:
                lines.append(Text("  " + line, style="yellow"))
            if len(evidence) > MAX_EVIDENCE_LINES:
                lines.append(Text(f"  ... {len(evidence) - MAX_EVIDENCE_LINES} more lines", style="dim"))
    style = "red" if first_fail(summary) is not None else "green"
    return Panel(Group(*lines), title="verdict", title_align="left", border_style=style)


def timings_table(summary: RunSummary) -> Table | None:
    """Median seconds per stage, over every probe of the run, with min and max."""
    stages = stage_order(summary.probes)
    if not stages:
        return None
    table = Table(title="timings (all probes)", title_justify="left", header_style="bold")
    table.add_column("stage")
    table.add_column("median", justify="right")
    table.add_column("min", justify="right")
    table.add_column("max", justify="right")
    table.add_column("probes", justify="right")
    for stage in stages:
        vals = [p.timings[stage] for p in summary.probes if stage in p.timings]
        table.add_row(
            stage,
            fmt_seconds(statistics.median(vals)),
            fmt_seconds(min(vals)),
            fmt_seconds(max(vals)),
            str(len(vals)),
        )
    walls = [p.wall_s for p in summary.probes if p.wall_s is not None]
    if walls:
        table.add_row(
            Text("wall", style="bold"),
            fmt_seconds(statistics.median(walls)),
            fmt_seconds(min(walls)),
            fmt_seconds(max(walls)),
            str(len(walls)),
        )
    return table


def isolate_table(summary: RunSummary) -> Table | None:
    """Per dimension: whether it alone is sufficient or necessary for the failure, and where."""
    dims = isolate_dimensions(summary.isolate)
    if not dims:
        return None
    drivers = set(isolate_drivers(summary.isolate))
    table = Table(title="isolate: which dimension drives the failure", title_justify="left")
    table.add_column("dimension")
    table.add_column("good -> bad")
    table.add_column("sufficient")
    table.add_column("necessary")
    table.add_column("threshold", justify="right")
    table.add_column("attribution")
    for name, findings in dims:
        score = findings.attribution
        bar = "█" * round(score * 10) + "·" * (10 - round(score * 10))
        threshold = findings.threshold
        table.add_row(
            Text(name + (" (driver)" if name in drivers else ""), style="bold" if name in drivers else ""),
            Text(f"{findings.low_value} -> {findings.high_value}"),
            _yes_no(findings.sufficient),
            _yes_no(findings.necessary),
            Text("-" if threshold is None else str(threshold)),
            bar,
        )
    return table


def _yes_no(value: object) -> str:
    return "-" if value is None else ("yes" if value else "no")


def renderables(view: RunView) -> list[RenderableType]:
    """Every block of the report, in order, ready for console.print."""
    summary = view.summary
    blocks: list[RenderableType] = [header(summary), level_table(summary), verdict_panel(view)]
    if summary.flaky_band:
        band = summary.flaky_band
        blocks.append(
            Panel(
                f"levels {band[0]}..{band[-1]} passed in some attempts and failed in others;"
                " the threshold lies in this band",
                title="flaky band",
                title_align="left",
                border_style="yellow",
            )
        )
    timings = timings_table(summary)
    if timings is not None:
        blocks.append(timings)
    iso = isolate_table(summary)
    if iso is not None:
        blocks.append(iso)
    kept = [(p.level, p.probe_id, p.remote_dir) for p in summary.probes if p.remote_dir]
    if kept:
        table = Table(title="remote folders kept (--keep-remote)", title_justify="left")
        table.add_column("level")
        table.add_column("probe")
        table.add_column("folder", overflow="fold")  # a path the user copies: wrap, never cut
        for level, probe_id, folder in kept:
            table.add_row("-" if level is None else str(level), Text(probe_id), Text(folder))
        blocks.append(table)
    return blocks


def print_report(view: RunView, console: Console) -> None:
    """Print the report on a Rich console; the view's probes add stderr evidence."""
    for block in renderables(view):
        console.print(block)


def to_text(view: RunView, width: int = 120) -> str:
    """The report as plain text (for -o FILE): the same blocks, without colour codes."""
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None, force_terminal=False)
    print_report(view, console)
    return console.export_text(styles=False)
