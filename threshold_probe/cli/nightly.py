"""`probe nightly`: run the [nightly] matrix and report regressions against baselines."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from threshold_probe.cli.common import (
    command,
    console,
    err_console,
    fit_table,
    get_state,
    print_json,
    print_table,
    safe,
)
from threshold_probe.nightly import run_nightly
from threshold_probe.render.nightly import STATUS_COLOURS
from threshold_probe.view.nightly import NightlyCell


def _cell_done(cell: NightlyCell) -> None:
    # The same status and words as the table: the cell is compared before this line is printed.
    parts = [cell.threshold] if cell.threshold else []
    if cell.run_id is not None:
        parts.append(f"baseline {cell.baseline_text}")
    parts.append(cell.change_text)
    err_console.print(
        f"  {safe(cell.label)}: {cell.status}: " + safe("; ".join(p for p in parts if p)),
        highlight=False,
        soft_wrap=True,
    )


@command
def nightly(
    output: Annotated[
        Path | None,
        typer.Option(
            "--output", "-o", metavar="DIR", help="Folder for nightly.html, nightly.junit.xml and nightly.json."
        ),
    ] = None,
    notify_command: Annotated[
        str | None,
        typer.Option(
            "--notify-command",
            metavar="CMD",
            help="Run CMD with the HTML summary's path when something regressed ({path} marks where).",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the night's JSON summary.")] = False,
) -> None:
    """Run the \\[nightly] matrix of probe.toml (clusters x pipelines x ladders) against baselines.

    Exit 0 when nothing regressed (a changed config, limit or interpreter starts a new baseline),
    1 when, within one cell, a threshold moved down or a passing level now fails, 3 when a cluster
    could not be reached (the other clusters are still reported).
    """
    state = get_state()
    config = state.config()
    quiet = as_json
    result = run_nightly(
        config,
        state.resolved_reports_dir(),
        output=output,
        notify_command=notify_command,
        on_cell=None if quiet else _cell_done,
    )
    if as_json:
        print_json(result.model_dump(mode="json"))
    else:
        rows = [
            {
                "cluster/pipeline/ladder": safe(c.label),
                "status": f"[{STATUS_COLOURS.get(c.status, 'white')}]{c.status}[/]",
                "first fail": "-" if c.first_fail is None else str(c.first_fail),
                "baseline": safe(c.baseline_text),
                "what changed": safe(c.change_text),
            }
            for c in result.cells
        ]
        # Cell names and run ids are never cut: the other columns wrap between words instead.
        columns = ["cluster/pipeline/ladder", "status", "first fail", "baseline", "what changed"]
        whole = ("cluster/pipeline/ladder",)
        print_table(fit_table("nightly", rows, columns, whole=whole, droppable=["first fail"]))
        for c in result.cells:
            for line in c.regressions:
                console.print(f"[bold red]regression[/] {safe(c.label)}: {safe(line)}", highlight=False)
            if c.status == "new-baseline":
                console.print(
                    f"[bold blue]new baseline[/] {safe(c.label)}: {safe('; '.join(c.changes))}"
                    f" (was {c.previous_run}; not a regression)",
                    highlight=False,
                    soft_wrap=True,
                )
        for name, why in result.unreachable.items():
            console.print(f"[bold magenta]unreachable[/] {safe(name)}: {safe(why)}", highlight=False, soft_wrap=True)
        console.print(
            f"wrote {result.files['html']}, {result.files['junit']}, {result.files['json']}",
            highlight=False,
            soft_wrap=True,
        )
        if result.notified is not None:
            console.print(f"notified: {result.notified}", highlight=False)
    if result.exit_code:
        raise typer.Exit(result.exit_code)
