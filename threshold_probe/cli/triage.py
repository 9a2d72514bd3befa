"""`probe triage` and `probe explain`: a code base's functions probed and their split explained;
one command from "my runner fails on complex functions" to an answer."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Group, RenderableType

from threshold_probe.cli import complete
from threshold_probe.cli.common import (
    ClusterOpt,
    FromOpt,
    HiOpt,
    LadderOpt,
    LoOpt,
    RichProgress,
    ToOpt,
    command,
    command_prefix,
    console,
    err_console,
    get_state,
    level_range,
    writable_output,
)
from threshold_probe.errors import UserError
from threshold_probe.session import LimitOverrides
from threshold_probe.store import atomic_write

FORMATS = ("rich", "json", "md", "html", "junit")

PipelineOpt = Annotated[
    str | None,
    typer.Option(
        "--pipeline",
        "-p",
        help="How the functions travel: native (default), source, inline, clustrix, ...",
        autocompletion=complete.pipelines,
    ),
]
MemoryOpt = Annotated[str | None, typer.Option("--memory", help="Memory limit per probe, e.g. 300MB or 4GB.")]
TimeOpt = Annotated[str | None, typer.Option("--time", help="Wall-clock limit per probe, e.g. 90s.")]
CoresOpt = Annotated[int | None, typer.Option("--cores", help="Cores per probe.")]
PartitionOpt = Annotated[str | None, typer.Option("--partition", help="SLURM partition (slurm clusters).")]
FreshOpt = Annotated[bool, typer.Option("--fresh", help="Do not reuse verdicts of identical earlier probes.")]
FormatOpt = Annotated[
    str,
    typer.Option("--format", help=f"Report format: {', '.join(FORMATS)}.", autocompletion=complete.report_formats),
]
OutputOpt = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write the report to FILE (atomically) instead of stdout.")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Same as --format json: every part of the report.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]
PreflightOpt = Annotated[
    bool, typer.Option("--preflight/--no-preflight", help="Check the cluster before the first probe.")
]


def _format(fmt: str, as_json: bool) -> str:
    fmt = "json" if as_json else fmt
    if fmt not in FORMATS:
        raise UserError(f"unknown report format {fmt!r}: choose one of {', '.join(FORMATS)}")
    return fmt


def _emit(text: str, rich: list[RenderableType] | None, fmt: str, output: Path | None, what: str) -> None:
    """Write the report to -o FILE, or print it (Rich on a terminal keeps its colours)."""
    if output is not None:
        atomic_write(output, text)
        err_console.print(f"wrote {fmt} report of {what} to {output}", highlight=False)
        return
    if fmt == "rich" and rich is not None:
        console.print(Group(*rich), highlight=False)
        return
    sys.stdout.write(text)
    sys.stdout.flush()


@command
def triage(
    paths: Annotated[
        list[Path] | None,
        typer.Argument(
            metavar="PATH...",
            help="Files and folders (recursively, *.py) whose functions to probe.",
            show_default=False,
        ),
    ] = None,
    cluster: ClusterOpt = None,
    pipeline: PipelineOpt = None,
    parallel: Annotated[int, typer.Option("--parallel", "-P", min=1, help="Probes at a time.")] = 1,
    memory: MemoryOpt = None,
    time: TimeOpt = None,
    cores: CoresOpt = None,
    partition: PartitionOpt = None,
    fresh: FreshOpt = False,
    resume: Annotated[
        str | None,
        typer.Option("--resume", metavar="RUN_ID", help="Continue an interrupted triage (RUN_ID or 'latest')."),
    ] = None,
    keep_remote: Annotated[bool, typer.Option("--keep-remote", help="Leave each probe's remote folder.")] = False,
    preflight: PreflightOpt = True,
    fmt: FormatOpt = "rich",
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Probe every zero-argument function of the paths and explain which feature splits failing from passing.

    Functions are found at module level, as methods, in factories and inside test functions (as a
    runner's test suite defines them); those that need arguments, test functions, fixtures and
    factories are listed as not probed, with the reason. Failures are grouped by class and
    signature; for each group, the best single threshold of every static metric and syntactic
    feature is reported with its support ("fails iff multiline_strings_col0 >= 1: 4 of 4 fail, 0 of
    9 pass"), with the best pair when no single one separates, and how far LOC, CC and pickled
    size are from separating them.
    """
    from threshold_probe.render.triage import print_report, render, renderables
    from threshold_probe.triage import TriageOptions, resume_triage, run_triage

    fmt = _format(fmt, as_json)
    writable_output(output)
    st = get_state()
    cfg = st.config()
    store = st.store()
    progress = RichProgress(quiet=quiet or st.quiet)
    if resume is not None:
        if paths:
            raise UserError("--resume continues a recorded triage: give no PATH with it")
        report = resume_triage(resume, config=cfg, store=store, progress=progress, command_prefix=command_prefix())
    else:
        if not paths:
            raise UserError("give the files or folders to triage: probe triage PATH...")
        report = run_triage(
            config=cfg,
            store=store,
            cluster=cluster or cfg.defaults.cluster,
            pipeline=pipeline or cfg.defaults.pipeline,
            options=TriageOptions(
                paths=[str(p) for p in paths],
                parallel=parallel,
                fresh=fresh,
                preflight=preflight,
                keep_remote=keep_remote,
            ),
            overrides=LimitOverrides(memory=memory, time=time, cores=cores, partition=partition),
            progress=progress,
            command_prefix=command_prefix(),
        )
    if fmt == "rich" and output is None:
        print_report(report, console)
        return
    _emit(render(report, fmt), renderables(report), fmt, output, report.run_id)


def report_again(kind: str, data: dict[str, object], fmt: str, output: Path | None) -> None:
    """`probe report RUN` of a triage or explain run: the same page in any format."""
    if kind == "explain":
        from threshold_probe.explain import load_explanation
        from threshold_probe.render.explain import render as render_explain
        from threshold_probe.render.explain import renderables as explain_renderables

        explanation = load_explanation(data)
        if fmt == "junit":
            raise UserError("an explain run has no JUnit form: use rich, json, md or html")
        _emit(render_explain(explanation, fmt), explain_renderables(explanation), fmt, output, explanation.run_id)
        return
    from threshold_probe.render.triage import render, renderables
    from threshold_probe.triage import load_report

    report = load_report(data)
    _emit(render(report, fmt), renderables(report), fmt, output, report.run_id)


@command
def explain(
    run_id: Annotated[
        str | None,
        typer.Argument(
            metavar="RUN_ID",
            help="With --resume: the explanation to continue (default: the latest).",
            show_default=False,
        ),
    ] = None,
    cluster: ClusterOpt = None,
    pipeline: PipelineOpt = None,
    function: Annotated[
        str | None,
        typer.Option("--function", "-f", help="Explain your own function's failure: FILE:FUNC, FILE:test.inner, ..."),
    ] = None,
    ladder: LadderOpt = None,
    from_level: FromOpt = None,
    to_level: ToOpt = None,
    lo: LoOpt = None,
    hi: HiOpt = None,
    memory: MemoryOpt = None,
    time: TimeOpt = None,
    cores: CoresOpt = None,
    partition: PartitionOpt = None,
    fresh: FreshOpt = False,
    shrink: Annotated[
        bool, typer.Option("--shrink/--no-shrink", help="Shrink the reproducer (when available).")
    ] = True,
    resume: Annotated[bool, typer.Option("--resume", help="Continue an interrupted explanation.")] = False,
    preflight: PreflightOpt = True,
    fmt: Annotated[
        str, typer.Option("--format", help="Page format: rich, json, md, html.", autocompletion=complete.page_formats)
    ] = "rich",
    output: OutputOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Explain a threshold in one command: whose it is, what drives it, a reproducer and a fix.

    Bisects the ladder through the pipeline and through native on the same cluster (whose threshold
    is it: the pipeline's or the cluster's), isolates the driving dimension, builds a small
    reproducer that keeps the failure's signature (and the difference with native), shrinks it when
    shrink is available, and gives a fix hint from the failure's class and driver. Each step is a
    journalled run; --resume continues where it stopped.
    """
    from threshold_probe.explain import ExplainOptions, resume_explain, run_explain
    from threshold_probe.render.explain import print_page, render, renderables

    fmt = "json" if as_json else fmt
    if fmt not in ("rich", "json", "md", "html"):
        raise UserError(f"unknown page format {fmt!r}: choose one of rich, json, md, html")
    writable_output(output)
    st = get_state()
    cfg = st.config()
    store = st.store()
    progress = RichProgress(quiet=quiet or st.quiet)
    first, last = level_range(from_level, to_level, lo, hi)
    if run_id is not None and not resume:
        raise UserError(f"a RUN_ID ({run_id}) only goes with --resume: probe explain --resume {run_id}")
    if resume:
        x = resume_explain(run_id, config=cfg, store=store, progress=progress, command_prefix=command_prefix())
    else:
        x = run_explain(
            config=cfg,
            store=store,
            cluster=cluster or cfg.defaults.cluster,
            pipeline=pipeline or cfg.defaults.pipeline,
            options=ExplainOptions(
                ladder=ladder,
                function=function,
                lo=first,
                hi=last,
                fresh=fresh,
                preflight=preflight,
                shrink=shrink,
            ),
            overrides=LimitOverrides(memory=memory, time=time, cores=cores, partition=partition),
            progress=progress,
            command_prefix=command_prefix(),
        )
    if fmt == "rich" and output is None:
        print_page(x, console)
        return
    _emit(render(x, fmt), renderables(x), fmt, output, x.run_id)
