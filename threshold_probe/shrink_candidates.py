"""How a shrink asks about a candidate source: probed for real (a batch at a time, through the
pipeline and then native), rejected statically when it cannot be the failure, and answered from
a cache by source hash so that no candidate is probed twice."""

from __future__ import annotations

import dataclasses
import re
import warnings
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol

from threshold_probe.clusters.base import Cluster
from threshold_probe.errors import ProbeError
from threshold_probe.ladder.workload import Workload
from threshold_probe.models import JobResult, JobSpec, ProbeRecord
from threshold_probe.pipelines.base import Pipeline
from threshold_probe.probe import Prober, ProbeRequest
from threshold_probe.reduce import compiles, is_defined, nonblank_lines, source_hash
from threshold_probe.shrink_result import ShrinkOutcome, ShrinkTally
from threshold_probe.shrink_targets import ShrinkTarget
from threshold_probe.store import Store


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


class ConcurrentCluster(Cluster):
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


def quoted_names(record: ProbeRecord, source: str) -> list[str]:
    """Names the failure message quotes that the source holds: a candidate must keep them."""
    text = " ".join([*record.verdict.evidence[:1], str((record.observation.meta or {}).get("message") or "")])
    found = re.findall(r"'([A-Za-z_][A-Za-z0-9_.]*)'", text)
    out: list[str] = []
    for name in found:
        if name not in out and re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", source):
            out.append(name)
    return out


class Candidates:
    """The probers of one shrink, the failure they keep, and every candidate's answer so far."""

    def __init__(
        self,
        target: ShrinkTarget,
        *,
        run_id: str,
        cluster: Cluster,
        pipeline: Pipeline,
        native: Pipeline | None,
        store: Store,
        options: ShrinkOptions,
        resuming: bool,
        progress: ShrinkProgress | None,
    ) -> None:
        self.target = target
        self.run_id = run_id
        self.cluster = cluster
        self.pipeline = pipeline
        self.store = store
        self.options = options
        self.resuming = resuming
        self.progress = progress
        self.prober = self._prober(cluster, pipeline)
        self.native_prober = self._prober(cluster, native) if native is not None else None
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
        self.tally = ShrinkTally()
        self.best = target.workload.source

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

    def outcome(self, reducer: str) -> ShrinkOutcome:
        return ShrinkOutcome(
            signature=self.signature,
            failure_class=self.failure_class,
            keep_difference=self.keep_difference,
            reducer=reducer,
        )

    def _on_record(self, record: ProbeRecord) -> None:
        if self.progress is not None:
            self.progress.probe_done(record)

    def status(self) -> None:
        if self.progress is not None:
            probes = self.tally.probes
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
                self.tally.reused += 1
            elif native:
                self.tally.probes_native += 1
            else:
                self.tally.probes_pipeline += 1
            if r.verdict.status == "skip":
                self.tally.skipped += 1

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
        self.tally.candidates += len(todo)
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
                self.tally.accepted += 1
                if len(src) < len(self.best) or nonblank_lines(src) < nonblank_lines(self.best):
                    self.best = src
        self.status()

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
            self.tally.rejected_statically += 1
        return ok

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
        self.must_keep = quoted_names(first, original)
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
        self.status()

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


__all__ = [
    "Candidates",
    "ConcurrentCluster",
    "NotReproduced",
    "ShrinkOptions",
    "ShrinkProgress",
    "quoted_names",
]
