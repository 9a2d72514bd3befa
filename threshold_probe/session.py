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
from threshold_probe.clusters import make_cluster
from threshold_probe.clusters.base import Cluster
from threshold_probe.config import ProbeConfig
from threshold_probe.errors import InfraError, Interrupted, ProbeError, UserError
from threshold_probe.floor import CHECK_BELOW_BYTES, cached_floor, measure_floor
from threshold_probe.ladder import Ladder, Workload, generate, load_ladder
from threshold_probe.ladder.dimensions import DIMENSIONS
from threshold_probe.metrics import measure_workload
from threshold_probe.models import Limits, ProbeRecord
from threshold_probe.pipelines import make_pipeline
from threshold_probe.probe import Prober, ProbeRequest
from threshold_probe.search import Outcome, bisect, isolate, sweep
from threshold_probe.search.base import describe_levels
from threshold_probe.signature import compile_pattern, matches
from threshold_probe.store import RunInfo, Store
from threshold_probe.summary import FailureSummary, LevelRow, ProbeSummary, RunSummary
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
    #: `probe run --function FILE:FUNC`: probe a user's own zero-argument function.
    function: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)


class ProgressSink(Protocol):
    """Where a run reports progress (the CLI shows a Rich progress bar)."""

    def begin(self, description: str, total: int | None) -> None: ...

    def probe_done(self, record: ProbeRecord) -> None: ...

    def note(self, message: str) -> None: ...

    def end(self) -> None: ...


def effective_limits(config: ProbeConfig, cluster: str, overrides: LimitOverrides) -> Limits:
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


def function_request(target: str) -> ProbeRequest:
    """A probe request for a user's own function, given as FILE:FUNC (FUNC may be Class.method)."""
    path_text, sep, func = target.rpartition(":")
    if not sep or not func:
        raise UserError(f"--function wants FILE:FUNC, got {target!r}")
    path = Path(path_text)
    try:
        source = path.read_text()
    except FileNotFoundError:
        raise UserError(f"file not found: {path}") from None
    except OSError as exc:
        raise UserError(f"cannot read {path}: {exc.strerror}") from None
    try:
        compile(source, str(path), "exec")
    except SyntaxError as exc:
        raise UserError(f"{path}:{exc.lineno}: syntax error: {exc.msg}") from None
    workload = Workload(name=f"{path.name}:{func}", source=source, func_name=func.split(".")[0], accessor=func)
    try:
        metrics = measure_workload(workload).model_dump()
    except Exception as exc:  # the probe itself will show why the function cannot load
        metrics = {"error": f"{type(exc).__name__}: {exc}"}
    return ProbeRequest(workload=workload, level=None, spec={"function": target}, metrics=metrics)


def with_partition(config: ProbeConfig, cluster: str, partition: str) -> ProbeConfig:
    """The config with one SLURM cluster's partition replaced (--partition)."""
    cfg = config.cluster(cluster)
    if cfg.type != "slurm":
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
        if options.function:
            options.function = _absolute_if_file(options.function)
        self.options = options
        self.progress = progress
        self.ladder_arg = _absolute_if_file(ladder)
        self.ladder = load_ladder(self.ladder_arg)
        if overrides.partition:
            config = with_partition(config, cluster, overrides.partition)
        self.limits = effective_limits(config, cluster, overrides)
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
        #: Who enforces each limit (see Cluster.enforcement), known once the cluster is open.
        self.enforced_by: dict[str, str] = {}
        #: Things the user should know that do not stop the run (shown even with --quiet).
        self.warnings: list[str] = []
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
        except (OSError, sqlite3.Error) as exc:  # a report that cannot be written must not stop the search
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
        bad = [c for c in checks if c.status == "fail"]
        if bad:
            lines = "; ".join(f"{c.name}: {c.detail}" + (f" (fix: {c.fix})" if c.fix else "") for c in bad)
            raise InfraError(f"cluster {self.cluster.name!r} is not usable: {lines}")

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
            ladder=self.ladder.name,
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
            params=self.params(),
            reports_dir=str(self.store.run_dir(self.run_id)),
        )

    # the searches ------------------------------------------------------------------------
    def _search(self) -> dict[str, Any]:
        opts = self.options
        repeat = max(1, opts.repeat)
        if self.kind == "run" and opts.function:
            req = function_request(opts.function)
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
            return {
                "status": sres.status,
                "message": sres.message,
                "last_pass": sres.last_good,
                "first_fail": sres.first_bad,
                "flaky_band": sres.flaky_band,
            }
        if self.progress:
            self.progress.begin(f"bisecting levels {levels[0]}..{levels[-1]}", None)
        bres = bisect(
            levels,
            self.level_oracle,
            parallel=max(1, opts.parallel),
            repeat=repeat,
            confirm=opts.confirm,
        )
        result: dict[str, Any] = {
            "status": bres.status,
            "message": bres.message,
            "last_pass": bres.last_good,
            "first_fail": bres.first_bad,
            "flaky_band": bres.flaky_band,
            "search_probes": bres.search_probes,
            "confirm_probes": bres.confirm_probes,
        }
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

    def execute(self) -> RunSummary:
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
                ladder=self.ladder.name,
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
            try:
                self.cluster.open()
            except InfraError as exc:
                raise InfraError(f"cluster {self.cluster.name!r}: {exc}") from None
            try:
                if self.options.preflight:
                    self.preflight()
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
        except BaseException as exc:
            self.cluster.cancel_all()
            self.store.cancel_unfinished(self.run_id)
            try:
                failed = {"status": "error", "message": f"{type(exc).__name__}: {exc}"}
                err = self.summary("error", failed, self._levels)
                self.store.finish_run(self.run_id, "error", err.model_dump(mode="json", by_alias=True))
            except Exception:  # the original error matters more than a report of it
                self.store.set_run_status(self.run_id, "error")
            raise
        finally:
            if self.progress:
                self.progress.end()
        summary = self.summary("completed", search, self._levels)
        self.store.finish_run(self.run_id, "completed", summary.model_dump(mode="json", by_alias=True))
        return summary


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
    return run.execute()


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
    alive = _still_running(info)
    if alive is not None:
        raise UserError(
            f"run {info.run_id} is still running (process {alive} on this host): stop it first,"
            " then resume it"
        )
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
    return run.execute()


def _still_running(info: RunInfo) -> int | None:
    """The pid of the probe process that still runs this run on this host, or None.

    Two processes on one run would dispatch the same probes twice. A killed run keeps status
    'running', so the owner's pid is checked, and only counted when it is still a probe process.
    """
    owner = info.params.get("owner") or {}
    pid = owner.get("pid")
    if info.status != "running" or owner.get("host") != socket.gethostname() or not isinstance(pid, int):
        return None
    if pid == os.getpid():
        return None
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:  # gone (or no /proc here)
        return None
    args = [Path(a.decode(errors="replace")).name for a in cmdline.split(b"\0")[:2]]
    return pid if b"threshold_probe" in cmdline or "probe" in args else None


def display_status(info: RunInfo) -> str:
    """A run's status as a user should read it: a 'running' run whose probe process on this
    host is gone (killed with -9, or the machine rebooted) is 'stopped', and resumable."""
    owner = info.params.get("owner") or {}
    if info.status == "running" and owner.get("host") == socket.gethostname() and _still_running(info) is None:
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
