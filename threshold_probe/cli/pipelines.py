"""`probe compare-pipelines`: the same ladder through several pipelines on one cluster."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from threshold_probe.cli.common import (
    ClusterOpt,
    FromOpt,
    HiOpt,
    LadderOpt,
    LoOpt,
    RichProgress,
    ToOpt,
    command,
    console,
    get_state,
    level_range,
    print_json,
    safe,
)
from threshold_probe.compare_pipelines import (
    REFERENCE,
    CompareKind,
    PipelineComparison,
    parse_pipelines,
)
from threshold_probe.compare_pipelines import (
    compare_pipelines as run_comparison,
)
from threshold_probe.errors import UserError
from threshold_probe.session import LimitOverrides, SearchOptions
from threshold_probe.textsafe import strip_control

_STYLE = {"pass": "green", "fail": "red", "skip": "yellow", "flaky": "magenta"}


def show_comparison(cmp: PipelineComparison, out: Console) -> None:
    """The Rich report: a level x pipeline matrix, each threshold, and whom it belongs to."""
    table = Table(title=f"{cmp.ladder} ladder on {cmp.cluster} ({cmp.kind})", header_style="bold")
    table.add_column("level", justify="right")
    for name in cmp.pipelines:
        table.add_column(name)
    for row in cmp.matrix:
        cells = []
        for name in cmp.pipelines:
            cell = row.cells[name]
            style = _STYLE.get(cell.verdict or "", "dim")
            cells.append(f"[{style}]{cell.label()}[/]")
        table.add_row(str(row.level), *cells)
    out.print(table)
    for t in cmp.thresholds:
        style = "bold red" if t.owner == "pipeline" else "bold" if t.first_fail is not None else "dim"
        out.print(f"[{style}]{safe(t.statement)}[/]", highlight=False)
        for line in t.evidence[:3]:
            out.print(f"    {strip_control(line)}", highlight=False, markup=False)
    statements = {t.statement for t in cmp.thresholds}
    for line in cmp.findings:
        if line not in statements:
            out.print(f"[bold yellow]{safe(line)}[/]", highlight=False)
    if not cmp.findings:
        out.print(f"[dim]no threshold found that belongs to a pipeline rather than to {safe(repr(cmp.cluster))}[/]")


def run_compare_command(
    *,
    pipelines: str,
    kind: CompareKind,
    cluster: str | None,
    ladder: str | None,
    memory: str | None,
    time: str | None,
    cores: int | None,
    options: SearchOptions,
    as_json: bool,
    quiet: bool,
) -> PipelineComparison:
    """Shared by `probe compare-pipelines` and `probe bisect --pipelines`: run, then print."""
    st = get_state()
    cfg = st.config()
    names = parse_pipelines(pipelines)
    cmp = run_comparison(
        config=cfg,
        store=st.store(),
        cluster=cluster or cfg.defaults.cluster,
        pipelines=names,
        ladder=ladder or cfg.defaults.ladder,
        kind=kind,
        overrides=LimitOverrides(memory=memory, time=time, cores=cores),
        options=options,
        progress=RichProgress(quiet=quiet or st.quiet),
    )
    if as_json:
        print_json(cmp.model_dump(mode="json", by_alias=True))
    else:
        show_comparison(cmp, console)
    return cmp


@command
def compare_pipelines(
    pipelines: Annotated[
        str,
        typer.Option(
            "--pipelines",
            help=f"Comma-separated pipelines to compare; {REFERENCE} is always included as the reference.",
        ),
    ] = "native,source,inline",
    cluster: ClusterOpt = None,
    ladder: LadderOpt = None,
    search: Annotated[
        str,
        typer.Option(
            "--search", metavar="sweep|bisect", help="sweep (every level, the full matrix) or bisect (fewer probes)."
        ),
    ] = "sweep",
    from_level: FromOpt = None,
    to_level: ToOpt = None,
    lo: LoOpt = None,
    hi: HiOpt = None,
    memory: Annotated[str | None, typer.Option("--memory", help="Memory limit per probe, e.g. 300MB.")] = None,
    time: Annotated[str | None, typer.Option("--time", help="Wall-clock limit per probe, e.g. 90s.")] = None,
    cores: Annotated[int | None, typer.Option("--cores", help="Cores per probe.")] = None,
    parallel: Annotated[int, typer.Option("--parallel", "-P", min=1, help="Probes per round.")] = 1,
    fresh: Annotated[bool, typer.Option("--fresh", help="Do not reuse verdicts of identical earlier probes.")] = False,
    keep_remote: Annotated[bool, typer.Option("--keep-remote", help="Leave each probe's remote folder.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Run the same ladder through several pipelines on one cluster and compare them level by level.

    Where native passes and another pipeline fails, the threshold belongs to that pipeline.
    """
    if search not in ("sweep", "bisect"):
        raise UserError(f"--search must be sweep or bisect, not {search!r}")
    first, last = level_range(from_level, to_level, lo, hi)
    opts = SearchOptions(lo=first, hi=last, parallel=parallel, fresh=fresh, keep_remote=keep_remote)
    run_compare_command(
        pipelines=pipelines,
        kind="bisect" if search == "bisect" else "sweep",
        cluster=cluster,
        ladder=ladder,
        memory=memory,
        time=time,
        cores=cores,
        options=opts,
        as_json=as_json,
        quiet=quiet,
    )


__all__ = ["compare_pipelines", "run_compare_command", "show_comparison"]
