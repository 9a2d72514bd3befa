"""A run: one command's search over a ladder, through one pipeline, on one cluster.

This is the glue between the parts: it loads the ladder, opens the cluster, runs the preflight,
turns verdicts into the outcomes a search strategy understands, journals every probe and
builds the RunSummary that every report renders.

- Outcomes: a pass is ``good``; a failure is ``bad`` when it is the one hunted (``--match``, or
  for isolation the signature of the boundary's failure) and ``skip`` otherwise, like
  infrastructure trouble; such probes are flagged ``different_failure`` and named in the message.
- Reports: the summary is saved after every probe (status ``running``), so a run killed at any
  point has a report that loads; it is replaced by the final one (``completed``,
  ``interrupted`` or ``error``).
- Resume: a resumed run keeps its id and parameters and replays its journal (see
  threshold_probe/probe.py), so the search takes the same path without dispatching finished
  probes again; the probe that was in flight is marked cancelled and runs again.
- Ownership: one process runs a run, holding its lock (Store.own_run) for the run's life; and
  before its first probe a run cancels and removes the far-side work that dead processes left
  on its cluster, as the journal recorded it (Run._reap_leftovers).
- A lost cluster (ClusterLost, from the prober) ends the run as ``interrupted``, with exit 3 and
  one line naming the cause, what is known so far and the resume command; the run stores no
  boundary. A resume whose cluster is still unusable leaves the run interrupted, too.
- Only a boundary whose levels were both tested is stored: an inconclusive search (untested
  levels between its last pass and first failure) stores none and says what stood in the way.
"""

from __future__ import annotations

import hashlib
import json
import os
import platform
import signal
import socket
import sqlite3
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

import cloudpickle

from threshold_probe import __version__
from threshold_probe.cell import Cell, Fingerprint, fingerprint, ladder_hash
from threshold_probe.clusters import make_cluster
from threshold_probe.clusters.base import Cluster
from threshold_probe.config import ProbeConfig, SlurmClusterConfig
from threshold_probe.errors import ClusterLost, InfraError, Interrupted, JournalError, ProbeError, UserError
from threshold_probe.floor import CHECK_BELOW_BYTES, cached_floor, measure_floor
from threshold_probe.ladder import Ladder, generate, load_ladder
from threshold_probe.ladder.dimensions import DIMENSIONS
from threshold_probe.metrics import measure_workload
from threshold_probe.models import Limits, ProbeRecord, RemoteWork
from threshold_probe.pipelines import make_pipeline
from threshold_probe.probe import Prober, ProbeRequest
from threshold_probe.runlog import run_log
from threshold_probe.search import Outcome, bisect, isolate, sweep
from threshold_probe.search.base import LevelOutcomes, describe_levels, judge
from threshold_probe.signature import compile_pattern, matches
from threshold_probe.store import RunInfo, RunLock, Store
from threshold_probe.summary import FailureSummary, LevelRow, ProbeSummary, ReuseSummary, RunSummary, ScaleSummary
from threshold_probe.target import ScaledLadder, load_target, scaled_ladder
from threshold_probe.units import format_memory, parse_memory_limit, parse_time_limit

Kind = Literal["run", "sweep", "bisect", "isolate"]

#: How often, at most, the summary of a run in progress is saved (seconds).
PARTIAL_EVERY_S = 1.0


@dataclass
class LimitOverrides:
    """Limits given on the command line; None keeps the cluster's configured value."""

    memory: str | None = None
    time: str | None = None
    cores: int | None = None
    partition: str | None = None


@dataclass
class SearchOptions:
    """Everything about a search that is not where or how it runs."""

    level: int | None = None
    lo: int | None = None
    hi: int | None = None
    parallel: int = 1
    repeat: int = 1
    confirm: int = 1
    match: str | None = None
    fresh: bool = False
    keep_remote: bool = False
    isolate: bool = False
    from_run: str | None = None
    preflight: bool = True
    #: `probe run --function FILE:FUNC`: probe a user's own function.
    function: str | None = None
    #: Keyword arguments of the user's function (`--arg NAME=VALUE`).
    args: dict[str, Any] = field(default_factory=dict)
    #: Pickle the user's sibling modules by value (`--ship-local-modules`).
    ship_local_modules: bool = False
    #: A CI gate: every level up to N must pass (`--expect-pass-through N`); exit 1 otherwise.
    expect_pass_through: int | None = None
    #: `sweep|bisect --function F --scale NAME=LO..HI`: one argument of F scaled into the ladder.
    scale: str | None = None
    steps: int | None = None
    values: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ProgressSink(Protocol):
    """Where a run reports progress (the CLI shows a Rich progress bar)."""

    def begin(self, description: str, total: int | None) -> None: ...

    def probe_done(self, record: ProbeRecord) -> None: ...

    def note(self, message: str) -> None: ...

    def end(self) -> None: ...


def run_limits(config: ProbeConfig, cluster: str, overrides: LimitOverrides) -> Limits:
    """The cluster's configured limits with the command line's overrides applied."""
    base = config.cluster(cluster).limits()
    # `is not None`: a zero is the user's mistake to be told about, not "keep the default".
    if overrides.cores is not None and overrides.cores < 1:
        raise UserError(f"--cores {overrides.cores}: the number of cores must be at least 1")
    return Limits(
        memory_bytes=parse_memory_limit(overrides.memory) if overrides.memory is not None else base.memory_bytes,
        time_s=parse_time_limit(overrides.time) if overrides.time is not None else base.time_s,
        cores=overrides.cores if overrides.cores is not None else base.cores,
    )


def function_request(
    target: str, args: Mapping[str, Any] | None = None, *, ship_local_modules: bool = False
) -> ProbeRequest:
    """A probe request for a user's own function (target.py says which forms are understood)."""
    workload = load_target(target, args, ship_local_modules=ship_local_modules)
    try:
        metrics = measure_workload(workload).model_dump()
    except Exception as exc:  # a function reached through an import has no definition in the file
        metrics = {"error": f"{type(exc).__name__}: {exc}"}
    spec: dict[str, Any] = {"function": target}
    if args:
        spec["args"] = dict(args)
    return ProbeRequest(workload=workload, level=None, spec=spec, metrics=metrics)


def with_partition(config: ProbeConfig, cluster: str, partition: str) -> ProbeConfig:
    """The config with one SLURM cluster's partition replaced (--partition)."""
    cfg = config.cluster(cluster)
    if not isinstance(cfg, SlurmClusterConfig):
        raise UserError(f"--partition applies to slurm clusters; {cluster!r} is a {cfg.type} cluster")
    clusters = dict(config.clusters)
    clusters[cluster] = cfg.model_copy(update={"partition": partition})
    return config.model_copy(update={"clusters": clusters})


def versions() -> dict[str, str]:
    """Versions of this tool, Python, cloudpickle and the platform, for report headers."""
    return {
        "threshold_probe": __version__,
        "python": platform.python_version(),
        "cloudpickle": cloudpickle.__version__,
        "platform": platform.platform(terse=True),
    }


def _outcome(record: ProbeRecord, match: str | None) -> Outcome:
    v = record.verdict
    if v.status == "pass":
        return "good"
    if v.status == "skip":
        return "skip"
    if match and not matches(v, match):
        # A different failure from the one hunted: git bisect's skip, never the threshold.
        return "skip"
    return "bad"


def _failure_summary(records: Sequence[ProbeRecord]) -> FailureSummary | None:
    for r in records:
        if r.verdict.status == "fail" and r.verdict.failure_class:
            return FailureSummary(
                failure_class=r.verdict.failure_class,
                signature=r.verdict.signature,
                explanation=r.verdict.explanation,
                evidence=r.verdict.evidence,
            )
    return None


def probe_summary(record: ProbeRecord, match: str | None, ladder: Ladder | None = None) -> ProbeSummary:
    """The short form of a probe that reports list."""
    obs = record.observation
    spec = record.spec if record.level is None else None
    return ProbeSummary(
        probe_id=record.probe_id,
        level=record.level,
        attempt=record.attempt,
        verdict=record.verdict.status,
        failure_class=record.verdict.failure_class,
        signature=record.verdict.signature,
        timings=obs.timings,
        wall_s=round(obs.wall_s, 4),
        peak_rss_mb=obs.peak_rss_mb,
        exit_code=obs.job.exit_code,
        signal=obs.job.signal,
        cached=record.cached_from is not None,
        cached_from=record.cached_from,
        cached_from_run=record.cached_from_run,
        spec=spec,
        different_failure=bool(
            match and record.verdict.status == "fail" and not matches(record.verdict, match)
        ),
        remote_dir=obs.job.remote_dir if obs.remote_kept else None,
    )


def pass_rate_text(outcomes: Sequence[Outcome]) -> str:
    """'7 of 10 probes passed (70%)', counting only the probes that gave a verdict."""
    judged = [o for o in outcomes if o != "skip"]
    if not judged:
        return f"all {len(outcomes)} probes were skipped"
    good = judged.count("good")
    text = f"{good} of {len(judged)} probes passed ({round(100 * good / len(judged))}%)"
    skipped = len(outcomes) - len(judged)
    return text + (f", {skipped} skipped" if skipped else "")


def _overall(outcomes: Sequence[Outcome]) -> str:
    judged = {o for o in outcomes if o != "skip"}
    if not judged:
        return "skip"
    if judged == {"good"}:
        return "pass"
    if judged == {"bad"}:
        return "fail"
    return "flaky"


def different_failures_text(records: Sequence[ProbeRecord], match_of: Mapping[str, str | None]) -> str:
    """One sentence on the failures that --match passed over (counted as skips), or ''."""
    diff = [
        r
        for r in records
        if r.verdict.status == "fail" and _outcome(r, match_of.get(r.probe_id)) == "skip"
    ]
    if not diff:
        return ""
    parts = []
    levels = sorted({r.level for r in diff if r.level is not None})
    if levels:
        classes = sorted({r.verdict.failure_class or "unclassified" for r in diff if r.level is not None})
        verb = "was" if len(levels) == 1 else "were"
        parts.append(
            f"{describe_levels(levels)} failed differently ({', '.join(classes)}) and {verb} counted as"
            f" {'a skip' if len(levels) == 1 else 'skips'}, not as the failure hunted"
        )
    off = [r for r in diff if r.level is None]
    if off:
        parts.append(f"{len(off)} off-ladder probe{'s' if len(off) != 1 else ''} failed differently")
    return "; ".join(parts)


def _absolute_if_file(text: str) -> str:
    """A ladder or function path made absolute, so that a resume from another folder finds it."""
    path_text, sep, func = text.rpartition(":") if ".py:" in text else (text, "", "")
    path = Path(path_text).expanduser()
    if path.is_file():
        return str(path.resolve()) + sep + func
    return text


class Run:
    """One run in progress: its cluster, pipeline, prober and the records it gathers."""

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
        self.config = config
        self.store = store
        if options.match:
            compile_pattern(options.match)  # a bad regex is the user's mistake: say so before any probe
        self._function_request: ProbeRequest | None = None
        if options.function and kind != "run":
            options.function = _absolute_if_file(options.function)
        elif options.function:
            options.function = _absolute_if_file(options.function)
            # Checked before any run exists: a bad target is the user's to fix (exit 2).
            self._function_request = function_request(
                options.function, options.args, ship_local_modules=options.ship_local_modules
            )
        self.options = options
        self.progress = progress
        self.ladder_arg = _absolute_if_file(ladder)
        self.ladder: Ladder = self._ladder(kind, options)
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
        #: The failure being hunted right now: --match, or (isolation) the boundary's signature.
        self.hunt: str | None = options.match
        self._hunt_of: dict[str, str | None] = {}
        self._levels: list[int] = []
        self._partial_at: float | None = None
        self._metrics: dict[str, dict[str, Any]] = {}
        #: Known once the preflight ran (settle_fingerprint); it keys the cache and the cell.
        self.fingerprint: Fingerprint | None = None
        self.reuse_note: str | None = None
        #: Who enforces each limit (see Cluster.enforcement), known once the cluster is open.
        self.enforced_by: dict[str, str] = {}
        #: Things the user should know that do not stop the run (shown even with --quiet).
        self.warnings: list[str] = []
        # Far-side work goes into the journal as it appears: what a killed process leaves is
        # cancelled and removed by the next run on this cluster (see _reap_leftovers).
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

    def _ladder(self, kind: Kind, options: SearchOptions) -> Ladder:
        """The shipped or given ladder, or a user's function with one argument scaled (--scale)."""
        if options.scale is None:
            if options.function and kind != "run":
                raise UserError(f"{kind} --function needs --scale NAME=LO..HI (or --scale NAME --values ...)")
            return load_ladder(self.ladder_arg)
        if kind not in ("sweep", "bisect") or not options.function:
            raise UserError("--scale applies to sweep and bisect with --function FILE:FUNC")
        if options.isolate:
            raise UserError("--isolate needs a ladder of dimensions; a scaled function has one argument")
        return scaled_ladder(
            options.function, options.args, options.scale, options.steps, options.values,
            ship_local_modules=options.ship_local_modules,
        )

    def ladder_label(self) -> str:
        """What the run probed, as runs, history and reports name it: the ladder, or the user's function."""
        if self._function_request is not None:
            return self._function_request.workload.name
        return self.ladder.name

    # plumbing ----------------------------------------------------------------------------
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

    def _on_record(self, record: ProbeRecord) -> None:
        self._hunt_of[record.probe_id] = self.hunt
        if self.progress is not None:
            self.progress.probe_done(record)
        # At most about once a second: the journal has every probe anyway, and rewriting a long
        # run's summary after each of hundreds of probes would cost more than the probes.
        now = time.monotonic()
        if self._partial_at is None or now - self._partial_at >= PARTIAL_EVERY_S:
            self._partial_at = now
            self._save_partial()

    def _save_partial(self) -> None:
        """Keep the summary so far, so that a run killed at any point still has a report."""
        try:
            note = f"in progress; if its process was killed, resume with: {self.resume_command()}"
            partial = self.summary("running", {"status": "running", "message": note}, self._levels, partial=True)
            self.store.save_partial(self.run_id, partial.model_dump(mode="json", by_alias=True))
        except (OSError, sqlite3.Error, JournalError) as exc:  # a report that cannot be written: go on
            self._note(f"could not save the partial report: {exc}")

    def _note(self, message: str) -> None:
        if self.progress is not None:
            self.progress.note(message)

    def metrics_of(self, workload_key: str, make: Any) -> dict[str, Any]:
        """Static metrics of a workload, measured once per run."""
        if workload_key not in self._metrics:
            try:
                self._metrics[workload_key] = measure_workload(make()).model_dump()
            except Exception as exc:  # metrics are evidence, never a reason to stop a run
                self._metrics[workload_key] = {"error": f"{type(exc).__name__}: {exc}"}
        return self._metrics[workload_key]

    def level_request(self, level: int) -> ProbeRequest:
        """A probe of one ladder level."""
        workload = self.ladder.workload(level)
        metrics = self.metrics_of(f"L{level}", lambda: workload)
        return ProbeRequest(workload=workload, level=level, spec=dict(self.ladder.level(level).values), metrics=metrics)

    def spec_request(self, spec: Mapping[str, Any]) -> ProbeRequest:
        """A probe of dimension values that may not be a level (isolation)."""
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:10]
        # A spec equal to a ladder level is that level, so its probes and cache line up.
        level = next((lv.number for lv in self.ladder.levels if dict(lv.values) == dict(spec)), None)
        workload = generate(spec, level=level, name=f"{self.ladder.name}-spec-{digest}")
        metrics = self.metrics_of(f"S{digest}", lambda: workload)
        return ProbeRequest(workload=workload, level=level, spec=dict(spec), metrics=metrics)

    def level_oracle(self, levels: Sequence[int]) -> list[Outcome]:
        """Outcomes of a batch of levels (duplicates are repeats), for the search strategies."""
        records = self.prober.run([self.level_request(n) for n in levels])
        return [_outcome(r, self.hunt) for r in records]

    def spec_oracle(self, specs: Sequence[Mapping[str, Any]]) -> list[Outcome]:
        """Outcomes of a batch of specs, for isolation."""
        records = self.prober.run([self.spec_request(s) for s in specs])
        return [_outcome(r, self.hunt) for r in records]

    def level_range(self) -> list[int]:
        """The levels between --lo/--from and --hi/--to, checked against the ladder."""
        numbers = self.ladder.numbers()
        lo = self.options.lo if self.options.lo is not None else numbers[0]
        hi = self.options.hi if self.options.hi is not None else numbers[-1]
        for bound in (lo, hi):
            if bound not in numbers:
                raise UserError(
                    f"level {bound} is not in ladder {self.ladder.name!r} (levels {numbers[0]}..{numbers[-1]})"
                )
        if lo > hi:
            raise UserError(f"the lowest level {lo} is above the highest {hi}")
        return [n for n in numbers if lo <= n <= hi]

    def preflight(self) -> None:
        """InfraError (exit 3) when the cluster cannot run probes."""
        checks = self.cluster.preflight()
        # Ask only what the chosen pipeline needs: source shipping runs without cloudpickle.
        unneeded = {"cloudpickle"} if not self.pipeline.needs_cloudpickle else set()
        for c in checks:
            if c.status == "fail" and c.name in unneeded:
                self._note(f"{c.name} not needed by the {self.pipeline.name} pipeline: {c.detail}")
        bad = [c for c in checks if c.status == "fail" and c.name not in unneeded]
        if bad:
            lines = "; ".join(f"{c.name}: {c.detail}" + (f" (fix: {c.fix})" if c.fix else "") for c in bad)
            raise InfraError(f"cluster {self.cluster.name!r} is not usable: {lines}")

    def settle_fingerprint(self) -> None:
        """Key the cache by the cluster's fingerprint, now that the preflight has seen the far side.

        Without a preflight the far side is unknown, so verdicts of other runs are not reused.
        """
        kind = type(self.pipeline)
        pipeline = {
            "name": self.pipeline.name,
            "as_given": self.pipeline_arg,
            "class": f"{kind.__module__}:{kind.__qualname__}",
        }
        self.fingerprint = fingerprint(
            self.cluster.name, self.cluster.config, self.cluster.far_side(), pipeline, __version__
        )
        self.prober.cluster_key = f"{self.cluster.name}#{self.fingerprint.digest}"
        if not self.fingerprint.checked and self.prober.use_cache:
            self.prober.use_cache = False
            self.reuse_note = "no verdict of an earlier run was reused: without the preflight the far side is unknown"
            self._note(self.reuse_note)

    def cell(self) -> Cell:
        """What this run's threshold belongs to (threshold_probe/cell.py)."""
        levels = sorted(set(self._levels))
        function = self.options.function
        function_hash = None
        scaled = isinstance(self.ladder, ScaledLadder)
        if self._function_request is not None:
            # Source, bound arguments and how siblings travel: what the probe really ran.
            function_hash = self._function_request.workload.sha256[:16]
        elif isinstance(self.ladder, ScaledLadder):
            function_hash = self.ladder.identity[:16]
        # A scaled function's ladder is its argument's values: they and the range searched are the cell.
        by_ladder = not function or scaled
        return Cell(
            cluster=self.cluster.name,
            fingerprint=self.fingerprint,
            pipeline=self.pipeline.name,
            ladder=self.ladder.name if by_ladder else None,
            ladder_hash=ladder_hash([(lv.number, lv.values) for lv in self.ladder.levels]) if by_ladder else None,
            limits=self.limits.model_dump(),
            levels=[levels[0], levels[-1]] if levels and by_ladder else None,
            function=function,
            function_hash=function_hash,
        )

    def reuse(self, records: Sequence[ProbeRecord]) -> ReuseSummary:
        """How many verdicts came from earlier runs, and from which."""
        reused = [r for r in records if r.cached_from is not None]
        runs: list[str] = []
        for r in reused:
            src = r.cached_from_run or "an earlier run"
            if src not in runs:
                runs.append(src)
        return ReuseSummary(reused=len(reused), probes=len(records), runs=sorted(runs), note=self.reuse_note)

    def check_limits(self) -> None:
        """Learn who enforces each limit; refuse a memory limit below what a bare runner needs
        there (UserError, exit 2); warn about more cores than a node has."""
        try:
            self.enforced_by = self.pipeline.enforcement(self.cluster, self.limits)
        except ProbeError as exc:  # a report without the mechanism is better than no run
            self._note(f"could not tell who enforces the limits: {exc}")
        mem = self.limits.memory_bytes
        enforced = self.enforced_by.get("memory", "RLIMIT_AS") in ("RLIMIT_AS", "cgroup", "SLURM")
        # A limit nothing enforces cannot be too low; one of a gibibyte or more never is.
        if mem is not None and enforced and mem < CHECK_BELOW_BYTES:
            floor = cached_floor(self.cluster, self.store.root)
            if floor is None and self.options.preflight:
                floor = measure_floor(self.cluster, self.store.root)
            enforcer = self.enforced_by.get("memory")
            need = floor.bytes_for(enforcer) if floor is not None else None
            if need is not None and mem < need:
                what = "peak address space" if enforcer == "RLIMIT_AS" else "peak RSS"
                raise UserError(
                    f"memory limit {format_memory(mem)} is below the floor of cluster {self.cluster.name!r}:"
                    f" a bare runner needs {format_memory(need)} there (its measured {what});"
                    f" give --memory {format_memory(need)} or more"
                )
        cores = self.limits.cores
        if cores is not None:
            try:
                cpus = self.cluster.node_cpus()
            except ProbeError:
                cpus = None
            if cpus is not None and cores > cpus:
                self._warn(
                    f"{cores} cores asked for, but a node of cluster {self.cluster.name!r} has {cpus} CPUs:"
                    " probes share them (a scheduler may refuse the job)"
                )

    def _warn(self, message: str) -> None:
        self.warnings.append(message)
        self._note(f"warning: {message}")

    # the summary -------------------------------------------------------------------------
    def summary(
        self, status: str, search: Mapping[str, Any], levels: Sequence[int], partial: bool = False
    ) -> RunSummary:
        """The RunSummary of the records so far; `partial` lists only the levels probed yet."""
        records = list(self.prober.records)
        match_of = {r.probe_id: self._hunt_of.get(r.probe_id, self.options.match) for r in records}
        rows: list[LevelRow] = []
        by_level: dict[int, list[ProbeRecord]] = {}
        for r in records:
            if r.level is not None:
                by_level.setdefault(r.level, []).append(r)
        shown = [n for n in levels if n in by_level] if partial else list(levels)
        for n in shown:
            recs = by_level.get(n, [])
            outcomes = [_outcome(r, match_of[r.probe_id]) for r in recs]
            decided = [o for o in outcomes if o != "skip"]
            summary: str | None = None
            if recs:
                if not decided:
                    summary = "skip"
                elif all(o == "good" for o in decided):
                    summary = "good"
                elif all(o == "bad" for o in decided):
                    summary = "bad"
                else:
                    summary = "flaky"
            fail = next((r for r in recs if r.verdict.status == "fail"), None)
            rows.append(
                LevelRow(
                    level=n,
                    metrics=self.metrics_of(f"L{n}", lambda n=n: self.ladder.workload(n)),
                    summary=summary,
                    pass_rate=(sum(o == "good" for o in decided) / len(decided)) if decided else None,
                    probes=len(recs),
                    failure_class=fail.verdict.failure_class if fail else None,
                )
            )
        first_fail = search.get("first_fail")
        hunted = [r for r in records if r.verdict.status == "fail" and _outcome(r, match_of[r.probe_id]) == "bad"]
        at_boundary = [r for r in hunted if first_fail is None or r.level == first_fail]
        message = search.get("message", "")
        different = different_failures_text(records, match_of)
        if different and not partial:
            message = f"{message}; {different}" if message else different
        return RunSummary(
            run_id=self.run_id,
            kind=self.kind,
            status=status,
            cluster=self.cluster.name,
            pipeline=self.pipeline.name,
            ladder=self.ladder_label(),
            limits=self.limits.model_dump(),
            limits_enforced_by=dict(self.enforced_by),
            warnings=list(self.warnings),
            versions=versions(),
            cluster_info=self.cluster.describe(),
            started_at=self.started_at,
            finished_at=time.time(),
            search_status=search.get("status"),
            message=message,
            last_pass=search.get("last_pass"),
            first_fail=first_fail,
            flaky_band=list(search["flaky_band"]) if search.get("flaky_band") else None,
            search_probes=search.get("search_probes"),
            confirm_probes=search.get("confirm_probes"),
            failure=_failure_summary(at_boundary or hunted),
            levels=rows,
            probes=[probe_summary(r, match_of[r.probe_id]) for r in records],
            isolate=search.get("isolate"),
            scale=self._scale_summary(search),
            params=self.params(),
            reports_dir=str(self.store.run_dir(self.run_id)),
            cell=self.cell().model_dump(mode="json"),
            reuse=self.reuse(records),
        )

    def _scale_summary(self, search: Mapping[str, Any]) -> ScaleSummary | None:
        ladder = self.ladder
        if not isinstance(ladder, ScaledLadder):
            return None

        def value(level: Any) -> Any:
            return ladder.level(int(level)).values[ladder.arg_name] if level is not None else None

        return ScaleSummary(
            name=ladder.arg_name,
            values=list(ladder.values),
            first_fail_value=value(search.get("first_fail")),
            last_pass_value=value(search.get("last_pass")),
        )

    def _scaled_message(self, result: dict[str, Any]) -> None:
        """A scaled function's answer in its own terms: values of its argument, not level numbers."""
        ladder = self.ladder
        if not isinstance(ladder, ScaledLadder):
            return
        func = (self.options.function or "").rpartition(":")[2]
        first, last = result.get("first_fail"), result.get("last_pass")
        if result.get("status") in ("found", "swept") and first is not None:
            cls = next(
                (r.verdict.failure_class for r in self.prober.records if r.level == first and r.verdict.failure_class),
                None,
            )
            where = f"{cls} on {self.cluster.name}" if cls else self.cluster.name
            text = f"{func} fails from {ladder.value_text(first)} ({where})"
            if last is not None:
                text += f"; {ladder.value_text(last)} passes"
            result["message"] = text
        elif result.get("status") in ("lowest_fails",):
            result["message"] = f"{func} already fails at the lowest value, {ladder.value_text(ladder.numbers()[0])}"
        elif result.get("status") == "highest_passes":
            result["message"] = f"{func} passes up to {ladder.value_text(ladder.numbers()[-1])}: no failure found"

    # the searches ------------------------------------------------------------------------
    def _search(self) -> dict[str, Any]:
        opts = self.options
        repeat = max(1, opts.repeat)
        if self.kind == "run" and self._function_request is not None:
            req = self._function_request
            if self.progress:
                self.progress.begin(f"probing {opts.function}", repeat)
            records = self.prober.run([req] * repeat)
            outcomes = [_outcome(r, self.hunt) for r in records]
            status = _overall(outcomes)
            message = f"{opts.function}: {status}"
            if repeat > 1:
                message += f", {pass_rate_text(outcomes)}"
            if status == "flaky":
                message += ": the function fails at random, not at a threshold"
            return {"status": status, "message": message}
        if self.kind == "run":
            level = opts.level if opts.level is not None else self.ladder.numbers()[0]
            self.ladder.level(level)
            self._levels = [level]
            if self.progress:
                self.progress.begin(f"probing level {level}", repeat)
            outcomes = self.level_oracle([level] * repeat)
            status = _overall(outcomes)
            message = f"level {level}: {status}"
            if repeat > 1:
                message += f", {pass_rate_text(outcomes)}"
            return {
                "status": status,
                "message": message,
                "last_pass": level if status == "pass" else None,
                "first_fail": level if status == "fail" else None,
            }
        if self.kind == "isolate":
            good, bad = self._boundary_from_run()
            self._levels = [good, bad]
            iso = self._isolate(good, bad)
            return {
                "status": iso["status"],
                "message": iso["message"],
                "last_pass": good,
                "first_fail": bad,
                "isolate": iso,
            }
        levels = self.level_range()
        self._levels = levels
        if self.kind == "sweep":
            if self.progress:
                self.progress.begin(f"sweeping levels {levels[0]}..{levels[-1]}", len(levels) * repeat)
            batch = len(levels) if self.cluster.concurrent else max(1, opts.parallel)
            sres = sweep(levels, self.level_oracle, repeat=repeat, batch=batch)
            swept = self._tested_boundary(
                levels,
                {
                    "status": sres.status,
                    "message": sres.message,
                    "last_pass": sres.last_good,
                    "first_fail": sres.first_bad,
                    "flaky_band": sres.flaky_band,
                },
            )
            self._scaled_message(swept)
            return swept
        if self.progress:
            self.progress.begin(f"bisecting levels {levels[0]}..{levels[-1]}", None)
        bres = bisect(
            levels,
            self.level_oracle,
            parallel=max(1, opts.parallel),
            repeat=repeat,
            confirm=opts.confirm,
        )
        result: dict[str, Any] = self._tested_boundary(
            levels,
            {
                "status": bres.status,
                "message": bres.message,
                "last_pass": bres.last_good,
                "first_fail": bres.first_bad,
                "flaky_band": bres.flaky_band,
                "search_probes": bres.search_probes,
                "confirm_probes": bres.confirm_probes,
            },
        )
        self._scaled_message(result)
        if opts.isolate:
            if bres.status == "found" and bres.last_good is not None and bres.first_bad is not None:
                if self.hunt is None:
                    # Isolate the failure the bisect found, not whatever else a changed dimension causes.
                    self.hunt = self._boundary_signature(bres.first_bad)
                iso = self._isolate(bres.last_good, bres.first_bad)
                result["isolate"] = iso
                result["message"] = f"{bres.message}. {iso['message']}"
            else:
                result["message"] = f"{bres.message}; no clean boundary, so nothing to isolate"
        return result

    def _tested_boundary(self, levels: Sequence[int], result: dict[str, Any]) -> dict[str, Any]:
        """Drop a boundary that rests on untested levels, and name what kept them untested.

        An inconclusive search brackets the threshold between a pass and a failure with
        untested levels between them; "the lowest level fails" with untested levels below it
        is no more certain. Neither is a threshold, so neither goes into the journal or history.
        """
        status = result["status"]
        untested_below = status == "lowest_fails" and result.get("first_fail") != min(levels)
        if status != "inconclusive" and not untested_below:
            return result
        causes = _skip_causes(self.prober.records)
        if causes:
            result["message"] = f"{result['message']} ({causes})"
        result["last_pass"] = result["first_fail"] = None
        return result

    def _boundary_signature(self, level: int) -> str | None:
        for r in self.prober.records:
            if r.level == level and r.verdict.status == "fail" and r.verdict.signature:
                return r.verdict.signature
        return None

    def _boundary_from_run(self) -> tuple[int, int]:
        src = self.store.get_run(self.options.from_run)
        s = src.summary or {}
        good, bad = s.get("last_pass"), s.get("first_fail")
        if good is None or bad is None:
            raise UserError(
                f"run {src.run_id} has no boundary to isolate (last pass {good}, first fail {bad}):"
                " run `probe bisect` first"
            )
        for level in (good, bad):
            self.ladder.level(int(level))
        return int(good), int(bad)

    def _isolate(self, good: int, bad: int) -> dict[str, Any]:
        good_spec = dict(self.ladder.level(good).values)
        bad_spec = dict(self.ladder.level(bad).values)
        hunting = f", hunting {self.hunt}" if self.hunt else ""
        self._note(f"isolating the dimensions that differ between level {good} and level {bad}{hunting}")
        units = {name: dim.unit for name, dim in DIMENSIONS.items() if dim.unit}
        res = isolate(
            good_spec,
            bad_spec,
            self.spec_oracle,
            parallel=max(1, self.options.parallel),
            repeat=max(1, self.options.repeat),
            confirm=self.options.confirm,
            units=units,
        )
        out = res.to_dict()
        # The report shows drivers and per-dimension findings (render.common.isolate_dimensions).
        out.update(good_level=good, bad_level=bad, hunted=self.hunt)
        return out

    def _lost(self, cause: str) -> InfraError:
        """End the run as interrupted because its cluster is lost; the error to raise (exit 3).

        The probe in flight has no verdict (it runs again on resume) and no boundary is stored:
        the message says what is known so far instead.
        """
        self.cluster.cancel_all()
        self.store.cancel_unfinished(self.run_id)
        cause = " ".join(cause.split())  # one line, whatever the far side said
        message = f"run {self.run_id} interrupted: {cause}; {self._so_far()}"
        if self.kind != "run":
            message += f"; resume with: {self.resume_command()}"
        partial = self.summary("interrupted", {"status": "interrupted", "message": message}, self._levels)
        self.store.finish_run(self.run_id, "interrupted", partial.model_dump(mode="json", by_alias=True))
        return InfraError(message)

    def _so_far(self) -> str:
        """What the probes so far say about the boundary, claiming nothing that was not tested."""
        if self.kind not in ("sweep", "bisect") or not self._levels:
            return "no answer yet"
        order = sorted(set(self._levels))
        data: dict[int, LevelOutcomes] = {}
        for r in self.prober.records:
            if r.level is not None and r.level in order:
                hunt = self._hunt_of.get(r.probe_id, self.options.match)
                data.setdefault(r.level, LevelOutcomes(r.level)).outcomes.append(_outcome(r, hunt))
        v = judge(order, data)
        good, bad = v.last_good, v.first_bad
        if v.status == "flaky":
            return f"so far {v.message}"
        if good is not None and bad is not None:
            between = [n for n in order if good < n < bad]
            if not between:
                return f"so far level {good} passes and level {bad} fails (not yet confirmed)"
            return f"undecided between levels {good} and {bad}: {describe_levels(between)} not tested yet"
        if good is not None:
            return f"no failure up to level {good} so far"
        if bad is not None:
            return f"level {bad} fails, and no level below it was tested"
        return "no level decided yet"

    def _end_with_error(self, exc: BaseException) -> None:
        """Journal the run as ended by an error (the error itself is raised by the caller)."""
        self.cluster.cancel_all()
        self.store.cancel_unfinished(self.run_id)
        try:
            failed = {"status": "error", "message": f"{type(exc).__name__}: {exc}"}
            err = self.summary("error", failed, self._levels)
            self.store.finish_run(self.run_id, "error", err.model_dump(mode="json", by_alias=True))
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

    def _reap_leftovers(self, leftovers: Mapping[str, Sequence[RemoteWork]]) -> None:
        """Cancel and remove what dead processes left on this cluster, as the journal recorded it.

        This run's own leftovers (a resumed run: jobs of the process that was killed) come first,
        so that no job of the old process runs beside a new one. Leftovers of other runs are
        reaped only while their lock is held here, so a run that is alive is never touched.
        """
        for run_id, works in leftovers.items():
            lock = None
            if run_id != self.run_id:
                got = self.store.try_own_run(run_id)
                if not isinstance(got, RunLock):
                    continue  # alive: its work is its own
                lock = got
            try:
                for work, line in self.cluster.reap(works):
                    self.store.record_remote(run_id, self.cluster.name, work.model_copy(update={"state": "done"}))
                    whose = "this run's stopped process" if run_id == self.run_id else f"stopped run {run_id}"
                    self._note(f"left by {whose}: {line}")
            finally:
                if lock is not None:
                    lock.release()

    def _execute(self) -> RunSummary:
        """Run the search to the end; journal and write run.json whatever happens.

        SIGINT/SIGTERM (Interrupted) cancel what runs on the cluster, mark the probe in flight
        cancelled and end the run as 'interrupted'; the Interrupted raised again names the
        run and the command that resumes it.
        """
        self.store.start_run(
            RunInfo(
                run_id=self.run_id,
                kind=self.kind,
                cluster=self.cluster.name,
                pipeline=self.pipeline.name,
                ladder=self.ladder_label(),
                status="running",
                started_at=self.started_at,
                params=self.params(),
            )
        )
        if self.resuming:
            cancelled = self.store.cancel_unfinished(self.run_id)
            done = len(self.store.probes(self.run_id))
            note = f"resuming run {self.run_id}: {done} finished probe{'s' if done != 1 else ''} come from the journal"
            if cancelled:
                note += f"; {cancelled} probe{'s' if cancelled != 1 else ''} in flight when it stopped will run again"
            self._note(note)
        try:
            if not self.resuming:
                self._save_partial()  # a run killed before its first probe still has a report
            # Read before open(): the session this process opens is its own, not a leftover.
            leftovers = self.store.remote_leftovers(self.cluster.name)
            try:
                self.cluster.open()
            except InfraError as exc:
                raise InfraError(f"cluster {self.cluster.name!r}: {exc}") from None
            try:
                self._reap_leftovers(leftovers)
                if self.options.preflight:
                    self.preflight()
                self.settle_fingerprint()
                self.check_limits()
                search = self._search()
            except BaseException:
                # Cancel remote work while the connection is still open (Ctrl-C, SIGTERM, errors).
                self.cluster.cancel_all()
                raise
            finally:
                self.cluster.close()
        except (KeyboardInterrupt, Interrupted) as exc:
            self.cluster.cancel_all()
            self.store.cancel_unfinished(self.run_id)
            signum = exc.exit_code - 128 if isinstance(exc, Interrupted) else int(signal.SIGINT)
            how = _signal_name(signum)
            if self.kind == "run":
                message = f"run {self.run_id} interrupted by {how}"
            else:
                message = f"run {self.run_id} interrupted by {how}; resume with: {self.resume_command()}"
            partial = self.summary("interrupted", {"status": "interrupted", "message": message}, self._levels)
            self.store.finish_run(self.run_id, "interrupted", partial.model_dump(mode="json", by_alias=True))
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
        summary = self.summary("completed", search, self._levels)
        self.store.finish_run(self.run_id, "completed", summary.model_dump(mode="json", by_alias=True))
        return summary


def _execute_logged(run: Run) -> RunSummary:
    """Run.execute with what libraries log (paramiko's connection errors) kept in the run's
    run.log, not printed on the terminal."""
    with run_log(run.store.run_dir(run.run_id) / "run.log"):
        return run.execute()


def _skip_causes(records: Sequence[ProbeRecord]) -> str:
    """The infrastructure trouble behind skipped probes, most frequent first: 'a; b', or ''."""
    counts: dict[str, int] = {}
    for r in records:
        cause = r.observation.job.infra_error if r.verdict.status == "skip" else None
        if cause:
            counts[cause] = counts.get(cause, 0) + 1
    top = sorted(counts, key=lambda c: -counts[c])[:2]
    return "; ".join(top)


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"


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
    """Run one search and return its summary (also written to the journal and run.json).

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
    return _execute_logged(run)


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
    if run_id in (None, "latest"):
        candidates = [r for r in store.runs(kind=kind) if r.status != "completed"]
        if not candidates:
            what = f"{kind} run" if kind else "run"
            raise UserError(f"no interrupted {what} to resume: `probe runs` lists them")
        info = candidates[0]
    else:
        info = store.get_run(run_id)
    p = info.params
    # Whether another process runs it is settled atomically when the run is owned (Run.execute).
    if kind is not None and p.get("kind") != kind:
        raise UserError(
            f"run {info.run_id} is a {p.get('kind')} run, not a {kind}: resume it with probe {p.get('kind')}"
        )
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
    return _execute_logged(run)


def display_status(info: RunInfo, store: Store) -> str:
    """A run's status as a user should read it: a 'running' run that no process owns any more
    (killed with -9, or the machine rebooted) is 'stopped', and resumable."""
    if info.status == "running" and store.run_owner(info.run_id) is None:
        return "stopped"
    return info.status


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
    """`probe isolate [RUN_ID]`: isolate the dimensions behind a bisect's boundary.

    What is not given comes from the source run: its cluster, pipeline, ladder and limits; and,
    without --match, the signature of the failure it found, so that a dimension which causes some
    other failure is not taken for a driver.
    """
    src = bisect_to_isolate(store, run_id)
    params = src.params
    given = overrides or LimitOverrides()
    theirs = params.get("overrides", {})
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
