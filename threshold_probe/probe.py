"""One dispatch: workload x pipeline x cluster -> observation -> verdict, journalled.

:meth:`Prober.run` runs several probes at once when the cluster runs jobs concurrently (a SLURM
job array); otherwise one after the other. Each probe is journalled just before dispatch and
again when it finishes.

Reuse, in the order the probes of a run ask for a cache key (workload, pipeline, cluster fingerprint,
limits; see threshold_probe/cell.py):
the n-th ask of a key in a run may stand in for the n-th finished probe of that key. When a run
is resumed, its own journal comes first (every finished probe, skips included, so that the
search replays exactly); then, unless ``--fresh``, the verdicts of other runs (the cache; never
their skips). Anything else is dispatched. So repeats and confirmation probes of a fresh run
always dispatch, and a resumed run never dispatches a probe that had finished.

A probe whose cluster is lost (JobResult.cluster_lost: the host stayed unreachable, its key
changed, login was refused) gets no verdict: it stays in flight in the journal and ClusterLost
ends the run, so that a resume runs it again instead of replaying a skip.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from threshold_probe.clusters.base import Cluster
from threshold_probe.diagnose import diagnose
from threshold_probe.errors import ClusterLost
from threshold_probe.ladder.workload import Workload
from threshold_probe.logcap import LOG_CAP_BYTES, cap_logs
from threshold_probe.models import Limits, Observation, ProbeRecord
from threshold_probe.pipelines.base import Observed, Pipeline, ProbeSlot, dispatch_probes
from threshold_probe.store import Store, cache_key


@dataclass
class ProbeRequest:
    """One probe to run: a workload, its level (None for off-ladder specs) and its attempt."""

    workload: Workload
    level: int | None
    spec: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)


def new_probe_id(level: int | None, workload: Workload | None = None) -> str:
    """A probe id: the level (a user's function: its name; else `spec`) and a random suffix."""
    if level is not None:
        tag = f"L{level:03d}"
    elif workload is not None and workload.filename is not None:
        tag = re.sub(r"[^A-Za-z0-9_]+", "_", workload.func_name)[:24] or "spec"
    else:
        tag = "spec"
    return f"{tag}-{secrets.token_hex(3)}"


class Prober:
    """Runs probes of one run through one pipeline on one cluster, with the journal and cache."""

    def __init__(
        self,
        *,
        run_id: str,
        cluster: Cluster,
        pipeline: Pipeline,
        limits: Limits,
        store: Store,
        use_cache: bool,
        resuming: bool = False,
        keep_remote: bool = False,
        on_record: Callable[[ProbeRecord], None] | None = None,
    ) -> None:
        self.run_id = run_id
        self.cluster = cluster
        self.pipeline = pipeline
        self.limits = limits
        self.store = store
        self.use_cache = use_cache
        self.resuming = resuming
        self._pools: dict[str, list[ProbeRecord]] = {}
        self.keep_remote = keep_remote
        pipeline.keep_remote = keep_remote
        self.on_record = on_record
        self.records: list[ProbeRecord] = []
        #: What each probe dispatched by this run asked for, by probe id (a live display names
        #: a probe whose job is still running by its level or spec).
        self.requests: dict[str, ProbeRequest] = {}
        #: Bytes of each log (stdout, stderr) a probe keeps: head and tail (threshold_probe/logcap.py).
        self.log_cap = LOG_CAP_BYTES
        #: The cluster as the cache key names it: its name and fingerprint, once the preflight
        #: has seen the far side (threshold_probe/cell.py); the bare name until then.
        self.cluster_key: str | None = None
        # How many times each cache key was asked for in this run: the n-th ask may reuse the
        # n-th earlier record, so repeats and confirmations still dispatch new probes.
        self._asked: dict[str, int] = {}

    def _key(self, workload: Workload) -> str:
        return cache_key(workload.sha256, self.pipeline.name, self.cluster_key or self.cluster.name, self.limits)

    def _attempt(self, req: ProbeRequest, key: str) -> int:
        n = self._asked.get(key, 0) + 1
        self._asked[key] = n
        return n

    def _pool(self, key: str) -> list[ProbeRecord]:
        """Finished probes that may stand in for asks of this key, in the order they are used.

        Built at the key's first ask, so it holds only what earlier invocations finished:
        first this run's own journal (when resuming), then other runs' verdicts (the cache).
        """
        if key not in self._pools:
            own = self.store.cached(key, run_id=self.run_id, include_skips=True) if self.resuming else []
            others: list[ProbeRecord] = []
            if self.use_cache:
                reused = {r.cached_from for r in own if r.cached_from}
                # Only probes that really ran: a cached copy is the same verdict again, not a new one.
                others = [
                    r
                    for r in self.store.cached(key)
                    if r.run_id != self.run_id and r.cached_from is None and r.probe_id not in reused
                ]
            self._pools[key] = own + others
        return self._pools[key]

    def _from_cache(self, key: str, attempt: int) -> ProbeRecord | None:
        pool = self._pool(key)
        return pool[attempt - 1] if len(pool) >= attempt else None

    def _record(self, req: ProbeRequest, probe_id: str, attempt: int, obs: Observation) -> ProbeRecord:
        capped = cap_logs(obs, self.log_cap)
        verdict = diagnose(obs)
        if verdict.status == "fail":
            # The evidence says when the logs it quotes are not whole.
            verdict.evidence += [n for n in capped if n not in verdict.evidence]
        return ProbeRecord(
            run_id=self.run_id,
            probe_id=probe_id,
            level=req.level,
            attempt=attempt,
            spec=req.spec,
            workload_hash=req.workload.sha256,
            metrics=req.metrics,
            observation=obs,
            verdict=verdict,
        )

    def _finish(self, record: ProbeRecord, key: str) -> ProbeRecord:
        self.store.probe_finished(record, key)
        self.records.append(record)
        if self.on_record is not None:
            self.on_record(record)
        return record

    def run(self, requests: Sequence[ProbeRequest]) -> list[ProbeRecord]:
        """Probe every request (reusing cached verdicts where allowed); results are aligned."""
        out: list[ProbeRecord | None] = [None] * len(requests)
        todo: list[tuple[int, ProbeRequest, str, str, int]] = []
        for i, req in enumerate(requests):
            key = self._key(req.workload)
            attempt = self._attempt(req, key)
            hit = self._from_cache(key, attempt)
            if hit is not None and hit.run_id == self.run_id:
                # Resuming: the journal already holds this very probe.
                self.records.append(hit)
                if self.on_record is not None:
                    self.on_record(hit)
                out[i] = hit
                continue
            if hit is not None:
                probe_id = new_probe_id(req.level, req.workload)
                self.store.probe_dispatched(self.run_id, probe_id, req.level, attempt, key)
                record = hit.model_copy(
                    update={
                        "run_id": self.run_id,
                        "probe_id": probe_id,
                        "attempt": attempt,
                        "cached_from": hit.cached_from or hit.probe_id,
                        "cached_from_run": hit.cached_from_run or hit.run_id,
                        "metrics": req.metrics or hit.metrics,
                        "spec": req.spec,
                    }
                )
                out[i] = self._finish(record, key)
                continue
            todo.append((i, req, new_probe_id(req.level, req.workload), key, attempt))
        if not todo:
            return [r for r in out if r is not None]
        # A shipping pipeline's jobs go to a concurrent cluster as one batch (a SLURM job array);
        # a runner pipeline drives one probe at a time.
        batched = self.cluster.concurrent and len(todo) > 1 and self.pipeline.kind == "shipping"
        if batched:
            # One batch: every probe of it is in flight from the moment it is submitted.
            for _, req, probe_id, key, attempt in todo:
                self.store.probe_dispatched(self.run_id, probe_id, req.level, attempt, key)
            lost: list[Observation] = []

            def observed(n: int, obs: Observation) -> None:
                # Each probe is journalled and shown as its job ends, not when the batch has.
                i, req, probe_id, key, attempt = todo[n]
                if obs.job.cluster_lost:
                    lost.append(obs)
                    return
                out[i] = self._finish(self._record(req, probe_id, attempt, obs), key)

            self._dispatch(todo, observed)
            if lost:
                raise ClusterLost(_lost_cause(lost[0], self.cluster.name))
        else:
            for item in todo:
                i, req, probe_id, key, attempt = item
                # Journalled one at a time, so that an interruption leaves at most one probe
                # "dispatched" without a verdict: the one really in flight.
                self.store.probe_dispatched(self.run_id, probe_id, req.level, attempt, key)
                (obs,) = self._dispatch([item])
                if obs.job.cluster_lost:
                    raise ClusterLost(_lost_cause(obs, self.cluster.name))
                out[i] = self._finish(self._record(req, probe_id, attempt, obs), key)
        return [r for r in out if r is not None]

    def _dispatch(
        self, todo: list[tuple[int, ProbeRequest, str, str, int]], observed: Observed | None = None
    ) -> list[Observation]:
        """Build, execute and observe these probes (the pipeline's one loop), each in its own folder."""
        slots = []
        for _, req, probe_id, _, _ in todo:
            self.requests[probe_id] = req
            local_dir = self.store.probe_dir(self.run_id, probe_id)
            local_dir.mkdir(parents=True, exist_ok=True)
            slots.append(ProbeSlot(req.workload, probe_id, local_dir))
        return dispatch_probes(self.pipeline, self.cluster, self.limits, slots, observed)


def _lost_cause(obs: Observation, cluster: str) -> str:
    return obs.job.infra_error or f"cluster {cluster!r} cannot be reached"
