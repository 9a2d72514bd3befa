"""`probe compare`: what changed between two runs."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from threshold_probe.cli import complete
from threshold_probe.cli.common import command, console, get_state, print_json, safe
from threshold_probe.compare import Comparison, compare_runs
from threshold_probe.render.common import fmt_seconds
from threshold_probe.summary import RunSummary, search_summary
from threshold_probe.textsafe import strip_control


def _load(run_id: str) -> RunSummary:
    return search_summary(get_state().store(readonly=True).get_run(run_id), "probe compare")


def _dash(value: object) -> str:
    """An unknown value (no failing level, no class) as the tables show it: a dash, never `None`."""
    return "-" if value is None else str(value)


def print_comparison(cmp: Comparison) -> None:
    """The comparison as Rich text: threshold, flipped levels, metric and timing changes."""
    colour = "red" if cmp.regressed else "green" if cmp.same_cell else "yellow"
    # What differs comes first: a threshold means nothing without what it was measured under.
    if cmp.same_cell:
        console.print("[green]comparable:[/] same cluster fingerprint, pipeline, ladder, limits and levels")
    else:
        console.print(
            "[bold yellow]not comparable:[/] " + safe("; ".join(cmp.differences)),
            highlight=False,
            soft_wrap=True,
        )
        console.print("  so no change below is called a regression; only runs of one cell can regress", highlight=False)
    console.print(
        f"[bold]{safe(cmp.run_a)}[/] ({safe(cmp.cell_a)}) -> [bold]{safe(cmp.run_b)}[/] ({safe(cmp.cell_b)})",
        highlight=False,
    )
    console.print(
        f"threshold: first fail {_dash(cmp.first_fail_a)} -> {_dash(cmp.first_fail_b)}"
        f" (last pass {_dash(cmp.last_pass_a)} -> {_dash(cmp.last_pass_b)}): [{colour}]{cmp.threshold_moved}[/]",
        highlight=False,
    )
    if cmp.failure_class_a != cmp.failure_class_b:
        classes = f"{_dash(cmp.failure_class_a)} -> {_dash(cmp.failure_class_b)}"
        console.print(Text(f"failure class: {strip_control(classes)}"), highlight=False)
    for line in cmp.regressions:
        console.print(f"[bold red]regression:[/] {escape(strip_control(line))}", highlight=False)
    if cmp.flipped:
        table = Table(title="levels that flipped", title_justify="left")
        for col in ("level", "before", "after", "class before", "class after"):
            table.add_column(col)
        for f in cmp.flipped:
            style = "red" if f.regression else "green" if cmp.same_cell else "yellow"
            before, after = safe(f.class_before or "-"), safe(f.class_after or "-")
            table.add_row(str(f.level), f.before, f"[{style}]{f.after}[/]", before, after)
        console.print(table)
    if cmp.metric_changes:
        table = Table(title="metric changes", title_justify="left")
        for col in ("level", "metric", "before", "after", "delta"):
            table.add_column(col, justify="right")
        for m in cmp.metric_changes:
            table.add_row(str(m.level), m.metric, f"{m.before:g}", f"{m.after:g}", f"{m.delta:+g}")
        console.print(table)
    if cmp.timing_changes:
        table = Table(title="timing changes beyond noise", title_justify="left")
        for col in ("level", "stage", "before", "after", "ratio", "probes"):
            table.add_column(col, justify="right")
        for t in cmp.timing_changes:
            table.add_row(
                str(t.level),
                t.stage,
                fmt_seconds(t.before_s),
                fmt_seconds(t.after_s),
                "-" if t.ratio is None else f"x{t.ratio:.2f}",
                f"{t.samples[0]}/{t.samples[1]}",
            )
        console.print(table)
    if not (cmp.flipped or cmp.metric_changes or cmp.timing_changes) and cmp.threshold_moved == "same":
        console.print("no change beyond noise", highlight=False)


@command
def compare(
    run_a: Annotated[
        str, typer.Argument(help="The earlier run (id, unique prefix or 'latest').", autocompletion=complete.run_ids)
    ],
    run_b: Annotated[
        str, typer.Argument(help="The later run (id, unique prefix or 'latest').", autocompletion=complete.run_ids)
    ],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")] = False,
) -> None:
    """Show what changed between two runs: threshold, flipped levels, metric and timing shifts."""
    cmp = compare_runs(_load(run_a), _load(run_b))
    if as_json:
        print_json(cmp.model_dump(mode="json"))
        return
    print_comparison(cmp)
