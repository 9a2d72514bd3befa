"""Run orchestration: open the cluster, check it, search, journal every probe, end with a summary.

- Resume: a resumed run keeps its id and parameters and replays its journal (see
  threshold_probe/probe.py), so the search takes the same path without dispatching finished
  probes again; the probe that was in flight is marked cancelled and runs again.
- A lost cluster (ClusterLost, from the prober) ends the run as ``interrupted``, with exit 3 and
  one line naming the cause, what is known so far and the resume command; the run stores no
  boundary. A resume whose cluster is still unusable leaves the run interrupted, too.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import time
from dataclasses import asdict
from typing import Any

from threshold_probe.cell import Fingerprint
from threshold_probe.clusters import make_cluster
from threshold_probe.clusters.base import Cluster, JobState
from threshold_probe.config import ProbeConfig
from threshold_probe.errors import ClusterLost, InfraError, Interrupted, JournalError
from threshold_probe.models import ProbeRecord
from threshold_probe.pipelines import make_pipeline
from threshold_probe.probe import Prober
from threshold_probe.session.checks import check_limits, preflight, settle_fingerprint
from threshold_probe.session.options import (
    Kind,
    LimitOverrides,
    ProgressSink,
    SearchOptions,
    absolute_if_file,
    run_limits,
    with_partition,
)
from threshold_probe.session.outcomes import Oracles
from threshold_probe.session.ownership import reap_leftovers
from threshold_probe.session.report import build_summary
from threshold_probe.session.searches import Searches, SearchResult
from threshold_probe.session.workloads import Workloads, function_request, load_run_ladder
from threshold_probe.signature import compile_pattern
from threshold_probe.store import RunInfo, Store
from threshold_probe.summary import RunSummary

#: How often, at most, the summary of a run in progress is saved (seconds).
PARTIAL_EVERY_S = 1.0
#: The share of a run's time its partial summaries may take: a long run's summary grows with
#: its probes, so it is saved less often as it grows, instead of costing more than the probes.
PARTIAL_SHARE = 0.05


class Run:
    """One run: a search (or one probe) of a ladder or a user's function, on one cluster, through
    one pipeline, journalled in the store. Build it, then `execute()` it, as run_search does."""

    def __init__(
        self,
        kind: Kind,
        *,
        config: ProbeConfig,
        store: Store,
        cluster: str,
        pipeline: str,
        ladder: str,
        overrides: LimitOverrides,
        options: SearchOptions,
        progress: ProgressSink | None,
        run_id: str | None = None,
        started_at: float | None = None,
        command_prefix: str = "probe",
    ) -> None:
        self.kind = kind
        self.store = store
        if options.match:
            compile_pattern(options.match)  # a bad regex is the user's mistake: say so before any probe
        function = None
        if options.function:
            options.function = absolute_if_file(options.function)
            if kind == "run":  # checked before any run exists: a bad target is the user's to fix (exit 2)
                function = function_request(
                    options.function, options.args, ship_local_modules=options.ship_local_modules
                )
        self.options = options
        self.progress = progress
        self.ladder_arg = absolute_if_file(ladder)
        self.workloads = Workloads(load_run_ladder(kind, options, self.ladder_arg), function)
        if overrides.partition:
            config = with_partition(config, cluster, overrides.partition)
        self.limits = run_limits(config, cluster, overrides)
        self.cluster: Cluster = make_cluster(cluster, config)
        self.pipeline = make_pipeline(pipeline)
        # As the user gave it: a plugin named by import path has no name to be found by again.
        self.pipeline_arg = pipeline
        self.overrides = overrides
        self.resuming = run_id is not None
        self.run_id = run_id or store.new_run_id(kind)
        self.started_at = started_at or time.time()
        self.command_prefix = command_prefix
        self._partial_due: float | None = None
        #: Known once the preflight ran (settle_fingerprint); it keys the cache and the cell.
        self.fingerprint: Fingerprint | None = None
        self.reuse_note: str | None = None
        #: Who enforces each limit (see Cluster.enforcement), known once the cluster is open.
        self.enforced_by: dict[str, str] = {}
        #: Things the user should know that do not stop the run (shown even with --quiet).
        self.warnings: list[str] = []
        # Far-side work goes into the journal as it appears: what a killed process leaves is
        # cancelled and removed by the next run on this cluster (see reap_leftovers).
        self.cluster.on_remote = lambda work: store.record_remote(self.run_id, self.cluster.name, work)
        self.prober = Prober(
            run_id=self.run_id,
            cluster=self.cluster,
            pipeline=self.pipeline,
            limits=self.limits,
            store=store,
            use_cache=not options.fresh,
            resuming=self.resuming,
            keep_remote=options.keep_remote,
            on_record=self._on_record,
        )
        self.oracles = Oracles(self.prober, self.workloads, options.match)
        self.searches = Searches(kind, options, self.oracles, self.cluster, store, progress, self._note)
        # A slow scheduler's queue is shown as it moves: each live probe's job id and state.
        self.cluster.on_job_state = self._job_state

    def params(self) -> dict[str, Any]:
        """What it takes to run this search again: stored with the run, read by --resume."""
        return {
            "kind": self.kind,
            "cluster": self.cluster.name,
            "pipeline": self.pipeline_arg,
            "ladder": self.ladder_arg,
            "overrides": asdict(self.overrides),
            "options": asdict(self.options),
            # Who runs it, so that --resume does not continue a run that is still going.
            "owner": {"host": socket.gethostname(), "pid": os.getpid()},
        }

    def resume_command(self) -> str:
        """The exact command that continues this run."""
        return f"{self.command_prefix} {self.kind} --resume {self.run_id}"

    def summary(self, status: str, search: SearchResult, partial: bool = False) -> RunSummary:
        """The RunSummary of the records so far; `partial` lists only the levels probed yet."""
        return build_summary(self, status, search, self.searches.levels, partial)

    def _on_record(self, record: ProbeRecord) -> None:
        self.oracles.hunted(record)
        if self.progress is not None:
            self.progress.probe_done(record, self.searches.label_of(record.level, record.spec))
        # At most about once a second: the journal has every probe anyway, and rewriting a long
        # run's summary after each of hundreds of probes would cost more than the probes.
        now = time.monotonic()
        if self._partial_due is None or now >= self._partial_due:
            self._save_partial()
            cost = time.monotonic() - now
            self._partial_due = now + max(PARTIAL_EVERY_S, cost / PARTIAL_SHARE)

    def _job_state(self, state: JobState) -> None:
        """Pass a live job's scheduler state on to the progress, with the probe's name."""
        if self.progress is None:
            return
        req = self.prober.requests.get(state.probe_id)
        label = (self.searches.label_of(req.level, req.spec) or req.workload.name) if req else state.probe_id
        self.progress.job_state(label, state)

    def _save_partial(self) -> None:
        """Keep the summary so far, so that a run killed at any point still has a report."""
        try:
            note = f"in progress; if its process was killed, resume with: {self.resume_command()}"
            partial = self.summary("running", SearchResult("running", note), partial=True)
            self.store.save_partial(self.run_id, partial.model_dump(mode="json", by_alias=True))
        except (OSError, sqlite3.Error, JournalError) as exc:  # a report that cannot be written: go on
            self._note(f"could not save the partial report: {exc}")

    def _note(self, message: str) -> None:
        if self.progress is not None:
            self.progress.note(message)

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        self._note(f"warning: {message}")

    def _finish(self, status: str, message: str) -> None:
        """Journal the run as ended with `status` and its summary so far."""
        ended = self.summary(status, SearchResult(status, message))
        self.store.finish_run(self.run_id, status, ended.model_dump(mode="json", by_alias=True))

    def _lost(self, cause: str) -> InfraError:
        """End the run as interrupted because its cluster is lost; the error to raise (exit 3).

        The probe in flight has no verdict (it runs again on resume) and no boundary is stored:
        the message says what is known so far instead.
        """
        self.cluster.cancel_all()
        self.store.cancel_unfinished(self.run_id)
        cause = " ".join(cause.split())  # one line, whatever the far side said
        message = f"run {self.run_id} interrupted: {cause}; {self.searches.so_far()}"
        if self.kind != "run":
            message += f"; resume with: {self.resume_command()}"
        self._finish("interrupted", message)
        return InfraError(message)

    def _end_with_error(self, exc: BaseException) -> None:
        """Journal the run as ended by an error (the error itself is raised by the caller)."""
        self.cluster.cancel_all()
        self.store.cancel_unfinished(self.run_id)
        try:
            self._finish("error", f"{type(exc).__name__}: {exc}")
        except Exception:  # the original error matters more than a report of it
            self.store.set_run_status(self.run_id, "error")

    def execute(self) -> RunSummary:
        """Own the run (RunBusy, exit 3, when another process runs it), then run it to its end.

        The lock is held until this returns or raises; the kernel drops it if the process dies.
        """
        owner = self.store.own_run(self.run_id)
        try:
            return self._execute()
        finally:
            owner.release()

    def _start(self) -> None:
        """Journal the run as running; a resumed one says what comes from the journal."""
        info = RunInfo(
            run_id=self.run_id,
            kind=self.kind,
            cluster=self.cluster.name,
            pipeline=self.pipeline.name,
            ladder=self.workloads.label(),
            status="running",
            started_at=self.started_at,
            params=self.params(),
        )
        self.store.start_run(info)
        if self.resuming:
            cancelled = self.store.cancel_unfinished(self.run_id)
            done = len(self.store.probes(self.run_id))
            note = f"resuming run {self.run_id}: {done} finished probe{'s' if done != 1 else ''} come from the journal"
            if cancelled:
                note += f"; {cancelled} probe{'s' if cancelled != 1 else ''} in flight when it stopped will run again"
            self._note(note)

    def _search_on_open_cluster(self) -> SearchResult:
        """Open the cluster, reap leftovers, check it, and search; the cluster is closed after."""
        # Read before open(): the session this process opens is its own, not a leftover.
        leftovers = self.store.remote_leftovers(self.cluster.name)
        try:
            self.cluster.open()
        except InfraError as exc:
            raise InfraError(f"cluster {self.cluster.name!r}: {exc}") from None
        try:
            reap_leftovers(self.store, self.cluster, self.run_id, leftovers, self._note)
            if self.options.preflight:
                preflight(self.cluster, self.pipeline, self._note, self.limits)
            self.fingerprint, self.reuse_note = settle_fingerprint(
                self.cluster, self.pipeline, self.pipeline_arg, self.prober, self._note
            )
            if self.resuming:
                self._note_stale_probes()
            self.enforced_by = check_limits(
                self.cluster,
                self.pipeline,
                self.limits,
                self.store.root,
                measure=self.options.preflight,
                note=self._note,
                warn=self._warn,
            )
            return self.searches.run()
        except BaseException:
            # Cancel remote work while the connection is still open (Ctrl-C, SIGTERM, errors).
            self.cluster.cancel_all()
            raise
        finally:
            self.cluster.close()

    def _note_stale_probes(self) -> None:
        """Say which of the journal's finished probes cannot be replayed: their cache key names
        the cluster as it was (another config, Python or cloudpickle), so they run again."""
        here = self.prober.cluster_key
        stale = [k for k in self.store.finished_keys(self.run_id) if k.split("|")[2:3] != [here]]
        if stale:
            n = len(stale)
            self._note(
                f"{n} finished probe{'s' if n != 1 else ''} of this run {'were' if n != 1 else 'was'} made on"
                f" cluster {self.cluster.name!r} as it was then; its configuration, Python or cloudpickle"
                " has changed since, so they are not reused and run again"
            )

    def _execute(self) -> RunSummary:
        """Run the search to the end; journal and write run.json whatever happens.

        SIGINT/SIGTERM (Interrupted) cancel what runs on the cluster, mark the probe in flight
        cancelled and end the run as 'interrupted'; the Interrupted raised again names the
        run and the command that resumes it.
        """
        self._start()
        try:
            if not self.resuming:
                self._save_partial()  # a run killed before its first probe still has a report
            search = self._search_on_open_cluster()
        except (KeyboardInterrupt, Interrupted) as exc:
            self.cluster.cancel_all()
            self.store.cancel_unfinished(self.run_id)
            signum = exc.exit_code - 128 if isinstance(exc, Interrupted) else int(signal.SIGINT)
            message = f"run {self.run_id} interrupted by {_signal_name(signum)}"
            if self.kind != "run":
                message += f"; resume with: {self.resume_command()}"
            self._finish("interrupted", message)
            raise Interrupted(message, signum) from None
        except ClusterLost as exc:
            raise self._lost(exc.cause) from None
        except InfraError as exc:
            if not self.resuming:
                self._end_with_error(exc)
                raise
            # The cluster is still unusable: the run stays resumable, as it was.
            raise self._lost(str(exc)) from None
        except BaseException as exc:
            self._end_with_error(exc)
            raise
        finally:
            if self.progress:
                self.progress.end()
        summary = self.summary("completed", search)
        self.store.finish_run(self.run_id, "completed", summary.model_dump(mode="json", by_alias=True))
        return summary


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
