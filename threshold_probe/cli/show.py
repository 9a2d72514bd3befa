"""Rich views of one probe's observation and of a run summary."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console, Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from threshold_probe.cli.common import get_state
from threshold_probe.config import ProbeConfig, find_config
from threshold_probe.errors import ProbeError
from threshold_probe.models import STAGES, ProbeRecord
from threshold_probe.render.after_run import RunContext
from threshold_probe.session import LimitOverrides, limit_origins
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
            body = Text("\n".join(lines))
            if path is not None:
                # Inside the panel, not in its title: a title is cut at the panel's width, and
                # this path is what the reader copies.
                body.append(f"\nfull log: {path}", style="dim")
            blocks.append(Panel(body, title=Text(f"{name} (tail)"), border_style="dim"))
    console.print(Panel(Group(*blocks), title="observation", border_style=style))


def show_summary(summary: RunSummary, store: Store, console: Console, all_levels: bool = False) -> None:
    """The Rich report of a run (`all_levels`: a row for every level, the unprobed ones too)."""
    from threshold_probe.render.terminal import print_report
    from threshold_probe.view import run_view

    print_report(run_view(summary, store.probes(summary.run_id)), console, all_levels)


def shown_path(path: str | Path) -> str:
    """A path as the user would type it: relative to the current folder when inside it."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        return str(path)


def run_context(summary: RunSummary, config: ProbeConfig, prefix: str, journal: str | None = None) -> RunContext:
    """What the end of a run says beyond its summary: where its limits came from, the config
    file, the run folder (and the journal, when the run created it), and the options that point
    the next commands at the same cluster."""
    params = summary.params
    try:
        cluster = config.cluster(summary.cluster)
    except ProbeError:  # a cluster the config no longer names: its limits' origins are unknown
        origins: dict[str, str] = {}
        cluster_type = summary.cluster_info.get("kind", "")
    else:
        overrides = {k: v for k, v in (params.get("overrides") or {}).items() if k in ("memory", "time", "cores")}
        origins = limit_origins(config, summary.cluster, LimitOverrides(**overrides))
        cluster_type = cluster.type
    state = get_state()
    config_file = state.config_path or find_config()
    defaults = {
        "--cluster": config.defaults.cluster,
        "--pipeline": config.defaults.pipeline,
        "--ladder": config.defaults.ladder,
    }
    given = {"--cluster": params.get("cluster"), "--pipeline": params.get("pipeline"), "--ladder": params.get("ladder")}
    where = {k: str(v) for k, v in given.items() if v and v != defaults[k]}
    return RunContext(
        origins=origins,
        cluster_type=cluster_type,
        config_file=shown_path(config_file) if config_file is not None else None,
        command_prefix=prefix,
        run_folder=shown_path(summary.reports_dir) if summary.reports_dir else None,
        journal=journal,
        where=where,
    )
