"""Rich views of one probe's observation and of a run summary."""

from __future__ import annotations

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from threshold_probe.models import STAGES, ProbeRecord
from threshold_probe.store import Store
from threshold_probe.summary import RunSummary
from threshold_probe.textsafe import clean


def show_probe(record: ProbeRecord, console: Console) -> None:
    """The observation of one probe: verdict, exit status, stage timings, memory and log tails."""
    record = clean(record)  # far-side text: no escape sequences reach the terminal
    obs, v = record.observation, record.verdict
    style = {"pass": "green", "fail": "red", "skip": "yellow"}[v.status]
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()

    def row(label: str, value: str | Text) -> None:
        # Every value is plain Text: a log line or path holding "[/]" is not Rich markup.
        grid.add_row(label, value if isinstance(value, Text) else Text(value))

    title = f"level {record.level}" if record.level is not None else obs.workload
    row("probe", f"{record.probe_id} ({title}, {obs.pipeline} on {obs.cluster})")
    row("verdict", Text(f"{v.status}" + (f" {v.failure_class}" if v.failure_class else ""), style=style))
    if v.explanation:
        row("why", v.explanation)
    if v.signature:
        row("signature", v.signature)
    job = obs.job
    row("exit", f"code {job.exit_code}" + (f", signal {job.signal}" if job.signal else ""))
    if job.scheduler:
        row("scheduler", ", ".join(f"{k}={val}" for k, val in job.scheduler.items()))
    if obs.result:
        res = obs.result
        size = res.get("size")
        shown = f"{res.get('type', '?')}" + (f", {size:,} bytes" if isinstance(size, int) else "")
        head = str(res.get("repr") or "")
        row("result", f"{shown}: {head}" if head else shown)
    row("wall", f"{obs.wall_s:.3f} s")
    if obs.peak_rss_mb is not None:
        row("peak RSS", f"{obs.peak_rss_mb:.1f} MB")
    if obs.limits.memory_bytes or obs.limits.time_s or obs.limits.cores:
        lim = obs.limits
        parts = []
        if lim.memory_bytes:
            parts.append(f"memory {lim.memory_bytes / 2**20:.0f} MB")
        if lim.time_s:
            parts.append(f"time {lim.time_s:g} s")
        if lim.cores:
            parts.append(f"cores {lim.cores}")
        row("limits", ", ".join(parts))
    if record.cached_from:
        source = f" of run {record.cached_from_run}" if record.cached_from_run else ""
        row("cached", f"verdict reused from probe {record.cached_from}{source} (--fresh runs it again)")
    if job.remote_dir and obs.remote_kept:
        row("remote dir", f"{job.remote_dir} (kept)")
    timings = Table(title="stage timings (s)", title_justify="left", box=None)
    stages = [s for s in (*STAGES, *sorted(set(obs.timings) - set(STAGES))) if s in obs.timings]
    for s in stages:
        timings.add_column(s, justify="right")
    timings.add_row(*(f"{obs.timings[s]:.4f}" for s in stages))
    blocks: list[RenderableType] = [grid, timings]
    if v.evidence:
        blocks.append(Panel(Text("\n".join(v.evidence)), title="evidence", border_style=style))
    for name, tail, path in (
        ("stdout", job.stdout_tail, job.stdout_path),
        ("stderr", job.stderr_tail, job.stderr_path),
    ):
        if tail.strip():
            lines = tail.rstrip().splitlines()[-12:]
            heading = Text(f"{name} (tail; full log: {path})")
            blocks.append(Panel(Text("\n".join(lines)), title=heading, border_style="dim"))
    console.print(Panel(Group(*blocks), title="observation", border_style=style))


def show_summary(summary: RunSummary, store: Store, console: Console) -> None:
    """The Rich report of a run."""
    from threshold_probe.render.terminal import print_report
    from threshold_probe.view import run_view

    print_report(run_view(summary, store.probes(summary.run_id)), console)
