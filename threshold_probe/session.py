"""A run: one command's search over a ladder, through one pipeline, on one cluster.

This is the glue between the parts: it loads the ladder, opens the cluster, runs the preflight,
turns verdicts into the outcomes a search strategy understands, journals every probe and
builds the RunSummary that every report renders.
"""

from __future__ import annotations

import hashlib
import json
import platform
import time
from pathlib import Path
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal, Protocol

import cloudpickle

from threshold_probe import __version__
from threshold_probe.clusters import make_cluster
from threshold_probe.clusters.base import Cluster
from threshold_probe.config import ProbeConfig
from threshold_probe.errors import InfraError, Interrupted, UserError
from threshold_probe.ladder import Ladder, Workload, generate, load_ladder
from threshold_probe.metrics import measure_workload
from threshold_probe.models import Limits, ProbeRecord
from threshold_probe.pipelines import make_pipeline
from threshold_probe.probe import Prober, ProbeRequest
from threshold_probe.search import Outcome, bisect, sweep
from threshold_probe.signature import matches
from threshold_probe.store import RunInfo, Store
from threshold_probe.summary import FailureSummary, LevelRow, ProbeSummary, RunSummary
from threshold_probe.units import parse_duration, parse_memory

Kind = Literal["run", "sweep", "bisect", "isolate"]


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
    return Limits(
        memory_bytes=parse_memory(overrides.memory) if overrides.memory else base.memory_bytes,
        time_s=parse_duration(overrides.time) if overrides.time else base.time_s,
        cores=overrides.cores if overrides.cores else base.cores,
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
    )


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
    ) -> None:
        self.kind = kind
        self.config = config
        self.store = store
        self.options = options
        self.progress = progress
        self.ladder = load_ladder(ladder)
        self.ladder_arg = ladder
        if overrides.partition:
            config = with_partition(config, cluster, overrides.partition)
        self.limits = effective_limits(config, cluster, overrides)
        self.cluster: Cluster = make_cluster(cluster, config)
        self.pipeline = make_pipeline(pipeline)
        self.overrides = overrides
        self.resuming = run_id is not None
        self.run_id = run_id or store.new_run_id(kind)
        self.started_at = time.time()
        self._metrics: dict[str, dict[str, Any]] = {}
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
        return {
            "kind": self.kind,
            "cluster": self.cluster.name,
            "pipeline": self.pipeline.name,
            "ladder": self.ladder_arg,
            "overrides": asdict(self.overrides),
            "options": asdict(self.options),
        }

    def _on_record(self, record: ProbeRecord) -> None:
        if self.progress is not None:
            self.progress.probe_done(record)

    def _note(self, message: str) -> None:
        if self.progress is not None:
            self.progress.note(message)

    def metrics_of(self, workload_key: str, make: Any) -> dict[str, Any]:
        if workload_key not in self._metrics:
            try:
                self._metrics[workload_key] = measure_workload(make()).model_dump()
            except Exception as exc:  # metrics are evidence, never a reason to stop a run
                self._metrics[workload_key] = {"error": f"{type(exc).__name__}: {exc}"}
        return self._metrics[workload_key]

    def level_request(self, level: int) -> ProbeRequest:
        workload = self.ladder.workload(level)
        metrics = self.metrics_of(f"L{level}", lambda: workload)
        return ProbeRequest(workload=workload, level=level, spec=dict(self.ladder.level(level).values), metrics=metrics)

    def spec_request(self, spec: Mapping[str, Any]) -> ProbeRequest:
        digest = hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:10]
        # A spec equal to a ladder level is that level, so its probes and cache line up.
        level = next((lv.number for lv in self.ladder.levels if dict(lv.values) == dict(spec)), None)
        workload = generate(spec, level=level, name=f"{self.ladder.name}-spec-{digest}")
        metrics = self.metrics_of(f"S{digest}", lambda: workload)
        return ProbeRequest(workload=workload, level=level, spec=dict(spec), metrics=metrics)

    def level_oracle(self, levels: Sequence[int]) -> list[Outcome]:
        records = self.prober.run([self.level_request(n) for n in levels])
        return [_outcome(r, self.options.match) for r in records]

    def spec_oracle(self, specs: Sequence[Mapping[str, Any]]) -> list[Outcome]:
        records = self.prober.run([self.spec_request(s) for s in specs])
        return [_outcome(r, self.options.match) for r in records]

    def level_range(self) -> list[int]:
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
        checks = self.cluster.preflight()
        bad = [c for c in checks if c.status == "fail"]
        if bad:
            lines = "; ".join(f"{c.name}: {c.detail}" + (f" (fix: {c.fix})" if c.fix else "") for c in bad)
            raise InfraError(f"cluster {self.cluster.name!r} is not usable: {lines}")

    # the summary -------------------------------------------------------------------------
    def summary(self, status: str, search: Mapping[str, Any], levels: Sequence[int]) -> RunSummary:
        records = self.prober.records
        rows: list[LevelRow] = []
        by_level: dict[int, list[ProbeRecord]] = {}
        for r in records:
            if r.level is not None:
                by_level.setdefault(r.level, []).append(r)
        for n in levels:
            recs = by_level.get(n, [])
            outcomes = [_outcome(r, self.options.match) for r in recs]
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
                    summary=summary,  # type: ignore[arg-type]
                    pass_rate=(sum(o == "good" for o in decided) / len(decided)) if decided else None,
                    probes=len(recs),
                    failure_class=fail.verdict.failure_class if fail else None,
                )
            )
        first_fail = search.get("first_fail")
        hunted = [
            r
            for r in records
            if r.verdict.status == "fail" and _outcome(r, self.options.match) == "bad"
            and (first_fail is None or r.level == first_fail)
        ]
        if not hunted:
            hunted = [r for r in records if r.verdict.status == "fail" and _outcome(r, self.options.match) == "bad"]
        return RunSummary(
            run_id=self.run_id,
            kind=self.kind,
            status=status,  # type: ignore[arg-type]
            cluster=self.cluster.name,
            pipeline=self.pipeline.name,
            ladder=self.ladder.name,
            limits=self.limits.model_dump(),
            versions=versions(),
            cluster_info=self.cluster.describe(),
            started_at=self.started_at,
            finished_at=time.time(),
            search_status=search.get("status"),
            message=search.get("message", ""),
            last_pass=search.get("last_pass"),
            first_fail=first_fail,
            flaky_band=list(search["flaky_band"]) if search.get("flaky_band") else None,
            failure=_failure_summary(hunted),
            levels=rows,
            probes=[probe_summary(r, self.options.match) for r in records],
            isolate=search.get("isolate"),
            params=self.params(),
            reports_dir=str(self.store.run_dir(self.run_id)),
        )

    # the searches ------------------------------------------------------------------------
    def _search(self) -> tuple[dict[str, Any], list[int]]:
        opts = self.options
        if self.kind == "run" and opts.function:
            req = function_request(opts.function)
            if self.progress:
                self.progress.begin(f"probing {opts.function}", opts.repeat)
            records = self.prober.run([req] * max(1, opts.repeat))
            statuses = {r.verdict.status for r in records}
            status = statuses.pop() if len(statuses) == 1 else "flaky"
            return {"status": status, "message": f"{opts.function}: {status}"}, []
        if self.kind == "run":
            level = opts.level if opts.level is not None else self.ladder.numbers()[0]
            self.ladder.level(level)
            if self.progress:
                self.progress.begin(f"probing level {level}", opts.repeat)
            outcomes = self.level_oracle([level] * max(1, opts.repeat))
            good = all(o == "good" for o in outcomes)
            bad = all(o == "bad" for o in outcomes)
            status = "pass" if good else "fail" if bad else "skip" if all(o == "skip" for o in outcomes) else "flaky"
            return {
                "status": status,
                "message": f"level {level}: {status}",
                "last_pass": level if good else None,
                "first_fail": level if bad else None,
            }, [level]
        levels = self.level_range()
        if self.kind == "sweep":
            if self.progress:
                self.progress.begin(f"sweeping levels {levels[0]}..{levels[-1]}", len(levels) * opts.repeat)
            batch = len(levels) if self.cluster.concurrent else max(1, opts.parallel)
            sres = sweep(levels, self.level_oracle, repeat=opts.repeat, batch=batch)
            return {
                "status": sres.status,
                "message": sres.message,
                "last_pass": sres.last_good,
                "first_fail": sres.first_bad,
                "flaky_band": sres.flaky_band,
            }, levels
        if self.kind == "bisect":
            if self.progress:
                self.progress.begin(f"bisecting levels {levels[0]}..{levels[-1]}", None)
            bres = bisect(
                levels,
                self.level_oracle,
                parallel=max(1, opts.parallel),
                repeat=opts.repeat,
                confirm=opts.confirm,
            )
            result: dict[str, Any] = {
                "status": bres.status,
                "message": bres.message,
                "last_pass": bres.last_good,
                "first_fail": bres.first_bad,
                "flaky_band": bres.flaky_band,
            }
            if opts.isolate and bres.status == "found" and bres.last_good is not None and bres.first_bad is not None:
                result["isolate"] = self._isolate(bres.last_good, bres.first_bad)
                result["message"] = f"{bres.message}. {result['isolate']['message']}"
            return result, levels
        # isolate from an earlier run's boundary
        good, bad = self._boundary_from_run()
        iso = self._isolate(good, bad)
        return {
            "status": "isolated",
            "message": iso["message"],
            "last_pass": good,
            "first_fail": bad,
            "isolate": iso,
        }, [good, bad]

    def _boundary_from_run(self) -> tuple[int, int]:
        src = self.store.get_run(self.options.from_run)
        s = src.summary or {}
        good, bad = s.get("last_pass"), s.get("first_fail")
        if good is None or bad is None:
            raise UserError(
                f"run {src.run_id} has no boundary to isolate (last pass {good}, first fail {bad}):"
                " run `probe bisect` first"
            )
        return int(good), int(bad)

    def _isolate(self, good: int, bad: int) -> dict[str, Any]:
        good_spec = dict(self.ladder.level(good).values)
        bad_spec = dict(self.ladder.level(bad).values)
        if self.progress:
            self.progress.note(f"isolating the dimensions between level {good} and level {bad}")
        from threshold_probe.search import isolate

        res = isolate(good_spec, bad_spec, self.spec_oracle, parallel=max(1, self.options.parallel))
        findings = [asdict(f) for f in res.findings]
        return {
            "good_level": good,
            "bad_level": bad,
            "drivers": list(res.drivers),
            "findings": findings,
            "message": res.message,
        }

    def execute(self) -> RunSummary:
        """Run the search to the end; journal and write run.json whatever happens."""
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
        levels: list[int] = []
        try:
            with self.cluster:
                if self.options.preflight:
                    self.preflight()
                search, levels = self._search()
        except (KeyboardInterrupt, Interrupted) as exc:
            self.cluster.cancel_all()
            signum = exc.exit_code - 128 if isinstance(exc, Interrupted) else 2
            partial = self.summary("interrupted", {"status": "interrupted", "message": "interrupted"}, levels)
            self.store.finish_run(self.run_id, "interrupted", partial.model_dump(mode="json", by_alias=True))
            raise Interrupted(
                f"run {self.run_id} interrupted; resume with: probe {self.kind} --resume {self.run_id}", signum
            ) from None
        except BaseException as exc:
            self.cluster.cancel_all()
            err = self.summary("error", {"status": "error", "message": f"{type(exc).__name__}: {exc}"}, levels)
            self.store.finish_run(self.run_id, "error", err.model_dump(mode="json", by_alias=True))
            raise
        finally:
            if self.progress:
                self.progress.end()
        summary = self.summary("completed", search, levels)
        self.store.finish_run(self.run_id, "completed", summary.model_dump(mode="json", by_alias=True))
        return summary


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
) -> RunSummary:
    """Run one search and return its summary (also written to the journal and run.json)."""
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
    )
    return run.execute()


def resume_search(
    run_id: str | None, *, config: ProbeConfig, store: Store, progress: ProgressSink | None = None,
    kind: Kind | None = None,
) -> RunSummary:
    """Continue an interrupted run: finished probes come from the journal, the rest are dispatched."""
    if run_id in (None, "latest"):
        candidates = [r for r in store.runs(kind=kind) if r.status != "completed"]
        if not candidates:
            what = f"{kind} run" if kind else "run"
            raise UserError(f"no interrupted {what} to resume: `probe runs` lists them")
        info = candidates[0]
    else:
        info = store.get_run(run_id)
    p = info.params
    if kind is not None and p.get("kind") != kind:
        raise UserError(f"run {info.run_id} is a {p.get('kind')} run, not a {kind}: resume it with probe {p.get('kind')}")
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
    )
    return run.execute()
