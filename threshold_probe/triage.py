"""`probe triage PATH...`: every zero-argument function of a code base, probed, and the split explained.

1. **Discover.** Every function definition of the files is listed: module level, methods,
   and functions defined inside test functions and factories (reached without running the
   function around them, threshold_probe/nested.py). Test functions, fixtures and factories
   are containers, not payloads; a function that needs arguments cannot be called as it is.
   Each of those is listed as skipped, with the reason. The others load as `--function` does.
2. **Probe.** Each one goes through the pipeline to the cluster, journalled like any run (a run
   of kind ``triage``) and resumable; finished verdicts of identical probes are reused unless
   ``--fresh``. ``--parallel N`` runs N probes at a time (a SLURM cluster takes them as one
   batch of jobs).
3. **Explain.** The failures are grouped by class and signature; for each group, every static
   metric and syntactic feature is tried as a single threshold separating it from the passing
   functions (threshold_probe/separate.py), with the best pair when no single one does, and how
   far LOC, CC and pickled size are from separating them.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from threshold_probe import __version__
from threshold_probe.cell import fingerprint
from threshold_probe.clusters import make_cluster
from threshold_probe.clusters.base import Cluster
from threshold_probe.config import ProbeConfig
from threshold_probe.errors import ClusterLost, InfraError, Interrupted, ProbeError, UserError
from threshold_probe.models import ProbeRecord
from threshold_probe.pipelines import make_pipeline
from threshold_probe.pipelines.base import Pipeline
from threshold_probe.probe import Prober, ProbeRequest
from threshold_probe.runlog import run_log
from threshold_probe.session import LimitOverrides, ProgressSink, run_limits, with_partition
from threshold_probe.store import RunInfo, Store
from threshold_probe.triage_discover import Candidate as Candidate  # re-exported: the names this module always had
from threshold_probe.triage_discover import Discovery, discover, load_requests, shown
from threshold_probe.triage_report import (
    KIND,
    FailureGroup,
    TriageFunction,
    TriageReport,
    build_report,
    conclusion,
    load_report,
)
from threshold_probe.triage_report import SCHEMA_VERSION as SCHEMA_VERSION
from threshold_probe.triage_report import Verdict as Verdict
from threshold_probe.triage_report import signature_stem as signature_stem

# -- the run ---------------------------------------------------------------------------------------


@dataclass
class TriageOptions:
    """What a triage run needs besides where it runs."""

    paths: list[str]
    parallel: int = 1
    fresh: bool = False
    preflight: bool = True
    keep_remote: bool = False


def _apply(row: TriageFunction, record: ProbeRecord) -> None:
    v = record.verdict
    row.verdict = v.status
    row.failure_class = v.failure_class
    row.signature = v.signature
    row.explanation = v.explanation
    row.evidence = list(v.evidence[:8])
    row.probe_id = record.probe_id
    row.cached = record.cached_from is not None
    row.wall_s = round(record.observation.wall_s, 4)
    if v.status == "skip":
        row.reason = record.observation.job.infra_error or v.explanation


def preflight(cluster: Cluster, pipeline: Pipeline, note: Callable[[str], None]) -> None:
    """InfraError (exit 3) when the cluster cannot run probes of this pipeline."""
    checks = cluster.preflight()
    unneeded = {"cloudpickle"} if not pipeline.needs_cloudpickle else set()
    for c in checks:
        if c.status == "fail" and c.name in unneeded:
            note(f"{c.name} not needed by the {pipeline.name} pipeline: {c.detail}")
    bad = [c for c in checks if c.status == "fail" and c.name not in unneeded]
    if bad:
        lines = "; ".join(f"{c.name}: {c.detail}" + (f" (fix: {c.fix})" if c.fix else "") for c in bad)
        raise InfraError(f"cluster {cluster.name!r} is not usable: {lines}")


class Triage:
    """One triage run: discovery, probes (journalled, resumable, cached) and the report."""

    def __init__(
        self,
        *,
        config: ProbeConfig,
        store: Store,
        cluster: str,
        pipeline: str,
        overrides: LimitOverrides,
        options: TriageOptions,
        progress: ProgressSink | None,
        run_id: str | None = None,
        started_at: float | None = None,
        command_prefix: str = "probe",
    ) -> None:
        self.store = store
        self.options = options
        self.options.paths = [str(Path(p).expanduser().resolve()) for p in options.paths]
        self.progress = progress
        self.overrides = overrides
        if overrides.partition:
            config = with_partition(config, cluster, overrides.partition)
        self.limits = run_limits(config, cluster, overrides)
        self.discovery = discover(self.options.paths)
        self.cluster = make_cluster(cluster, config)
        self.pipeline_arg = pipeline
        self.pipeline = make_pipeline(pipeline)
        self.resuming = run_id is not None
        self.run_id = run_id or store.new_run_id(KIND)
        self.started_at = started_at or time.time()
        self.command_prefix = command_prefix
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

    def params(self) -> dict[str, Any]:
        """What it takes to run this triage again (read by --resume)."""
        return {
            "kind": KIND,
            "cluster": self.cluster.name,
            "pipeline": self.pipeline_arg,
            "overrides": asdict(self.overrides),
            "options": asdict(self.options),
            "owner": {"host": socket.gethostname(), "pid": os.getpid()},
        }

    def resume_command(self) -> str:
        return f"{self.command_prefix} triage --resume {self.run_id}"

    def _note(self, message: str) -> None:
        if self.progress is not None:
            self.progress.note(message)

    def _on_record(self, record: ProbeRecord) -> None:
        if self.progress is not None:
            self.progress.probe_done(record)

    def report(self, status: str) -> TriageReport:
        return build_report(
            run_id=self.run_id,
            status=status,
            cluster=self.cluster.name,
            pipeline=self.pipeline.name,
            paths=[shown(Path(p)) for p in self.options.paths],
            functions=self.discovery.functions,
            file_errors=self.discovery.file_errors,
            started_at=self.started_at,
            limits=self.limits.model_dump(),
            cluster_info=self.cluster.describe(),
            params=self.params(),
            reports_dir=str(self.store.run_dir(self.run_id)),
        )

    def _label(self) -> str:
        return ",".join(Path(p).name for p in self.options.paths)[:200]

    def execute(self) -> TriageReport:
        """Own the run, probe every payload, and journal the report whatever happens."""
        owner = self.store.own_run(self.run_id)
        try:
            with run_log(self.store.run_dir(self.run_id) / "run.log"):
                return self._execute()
        finally:
            owner.release()

    def _execute(self) -> TriageReport:
        self.store.start_run(
            RunInfo(
                run_id=self.run_id,
                kind=KIND,
                cluster=self.cluster.name,
                pipeline=self.pipeline.name,
                ladder=self._label(),
                status="running",
                started_at=self.started_at,
                params=self.params(),
            )
        )
        if self.resuming:
            cancelled = self.store.cancel_unfinished(self.run_id)
            done = len(self.store.probes(self.run_id))
            probes = f"{done} finished probe{'s' if done != 1 else ''}"
            note = f"resuming triage {self.run_id}: {probes} come from the journal"
            if cancelled:
                note += f"; {cancelled} in flight when it stopped will run again"
            self._note(note)
        self.store.save_partial(self.run_id, self.report("running").model_dump(mode="json", by_alias=True))
        try:
            loaded = load_requests(self.discovery.functions)
            try:
                self.cluster.open()
            except InfraError as exc:
                raise InfraError(f"cluster {self.cluster.name!r}: {exc}") from None
            try:
                if self.options.preflight:
                    preflight(self.cluster, self.pipeline, self._note)
                self._settle_fingerprint()
                self._probe(loaded)
            except BaseException:
                self.cluster.cancel_all()
                raise
            finally:
                self.cluster.close()
        except (KeyboardInterrupt, Interrupted) as exc:
            self.store.cancel_unfinished(self.run_id)
            signum = exc.exit_code - 128 if isinstance(exc, Interrupted) else 2
            message = f"triage {self.run_id} interrupted; resume with: {self.resume_command()}"
            self.store.finish_run(
                self.run_id, "interrupted", self.report("interrupted").model_dump(mode="json", by_alias=True)
            )
            raise Interrupted(message, signum) from None
        except ClusterLost as exc:
            self.store.cancel_unfinished(self.run_id)
            self.store.finish_run(
                self.run_id, "interrupted", self.report("interrupted").model_dump(mode="json", by_alias=True)
            )
            raise InfraError(
                f"triage {self.run_id} interrupted: {' '.join(exc.cause.split())}; resume with: {self.resume_command()}"
            ) from None
        except BaseException as exc:
            self.store.cancel_unfinished(self.run_id)
            status = "interrupted" if self.resuming and isinstance(exc, InfraError) else "error"
            self.store.finish_run(self.run_id, status, self.report(status).model_dump(mode="json", by_alias=True))
            raise
        finally:
            if self.progress is not None:
                self.progress.end()
        report = self.report("completed")
        self.store.finish_run(self.run_id, "completed", report.model_dump(mode="json", by_alias=True))
        return report

    def _settle_fingerprint(self) -> None:
        """Key the cache by the cluster's fingerprint, as every run does (threshold_probe/cell.py)."""
        kind = type(self.pipeline)
        pipeline = {
            "name": self.pipeline.name,
            "as_given": self.pipeline_arg,
            "class": f"{kind.__module__}:{kind.__qualname__}",
        }
        fp = fingerprint(self.cluster.name, self.cluster.config, self.cluster.far_side(), pipeline, __version__)
        self.prober.cluster_key = f"{self.cluster.name}#{fp.digest}"
        if not fp.checked and self.prober.use_cache:
            self.prober.use_cache = False
            self._note("no verdict of an earlier run was reused: without the preflight the far side is unknown")

    def _probe(self, loaded: Sequence[tuple[TriageFunction, ProbeRequest]]) -> None:
        """Probe every payload, N at a time; each verdict lands on its row as it comes."""
        if self.progress is not None:
            self.progress.begin(f"triage: {len(loaded)} functions through {self.pipeline.name}", len(loaded))
        parallel = max(1, self.options.parallel)
        if parallel == 1 or len(loaded) <= 1:
            for row, req in loaded:
                _apply(row, self.prober.run([req])[0])
                self._save()
            return
        if self.cluster.concurrent:
            # A queue takes a batch at once (SLURM jobs): one batch of N, then the next.
            for start in range(0, len(loaded), parallel):
                batch = list(loaded[start : start + parallel])
                for (row, _), record in zip(batch, self.prober.run([req for _, req in batch]), strict=True):
                    _apply(row, record)
                self._save()
            return
        # One probe first, alone: it stages what every probe shares on the far side.
        first, rest = loaded[0], loaded[1:]
        _apply(first[0], self.prober.run([first[1]])[0])
        with ThreadPoolExecutor(max_workers=parallel, thread_name_prefix="triage") as pool:
            futures = [(row, pool.submit(self.prober.run, [req])) for row, req in rest]
            try:
                for row, future in futures:
                    _apply(row, future.result()[0])
                    self._save()
            except BaseException:
                for _, future in futures:
                    future.cancel()
                self.cluster.cancel_all()
                raise

    def _save(self) -> None:
        try:
            self.store.save_partial(self.run_id, self.report("running").model_dump(mode="json", by_alias=True))
        except Interrupted:
            raise  # SIGINT or SIGTERM while saving stops the triage, as it does anywhere else
        except (OSError, ProbeError) as exc:  # a partial report that cannot be written: go on
            self._note(f"could not save the partial report: {exc}")


def run_triage(
    *,
    config: ProbeConfig,
    store: Store,
    cluster: str,
    pipeline: str,
    options: TriageOptions,
    overrides: LimitOverrides | None = None,
    progress: ProgressSink | None = None,
    command_prefix: str = "probe",
) -> TriageReport:
    """Triage the functions of the paths through a pipeline on a cluster."""
    return Triage(
        config=config,
        store=store,
        cluster=cluster,
        pipeline=pipeline,
        overrides=overrides or LimitOverrides(),
        options=options,
        progress=progress,
        command_prefix=command_prefix,
    ).execute()


def resume_triage(
    run_id: str | None,
    *,
    config: ProbeConfig,
    store: Store,
    progress: ProgressSink | None = None,
    command_prefix: str = "probe",
) -> TriageReport:
    """Continue an interrupted triage: finished probes come from the journal."""
    if run_id in (None, "latest"):
        candidates = [r for r in store.runs(kind=KIND) if r.status != "completed"]
        if not candidates:
            raise UserError("no interrupted triage to resume: `probe runs --kind triage` lists them")
        info = candidates[0]
    else:
        info = store.get_run(run_id)
    if info.kind != KIND:
        raise UserError(f"run {info.run_id} is a {info.kind} run, not a triage")
    p = info.params
    return Triage(
        config=config,
        store=store,
        cluster=p["cluster"],
        pipeline=p["pipeline"],
        overrides=LimitOverrides(**p["overrides"]),
        options=TriageOptions(**p["options"]),
        progress=progress,
        run_id=info.run_id,
        started_at=info.started_at,
        command_prefix=command_prefix,
    ).execute()


__all__ = [
    "KIND",
    "Discovery",
    "FailureGroup",
    "TriageFunction",
    "TriageOptions",
    "TriageReport",
    "build_report",
    "conclusion",
    "discover",
    "load_report",
    "load_requests",
    "resume_triage",
    "run_triage",
]
