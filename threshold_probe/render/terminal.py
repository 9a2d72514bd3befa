"""The Rich terminal report: header, level table, verdict panel, timings, flaky band, isolate findings."""

from __future__ import annotations

import datetime as dt
import io
import statistics
from collections.abc import Sequence

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from threshold_probe.render.common import fmt_mb, fmt_number, fmt_seconds
from threshold_probe.summary import RunSummary
from threshold_probe.view import (
    METRIC_COLUMNS,
    LevelView,
    RunView,
    answer_failed,
    failing_records,
    first_fail,
    isolate_dimensions,
    isolate_drivers,
    last_pass,
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


def level_table(
    summary: RunSummary,
    all_levels: bool = False,
    metrics: Sequence[tuple[str, str]] = METRIC_COLUMNS,
    widths: Sequence[int] | None = None,
) -> Table:
    """One row per level: static metrics, verdict, wall time, peak memory, failure class.

    A stretch of levels the run did not probe is one row ("2–19 not probed"): a bisect probes
    ten of forty levels, and thirty rows of dashes would hide them. `all_levels` shows each.
    `metrics`: the static metric columns shown and `widths` their widths (LevelTable fits the
    table to a narrow terminal with them).
    """
    table = Table(title="levels", title_justify="left", header_style="bold")
    rows = _level_rows(summary, all_levels, metrics)
    # The level's name is its identity (a scaled value such as n=3,162,278) and a number is only
    # true whole: no cell is ever cut or folded, the headers wrap instead.
    for i, head in enumerate(_headers(metrics)):
        width = max((cells[i].cell_len for _n, cells in rows), default=0)
        left = head in ("verdict", "failure class")
        fixed = widths[i] if widths is not None else None
        table.add_column(head, justify="left" if left else "right", min_width=width or None, width=fixed)
    ff = first_fail(summary)
    for number, cells in rows:
        table.add_row(*cells, style="on grey15" if number is not None and number == ff else None)
    return table


def _headers(metrics: Sequence[tuple[str, str]]) -> list[str]:
    return ["level", *(label for _k, label in metrics), "verdict", "wall", "peak MB", "failure class"]


def _level_rows(
    summary: RunSummary, all_levels: bool, metrics: Sequence[tuple[str, str]]
) -> list[tuple[int | None, list[Text]]]:
    """The table's rows: (level, cells) for a probed level, (None, cells) for an unprobed stretch."""
    views = level_views(summary)
    rows: list[tuple[int | None, list[Text]]] = []
    entries: list[tuple[LevelView | None, int, int]] = [(v, v.level, v.level) for v in views]
    for view, lo, hi in entries if all_levels else _folded(views):
        if view is None:
            blank = [Text("") for _ in range(len(metrics))]
            cells = [Text(_stretch_name(summary, lo, hi)), *blank, Text(NOT_PROBED, style="dim")]
            rows.append((None, [*cells, Text(""), Text(""), Text("")]))
            continue
        cells = [Text(level_name(summary, view.level))]
        cells += [Text(fmt_number(metric(view.metrics, key))) for key, _l in metrics]
        cells.append(Text(view.verdict, style=VERDICT_STYLE.get(view.verdict, "")))
        cells += [Text(fmt_seconds(view.wall_s)), Text(fmt_mb(view.peak_mb)), Text(view.failure_class or "")]
        rows.append((view.level, cells))
    return rows


#: The verdict cell of a stretch of levels the run did not probe.
NOT_PROBED = "not probed"


def _folded(views: list[LevelView]) -> list[tuple[LevelView | None, int, int]]:
    """The level views, each stretch of unprobed levels as one (None, first, last) entry."""
    rows: list[tuple[LevelView | None, int, int]] = []
    for view in views:
        if view.verdict != "-":
            rows.append((view, view.level, view.level))
        elif rows and rows[-1][0] is None:
            rows[-1] = (None, rows[-1][1], view.level)
        else:
            rows.append((None, view.level, view.level))
    return rows


def _stretch_name(summary: RunSummary, lo: int, hi: int) -> str:
    """'2–19', or one level's name when the stretch is one level long."""
    if lo == hi:
        return level_name(summary, lo)
    return f"{level_name(summary, lo)}–{level_name(summary, hi)}"


#: Static metric columns a narrow terminal leaves out of the level table, first to last.
DROP_ORDER = ("subprocess_calls", "cc", "loc", "pickle_bytes")


class LevelTable:
    """The level table, fitted to the width it is drawn at: when its cells would not fit whole,
    static metric columns are left out (DROP_ORDER); the level, its verdict, its wall time and
    peak memory are always shown whole (`--json` and wider terminals have every metric)."""

    def __init__(self, summary: RunSummary, all_levels: bool = False) -> None:
        self.summary = summary
        self.all_levels = all_levels

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        metrics = list(METRIC_COLUMNS)
        for key in (None, *DROP_ORDER):
            metrics = [m for m in metrics if m[0] != key]
            rows = _level_rows(self.summary, self.all_levels, metrics)
            fits, widths = _fit(_headers(metrics), [cells for _n, cells in rows], options.max_width)
            if fits:
                break
        yield level_table(self.summary, self.all_levels, metrics, widths)


def _fit(headers: list[str], rows: list[list[Text]], max_width: int) -> tuple[bool, list[int] | None]:
    """Whether the columns fit `max_width` with every cell whole, and their widths: None when
    they fit unwrapped; else each header wrapped at its spaces as far as needed, left first.

    Rich's own sharing out of a narrow width shrinks the widest columns first and may cut a
    cell, so the widths are chosen here.
    """
    extra = 1 + 3 * len(headers)  # a border and one space either side of every column
    cells = [max((row[i].cell_len for row in rows), default=0) for i in range(len(headers))]
    lows = [max(max(len(word) for word in head.split()), cell) for head, cell in zip(headers, cells, strict=True)]
    highs = [max(len(head), cell) for head, cell in zip(headers, cells, strict=True)]
    if sum(highs) + extra <= max_width:
        return True, None
    spare = max_width - extra - sum(lows)
    if spare < 0:
        return False, None
    widths = list(lows)
    for i, high in enumerate(highs):
        give = min(spare, high - widths[i])
        widths[i] += give
        spare -= give
    return True, widths


def verdict_panel(view: RunView) -> Panel:
    """The answer: the threshold, the cause, and the stderr lines that show it."""
    summary = view.summary
    sentence = threshold_sentence(summary)
    lines: list[RenderableType] = [Text(sentence, style="bold")]
    more = _beyond_sentence(summary, sentence)
    if more:
        lines.append(Text(more))
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
    style = "red" if answer_failed(summary) else "green"
    return Panel(Group(*lines), title="verdict", title_align="left", border_style=style)


def _beyond_sentence(summary: RunSummary, sentence: str) -> str:
    """What the search's message adds to the threshold sentence: '' when it says the same thing
    in other words ('no level fails up to 40' beside 'no failure up to level 40')."""
    message = summary.message.strip()
    if not message or sentence.startswith(message.rstrip(".")):
        return ""
    same = f"no level fails up to {last_pass(summary)}"
    if sentence.startswith("no failure up to") and message.startswith(same):
        return message[len(same) :].lstrip(" ;,").strip()
    return message


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


def renderables(view: RunView, all_levels: bool = False) -> list[RenderableType]:
    """Every block of the report, in order, ready for console.print (`all_levels`: a row for
    each level, the unprobed ones too)."""
    summary = view.summary
    blocks: list[RenderableType] = [header(summary), LevelTable(summary, all_levels), verdict_panel(view)]
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


def print_report(view: RunView, console: Console, all_levels: bool = False) -> None:
    """Print the report on a Rich console; the view's probes add stderr evidence."""
    for block in renderables(view, all_levels):
        console.print(block)


def to_text(view: RunView, width: int = 120, all_levels: bool = False) -> str:
    """The report as plain text (for -o FILE): the same blocks, without colour codes."""
    console = Console(width=width, record=True, file=io.StringIO(), color_system=None, force_terminal=False)
    print_report(view, console, all_levels)
    return console.export_text(styles=False)
