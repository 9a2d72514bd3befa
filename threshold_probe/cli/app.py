"""The `probe` command: global options and the commands mounted from their modules."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Annotated

import typer

from threshold_probe import __version__
from threshold_probe.cli import check as check_cmd
from threshold_probe.cli import clusters as clusters_cmd
from threshold_probe.cli import compare as compare_cmd
from threshold_probe.cli import gc as gc_cmd
from threshold_probe.cli import history as history_cmd
from threshold_probe.cli import levels as levels_cmd
from threshold_probe.cli import nightly as nightly_cmd
from threshold_probe.cli import pipelines as pipelines_cmd
from threshold_probe.cli import report as report_cmd
from threshold_probe.cli import runs as runs_cmd
from threshold_probe.cli import search as search_cmd
from threshold_probe.cli import shrink as shrink_cmd
from threshold_probe.cli import triage as triage_cmd
from threshold_probe.cli.common import console, reset_state
from threshold_probe.cli.usage import ProbeCommand, ProbeGroup

HELP = """Find and explain the point where remote Python function execution breaks down.

A ladder of generated workload functions (levels 1..N) grows along named dimensions; each level
is dispatched to a cluster through a pipeline, every failure is classified, and bisection finds
the first failing level and the dimension that drives it.

Exit codes: 0 completed (whatever was found), 1 a finding a script asks about (run: the
probe failed; check: a function reaches a threshold; nightly: a regression; sweep or bisect
--expect-pass-through N: a level at or below N failed), 2 bad input, 3 infrastructure (cluster
unusable), 130/143 interrupted (resume with --resume).

Shell completion of commands, options and their values (clusters, ladders, pipelines, run ids,
formats): probe --install-completion, then start a new shell.
"""

app = typer.Typer(
    name="probe",
    cls=ProbeGroup,
    help=HELP,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        console.print(f"threshold-probe {__version__}", highlight=False)
        raise typer.Exit()


@app.callback()
def main_options(
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            "-c",
            metavar="FILE",
            help="probe.toml to use (default: probe.toml or pyproject.toml found upwards).",
            envvar="PROBE_CONFIG",
        ),
    ] = None,
    reports_dir: Annotated[
        Path | None,
        typer.Option(
            "--reports-dir",
            metavar="DIR",
            help="Where runs and the journal live (default: reports/).",
            envvar="PROBE_REPORTS_DIR",
        ),
    ] = None,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks of errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version and exit.")
    ] = False,
) -> None:
    """Global options, read before any command."""
    reset_state(config, reports_dir, debug)
    _paramiko_tracebacks(debug)


class _ParamikoSilence(logging.NullHandler):
    """Marks the handler this module adds, so that it is added once and removed under --debug."""


def _paramiko_tracebacks(debug: bool) -> None:
    """paramiko logs a failed handshake with a traceback from its own thread; the command already
    reports it as one line, so that log is only shown under --debug."""
    log = logging.getLogger("paramiko")
    for handler in [h for h in log.handlers if isinstance(h, _ParamikoSilence)]:
        log.removeHandler(handler)
    if not debug:
        log.addHandler(_ParamikoSilence())


SEARCH = "Search"
INSPECT = "Ladders and metrics"
RESULTS = "Results"

app.command(cls=ProbeCommand, rich_help_panel=INSPECT)(levels_cmd.levels)
app.command(cls=ProbeCommand, rich_help_panel=INSPECT)(levels_cmd.measure)
app.command(name="check", cls=ProbeCommand, rich_help_panel=INSPECT)(check_cmd.check_code)
app.command(name="run", cls=ProbeCommand, rich_help_panel=SEARCH)(search_cmd.run)
app.command(cls=ProbeCommand, rich_help_panel=SEARCH)(search_cmd.sweep)
app.command(cls=ProbeCommand, rich_help_panel=SEARCH)(search_cmd.bisect)
app.command(cls=ProbeCommand, rich_help_panel=SEARCH)(search_cmd.isolate)
app.command(name="compare-pipelines", cls=ProbeCommand, rich_help_panel=SEARCH)(pipelines_cmd.compare_pipelines)
app.command(cls=ProbeCommand, rich_help_panel=SEARCH)(nightly_cmd.nightly)
app.command(cls=ProbeCommand, rich_help_panel=SEARCH)(triage_cmd.triage)
app.command(cls=ProbeCommand, rich_help_panel=SEARCH)(triage_cmd.explain)
app.command(cls=ProbeCommand, rich_help_panel=SEARCH)(shrink_cmd.shrink)
app.command(cls=ProbeCommand, rich_help_panel=RESULTS)(shrink_cmd.repro)
app.command(cls=ProbeCommand, rich_help_panel=RESULTS)(runs_cmd.runs)
app.command(cls=ProbeCommand, rich_help_panel=RESULTS)(report_cmd.report)
app.command(cls=ProbeCommand, rich_help_panel=RESULTS)(history_cmd.history)
app.command(cls=ProbeCommand, rich_help_panel=RESULTS)(compare_cmd.compare)
app.command(cls=ProbeCommand, rich_help_panel=RESULTS)(gc_cmd.gc)
app.add_typer(clusters_cmd.app, name="clusters", help="List configured clusters and check them.")


def main() -> None:
    """Entry point of the `probe` console script."""
    app()
