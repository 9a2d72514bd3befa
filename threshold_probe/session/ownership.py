"""Who runs a run: leftovers of dead processes, run status as users read it, and which run a
resume or an isolation starts from.

One process runs a run, holding its lock (Store.own_run) for the run's life; and before its first
probe a run cancels and removes the far-side work that dead processes left on its cluster, as the
journal recorded it (reap_leftovers).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from threshold_probe.clusters.base import Cluster
from threshold_probe.errors import UserError, article
from threshold_probe.models import RemoteWork
from threshold_probe.session.options import Kind, LimitOverrides, SearchOptions
from threshold_probe.store import RunInfo, RunLock, Store


def reap_leftovers(
    store: Store,
    cluster: Cluster,
    run_id: str,
    leftovers: Mapping[str, Sequence[RemoteWork]],
    note: Callable[[str], None],
) -> None:
    """Cancel and remove what dead processes left on this cluster, as the journal recorded it.

    This run's own leftovers (a resumed run: jobs of the process that was killed) come first,
    so that no job of the old process runs beside a new one. Leftovers of other runs are
    reaped only while their lock is held here, so a run that is alive is never touched.
    """
    for other, works in leftovers.items():
        lock = None
        if other != run_id:
            got = store.try_own_run(other)
            if not isinstance(got, RunLock):
                continue  # alive: its work is its own
            lock = got
        try:
            for work, line in cluster.reap(works):
                store.record_remote(other, cluster.name, work.model_copy(update={"state": "done"}))
                whose = "this run's stopped process" if other == run_id else f"stopped run {other}"
                note(f"left by {whose}: {line}")
        finally:
            if lock is not None:
                lock.release()


def display_status(info: RunInfo, store: Store) -> str:
    """A run's status as a user should read it: a 'running' run that no process owns any more
    (killed with -9, or the machine rebooted) is 'stopped', and resumable."""
    if info.status == "running" and store.run_owner(info.run_id) is None:
        return "stopped"
    return info.status


def run_to_resume(store: Store, run_id: str | None, kind: Kind | None) -> RunInfo:
    """The run `--resume` continues: the given one, or (None, 'latest') the newest of `kind` that
    did not complete. Whether another process runs it is settled when the run is owned."""
    if run_id in (None, "latest"):
        # A run that ended in an error before its first probe (bad input: a level not in the
        # ladder, a limit too small) has nothing to continue; resumed, it would only fail again.
        candidates = [
            r
            for r in store.runs(kind=kind)
            if r.status != "completed" and not (r.status == "error" and not store.probes(r.run_id))
        ]
        if not candidates:
            what = f"{kind} run" if kind else "run"
            raise UserError(f"no interrupted {what} to resume: `probe runs` lists them")
        info = candidates[0]
    else:
        info = store.get_run(run_id)
    p = info.params
    if kind is not None and p.get("kind") != kind:
        raise UserError(
            f"run {info.run_id} is {article(str(p.get('kind')))} run, not {article(kind)}:"
            f" resume it with probe {p.get('kind')}"
        )
    return info


def bisect_to_isolate(store: Store, run_id: str | None) -> RunInfo:
    """The run whose boundary `probe isolate` starts from: the given one, or the latest bisect that
    found a clean boundary (else the latest with any boundary)."""
    if run_id not in (None, "latest"):
        return store.get_run(run_id)
    with_boundary = [
        info
        for info in store.runs(kind="bisect")
        if (info.summary or {}).get("first_fail") is not None and (info.summary or {}).get("last_pass") is not None
    ]
    if not with_boundary:
        raise UserError("no bisect run with a boundary yet: run `probe bisect` first")
    found = [info for info in with_boundary if (info.summary or {}).get("search_status") == "found"]
    return (found or with_boundary)[0]


def isolate_settings(
    src: RunInfo, overrides: LimitOverrides | None, options: SearchOptions | None
) -> tuple[LimitOverrides, SearchOptions]:
    """Limits and options of an isolation from run `src`: what is not given comes from it; and,
    without --match, the signature of the failure it found, so that a dimension which causes
    some other failure is not taken for a driver."""
    given = overrides or LimitOverrides()
    theirs = src.params.get("overrides", {})
    merged = LimitOverrides(
        memory=given.memory or theirs.get("memory"),
        time=given.time or theirs.get("time"),
        cores=given.cores or theirs.get("cores"),
        partition=given.partition or theirs.get("partition"),
    )
    opts = options or SearchOptions()
    opts.from_run = src.run_id
    if opts.match is None:
        failure = (src.summary or {}).get("failure") or {}
        opts.match = failure.get("signature") or failure.get("class")
    return merged, opts
