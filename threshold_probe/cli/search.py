"""`probe run`, `sweep`, `bisect` and `isolate`: searches over a ladder on one cluster."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.text import Text

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
    fail,
    get_state,
    level_range,
    print_json,
)
from threshold_probe.cli.show import run_context, show_probe, show_summary, shown_path
from threshold_probe.errors import UserError
from threshold_probe.render.after_run import print_after_run
from threshold_probe.session import Kind, LimitOverrides, SearchOptions, isolate_from, resume_search, run_search
from threshold_probe.summary import RunSummary, gate_failure
from threshold_probe.target import parse_args
from threshold_probe.textsafe import strip_control
from threshold_probe.view import reuse_text

PipelineOpt = Annotated[
    str | None,
    typer.Option(
        "--pipeline",
        "-p",
        help="How the function travels: native (default), source, inline, clustrix, clustrix-serial,"
        " a plugin's entry-point name, or package.module:Class (docs/pipelines.md).",
        autocompletion=complete.pipelines,
    ),
]
MemoryOpt = Annotated[str | None, typer.Option("--memory", help="Memory limit per probe, e.g. 300MB or 4GB.")]
TimeOpt = Annotated[str | None, typer.Option("--time", help="Wall-clock limit per probe, e.g. 90s or 00:10:00.")]
CoresOpt = Annotated[int | None, typer.Option("--cores", help="Cores per probe.")]
PartitionOpt = Annotated[str | None, typer.Option("--partition", help="SLURM partition (slurm clusters).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the run summary as JSON (see docs/report-schema.md).")]
MatchOpt = Annotated[
    str | None,
    typer.Option(
        "--match",
        help="Hunt only this failure: text, re:REGEX or a signature. Other failures count as skips.",
    ),
]
RepeatOpt = Annotated[int, typer.Option("--repeat", min=1, help="Probe each level N times; mixed verdicts are flaky.")]
FreshOpt = Annotated[bool, typer.Option("--fresh", help="Do not reuse verdicts of identical earlier probes.")]
ResumeOpt = Annotated[
    bool,
    typer.Option(
        "--resume",
        help="Continue an interrupted run: the RUN_ID given, else the latest that did not complete"
        " (not one that bad input ended before its first probe).",
    ),
]
RunIdArg = Annotated[
    str | None,
    typer.Argument(
        metavar="RUN_ID",
        help="With --resume: the run to continue (default: the latest interrupted one).",
        show_default=False,
        autocompletion=complete.run_ids,
    ),
]
KeepOpt = Annotated[bool, typer.Option("--keep-remote", help="Leave each probe's remote folder in place.")]
ParallelOpt = Annotated[
    int, typer.Option("--parallel", "-P", min=1, help="Probes per round (k-ary bisect; batch size of a sweep).")
]
ScaleFunctionOpt = Annotated[
    str | None,
    typer.Option(
        "--function",
        "-f",
        help="Scale your own function instead of a ladder (with --scale): FILE:FUNC, package.module:func, ...",
    ),
]
ArgOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--arg",
        metavar="NAME=VALUE",
        help="An argument of --function, repeatable; VALUE is read as JSON, else taken as a string.",
    ),
]
ShipLocalOpt = Annotated[
    bool,
    typer.Option(
        "--ship-local-modules",
        help="Pickle the modules --function imports from its own folder by value, so the far side"
        " needs no copy of them (cloudpickle.register_pickle_by_value).",
    ),
]
ScaleOpt = Annotated[
    str | None,
    typer.Option(
        "--scale",
        metavar="NAME=LO..HI",
        help="Turn one argument of --function into the ladder: geometric steps when HI/LO >= 100"
        " (two a decade), linear otherwise (ten); or NAME with --values.",
    ),
]
StepsOpt = Annotated[int | None, typer.Option("--steps", min=2, help="How many values --scale takes.")]
ValuesOpt = Annotated[
    str | None, typer.Option("--values", metavar="V1,V2,...", help="The exact values of --scale NAME, growing.")
]
ExpectOpt = Annotated[
    int | None,
    typer.Option(
        "--expect-pass-through",
        metavar="N",
        min=1,
        help="A CI gate: exit 1, with the failing level, class and evidence in one line, when a level <= N"
        " fails. The JUnit report then marks those levels as failures (without it, a threshold is a finding).",
    ),
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")]
PreflightOpt = Annotated[
    bool, typer.Option("--preflight/--no-preflight", help="Check the cluster before the first probe.")
]
AllLevelsOpt = Annotated[
    bool,
    typer.Option("--all-levels", help="A row for every level in the report, the ones not probed too."),
]


def _execute(
    kind: Kind,
    *,
    cluster: str | None,
    pipeline: str | None,
    ladder: str | None,
    memory: str | None,
    time: str | None,
    cores: int | None,
    partition: str | None,
    options: SearchOptions,
    resume: str | None,
    as_json: bool,
    quiet: bool,
    all_levels: bool = False,
) -> RunSummary:
    st = get_state()
    cfg = st.config()
    # Said once, at the end of the run that creates it: where every later command reads runs from.
    new_journal = not (st.resolved_reports_dir() / "probe.db").exists()
    store = st.store()
    progress = RichProgress(quiet=quiet or st.quiet)
    prefix = command_prefix()
    overrides = LimitOverrides(memory=memory, time=time, cores=cores, partition=partition)
    if resume is not None:
        summary = resume_search(resume, config=cfg, store=store, progress=progress, kind=kind, command_prefix=prefix)
    elif kind == "isolate":
        summary = isolate_from(
            options.from_run,
            config=cfg,
            store=store,
            cluster=cluster,
            pipeline=pipeline,
            ladder=ladder,
            overrides=overrides,
            options=options,
            progress=progress,
            command_prefix=prefix,
        )
    else:
        cluster_name = cluster or cfg.defaults.cluster
        summary = run_search(
            kind,
            config=cfg,
            store=store,
            cluster=cluster_name,
            pipeline=pipeline or cfg.defaults.pipeline,
            ladder=ladder or cfg.defaults.ladder,
            overrides=overrides,
            options=options,
            progress=progress,
            command_prefix=prefix,
        )
    if as_json:
        print_json(summary.model_dump(mode="json", by_alias=True))
    elif kind == "run":
        records = store.probes(summary.run_id)
        # Repeats: one observation per distinct verdict, then the pass rate.
        shown: set[tuple[str, str | None]] = set()
        for record in records:
            seen = (record.verdict.status, record.verdict.failure_class)
            if seen not in shown:
                shown.add(seen)
                show_probe(record, console)
        if len(records) > 1:
            console.print(Text(strip_control(summary.message)), highlight=False)
        if summary.reuse is not None and summary.reuse.reused:
            console.print(Text(strip_control(reuse_text(summary))), highlight=False)
        console.print(Text(f"run {summary.run_id}: {summary.reports_dir}", style="dim"), highlight=False)
        if new_journal:
            console.print(Text(f"journal: {shown_path(store.db_path)}", style="dim"), highlight=False)
    else:
        show_summary(summary, store, console, all_levels=all_levels)
        journal = shown_path(store.db_path) if new_journal else None
        print_after_run(summary, run_context(summary, cfg, prefix, journal), console)
    return summary


@command
def run(
    level: Annotated[int, typer.Option("--level", help="The level to probe.")] = 1,
    function: Annotated[
        str | None,
        typer.Option(
            "--function",
            "-f",
            help="Probe your own function instead: FILE:FUNC, FILE:Class.method, package.module:func or"
            " NOTEBOOK.ipynb:func. The file loads as `python FILE` would, its folder first on sys.path.",
        ),
    ] = None,
    arg: Annotated[
        list[str] | None,
        typer.Option(
            "--arg",
            metavar="NAME=VALUE",
            help="An argument of --function, repeatable; VALUE is read as JSON, else taken as a string.",
        ),
    ] = None,
    ship_local_modules: Annotated[
        bool,
        typer.Option(
            "--ship-local-modules",
            help="Pickle the modules --function imports from its own folder by value, so the far side"
            " needs no copy of them (cloudpickle.register_pickle_by_value).",
        ),
    ] = False,
    cluster: ClusterOpt = None,
    pipeline: PipelineOpt = None,
    ladder: LadderOpt = None,
    memory: MemoryOpt = None,
    time: TimeOpt = None,
    cores: CoresOpt = None,
    partition: PartitionOpt = None,
    repeat: RepeatOpt = 1,
    fresh: Annotated[
        bool, typer.Option("--fresh/--cache", help="Dispatch even when an identical probe ran (default: reuse).")
    ] = False,
    keep_remote: KeepOpt = False,
    preflight: PreflightOpt = True,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
) -> None:
    """Probe one level once and show its observation: verdict, stage timings, memory and logs.

    Exits 1 when the probe fails (with --repeat: when any repeat fails), 0 when it passes, so a
    script can ask "does my function work on this cluster?".
    """
    if arg and not function:
        raise UserError("--arg applies to --function")
    opts = SearchOptions(
        level=level,
        function=function,
        repeat=repeat,
        fresh=fresh,
        keep_remote=keep_remote,
        preflight=preflight,
        args=parse_args(arg or []),
        ship_local_modules=ship_local_modules,
    )
    summary = _execute(
        "run",
        cluster=cluster,
        pipeline=pipeline,
        ladder=ladder,
        memory=memory,
        time=time,
        cores=cores,
        partition=partition,
        options=opts,
        resume=None,
        as_json=as_json,
        quiet=quiet,
    )
    if summary.search_status in ("fail", "flaky"):
        raise typer.Exit(1)
    if summary.search_status == "skip":
        raise typer.Exit(3)


@command
def sweep(
    run_id: RunIdArg = None,
    from_level: FromOpt = None,
    to_level: ToOpt = None,
    lo: LoOpt = None,
    hi: HiOpt = None,
    cluster: ClusterOpt = None,
    pipeline: PipelineOpt = None,
    ladder: LadderOpt = None,
    memory: MemoryOpt = None,
    time: TimeOpt = None,
    cores: CoresOpt = None,
    partition: PartitionOpt = None,
    match: MatchOpt = None,
    repeat: RepeatOpt = 1,
    parallel: ParallelOpt = 1,
    fresh: FreshOpt = False,
    resume: ResumeOpt = False,
    keep_remote: KeepOpt = False,
    preflight: PreflightOpt = True,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    function: ScaleFunctionOpt = None,
    arg: ArgOpt = None,
    scale: ScaleOpt = None,
    steps: StepsOpt = None,
    values: ValuesOpt = None,
    ship_local_modules: ShipLocalOpt = False,
    expect_pass_through: ExpectOpt = None,
    all_levels: AllLevelsOpt = False,
) -> None:
    """Probe every level in order and report where verdicts change.

    On a SLURM cluster the levels go as one job array.
    """
    first, last = level_range(from_level, to_level, lo, hi)
    opts = SearchOptions(
        lo=first,
        hi=last,
        match=match,
        repeat=repeat,
        parallel=parallel,
        fresh=fresh,
        keep_remote=keep_remote,
        preflight=preflight,
        expect_pass_through=expect_pass_through,
        **_function_options(function, arg, scale, steps, values, ship_local_modules),
    )
    summary = _execute(
        "sweep",
        cluster=cluster,
        pipeline=pipeline,
        ladder=ladder,
        memory=memory,
        time=time,
        cores=cores,
        partition=partition,
        options=opts,
        resume=_resume_target(resume, run_id),
        as_json=as_json,
        quiet=quiet,
        all_levels=all_levels,
    )
    _gate(summary)


@command
def bisect(
    run_id: RunIdArg = None,
    from_level: FromOpt = None,
    to_level: ToOpt = None,
    lo: LoOpt = None,
    hi: HiOpt = None,
    cluster: ClusterOpt = None,
    pipeline: PipelineOpt = None,
    ladder: LadderOpt = None,
    memory: MemoryOpt = None,
    time: TimeOpt = None,
    cores: CoresOpt = None,
    partition: PartitionOpt = None,
    match: MatchOpt = None,
    repeat: RepeatOpt = 1,
    confirm: Annotated[
        int, typer.Option("--confirm", min=0, help="Extra probes of the boundary pair before reporting it.")
    ] = 1,
    parallel: ParallelOpt = 1,
    isolate: Annotated[bool, typer.Option("--isolate", help="Then find which dimension drives the failure.")] = False,
    fresh: FreshOpt = False,
    resume: ResumeOpt = False,
    keep_remote: KeepOpt = False,
    preflight: PreflightOpt = True,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    pipelines: Annotated[
        str | None,
        typer.Option(
            "--pipelines",
            help="Bisect through several pipelines (e.g. native,source,inline) and say whose threshold it is.",
        ),
    ] = None,
    function: ScaleFunctionOpt = None,
    arg: ArgOpt = None,
    scale: ScaleOpt = None,
    steps: StepsOpt = None,
    values: ValuesOpt = None,
    ship_local_modules: ShipLocalOpt = False,
    expect_pass_through: ExpectOpt = None,
    all_levels: AllLevelsOpt = False,
) -> None:
    """Find the first failing level by bisection, after checking both ends.

    Reports the threshold, the failure's class, signature and evidence.
    """
    first, last = level_range(from_level, to_level, lo, hi)
    opts = SearchOptions(
        lo=first,
        hi=last,
        match=match,
        repeat=repeat,
        confirm=confirm,
        parallel=parallel,
        isolate=isolate,
        fresh=fresh,
        keep_remote=keep_remote,
        preflight=preflight,
        expect_pass_through=expect_pass_through,
        **_function_options(function, arg, scale, steps, values, ship_local_modules),
    )
    if pipelines is not None:
        if resume or pipeline is not None:
            raise UserError("--pipelines cannot be combined with --pipeline or --resume")
        from threshold_probe.cli.pipelines import run_compare_command

        run_compare_command(
            pipelines=pipelines,
            kind="bisect",
            cluster=cluster,
            ladder=ladder,
            memory=memory,
            time=time,
            cores=cores,
            options=opts,
            as_json=as_json,
            quiet=quiet,
        )
        return
    summary = _execute(
        "bisect",
        cluster=cluster,
        pipeline=pipeline,
        ladder=ladder,
        memory=memory,
        time=time,
        cores=cores,
        partition=partition,
        options=opts,
        resume=_resume_target(resume, run_id),
        as_json=as_json,
        quiet=quiet,
        all_levels=all_levels,
    )
    _gate(summary)


@command
def isolate(
    run_id: Annotated[
        str | None,
        typer.Argument(
            metavar="RUN_ID",
            help="A bisect run whose boundary to start from (default: the latest bisect that found one);"
            " with --resume, the isolate run to continue.",
            autocompletion=complete.run_ids,
        ),
    ] = None,
    cluster: ClusterOpt = None,
    pipeline: PipelineOpt = None,
    ladder: LadderOpt = None,
    memory: MemoryOpt = None,
    time: TimeOpt = None,
    cores: CoresOpt = None,
    match: MatchOpt = None,
    parallel: ParallelOpt = 1,
    fresh: FreshOpt = False,
    resume: ResumeOpt = False,
    preflight: PreflightOpt = True,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    all_levels: AllLevelsOpt = False,
) -> None:
    """Find which dimensions drive a failure, starting from a bisect's last pass and first fail.

    Each differing dimension is raised alone from the passing level (sufficient?) and lowered alone
    from the failing level (necessary?); each sufficient one is then bisected on its own.
    Cluster, pipeline, ladder and limits default to the bisect's; without --match it hunts the
    signature of the failure the bisect found, so another failure is never taken for it.
    """
    opts = SearchOptions(from_run=run_id, match=match, parallel=parallel, fresh=fresh, preflight=preflight)
    _execute(
        "isolate",
        cluster=cluster,
        pipeline=pipeline,
        ladder=ladder,
        memory=memory,
        time=time,
        cores=cores,
        partition=None,
        options=opts,
        resume=(run_id or "latest") if resume else None,
        as_json=as_json,
        quiet=quiet,
        all_levels=all_levels,
    )


def _gate(summary: RunSummary) -> None:
    """Exit 1 when the run's gate (--expect-pass-through N) saw a level at or below N fail."""
    message = gate_failure(summary)
    if message is not None:
        raise fail(message, 1)


def _function_options(
    function: str | None,
    arg: list[str] | None,
    scale: str | None,
    steps: int | None,
    values: str | None,
    ship_local_modules: bool,
) -> dict[str, Any]:
    """The SearchOptions fields of a scaled user function; UserError when they do not fit together."""
    if function is None:
        if arg or scale or steps or values or ship_local_modules:
            raise UserError("--arg, --scale, --steps, --values and --ship-local-modules apply to --function")
        return {}
    if scale is None:
        raise UserError("--function in a sweep or bisect needs --scale NAME=LO..HI: the argument to scale")
    return {
        "function": function,
        "args": parse_args(arg or []),
        "scale": scale,
        "steps": steps,
        "values": values,
        "ship_local_modules": ship_local_modules,
    }


def _resume_target(resume: bool, run_id: str | None) -> str | None:
    """The run --resume continues ('latest' when no RUN_ID is given); None without --resume."""
    if run_id is not None and not resume:
        raise UserError(f"a RUN_ID ({run_id}) only goes with --resume: probe ... --resume {run_id}")
    return (run_id or "latest") if resume else None
