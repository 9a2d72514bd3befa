"""The end of a run on the terminal: where it was saved, where its limits came from, what to run
next, and one summary line in the style of pytest (`10 probes (2 cached): 7 pass, 3 fail (oom)
in 10.1 s`).

Pure functions of the run's summary and of what the command line knows (the limits' origins,
the config file, how the tool was called); `--json` and the report formats never show this.
"""

from __future__ import annotations

import shlex
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field

from rich.console import Console
from rich.text import Text

from threshold_probe.render.common import fmt_seconds
from threshold_probe.summary import RunSummary
from threshold_probe.units import format_memory
from threshold_probe.view import first_fail, last_pass

#: The option that changes each limit, and the field of RunSummary.limits that holds it.
LIMIT_OPTIONS = {"memory": ("--memory", "memory_bytes"), "time": ("--time", "time_s"), "cores": ("--cores", "cores")}

#: Commands up to this long have their comments lined up in one column.
ALIGN_COMMENTS_UP_TO = 60

#: Width of the footer's labels ("run folder", "limits", "next").
LABEL_WIDTH = 12


@dataclass(frozen=True)
class RunContext:
    """What the command line knows of a run beyond its summary."""

    #: "memory", "time", "cores" -> "option" (given on the command line), "config" (the
    #: cluster's table in the config file) or "default" (the cluster type's own default).
    origins: Mapping[str, str] = field(default_factory=dict)
    #: The cluster's type (local, ssh, slurm or a plugin's).
    cluster_type: str = "local"
    #: The config file the cluster's table is in, as the user would name it (probe.toml).
    config_file: str | None = None
    #: How the tool was called, with its global options: the start of every command shown.
    command_prefix: str = "probe"
    #: The run's folder as the user would name it (relative to the current folder when inside it).
    run_folder: str | None = None
    #: The journal, when this run created it (said once: later runs add to it).
    journal: str | None = None
    #: The run's --cluster, --pipeline and --ladder, where they are not the defaults.
    where: Mapping[str, str] = field(default_factory=dict)


def summary_line(summary: RunSummary) -> Text:
    """`10 probes (2 cached): 7 pass, 3 fail (oom) in 10.1 s`: how many probes, how many reused,
    their verdicts with the failure classes, and how long the run took."""
    probes = summary.probes
    cached = sum(p.cached for p in probes)
    head = f"{len(probes)} probe{'s' if len(probes) != 1 else ''}"
    if cached:
        head += f" ({cached} cached)"
    line = Text(head + ": ")
    counts: Counter[str] = Counter(p.verdict for p in probes)
    parts: list[Text] = []
    for verdict, style in (("pass", "green"), ("fail", "red"), ("skip", "yellow")):
        if not counts[verdict]:
            continue
        part = Text(f"{counts[verdict]} {verdict}", style=style)
        if verdict == "fail":
            classes = Counter(p.failure_class or "unclassified" for p in probes if p.verdict == "fail")
            if len(classes) == 1:
                part.append(f" ({next(iter(classes))})", style=style)
            else:
                part.append(" (" + ", ".join(f"{n} {c}" for c, n in sorted(classes.items())) + ")", style=style)
        parts.append(part)
    line.append_text(Text(", ").join(parts) if parts else Text("none ran"))
    if summary.finished_at is not None:
        line.append(f" in {fmt_seconds(summary.finished_at - summary.started_at)}")
    return line


def limit_lines(summary: RunSummary, ctx: RunContext) -> list[str]:
    """Each limit with where it came from: `memory 1GB: local cluster default; change with --memory`."""
    lines = []
    for name, (option, key) in LIMIT_OPTIONS.items():
        value = summary.limits.get(key)
        if value is None:
            if name == "cores":
                continue  # no core limit is the usual case, not worth a line
            if ctx.cluster_type == "slurm":
                lines.append(f"{name}: none set, so the partition's default applies (SLURM); set one with {option}")
            else:
                lines.append(f"{name}: no limit; set one with {option}")
            continue
        shown = f"{name} {_limit_value(name, value)}"
        origin = ctx.origins.get(name)
        if origin == "option":
            lines.append(f"{shown}: {option}")
        elif origin == "config":
            where = f" in {ctx.config_file}" if ctx.config_file else ""
            lines.append(f"{shown}: [clusters.{summary.cluster}]{where}; change with {option}")
        elif origin == "default":
            lines.append(f"{shown}: {summary.cluster} cluster default; change with {option}")
        else:
            lines.append(f"{shown}; change with {option}")
    return lines


def _limit_value(name: str, value: object) -> str:
    if name == "memory" and isinstance(value, int):
        return format_memory(value)
    if name == "time" and isinstance(value, (int, float)):
        return f"{value:g}s"
    return str(value)


def next_commands(summary: RunSummary, ctx: RunContext) -> list[tuple[str, str]]:
    """The commands worth running next, each with why, for what this run found."""
    probe = ctx.command_prefix
    run_id = summary.run_id
    report = (f"{probe} report {run_id} --format html -o report.html", "the report with its charts")
    ff, lp = first_fail(summary), last_pass(summary)
    if summary.status != "completed" or summary.scale is not None:
        return [report]
    if summary.kind == "isolate" or summary.isolate is not None:
        from threshold_probe.check import NOT_STATIC

        drivers = summary.isolate.drivers if summary.isolate is not None else []
        if any(d not in NOT_STATIC for d in drivers):
            return [(f"{probe} check PATH --against {run_id}", "which of your functions cross the threshold"), report]
        return [report]
    if ff is not None and lp is not None:
        return [
            (f"{probe} isolate {run_id}", "which dimension drives the failure"),
            report,
        ]
    if ff is not None:
        # Even the smallest workload fails: the cluster or the pipeline, more likely than a threshold.
        cluster = shlex.quote(summary.cluster)
        return [(f"{probe} clusters check {cluster}", "whether the cluster itself works"), report]
    if summary.search_status in ("flaky", "inconclusive"):
        return [report]
    return [*_to_find_a_failure(summary, ctx), report]


def _where(ctx: RunContext, *options: str) -> str:
    """The run's own --cluster, --pipeline and --ladder (those of `options`, else all)."""
    return "".join(f" {k} {shlex.quote(v)}" for k, v in ctx.where.items() if not options or k in options)


def _to_find_a_failure(summary: RunSummary, ctx: RunContext) -> list[tuple[str, str]]:
    """No level failed: the other ways of looking that would find a failure."""
    probe = ctx.command_prefix
    kind = summary.kind if summary.kind in ("sweep", "bisect") else "bisect"
    cluster = _where(ctx, "--cluster")
    memory = summary.limits.get("memory_bytes")
    now = f" (this run: {format_memory(memory)})" if isinstance(memory, int) else ""
    other = "source" if summary.pipeline != "source" else "inline"
    run_as = f"{probe} {kind}{_where(ctx, '--cluster', '--ladder')} --pipeline {other}"
    suggestions = [(run_as, "ship the function as your runner does (source, inline, clustrix)")]
    if summary.ladder != "features":
        features = f"{probe} {kind}{_where(ctx, '--cluster', '--pipeline')} --ladder features"
        suggestions.append((features, "syntactic features, one at a time"))
    suggestions.append((f"{probe} compare-pipelines{cluster}", "the same ladder through every pipeline"))
    suggestions.append((f"{probe} {kind}{_where(ctx)} --memory SIZE", f"the memory limit your runner really has{now}"))
    return suggestions


def print_after_run(summary: RunSummary, ctx: RunContext, console: Console) -> None:
    """The footer and the summary line, each line whole: a path or a command is never folded."""

    def row(label: str, text: Text | str, style: str = "") -> None:
        line = Text(f"{label:<{LABEL_WIDTH}}", style="bold")
        line.append_text(text if isinstance(text, Text) else Text(text, style=style))
        console.print(line, soft_wrap=True, highlight=False)

    if ctx.run_folder:
        row("run folder", ctx.run_folder)
    if ctx.journal:
        row("journal", Text(ctx.journal).append("  (new; `probe runs` lists the runs it holds)", style="dim"))
    for i, line in enumerate(limit_lines(summary, ctx)):
        row("limits" if i == 0 else "", line)
    commands = next_commands(summary, ctx)
    # The comments line up when the commands are short enough; a long one keeps its own.
    column = max((len(c) for c, _why in commands if len(c) <= ALIGN_COMMENTS_UP_TO), default=0)
    for i, (command, why) in enumerate(commands):
        text = Text(command.ljust(column))
        text.append(f"  # {why}", style="dim")
        row("next" if i == 0 else "", text)
    console.print(summary_line(summary), soft_wrap=True, highlight=False)
