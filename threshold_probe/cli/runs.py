"""`probe runs`: the runs recorded in the journal."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer

from threshold_probe.cli import complete
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
from threshold_probe.session import display_status
from threshold_probe.view import run_listing


@command
def runs(
    limit: Annotated[int, typer.Option("--limit", "-n", min=1, help="Show at most N runs.")] = 20,
    cluster: Annotated[
        str | None, typer.Option("--cluster", help="Only runs on this cluster.", autocompletion=complete.clusters)
    ] = None,
    kind: Annotated[
        str | None,
        typer.Option(
            "--kind",
            help="Only runs of this kind: " + ", ".join(complete.RUN_KINDS) + ".",
            autocompletion=complete.run_kinds,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
) -> None:
    """List past runs, newest first, with their threshold and status.

    A run shows 'stopped' when its probe process is gone without finishing it (for example
    after kill -9): `probe sweep|bisect|isolate --resume RUN_ID` continues it.
    """
    store = get_state().store(readonly=True)
    infos = store.runs(limit=limit, cluster=cluster, kind=known_kind(kind))
    listed = [run_listing(i, display_status(i, store)) for i in infos]
    if as_json:
        print_json([row.to_json() for row in listed])
        return
    if not infos:
        given = [f"--{name} {value}" for name, value in (("cluster", cluster), ("kind", kind)) if value]
        if given:
            # The journal may hold runs; none of them is of this cluster or kind.
            console.print(f"no run matches {' '.join(given)}: `probe runs` lists them all", highlight=False)
        else:
            console.print(f"no runs recorded in {store.root} yet: start one with `probe bisect`")
        return
    rows = []
    for row in listed:
        started = dt.datetime.fromtimestamp(row.started_at).strftime("%Y-%m-%d %H:%M")
        # Names come from user files and the journal: escaped, never Rich markup.
        rows.append(
            {
                "run": safe(row.run_id),
                "kind": safe(row.kind),
                "cluster": safe(row.cluster),
                "pipeline": safe(row.pipeline),
                "ladder": safe(row.ladder),
                "started": started,
                "status": row.status,
                "first fail": str(row.first_fail) if row.first_fail is not None else "-",
                "class": safe(row.failure_class or "-"),
            }
        )
    columns = ["run", "kind", "cluster", "pipeline", "ladder", "started", "status", "first fail", "class"]
    title = f"{len(infos)} run" + ("" if len(infos) == 1 else "s")
    # The run id is the handle every other command takes: never cut. On a narrow terminal the
    # columns that matter least go first, rather than cutting every column to a few letters.
    droppable = ["pipeline", "started", "ladder", "kind", "class"]
    print_table(fit_table(title, rows, columns, whole=("run", "cluster", "ladder", "pipeline"), droppable=droppable))
