"""`probe check`: the functions of a code base that a recorded run predicts to fail, found statically."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer

from threshold_probe.check import check_paths, load_summary_file, rules_from_summary
from threshold_probe.cli.common import command, err_console, get_state, print_json, safe
from threshold_probe.errors import UserError
from threshold_probe.summary import RunSummary, search_summary
from threshold_probe.textsafe import strip_control

CHECK_FORMATS = ("text", "json", "sarif")

#: The summary a repository commits for the `probe-check` pre-commit hook, read when --against is not given.
DEFAULT_SUMMARY = "probe-summary.json"


def _against(value: str) -> RunSummary:
    """A summary file (committed `--json` output) when the value names a file, else a run of the journal."""
    path = Path(value)
    if path.is_file():
        return load_summary_file(path)
    if path.suffix == ".json" or "/" in value or path.is_dir():
        raise UserError(f"--against {value}: no such summary file")
    return search_summary(get_state().store(readonly=True).get_run(value), "probe check --against")


def _formats(incomplete: str) -> list[str]:
    """Shell completion of --format."""
    return [f for f in CHECK_FORMATS if f.startswith(incomplete)]


@command
def check_code(
    paths: Annotated[
        list[str], typer.Argument(metavar="PATH...", help="Files and folders (searched recursively for *.py).")
    ],
    against: Annotated[
        str,
        typer.Option(
            "--against",
            "-a",
            metavar="RUN_ID|FILE",
            help="A recorded bisect --isolate or isolate run: its run id (or a unique prefix, or 'latest'), "
            f"or its --json summary file (default: {DEFAULT_SUMMARY} in the current folder, as a repository "
            "commits it for the pre-commit hook).",
        ),
    ] = "",
    fmt: Annotated[
        str,
        typer.Option("--format", help=f"Output format: {', '.join(CHECK_FORMATS)}.", autocompletion=_formats),
    ] = "text",
) -> None:
    """Predict which functions fail like a recorded run, from its static drivers and thresholds.

    Every function in PATHS is measured from its syntax tree (never imported or run) and compared
    with the thresholds the run isolated (global_refs, closure_refs, column-0 strings in nested
    code, top-level range loops, LOC, ...). One line per finding.
    """
    if fmt not in CHECK_FORMATS:
        raise UserError(f"unknown format {fmt!r}: choose one of {', '.join(CHECK_FORMATS)}")
    if not against:
        if not Path(DEFAULT_SUMMARY).is_file():
            raise UserError(
                f"no run to check against: give --against RUN_ID|SUMMARY.json, or commit {DEFAULT_SUMMARY} "
                "(`probe bisect --isolate --json > probe-summary.json`)"
            )
        against = DEFAULT_SUMMARY
    summary = _against(against)
    rules, unchecked = rules_from_summary(summary)
    result = check_paths(paths, rules)
    result.unchecked = unchecked
    if unchecked:
        err_console.print(
            f"warning: run {safe(summary.run_id)} is also driven by {safe(', '.join(unchecked))}, which check "
            "cannot predict from source",
            highlight=False,
        )
    if fmt == "json":
        print_json(
            {
                "against": {
                    "run_id": summary.run_id,
                    "kind": summary.kind,
                    "cluster": summary.cluster,
                    "pipeline": summary.pipeline,
                    "ladder": summary.ladder,
                },
                "rules": [r.to_dict() for r in result.rules],
                "findings": [f.to_dict() for f in result.findings],
                "errors": [e.model_dump() for e in result.errors],
                "unchecked": result.unchecked,
                "files": result.files,
                "functions": result.functions,
            }
        )
    elif fmt == "sarif":
        from threshold_probe.render.sarif import to_sarif

        sys.stdout.write(to_sarif(result))
        sys.stdout.flush()
    else:
        for finding in result.findings:
            sys.stdout.write(strip_control(finding.text()).replace("\n", " ") + "\n")
        sys.stdout.flush()
    for e in result.errors:
        where = f"{e.path}:{e.lineno}:" if e.lineno is not None else f"{e.path}:"
        err_console.print(f"[red]{safe(where)}[/] {safe(e.message)}", highlight=False)
    if not get_state().quiet and fmt == "text":
        err_console.print(
            f"{len(result.findings)} finding(s) in {result.functions} function(s) of {result.files} file(s), "
            f"against run {safe(summary.run_id)}",
            highlight=False,
            soft_wrap=True,
        )
    if result.findings:
        raise typer.Exit(1)
    if result.errors and not result.functions:
        raise typer.Exit(2)
