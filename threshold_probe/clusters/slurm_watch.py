"""One watcher per SLURM cluster: every live job of this process in one query per poll.

A background thread polls `squeue` for all live jobs and array tasks at once. When some reach a
final state, it reads their records with `scontrol show job -o` (one command for all of them),
then `sacct` where accounting is on (MaxRSS, Elapsed), or `sacct -c` (the jobcomp file) for jobs
the controller has already forgotten. The poll interval starts at `poll_interval`, grows by half
after every poll that saw no change up to `max_poll_interval`, and drops back when something
changes or a job is added: a nightly run waiting in a long queue asks the controller rarely. For
the first YOUNG_POLLS intervals of a job it does not grow, so that a short job is seen ending at once.

A controller that cannot be reached for `controller_timeout` seconds ends every live job with an
infrastructure error (a skip), instead of a hang.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from threshold_probe.clusters.slurm_state import (
    SACCT_FIELDS,
    SQUEUE_FORMAT,
    JobKey,
    is_final,
    key_of,
    parse_record,
    parse_sacct,
    parse_squeue,
)
from threshold_probe.clusters.transport import CommandResult, TransportError

log = logging.getLogger(__name__)

#: For this many base intervals after its submission a job is polled at the base interval, never
#: backed off (1.6 s at the testbed's 0.2 s, 4 s at the default 0.5 s).
YOUNG_POLLS = 8

#: Runs one shell command on the submit host (login node or this machine).
Runner = Callable[[str], CommandResult]


@dataclass
class Ticket:
    """One watched job or array task; `done` is set once its facts (or an error) are known."""

    key: JobKey
    submitted_at: float
    #: The caller's name for the job (a probe id), passed on with its state changes.
    tag: str = ""
    done: threading.Event = field(default_factory=threading.Event)
    #: Last state and reason squeue showed.
    state: str = "PENDING"
    reason: str = ""
    nodes: str = ""
    raw_id: str = ""
    #: This machine's clock when the job was first seen running (a fallback for the queue time).
    seen_running_at: float | None = None
    finished_seen_at: float | None = None
    #: Merged scheduler record (scontrol fields, sacct MaxRSS/Elapsed).
    fields: dict[str, str] = field(default_factory=dict)
    sources: list[str] = field(default_factory=list)
    #: Infrastructure trouble that ended the watch (controller unreachable).
    error: str | None = None
    #: The controller stayed unreachable past controller_timeout: the cluster is lost, not the job.
    lost: bool = False
    misses: int = 0
    #: Its state was told to on_change at least once.
    reported: bool = False


class SlurmWatcher:
    """Polls SLURM for every live ticket, one query per poll, in a daemon thread."""

    def __init__(
        self,
        run: Runner,
        *,
        poll_interval: float = 0.5,
        max_poll_interval: float = 15.0,
        controller_timeout: float = 120.0,
        on_change: Callable[[Ticket], None] | None = None,
    ) -> None:
        self._run = run
        #: Told (in the watcher's thread) when a ticket's state, reason or node changes.
        self.on_change = on_change
        self.poll_interval = max(0.05, poll_interval)
        self.max_poll_interval = max(self.poll_interval, max_poll_interval)
        self.controller_timeout = controller_timeout
        self._live: dict[JobKey, Ticket] = {}
        self._cond = threading.Condition()
        self._kicked = False
        self._stopped = False
        self._thread: threading.Thread | None = None
        #: None until known: whether plain `sacct` works (slurmdbd) on this cluster.
        self._accounting: bool | None = None
        self._failing_since: float | None = None
        #: Queries sent, by command: the benchmark and tests read it to check batching.
        self.queries: dict[str, int] = {"squeue": 0, "scontrol": 0, "sacct": 0}

    # -- public -------------------------------------------------------------------------------

    def track(
        self, keys: Sequence[JobKey], submitted_at: float | None = None, tags: Sequence[str] | None = None
    ) -> list[Ticket]:
        """Start watching these jobs (`tags`: the caller's name of each); one ticket per key, in order."""
        now = time.time() if submitted_at is None else submitted_at
        tickets = [Ticket(key=k, submitted_at=now, tag=tags[i] if tags else "") for i, k in enumerate(keys)]
        with self._cond:
            for t in tickets:
                self._live[t.key] = t
            self._kicked = True
            self._cond.notify_all()
            if self._thread is None or not self._thread.is_alive():
                self._stopped = False
                self._thread = threading.Thread(target=self._loop, name="slurm-watcher", daemon=True)
                self._thread.start()
        return tickets

    def forget(self, tickets: Sequence[Ticket]) -> None:
        """Stop watching these tickets (after a cancel that is waited for elsewhere)."""
        with self._cond:
            for t in tickets:
                self._live.pop(t.key, None)

    def live(self) -> list[Ticket]:
        """Tickets not yet done."""
        with self._cond:
            return list(self._live.values())

    def wait(self, tickets: Sequence[Ticket], timeout: float | None = None) -> bool:
        """Block until every ticket is done; False on timeout. Ctrl-C interrupts the wait."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for t in tickets:
            while not t.done.wait(0.25):
                if deadline is not None and time.monotonic() >= deadline:
                    return False
        return True

    def stop(self) -> None:
        """End the polling thread; tickets still live are released with an error, never left hanging."""
        with self._cond:
            self._stopped = True
            self._cond.notify_all()
            live = list(self._live.values())
            self._live.clear()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        for t in live:
            t.error = t.error or "the cluster was closed while the job was being watched"
            t.done.set()

    # -- the loop -----------------------------------------------------------------------------

    def _loop(self) -> None:
        interval = self.poll_interval
        while True:
            with self._cond:
                while not self._live and not self._stopped:
                    self._cond.wait()
                if self._stopped:
                    return
                # A new job cannot be done at once: wait one short interval before asking.
                self._cond.wait_for(lambda: self._stopped or self._kicked, timeout=interval)
                if self._stopped:
                    return
                if self._kicked:
                    self._kicked = False
                    interval = self.poll_interval
                    self._cond.wait_for(lambda: self._stopped, timeout=interval)
                    if self._stopped:
                        return
                live = list(self._live.values())
            if not live:
                continue
            try:
                changed = self._poll(live)
            except Exception as exc:  # never let the thread die: every waiter would hang
                log.exception("slurm watcher poll failed")
                changed = False
                self._failure(f"watcher error: {type(exc).__name__}: {exc}", live)
            # A job submitted moments ago may end any moment (most probes take a second or two):
            # no back-off until every live job is older than YOUNG_POLLS base intervals.
            young_s = YOUNG_POLLS * self.poll_interval
            young = any(time.time() - t.submitted_at < young_s for t in live)
            interval = self.poll_interval if changed or young else min(interval * 1.5, self.max_poll_interval)

    def _command(self, name: str, command: str) -> CommandResult:
        self.queries[name] = self.queries.get(name, 0) + 1
        return self._run(command)

    def _poll(self, live: list[Ticket]) -> bool:
        """One squeue for every live job; finish those that reached a final state."""
        ids = sorted({t.key.job_id for t in live}, key=lambda s: (len(s), s))
        try:
            res = self._command("squeue", f"squeue -h -r -t all -j {','.join(ids)} -o '{SQUEUE_FORMAT}'")
        except TransportError as exc:
            self._failure(str(exc), live)
            return False
        err = res.error_text()
        if not res.ok and "Invalid job id" not in err:
            self._failure(err or f"squeue exited with {res.exit_code}", live)
            return False
        self._failing_since = None
        rows = {row.key: row for row in parse_squeue(res.text())}
        changed = False
        finished: list[Ticket] = []
        moved: list[Ticket] = []
        now = time.time()
        for t in live:
            row = rows.get(t.key)
            if row is None:
                # Gone from the controller's memory (MinJobAge passed): sacct may still know it.
                t.misses += 1
                if t.misses >= 2:
                    finished.append(t)
                    changed = True
                continue
            t.misses = 0
            if (row.state, row.reason) != (t.state, t.reason):
                changed = True
            if (row.state, row.reason, row.nodes or t.nodes) != (t.state, t.reason, t.nodes) or not t.reported:
                moved.append(t)
            t.state, t.reason, t.nodes = row.state, row.reason, row.nodes or t.nodes
            if row.raw_id and row.raw_id.isdigit():
                t.raw_id = row.raw_id
            if row.state not in ("PENDING", "CONFIGURING") and t.seen_running_at is None:
                t.seen_running_at = now
            if is_final(row.state):
                t.finished_seen_at = now
                finished.append(t)
        self._tell(moved)
        if finished:
            self._finish(finished)
        return changed

    def _tell(self, tickets: list[Ticket]) -> None:
        """Tell on_change of each ticket whose state moved; its errors never stop the watch."""
        for t in tickets:
            t.reported = True
            if self.on_change is not None:
                try:
                    self.on_change(t)
                except Exception:
                    log.exception("slurm watcher: on_change failed")

    def _finish(self, tickets: list[Ticket]) -> None:
        """Read the records of finished jobs (scontrol, then sacct or sacct -c) and release them."""
        masters = sorted({t.key.job_id for t in tickets}, key=lambda s: (len(s), s))
        records: dict[JobKey, dict[str, str]] = {}
        with contextlib.suppress(TransportError):
            # One round trip; `;` so that one forgotten job does not hide the others.
            cmd = "; ".join(f"scontrol show job -o {j}" for j in masters)
            res = self._command("scontrol", cmd)
            for line in res.text().splitlines():
                if line.startswith("JobId="):
                    fields = parse_record(line)
                    key = key_of(fields)
                    if key is not None:
                        records[key] = fields
        for t in tickets:
            if t.key in records:
                t.fields.update(records[t.key])
                t.sources.append("scontrol")
        self._merge_sacct(tickets)
        for t in tickets:
            if not t.fields.get("JobState"):
                # Nobody remembers it: keep what squeue last said.
                t.fields.setdefault("JobState", t.state if is_final(t.state) else "UNKNOWN")
                t.fields.setdefault("Reason", t.reason)
                t.fields.setdefault("NodeList", t.nodes)
                t.sources.append("squeue")
        with self._cond:
            for t in tickets:
                self._live.pop(t.key, None)
        for t in tickets:
            t.done.set()

    def _sacct(self, args: str) -> CommandResult | None:
        try:
            return self._command("sacct", f"sacct -n -P {args} -o {','.join(SACCT_FIELDS)}")
        except TransportError:
            return None

    def _merge_sacct(self, tickets: list[Ticket]) -> None:
        if self._accounting is not False:
            ids = ",".join(sorted({t.key.job_id for t in tickets}))
            res = self._sacct(f"-j {ids}")
            if res is not None:
                text = res.text() + res.error_text()
                if "accounting storage is disabled" in text.lower() or (not res.ok and not res.text()):
                    self._accounting = False
                else:
                    self._accounting = True
                    rows = parse_sacct(res.text())
                    for t in tickets:
                        row = rows.get(t.key)
                        if row:
                            for k, v in row.items():
                                # scontrol's state is the live one; sacct adds what it lacks.
                                if v and (k in ("MaxRSS", "Elapsed") or not t.fields.get(k)):
                                    t.fields[k] = v
                            t.sources.append("sacct")
                    return
        # No accounting: the jobcomp file knows jobs the controller has forgotten.
        forgotten = [t for t in tickets if not t.fields.get("JobState") and (t.raw_id or t.key.task is None)]
        if not forgotten:
            return
        raw = {(t.raw_id or t.key.job_id): t for t in forgotten}
        res = self._sacct(f"-c -j {','.join(sorted(raw))}")
        if res is None or not res.ok:
            return
        for key, row in parse_sacct(res.text()).items():
            owner = raw.get(key.job_id)
            if owner is not None:
                owner.fields.update({k: v for k, v in row.items() if v})
                owner.sources.append("sacct -c")

    def _failure(self, message: str, live: list[Ticket]) -> None:
        now = time.monotonic()
        if self._failing_since is None:
            self._failing_since = now
        if now - self._failing_since < self.controller_timeout:
            return
        with self._cond:
            for t in live:
                self._live.pop(t.key, None)
        for t in live:
            t.error = f"SLURM controller unreachable for {now - self._failing_since:.0f}s: {message}"
            t.lost = True
            t.done.set()
        self._failing_since = None


def record_of(fields: dict[str, str]) -> dict[str, str]:
    """Copy of a record with SLURM's placeholders (`(null)`, `None`, `Unknown`) dropped."""
    return {k: v for k, v in fields.items() if v not in ("(null)", "Unknown", "N/A")}


__all__ = ["SlurmWatcher", "Ticket", "record_of"]
