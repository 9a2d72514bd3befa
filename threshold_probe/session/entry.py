"""The entry points of every command: run a search or a probe, resume a run, isolate a boundary.

Each builds a Run (threshold_probe/session/run.py) and executes it with its log kept in the run's
folder. New commands that search or probe a target on a cluster through a pipeline call these.
"""

from __future__ import annotations

from threshold_probe.config import ProbeConfig
from threshold_probe.runlog import run_log
from threshold_probe.session.options import Kind, LimitOverrides, ProgressSink, SearchOptions
from threshold_probe.session.ownership import bisect_to_isolate, isolate_settings, run_to_resume
from threshold_probe.session.run import Run
from threshold_probe.store import Store
from threshold_probe.summary import RunSummary


def execute_logged(run: Run) -> RunSummary:
    """Run.execute with what libraries log (paramiko's connection errors) kept in the run's
    run.log, not printed on the terminal."""
    with run_log(run.store.run_dir(run.run_id) / "run.log"):
        return run.execute()


def run_search(
    kind: Kind,
    *,
    config: ProbeConfig,
    store: Store,
    cluster: str,
    pipeline: str,
    ladder: str,
    overrides: LimitOverrides | None = None,
    options: SearchOptions | None = None,
    progress: ProgressSink | None = None,
    command_prefix: str = "probe",
) -> RunSummary:
    """Run one search (or, for kind "run", one probe) of a ladder or a user's function
    (`options.function`) on a cluster through a pipeline, journalled in `store`; its summary
    (also written to the journal and run.json). This is the entry point for every command.

    `command_prefix` is how the user calls the tool (with its global options); it goes into the
    resume command printed when the run is interrupted.
    """
    run = Run(
        kind,
        config=config,
        store=store,
        cluster=cluster,
        pipeline=pipeline,
        ladder=ladder,
        overrides=overrides or LimitOverrides(),
        options=options or SearchOptions(),
        progress=progress,
        command_prefix=command_prefix,
    )
    return execute_logged(run)


def resume_search(
    run_id: str | None,
    *,
    config: ProbeConfig,
    store: Store,
    progress: ProgressSink | None = None,
    kind: Kind | None = None,
    command_prefix: str = "probe",
) -> RunSummary:
    """Continue an interrupted run: finished probes come from the journal, the rest are dispatched.

    `run_id` None or 'latest' picks the newest run (of `kind`) that did not complete. The run
    keeps its id, cluster, pipeline, ladder, limits and options. A probe that was in flight when
    the run stopped has no verdict and runs again; a finished one is never dispatched again.
    """
    info = run_to_resume(store, run_id, kind)
    p = info.params
    run = Run(
        p["kind"],
        config=config,
        store=store,
        cluster=p["cluster"],
        pipeline=p["pipeline"],
        ladder=p["ladder"],
        overrides=LimitOverrides(**p["overrides"]),
        options=SearchOptions(**p["options"]),
        progress=progress,
        run_id=info.run_id,
        started_at=info.started_at,
        command_prefix=command_prefix,
    )
    return execute_logged(run)


def isolate_from(
    run_id: str | None,
    *,
    config: ProbeConfig,
    store: Store,
    cluster: str | None = None,
    pipeline: str | None = None,
    ladder: str | None = None,
    overrides: LimitOverrides | None = None,
    options: SearchOptions | None = None,
    progress: ProgressSink | None = None,
    command_prefix: str = "probe",
) -> RunSummary:
    """`probe isolate [RUN_ID]`: isolate the dimensions behind a bisect's boundary; what is not
    given comes from the source run (its cluster, pipeline, ladder, limits and failure)."""
    src = bisect_to_isolate(store, run_id)
    params = src.params
    merged, opts = isolate_settings(src, overrides, options)
    return run_search(
        "isolate",
        config=config,
        store=store,
        cluster=cluster or params.get("cluster") or config.defaults.cluster,
        pipeline=pipeline or params.get("pipeline") or config.defaults.pipeline,
        ladder=ladder or params.get("ladder") or config.defaults.ladder,
        overrides=merged,
        options=opts,
        progress=progress,
        command_prefix=command_prefix,
    )
