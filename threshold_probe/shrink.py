"""Shrink a failing function to a minimal reproducer, every candidate probed for real.

A shrink starts from a recorded failure (a run's level, by default its first failing one) or
from a user's function (FILE:FUNC with its arguments). It probes the original once to see that
it still fails the same way, then reduces the module source (threshold_probe/reduce.py) while
every candidate keeps:

- the **signature** of the failure (an OOM never turns into a NameError), on the same cluster,
  through the same pipeline, under the same limits;
- and, when the pipeline fails where ``native`` passes, the **difference**: each candidate must
  also pass through ``native`` on that cluster. Without it a reducer could delete a helper's
  definition and keep "name 'scaled_2' is not defined" for the wrong reason.

Candidates that cannot be the failure are rejected without a probe: one that does not compile,
one that no longer defines the function, or one that lost a name the failure message quotes.
Every probe is journalled like any run's (kind ``shrink``), so an interrupted shrink resumes:
the reducers are deterministic, the journal answers every question already asked, and only the
rest is dispatched. Verdicts of earlier runs of the same source are reused unless ``fresh``.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import re
import signal
import socket
import time
import warnings
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from pydantic import BaseModel, Field

from threshold_probe import __version__
from threshold_probe.cell import fingerprint
from threshold_probe.clusters import make_cluster
from threshold_probe.clusters.base import Cluster
from threshold_probe.config import ProbeConfig
from threshold_probe.errors import ClusterLost, InfraError, Interrupted, ProbeError, UserError
from threshold_probe.ladder.workload import Workload
from threshold_probe.metrics import measure_source
from threshold_probe.models import JobResult, JobSpec, Limits, ProbeRecord
from threshold_probe.pipelines import make_pipeline
from threshold_probe.pipelines.base import Pipeline
from threshold_probe.probe import Prober, ProbeRequest
from threshold_probe.reduce import (
    RoundTripLost,
    compiles,
    is_defined,
    nonblank_lines,
    reduce_ast,
    reduce_statements,
    source_hash,
    speculative_checker,
)
from threshold_probe.shrink_targets import KIND, ShrinkTarget, limits_for, target_from_function, target_from_run
from threshold_probe.store import RunInfo, Store, atomic_write

#: Files a shrink run leaves in its folder, beside the probes.
ORIGINAL_NAME = "original.py"
SHRUNK_NAME = "shrunk.py"
DIFF_NAME = "shrunk.diff"
RESULT_NAME = "shrink.json"

#: The syntactic features a result is described by (metrics.py counts them).
FEATURES = (
    "closure_refs",
    "global_refs",
    "multiline_strings",
    "nested_functions",
    "lambdas",
    "decorators",
    "comprehensions",
    "top_level_range_loops",
    "default_args",
    "star_args",
    "subprocess_calls",
)


class NotReproduced(ProbeError):
    """The target did not fail the same way on its first probe here (exit 1)."""

    exit_code = 1


class ShrinkProgress(Protocol):
    """Where a shrink reports progress (the CLI shows a Rich progress line on stderr)."""

    def begin(self, description: str, total: int | None) -> None: ...

    def probe_done(self, record: ProbeRecord) -> None: ...

    def note(self, message: str) -> None: ...

    def status(self, text: str) -> None: ...

    def end(self) -> None: ...


@dataclass
class ShrinkOptions:
    """How a shrink probes: repeats per candidate, probes in flight, cache and preflight."""

    repeat: int = 1
    parallel: int = 1
    fresh: bool = False
    preflight: bool = True
    #: None decides by probing the original through `native`; False never checks it.
    keep_difference: bool | None = None
    #: "auto" (pysource-minimize; statements from the text when ast.unparse loses the failure),
    #: "statements" or "ast".
    reducer: str = "auto"


class ShrinkResult(BaseModel):
    """Everything a shrink found; `--json` prints it, the run folder keeps it as shrink.json."""

    run_id: str
    status: str = "completed"
    target: str
    from_run: str | None = None
    level: int | None = None
    cluster: str
    pipeline: str
    limits: dict[str, Any] = Field(default_factory=dict)
    signature: str
    failure_class: str | None = None
    #: "signature", or "signature+difference" (each candidate also passed through native).
    kept: str
    kept_text: str
    reducer: str
    original_lines: int
    lines: int
    original_bytes: int
    bytes: int
    probes: int
    probes_pipeline: int
    probes_native: int
    reused: int = 0
    candidates: int
    rejected_statically: int
    accepted: int
    skipped: int = 0
    time_s: float
    metrics: dict[str, Any] = Field(default_factory=dict)
    features: dict[str, int] = Field(default_factory=dict)
    source: str
    original_source: str
    diff: str
    function: str
    command: str
    output: str | None = None
    files: dict[str, str] = Field(default_factory=dict)


# -- concurrency -------------------------------------------------------------------------------


class _Concurrent(Cluster):
    """A cluster seen as one that runs a batch of jobs at once (threads over its own execute).

    Local and SSH clusters run one job per call, safely from several threads; SLURM already runs
    a batch as a job array. The prober then dispatches a batch of candidates in one go.
    """

    concurrent = True

    def __init__(self, inner: Cluster, width: int) -> None:
        super().__init__(inner.name, inner.config)
        self.inner = inner
        self.kind = inner.kind
        self.width = width

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def execute(self, job: JobSpec) -> JobResult:
        return self.inner.execute(job)

    def execute_many(self, jobs: Sequence[JobSpec]) -> list[JobResult]:
        if self.inner.concurrent or len(jobs) <= 1:
            return self.inner.execute_many(jobs)
        with ThreadPoolExecutor(max_workers=min(len(jobs), self.width)) as pool:
            return list(pool.map(self.inner.execute, jobs))

    def cancel_all(self) -> None:
        self.inner.cancel_all()


# -- the shrink --------------------------------------------------------------------------------


def _quoted_names(record: ProbeRecord, source: str) -> list[str]:
    """Names the failure message quotes that the source holds: a candidate must keep them."""
    text = " ".join([*record.verdict.evidence[:1], str((record.observation.meta or {}).get("message") or "")])
    found = re.findall(r"'([A-Za-z_][A-Za-z0-9_.]*)'", text)
    out: list[str] = []
    for name in found:
        if name not in out and re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", source):
            out.append(name)
    return out


def _workload_params(w: Workload) -> dict[str, Any]:
    return dataclasses.asdict(w)


def _workload_from(data: Mapping[str, Any]) -> Workload:
    values = dict(data)
    values["search_path"] = tuple(values.get("search_path") or ())
    return Workload(**values)


class Shrink:
    """One shrink run: the probers, the candidate cache and the reducers."""

    def __init__(
        self,
        target: ShrinkTarget,
        *,
        config: ProbeConfig,
        store: Store,
        options: ShrinkOptions,
        progress: ShrinkProgress | None = None,
        run_id: str | None = None,
        started_at: float | None = None,
        command_prefix: str = "probe",
        output: Path | None = None,
    ) -> None:
        self.target = target
        self.config = config
        self.store = store
        self.options = options
        self.progress = progress
        self.resuming = run_id is not None
        self.run_id = run_id or store.new_run_id(KIND)
        self.started_at = started_at or time.time()
        self.command_prefix = command_prefix
        self.output = output
        self.cluster: Cluster = make_cluster(target.cluster, config)
        self.cluster.on_remote = lambda work: store.record_remote(self.run_id, self.cluster.name, work)
        dispatcher: Cluster = self.cluster
        if options.parallel > 1:
            dispatcher = _Concurrent(self.cluster, options.parallel)
        self.pipeline: Pipeline = make_pipeline(target.pipeline)
        self.native: Pipeline | None = None
        if target.pipeline != "native":
            self.native = make_pipeline("native")
        self.prober = self._prober(dispatcher, self.pipeline)
        self.native_prober = self._prober(dispatcher, self.native) if self.native is not None else None
        #: Candidate answers by source hash (True: it keeps the failure, and the difference).
        self.known: dict[str, bool] = {}
        self.signature: str | None = target.signature
        self.failure_class: str | None = None
        self.keep_difference = False
        self.must_keep: list[str] = []
        # The name the function is reached by: a user's FUNC or Class (the accessor of bound
        # arguments is a functools.partial call), a generated level's function, class or factory.
        w = target.workload
        root = re.match(r"[A-Za-z_]\w*", w.accessor or "") if w.filename is None else None
        self.func_root = root.group(0) if root else w.func_name
        self.probes_pipeline = 0
        self.probes_native = 0
        self.reused = 0
        self.candidates = 0
        self.rejected_statically = 0
        self.accepted = 0
        self.skipped = 0
        self.best = target.workload.source
        self.reducer_used = ""

    def _prober(self, cluster: Cluster, pipeline: Pipeline) -> Prober:
        return Prober(
            run_id=self.run_id,
            cluster=cluster,
            pipeline=pipeline,
            limits=self.target.limits,
            store=self.store,
            use_cache=not self.options.fresh,
            resuming=self.resuming,
            on_record=self._on_record,
        )

    # plumbing ------------------------------------------------------------------------------
    def params(self) -> dict[str, Any]:
        """What a resume needs: the exact workload, where it ran, its failure and the options."""
        t = self.target
        return {
            "kind": KIND,
            "workload": _workload_params(t.workload),
            "cluster": t.cluster,
            "pipeline": t.pipeline,
            "limits": t.limits.model_dump(),
            "label": t.label,
            "level": t.level,
            "spec": t.spec,
            "signature": self.signature,
            "from_run": t.from_run,
            "function": t.function,
            "args": t.args,
            "options": dataclasses.asdict(self.options),
            "output": str(self.output) if self.output else None,
            "owner": {"host": socket.gethostname(), "pid": os.getpid()},
        }

    def resume_command(self) -> str:
        return f"{self.command_prefix} shrink --resume {self.run_id}"

    def _on_record(self, record: ProbeRecord) -> None:
        if self.progress is not None:
            self.progress.probe_done(record)

    def _note(self, message: str) -> None:
        if self.progress is not None:
            self.progress.note(message)

    def _status(self) -> None:
        if self.progress is not None:
            probes = self.probes_pipeline + self.probes_native
            self.progress.status(
                f"shrinking {self.target.label}: {nonblank_lines(self.best)} lines,"
                f" {probes} probe{'s' if probes != 1 else ''}"
            )

    def candidate(self, source: str) -> Workload:
        return dataclasses.replace(self.target.workload, source=source)

    def _requests(self, sources: Sequence[str]) -> list[ProbeRequest]:
        reqs = []
        for src in sources:
            w = self.candidate(src)
            for _ in range(self.options.repeat):
                reqs.append(ProbeRequest(workload=w, level=self.target.level, spec=self.target.spec))
        return reqs

    def _count(self, records: Sequence[ProbeRecord], native: bool) -> None:
        for r in records:
            if r.cached_from is not None:
                self.reused += 1
            elif native:
                self.probes_native += 1
            else:
                self.probes_pipeline += 1
            if r.verdict.status == "skip":
                self.skipped += 1

    def _groups(self, records: Sequence[ProbeRecord]) -> list[list[ProbeRecord]]:
        n = self.options.repeat
        return [list(records[i : i + n]) for i in range(0, len(records), n)]

    def keeps_failure(self, group: Sequence[ProbeRecord]) -> bool:
        """Every repeat failed with the signature being kept."""
        return all(r.verdict.status == "fail" and r.verdict.signature == self.signature for r in group)

    def answer(self, sources: Sequence[str]) -> None:
        """Probe candidates (a batch: the one asked first, then speculative ones) and cache the answers."""
        todo = [s for s in dict.fromkeys(sources) if source_hash(s) not in self.known]
        if not todo:
            return
        self.candidates += len(todo)
        with warnings.catch_warnings():
            # A candidate may be odd code ("'int' object is not callable"): loading it here to
            # ship it is no reason to warn the user.
            warnings.simplefilter("ignore", SyntaxWarning)
            records = self.prober.run(self._requests(todo))
        self._count(records, native=False)
        kept = []
        for src, group in zip(todo, self._groups(records), strict=True):
            ok = self.keeps_failure(group)
            self.known[source_hash(src)] = ok
            if ok:
                kept.append(src)
        if kept and self.keep_difference and self.native_prober is not None:
            nrecords = self.native_prober.run(self._requests(kept))
            self._count(nrecords, native=True)
            for src, group in zip(kept, self._groups(nrecords), strict=True):
                if not all(r.verdict.status == "pass" for r in group):
                    self.known[source_hash(src)] = False
        for src in todo:
            if self.known[source_hash(src)]:
                self.accepted += 1
                if len(src) < len(self.best) or nonblank_lines(src) < nonblank_lines(self.best):
                    self.best = src
        self._status()

    def static_ok(self, source: str) -> bool:
        """A candidate worth a probe: it compiles, defines the function, keeps the quoted names."""
        ok = (
            compiles(source)
            and is_defined(source, self.func_root)
            and all(re.search(rf"(?<![\w]){re.escape(n)}(?![\w])", source) for n in self.must_keep)
        )
        if ok and self.keep_difference and self.failure_class == "name":
            # native must pass, so the name the pipeline loses must still be defined
            ok = all(is_defined(source, n) for n in self.must_keep if is_defined(self.target.workload.source, n))
        if not ok:
            self.rejected_statically += 1
        return ok

    # the steps -----------------------------------------------------------------------------
    def reproduce(self) -> None:
        """Probe the original: it must fail with the signature (the recorded one, if any)."""
        original = self.target.workload.source
        use_cache = self.prober.use_cache
        self.prober.use_cache = False  # the first try is a real probe, not an earlier verdict
        try:
            records = self.prober.run(self._requests([original]))
        finally:
            self.prober.use_cache = use_cache
        self._count(records, native=False)
        first = records[0]
        if self.signature is None and first.verdict.status == "fail":
            self.signature = first.verdict.signature
        if not self.keeps_failure(records):
            raise NotReproduced(self._not_reproduced(records))
        self.failure_class = first.verdict.failure_class
        self.must_keep = _quoted_names(first, original)
        self.known[source_hash(original)] = True
        if self.native_prober is not None and self.options.keep_difference is not False:
            nrecords = self.native_prober.run(self._requests([original]))
            self._count(nrecords, native=True)
            passes = all(r.verdict.status == "pass" for r in nrecords)
            if self.options.keep_difference and not passes:
                v = nrecords[0].verdict
                raise NotReproduced(
                    f"{self.target.label}: native does not pass on {self.cluster.name} ({v.status}"
                    f"{' ' + (v.signature or '') if v.status == 'fail' else ''}): there is no difference to keep"
                )
            self.keep_difference = passes
        self._status()

    def _not_reproduced(self, records: Sequence[ProbeRecord]) -> str:
        seen = []
        for r in records:
            v = r.verdict
            text = v.status if v.status != "fail" else f"fail {v.signature}"
            if v.status == "skip" and r.observation.job.infra_error:
                text += f" ({r.observation.job.infra_error})"
            seen.append(text)
        what = "; ".join(dict.fromkeys(seen))
        if self.signature is None:
            return (
                f"{self.target.label} passed on {self.cluster.name} through {self.pipeline.name}:"
                f" nothing to shrink (new verdict: {what})"
            )
        return (
            f"{self.target.label} did not reproduce its failure {self.signature} on the first try (new verdict: {what})"
        )

    def reduce(self) -> str:
        check, spec = speculative_checker(self.answer, self.known, self.static_ok, self.options.parallel)
        source = self.target.workload.source
        used: list[str] = []
        try:
            # pysource-minimize first: it removes and simplifies node by node. When ast.unparse
            # loses the failure (it depends on the text: column-0 lines, a quirk of formatting),
            # statements are removed from the text as written instead.
            ast_lost = False
            if self.options.reducer in ("auto", "ast"):
                try:
                    source = reduce_ast(source, check)
                    used.append("pysource-minimize")
                except RoundTripLost:
                    if self.options.reducer == "ast":
                        raise UserError(
                            "the failure does not survive ast.unparse of the source: use --reducer statements"
                        ) from None
                    ast_lost = True
                    self._note("the failure depends on the source text as written: statements are removed from it")
            if self.options.reducer == "statements" or ast_lost:
                reduced = reduce_statements(source, check)
                if reduced != source:
                    used.append("statements")
                source = reduced
            spec.finish()
        finally:
            if spec.in_child:
                spec.child_exit()
        self.reducer_used = "+".join(used) or "none"
        return source

    # the run -------------------------------------------------------------------------------
    def _open(self) -> None:
        try:
            self.cluster.open()
        except InfraError as exc:
            raise InfraError(f"cluster {self.cluster.name!r}: {exc}") from None
        if self.resuming:
            mine = self.store.remote_leftovers(self.cluster.name).get(self.run_id, [])
            for work, line in self.cluster.reap(mine):
                self.store.record_remote(self.run_id, self.cluster.name, work.model_copy(update={"state": "done"}))
                self._note(f"left by this run's stopped process: {line}")
        if self.options.preflight:
            checks = self.cluster.preflight()
            needs_pickle = self.pipeline.needs_cloudpickle
            bad = [c for c in checks if c.status == "fail" and (c.name != "cloudpickle" or needs_pickle)]
            if bad:
                lines = "; ".join(f"{c.name}: {c.detail}" + (f" (fix: {c.fix})" if c.fix else "") for c in bad)
                raise InfraError(f"cluster {self.cluster.name!r} is not usable: {lines}")
            if any(c.status == "fail" and c.name == "cloudpickle" for c in checks) and self.native_prober:
                self._note(
                    "cloudpickle is missing on the far side: native cannot run there, the difference is not checked"
                )
                self.native_prober = None
        for prober, pipeline in ((self.prober, self.pipeline), (self.native_prober, self.native)):
            if prober is None or pipeline is None:
                continue
            kind = type(pipeline)
            fp = fingerprint(
                self.cluster.name,
                self.cluster.config,
                self.cluster.far_side(),
                {"name": pipeline.name, "as_given": pipeline.name, "class": f"{kind.__module__}:{kind.__qualname__}"},
                __version__,
            )
            prober.cluster_key = f"{self.cluster.name}#{fp.digest}"
            if not fp.checked:
                prober.use_cache = False

    def execute(self) -> ShrinkResult:
        """Own the run, probe, reduce and write the result; interrupted runs stay resumable."""
        owner = self.store.own_run(self.run_id)
        try:
            return self._execute()
        finally:
            owner.release()

    def _execute(self) -> ShrinkResult:
        self.store.start_run(
            RunInfo(
                run_id=self.run_id,
                kind=KIND,
                cluster=self.target.cluster,
                pipeline=self.pipeline.name,
                ladder=self.target.workload.name,
                status="running",
                started_at=self.started_at,
                params=self.params(),
            )
        )
        atomic_write(self.store.run_dir(self.run_id) / ORIGINAL_NAME, self.target.workload.source)
        if self.resuming:
            cancelled = self.store.cancel_unfinished(self.run_id)
            done = len(self.store.probes(self.run_id))
            self._note(
                f"resuming shrink {self.run_id}: {done} finished probe{'s' if done != 1 else ''} come from the journal"
                + (f"; {cancelled} in flight when it stopped will run again" if cancelled else "")
            )
        if self.progress is not None:
            self.progress.begin(f"shrinking {self.target.label}", None)
        try:
            try:
                self._open()
                self.reproduce()
                shrunk = self.reduce()
            except BaseException:
                self.cluster.cancel_all()
                raise
            finally:
                self.cluster.close()
        except (KeyboardInterrupt, Interrupted) as exc:
            self.store.cancel_unfinished(self.run_id)
            signum = exc.exit_code - 128 if isinstance(exc, Interrupted) else int(signal.SIGINT)
            message = f"shrink {self.run_id} interrupted; resume with: {self.resume_command()}"
            self.store.finish_run(self.run_id, "interrupted", {"status": "interrupted", "message": message})
            raise Interrupted(message, signum) from None
        except ClusterLost as exc:
            self.store.cancel_unfinished(self.run_id)
            message = f"cluster {self.cluster.name!r} lost: {exc.cause}; resume with: {self.resume_command()}"
            self.store.finish_run(self.run_id, "interrupted", {"status": "interrupted", "message": message})
            raise InfraError(message) from None
        except NotReproduced as exc:
            self.store.finish_run(self.run_id, "error", {"status": "error", "message": str(exc)})
            raise
        except ProbeError as exc:
            self.store.finish_run(self.run_id, "error", {"status": "error", "message": str(exc)})
            raise
        finally:
            if self.progress is not None:
                self.progress.end()
        result = self.result(shrunk)
        self._write(result)
        return result

    def result(self, shrunk: str) -> ShrinkResult:
        t = self.target
        original = t.workload.source
        name = t.function.rpartition(":")[0] if t.function else f"level_{t.level:03d}.py" if t.level else "original.py"
        diff = "".join(
            difflib.unified_diff(
                original.splitlines(keepends=True),
                shrunk.splitlines(keepends=True),
                fromfile=f"a/{Path(name).name}",
                tofile=f"b/{Path(name).name}",
            )
        )
        metrics: dict[str, Any] = {}
        features: dict[str, int] = {}
        try:
            found = [m for m in measure_source(shrunk) if m.name == t.workload.func_name]
            if found:
                m = found[0]
                metrics = {
                    k: getattr(m, k) for k in ("loc", "sloc", "lloc", "cc", "cc_rank", "mi", "ast_nodes", "max_nesting")
                }
                metrics["halstead_volume"] = round(m.halstead_volume, 1)
                metrics["mi"] = round(m.mi, 1)
                features = {k: int(getattr(m, k, 0) or 0) for k in FEATURES if hasattr(m, k)}
                features["closure_refs"] = int(m.free_vars)
        except (SyntaxError, ValueError):
            pass
        func_attr = (
            (t.workload.accessor or t.workload.func_name) if t.function is None else t.function.rpartition(":")[2]
        )
        out_name = str(self.output) if self.output else str(self.store.run_dir(self.run_id) / SHRUNK_NAME)
        command = f"probe run --function {out_name}:{func_attr} --cluster {t.cluster} --pipeline {t.pipeline}"
        for k, v in t.args.items():
            command += f" --arg {k}={v!r}" if not isinstance(v, int | float) else f" --arg {k}={v}"
        probes = self.probes_pipeline + self.probes_native
        kept = "signature+difference" if self.keep_difference else "signature"
        kept_text = f"same signature {self.signature}"
        if self.keep_difference:
            kept_text += f", and native passes on {t.cluster} (the failure is the {t.pipeline} pipeline's)"
        return ShrinkResult(
            run_id=self.run_id,
            target=t.label,
            from_run=t.from_run,
            level=t.level,
            cluster=t.cluster,
            pipeline=self.pipeline.name,
            limits=t.limits.model_dump(),
            signature=self.signature or "",
            failure_class=self.failure_class,
            kept=kept,
            kept_text=kept_text,
            reducer=self.reducer_used,
            original_lines=nonblank_lines(original),
            lines=nonblank_lines(shrunk),
            original_bytes=len(original.encode()),
            bytes=len(shrunk.encode()),
            probes=probes,
            probes_pipeline=self.probes_pipeline,
            probes_native=self.probes_native,
            reused=self.reused,
            candidates=self.candidates,
            rejected_statically=self.rejected_statically,
            accepted=self.accepted,
            skipped=self.skipped,
            time_s=round(time.time() - self.started_at, 2),
            metrics=metrics,
            features=features,
            source=shrunk,
            original_source=original,
            diff=diff,
            function=func_attr,
            command=command,
            output=str(self.output) if self.output else None,
        )

    def _write(self, result: ShrinkResult) -> None:
        folder = self.store.run_dir(self.run_id)
        atomic_write(folder / SHRUNK_NAME, result.source)
        atomic_write(folder / DIFF_NAME, result.diff)
        result.files = {"shrunk": str(folder / SHRUNK_NAME), "diff": str(folder / DIFF_NAME)}
        if self.output is not None:
            atomic_write(self.output, result.source)
        data = result.model_dump(mode="json")
        atomic_write(folder / RESULT_NAME, result.model_dump_json(indent=2))
        self.store.finish_run(self.run_id, "completed", data)


def shrink_target(
    target: ShrinkTarget,
    *,
    config: ProbeConfig,
    store: Store,
    options: ShrinkOptions | None = None,
    progress: ShrinkProgress | None = None,
    output: Path | None = None,
    command_prefix: str = "probe",
) -> ShrinkResult:
    """Shrink one target (see the module doc); NotReproduced (exit 1) when it does not fail the same way."""
    shrink = Shrink(
        target,
        config=config,
        store=store,
        options=options or ShrinkOptions(),
        progress=progress,
        command_prefix=command_prefix,
        output=output,
    )
    return shrink.execute()


def resume_shrink(
    run_id: str | None,
    *,
    config: ProbeConfig,
    store: Store,
    progress: ShrinkProgress | None = None,
    command_prefix: str = "probe",
) -> ShrinkResult:
    """Continue an interrupted shrink: the journal answers what was asked, the rest is probed."""
    if run_id in (None, "latest"):
        candidates = [r for r in store.runs(kind=KIND) if r.status not in ("completed", "error")]
        if not candidates:
            raise UserError("no interrupted shrink to resume: `probe runs` lists them")
        info = candidates[0]
    else:
        info = store.get_run(run_id)
    if info.kind != KIND:
        raise UserError(f"run {info.run_id} is a {info.kind} run, not a shrink: resume it with probe {info.kind}")
    if info.status == "completed":
        raise UserError(
            f"shrink {info.run_id} is complete: its result is in {store.run_dir(info.run_id) / RESULT_NAME}"
        )
    p = info.params
    target = ShrinkTarget(
        workload=_workload_from(p["workload"]),
        cluster=p["cluster"],
        pipeline=p["pipeline"],
        limits=Limits(**p["limits"]),
        label=p["label"],
        level=p.get("level"),
        spec=p.get("spec") or {},
        signature=p.get("signature"),
        from_run=p.get("from_run"),
        function=p.get("function"),
        args=p.get("args") or {},
    )
    shrink = Shrink(
        target,
        config=config,
        store=store,
        options=ShrinkOptions(**p["options"]),
        progress=progress,
        run_id=info.run_id,
        started_at=info.started_at,
        command_prefix=command_prefix,
        output=Path(p["output"]) if p.get("output") else None,
    )
    return shrink.execute()


def latest_shrink(store: Store, run_id: str, level: int | None = None) -> ShrinkResult:
    """The result of a completed shrink: `run_id` is the shrink, or the run it shrank (its latest)."""
    info = store.get_run(run_id)
    if info.kind != KIND:
        found = [
            r
            for r in store.runs(kind=KIND)
            if r.status == "completed"
            and r.params.get("from_run") == info.run_id
            and (level is None or r.params.get("level") == level)
        ]
        if not found:
            where = f" level {level}" if level is not None else ""
            raise UserError(f"run {info.run_id}{where} has no completed shrink: run `probe shrink {info.run_id}` first")
        info = found[0]
    if info.status != "completed" or not info.summary:
        raise UserError(f"shrink {info.run_id} did not complete: resume it with `probe shrink --resume {info.run_id}`")
    return ShrinkResult.model_validate(info.summary)


__all__ = [
    "FEATURES",
    "KIND",
    "NotReproduced",
    "Shrink",
    "ShrinkOptions",
    "ShrinkProgress",
    "ShrinkResult",
    "ShrinkTarget",
    "latest_shrink",
    "limits_for",
    "resume_shrink",
    "shrink_target",
    "target_from_function",
    "target_from_run",
]
