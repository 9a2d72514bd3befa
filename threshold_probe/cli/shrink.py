"""`probe shrink` and `probe repro`: a minimal reproducer of a failure, and a folder to run it by hand."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.panel import Panel
from rich.syntax import Syntax
from rich.text import Text

from threshold_probe.cli import complete
from threshold_probe.cli.common import (
    RichProgress,
    command,
    command_prefix,
    console,
    get_state,
    print_json,
    writable_output,
)
from threshold_probe.errors import UserError
from threshold_probe.shrink import (
    ShrinkOptions,
    ShrinkResult,
    resume_shrink,
    shrink_target,
    target_from_function,
    target_from_run,
)
from threshold_probe.store import RunInfo, atomic_write
from threshold_probe.target import parse_args
from threshold_probe.textsafe import strip_control


class ShrinkRichProgress(RichProgress):
    """The Rich progress line of a shrink: its current size and the probes spent."""

    def status(self, text: str) -> None:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, description=strip_control(text))


def show_result(result: ShrinkResult) -> None:
    """The shrink's result on the terminal: what was kept, the figures, the source and the diff."""
    lines = [
        f"{result.target}: {result.original_lines} -> {result.lines} lines"
        f" ({result.original_bytes:,} -> {result.bytes:,} bytes)",
        f"kept: {result.kept_text}",
        f"probes: {result.probes} ({result.probes_pipeline} {result.pipeline}, {result.probes_native} native)"
        + (f", {result.reused} verdicts reused" if result.reused else "")
        + f"; {result.candidates} candidates probed, {result.rejected_statically} rejected without a probe;"
        f" {result.time_s:.1f} s; reducer {result.reducer}",
    ]
    if result.features:
        lines.append("features: " + ", ".join(f"{k} {v}" for k, v in result.features.items()))
    if result.metrics:
        shown = ("loc", "sloc", "cc", "mi", "ast_nodes", "max_nesting")
        lines.append("metrics: " + ", ".join(f"{k} {result.metrics[k]}" for k in shown if k in result.metrics))
    console.print(Panel(Text(strip_control("\n".join(lines))), title="shrink", expand=False), highlight=False)
    console.print(Syntax(result.source, "python", theme="ansi_dark", line_numbers=False))
    console.print(Syntax(result.diff, "diff", theme="ansi_dark"))
    if result.output:
        console.print(Text(f"written: {result.output}"), highlight=False)
    console.print(Text(f"run it: {result.command}", style="dim"), highlight=False)
    console.print(Text(f"run {result.run_id}", style="dim"), highlight=False)


@command
def shrink(
    run_id: Annotated[
        str | None,
        typer.Argument(
            metavar="RUN_ID",
            help="The run whose failure to shrink (its first failing level unless --level);"
            " with --resume, the shrink to continue.",
            show_default=False,
            autocompletion=complete.run_ids,
        ),
    ] = None,
    level: Annotated[int | None, typer.Option("--level", help="The failing level of RUN_ID to shrink.")] = None,
    function: Annotated[
        str | None,
        typer.Option("--function", "-f", help="Shrink your own function instead: FILE:FUNC, package.module:func."),
    ] = None,
    arg: Annotated[
        list[str] | None,
        typer.Option("--arg", metavar="NAME=VALUE", help="An argument of --function, repeatable (VALUE read as JSON)."),
    ] = None,
    cluster: Annotated[
        str | None, typer.Option("--cluster", "-C", help="Cluster of --function.", autocompletion=complete.clusters)
    ] = None,
    pipeline: Annotated[
        str | None,
        typer.Option("--pipeline", "-p", help="Pipeline of --function.", autocompletion=complete.pipelines),
    ] = None,
    memory: Annotated[str | None, typer.Option("--memory", help="Memory limit per probe of --function.")] = None,
    time: Annotated[str | None, typer.Option("--time", help="Wall-clock limit per probe of --function.")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", help="Write the minimal reproducer here.")] = None,
    repeat: Annotated[
        int,
        typer.Option(
            "--repeat", min=1, help="Probe each candidate N times; it is kept only if every repeat fails the same way."
        ),
    ] = 1,
    parallel: Annotated[
        int, typer.Option("--parallel", "-P", min=1, help="Candidates in flight at once (speculative).")
    ] = 1,
    difference: Annotated[
        bool | None,
        typer.Option(
            "--difference/--no-difference",
            help="Require every candidate to pass through native (default: when the original does).",
            show_default=False,
        ),
    ] = None,
    reducer: Annotated[
        str,
        typer.Option(
            "--reducer",
            metavar="auto|statements|ast",
            help="auto (pysource-minimize, or statement removal when the failure depends on the text),"
            " statements or ast.",
        ),
    ] = "auto",
    fresh: Annotated[bool, typer.Option("--fresh", help="Do not reuse verdicts of identical earlier probes.")] = False,
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an interrupted shrink (RUN_ID, else the latest).")
    ] = False,
    preflight: Annotated[bool, typer.Option("--preflight/--no-preflight", help="Check the cluster first.")] = True,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
) -> None:
    """Shrink a failing function to the smallest source that fails the same way, probed for real.

    Every candidate keeps the failure's signature on the same cluster, through the same pipeline,
    under the same limits; when native passes where the pipeline fails, every candidate must pass
    through native too (the difference). Interrupted shrinks resume with --resume.
    """
    if reducer not in ("auto", "statements", "ast"):
        raise UserError(f"--reducer {reducer!r}: choose auto, statements or ast")
    writable_output(output)
    st = get_state()
    cfg = st.config()
    store = st.store()
    progress = ShrinkRichProgress(quiet=quiet or st.quiet)
    options = ShrinkOptions(
        repeat=repeat, parallel=parallel, fresh=fresh, preflight=preflight, keep_difference=difference, reducer=reducer
    )
    if resume:
        if function:
            raise UserError("--resume continues a shrink by its RUN_ID; --function starts a new one")
        result = resume_shrink(run_id, config=cfg, store=store, progress=progress, command_prefix=command_prefix())
    else:
        if function and run_id:
            raise UserError("give RUN_ID or --function, not both")
        if not function and not run_id:
            raise UserError("give the RUN_ID of a run with a failure, or --function FILE:FUNC")
        if function:
            if level is not None:
                raise UserError("--level applies to RUN_ID")
            target = target_from_function(
                cfg,
                function,
                parse_args(arg or []),
                cluster=cluster,
                pipeline=pipeline,
                memory=memory,
                time_limit=time,
            )
        else:
            if arg or cluster or pipeline or memory or time:
                raise UserError(
                    "--arg, --cluster, --pipeline, --memory and --time apply to --function (a run keeps its own)"
                )
            assert run_id is not None
            target = target_from_run(store, run_id, level)
        result = shrink_target(
            target,
            config=cfg,
            store=store,
            options=options,
            progress=progress,
            output=output,
            command_prefix=command_prefix(),
        )
    if as_json:
        print_json(result.model_dump(mode="json"))
    else:
        show_result(result)


@command
def repro(
    run_id: Annotated[
        str,
        typer.Argument(
            metavar="RUN_ID",
            help="A run with a failure (or a shrink run).",
            show_default=False,
            autocompletion=complete.run_ids,
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", metavar="DIR", help="The folder to write (new or empty).")],
    level: Annotated[int | None, typer.Option("--level", help="The failing level (default: the first).")] = None,
    shrunk: Annotated[bool, typer.Option("--shrunk", help="Use the run's latest shrink result instead.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print what was written as JSON.")] = False,
) -> None:
    """Write a standalone folder that reproduces a failure by hand, without threshold-probe.

    It holds the exact files the pipeline shipped, a run.sh that runs them as the cluster did
    (with `ulimit -v` and `timeout` for its limits) and a README with the cluster, versions,
    command and the failure to expect.
    """
    from threshold_probe.repro import write_repro

    st = get_state()
    folder = write_repro(st.store(), st.config(), run_id, output, level=level, shrunk=shrunk)
    if as_json:
        print_json(folder.as_dict())
        return
    console.print(Text(f"wrote {folder.folder}: {', '.join(folder.files)}"), highlight=False)
    console.print(Text(f"expected failure: {folder.signature or '?'}"), highlight=False)
    console.print(Text(f"run it: {folder.command}", style="dim"), highlight=False)


def report_shrink(info: RunInfo, fmt: str, output: Path | None) -> None:
    """`probe report` of a shrink run: its result again, on the terminal or as JSON."""
    if info.status != "completed" or not info.summary:
        raise UserError(f"shrink {info.run_id} did not complete ({info.status}): resume it with probe shrink --resume")
    if fmt not in ("rich", "json"):
        raise UserError(f"a shrink run has a rich or json report, not {fmt}")
    result = ShrinkResult.model_validate(info.summary)
    if output is not None:
        atomic_write(output, result.model_dump_json(indent=2) + "\n")
        return
    if fmt == "json":
        print_json(result.model_dump(mode="json"))
    else:
        show_result(result)
