"""Waiting on a SLURM submission while it is live: its jobs' states as they move, and each array
task's end as it comes, so that a run shows the queue and its levels while the array runs."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

from threshold_probe.clusters.base import JobState
from threshold_probe.clusters.slurm_batch import Batch
from threshold_probe.clusters.slurm_state import JobKey, is_final
from threshold_probe.clusters.slurm_watch import SlurmWatcher, Ticket
from threshold_probe.clusters.transport import CommandResult, TransportError


def job_state(ticket: Ticket) -> JobState:
    """What squeue last said of a ticket (tagged with its probe id), as a cluster tells it."""
    # squeue's %r is "None" for a job that waits for nothing.
    reason = "" if ticket.reason in ("None", "(null)") else ticket.reason
    node = "" if ticket.nodes == "(null)" else ticket.nodes
    return JobState(ticket.tag, ticket.key.display(), ticket.state, reason, node, final=is_final(ticket.state))


def wait_for_batch(
    watcher: SlurmWatcher,
    batch: Batch,
    queue_timeout: float | None,
    scancel: Callable[[str], CommandResult],
    ended: Callable[[list[int]], None] | None = None,
) -> None:
    """Wait for every ticket of the batch; past queue_timeout, cancel what has not started (a skip).

    `ended` is given the indices of tickets that are done while others are not, as they end
    (the last ones are left to the caller, which fetches them with the cleanup).
    """
    if queue_timeout is None and ended is None:
        watcher.wait(batch.tickets)
        return
    cancelled: set[JobKey] = set()
    told: set[int] = set()
    while not watcher.wait(batch.tickets, timeout=0.25 if ended is not None else 1.0):
        if ended is not None:
            ready = [i for i, t in enumerate(batch.tickets) if t.done.is_set() and i not in told]
            if ready:
                told.update(ready)
                ended(ready)
        if queue_timeout is None:
            continue
        waited = time.time() - batch.submitted_at
        stuck = [
            t for t in batch.tickets if not t.done.is_set() and t.seen_running_at is None and t.key not in cancelled
        ]
        if waited <= queue_timeout or not stuck:
            continue
        for t in stuck:
            t.error = (
                f"job {t.key.display()} still pending after {waited:.0f}s "
                f"(Reason={t.reason or 'unknown'}); queue_timeout is {queue_timeout:g}s"
            )
            cancelled.add(t.key)
        with contextlib.suppress(TransportError):
            scancel(" ".join(t.key.display() for t in stuck))
