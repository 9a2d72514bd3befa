"""`probe runs`: the runs recorded in the journal."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer
from rich.table import Table

from threshold_probe.cli.common import command, console, get_state, print_json, safe
from threshold_probe.session import display_status
from threshold_probe.view import run_listing


@command
def runs(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Show at most N runs.")] = 20,
    cluster: Annotated[str | None, typer.Option("--cluster", help="Only runs on this cluster.")] = None,
    kind: Annotated[str | None, typer.Option("--kind", help="Only sweep, bisect, isolate or run.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List past runs, newest first, with their threshold and status.

    A run shows 'stopped' when its probe process is gone without finishing it (for example
    after kill -9): `probe sweep|bisect|isolate --resume RUN_ID` continues it.
    """
    store = get_state().store(readonly=True)
    infos = store.runs(limit=limit, cluster=cluster, kind=kind)
    listed = [run_listing(i, display_status(i, store)) for i in infos]
    if as_json:
        print_json([row.to_json() for row in listed])
        return
    if not infos:
        console.print(f"no runs recorded in {get_state().store().root} yet: start one with `probe bisect`")
        return
    table = Table(title=f"{len(infos)} runs", title_justify="left")
    for col in ("run", "kind", "cluster", "pipeline", "ladder", "started", "status", "first fail", "class"):
        table.add_column(col)
    for row in listed:
        started = dt.datetime.fromtimestamp(row.started_at).strftime("%Y-%m-%d %H:%M")
        # Names come from user files and the journal: escaped, never Rich markup.
        table.add_row(
            safe(row.run_id),
            safe(row.kind),
            safe(row.cluster),
            safe(row.pipeline),
            safe(row.ladder),
            started,
            row.status,
            str(row.first_fail) if row.first_fail is not None else "-",
            safe(row.failure_class or "-"),
        )
    console.print(table)
