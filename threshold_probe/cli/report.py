"""`probe report`: render a recorded run again, in any report format."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from threshold_probe.cli import complete
from threshold_probe.cli.common import command, console, err_console, get_state
from threshold_probe.errors import UserError
from threshold_probe.render import FORMATS, render
from threshold_probe.render.terminal import print_report
from threshold_probe.store import atomic_write
from threshold_probe.summary import RunSummary
from threshold_probe.view import run_view


@command
def report(
    run_id: Annotated[
        str,
        typer.Argument(
            metavar="RUN_ID",
            help="A run id (or a unique prefix of one), or 'latest'.",
            show_default=True,
            autocompletion=complete.run_ids,
        ),
    ] = "latest",
    fmt: Annotated[
        str,
        typer.Option(
            "--format",
            help=f"Report format: {', '.join(FORMATS)}.",
            show_default=True,
            autocompletion=complete.report_formats,
        ),
    ] = "rich",
    as_json: Annotated[bool, typer.Option("--json", help="Same as --format json.")] = False,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", help="Write the report to FILE (atomically) instead of stdout."),
    ] = None,
    all_levels: Annotated[
        bool,
        typer.Option("--all-levels", help="A row for every level in the rich report, the ones not probed too."),
    ] = False,
) -> None:
    """Render a recorded run: the Rich report, or JSON, Markdown, HTML or JUnit XML."""
    if as_json:
        fmt = "json"
    if fmt not in FORMATS:
        raise UserError(f"unknown report format {fmt!r}: choose one of {', '.join(FORMATS)}")
    store = get_state().store(readonly=True)
    info = store.get_run(run_id)
    if info.summary is None:
        raise UserError(f"run {info.run_id} has no summary yet (status {info.status}): it is still running")
    if info.kind in ("triage", "explain"):  # runs of their own shape (threshold_probe/cli/triage.py)
        from threshold_probe.cli.triage import report_again

        report_again(info.kind, info.summary, fmt, output)
        return
    if info.kind == "shrink":
        from threshold_probe.cli.shrink import report_shrink

        report_shrink(info, fmt, output)
        return
    summary = RunSummary.model_validate(info.summary)
    view = run_view(summary, store.probes(summary.run_id))
    if output is not None:
        atomic_write(output, render(view, fmt, all_levels=all_levels))
        err_console.print(f"wrote {fmt} report of {summary.run_id} to {output}", highlight=False)
        return
    if fmt == "rich":
        print_report(view, console, all_levels)
        return
    sys.stdout.write(render(view, fmt))
    sys.stdout.flush()
