"""`probe history`: the threshold of every past run over time, as a table and sparklines."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.table import Table

from threshold_probe.cli.common import (
    command,
    console,
    fit_table,
    get_state,
    known_kind,
    print_json,
    print_table,
    safe,
)
from threshold_probe.history import by_cell, sparkline
from threshold_probe.history import history as load_history
from threshold_probe.summary import SEARCH_KINDS


@command
def history(
    cluster: Annotated[str | None, typer.Option("--cluster", help="Only runs on this cluster.")] = None,
    pipeline: Annotated[str | None, typer.Option("--pipeline", help="Only runs through this pipeline.")] = None,
    ladder: Annotated[str | None, typer.Option("--ladder", help="Only runs over this ladder.")] = None,
    kind: Annotated[
        str | None, typer.Option("--kind", help="Only runs of this kind: " + ", ".join(SEARCH_KINDS) + ".")
    ] = None,
    limit: Annotated[int | None, typer.Option("--limit", "-n", min=1, help="Only the newest N runs.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """Show the threshold (first failing level) of every past run, oldest first, with a sparkline per cell.

    A cell is the cluster (as configured and as its preflight saw it), pipeline, ladder, limits and
    level range: only runs of one cell make a trend.
    """
    entries = load_history(
        get_state().store(readonly=True),
        cluster=cluster,
        pipeline=pipeline,
        ladder=ladder,
        kind=known_kind(kind, SEARCH_KINDS),
        limit=limit,
    )
    groups = by_cell(entries)
    if as_json:
        print_json(
            {
                "runs": [e.model_dump() for e in entries],
                "cells": {
                    cell: {
                        "label": items[0].cell,
                        "sparkline": sparkline(items),
                        "first_fail": [e.first_fail for e in items],
                        "run_ids": [e.run_id for e in items],
                    }
                    for cell, items in groups.items()
                },
            }
        )
        return
    if not entries:
        console.print("no runs match: start one with `probe bisect`", highlight=False)
        return
    rows = []
    for e in entries:
        if e.first_fail is not None:
            ff = f"[bold]{e.first_fail}[/]"
        elif e.highest_pass is not None:
            ff = f"[green]none <= {e.highest_pass}[/]"
        else:
            ff = "-"
        rows.append(
            {
                "started": dt.datetime.fromtimestamp(e.started_at).strftime("%m-%d %H:%M"),
                "run": safe(e.run_id),
                "kind": e.kind,
                "cell": safe(e.cell),  # names from user files: never markup
                "first fail": ff,
                "last pass": "-" if e.last_pass is None else str(e.last_pass),
                "class": safe(e.failure_class or "-"),
                "status": e.status,
            }
        )
    # Ids are read whole or not at all, and the cell wraps between its words: on a narrow
    # terminal the columns a reader can do without go first, never a name cut to '…'.
    title = f"threshold history ({len(entries)} run{'' if len(entries) == 1 else 's'})"
    columns = list(rows[0])
    droppable = ["started", "last pass", "kind", "class"]
    print_table(fit_table(title, rows, columns, whole=("run",), droppable=droppable, right=("first fail", "last pass")))
    spark = Table(title="trend per cell (first failing level; ↑ none found, · undecided)", title_justify="left")
    spark.add_column("cell")
    spark.add_column("runs", justify="right")
    spark.add_column("sparkline")
    spark.add_column("first -> last", justify="right")
    for items in groups.values():
        ends = [e.first_fail for e in items]
        first = next((v for v in ends if v is not None), None)
        last = next((v for v in reversed(ends) if v is not None), None)
        ends_text = " -> ".join("-" if v is None else str(v) for v in (first, last))
        spark.add_row(safe(items[0].cell), str(len(items)), sparkline(items), ends_text)
    console.print(spark)
