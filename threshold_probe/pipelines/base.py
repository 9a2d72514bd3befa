"""How a function travels to a cluster and back: the two kinds of pipeline and their one loop."""

from __future__ import annotations

import contextlib
import sys
import time
import types
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Generic, Literal, TypeVar

import cloudpickle

from threshold_probe.clusters.base import Cluster
from threshold_probe.errors import Interrupted
from threshold_probe.ladder.workload import Workload
from threshold_probe.models import JobResult, JobSpec, Limits, Observation


class ClientSideError(Exception):
    """The pipeline failed on this machine before dispatch (for example, pickling failed)."""

    def __init__(self, failure_class: str, exc: BaseException) -> None:
        super().__init__(f"{type(exc).__name__}: {exc}")
        self.failure_class = failure_class
        self.exc = exc


def load_function(workload: Workload) -> Callable[..., Any]:
    """The workload's function, loaded on this machine; ClientSideError when it cannot be.

    A syntax error in the source is class `syntax`; anything else that stops it loading
    (an import, a name) happens before any dispatch, so it is `serialize`.
    """
    try:
        func = workload.load()
    except SyntaxError as exc:
        raise ClientSideError("syntax", exc) from exc
    except Interrupted:
        raise  # Ctrl-C while the function loads stops the run; it says nothing about the function
    except Exception as exc:
        raise ClientSideError("serialize", exc) from exc
    return func


@contextlib.contextmanager
def local_modules_by_value(workload: Workload) -> Iterator[None]:
    """While open, the modules imported from the workload's own folder pickle by value
    (`--ship-local-modules`); closed, the registry is as before, so no other probe ships them."""
    if not workload.ship_local_modules:
        yield
        return
    load_function(workload)  # imports the siblings, so they can be found
    registered = set(cloudpickle.list_registry_pickle_by_value())
    added = [m for m in local_modules(workload.search_path) if m.__name__ not in registered]
    for module in added:
        cloudpickle.register_pickle_by_value(module)
    try:
        yield
    finally:
        for module in added:
            with contextlib.suppress(ValueError):
                cloudpickle.unregister_pickle_by_value(module)


def local_modules(folders: tuple[str, ...]) -> list[types.ModuleType]:
    """The imported modules whose files live under `folders` (a user's own siblings), not installed ones."""
    roots = [Path(f).resolve() for f in folders]
    found: list[types.ModuleType] = []
    for name, module in list(sys.modules.items()):
        file = getattr(module, "__file__", None)
        if not file or name == "__main__" or "site-packages" in file or "dist-packages" in file:
            continue
        path = Path(file).resolve()
        if any(path.is_relative_to(root) for root in roots):
            found.append(module)
    return found


PipelineKind = Literal["shipping", "runner"]
"""The two kinds of pipeline: one ships files for the far-side runner, one drives a whole runner."""


class Pipeline(ABC):
    """How a function travels to a cluster and back: the one base of both kinds.

    - a :class:`ShippingPipeline` builds a job (files and a command) that the cluster stages and
      runs, usually with threshold-probe's far-side runner (native, source, inline, plugins);
    - a :class:`RunnerPipeline` hands the function to a whole third-party runner, which stages and
      starts the job itself (clustrix, submitit).

    Every probe of either kind goes through one loop, :func:`dispatch_probes`: build, execute,
    observe.
    """

    name: ClassVar[str] = "abstract"
    #: Which of the two kinds this is; set by ShippingPipeline and RunnerPipeline.
    kind: ClassVar[PipelineKind]
    #: The far side must load cloudpickle (and what this client pickles); a pipeline that ships
    #: source text does not, so a preflight does not refuse a host without it.
    needs_cloudpickle: ClassVar[bool] = True
    #: Leave each probe's remote folder in place (the report then says where it is).
    keep_remote: bool = False

    def enforcement(self, cluster: Cluster, limits: Limits) -> dict[str, str]:
        """Who enforces each limit: the cluster's mechanisms, unless the pipeline runs the job
        some other way (a runner pipeline overrides this)."""
        return cluster.enforcement(limits)

    def new_observation(
        self, workload: Workload, cluster: str, probe_id: str, limits: Limits, started: float
    ) -> Observation:
        """The observation of a probe before anything is known of it."""
        return Observation(
            probe_id=probe_id,
            level=workload.level,
            workload=workload.name,
            cluster=cluster,
            pipeline=self.name,
            limits=limits,
            started_at=started,
            wall_s=0.0,
            job=JobResult(),
        )

    def dispatch(
        self, workload: Workload, cluster: Cluster, probe_id: str, limits: Limits, local_dir: Path
    ) -> Observation:
        """One probe: build, execute on the cluster, observe."""
        return dispatch_probes(self, cluster, limits, [ProbeSlot(workload, probe_id, local_dir)])[0]


class ShippingPipeline(Pipeline):
    """Ships files: `build` makes a job, the cluster stages and runs it, `observe` reads what came back.

    The cluster enforces the limits, and a cluster that runs jobs concurrently (a SLURM job array)
    runs a batch of them at once.
    """

    kind: ClassVar[PipelineKind] = "shipping"

    @abstractmethod
    def build(self, workload: Workload, probe_id: str, limits: Limits, local_dir: Path) -> JobSpec:
        """The job that runs this workload. Raise ClientSideError when it cannot be built."""

    def execute(self, cluster: Cluster, jobs: Sequence[JobSpec]) -> list[JobResult]:
        """Run the jobs on the cluster: one job alone, several as one batch."""
        if len(jobs) == 1:
            return [cluster.execute(jobs[0])]
        return cluster.execute_many(jobs)

    @abstractmethod
    def observe(self, workload: Workload, job: JobSpec, result: JobResult, obs: Observation) -> Observation:
        """Fill `obs` from the job's result and fetched files (meta.json, result.json, logs)."""


CallT = TypeVar("CallT")
OutcomeT = TypeVar("OutcomeT")


class RunnerPipeline(Pipeline, Generic[CallT, OutcomeT]):
    """Drives a whole runner: `build` prepares its call on this machine, `execute` makes the call
    and watches the job the runner started (bounding it, ending it on interruption), `observe`
    turns what the runner and its job folder left into the observation.

    The cluster is used only for what the runner cannot tell (helper jobs through
    `cluster.execute`, the SSH endpoint); probes go one at a time.
    """

    kind: ClassVar[PipelineKind] = "runner"

    def travelling(self, workload: Workload) -> AbstractContextManager[None]:
        """Open around the whole probe: what must hold while the runner pickles (nothing by default)."""
        return contextlib.nullcontext()

    @abstractmethod
    def build(self, workload: Workload, cluster: Cluster, probe_id: str, limits: Limits, local_dir: Path) -> CallT:
        """The runner's call, prepared here. ClientSideError when the function cannot be loaded;
        UserError when the runner cannot use this cluster."""

    @abstractmethod
    def execute(self, call: CallT, cluster: Cluster) -> OutcomeT:
        """Make the call and watch it to its end; nothing may be left running, even when interrupted."""

    @abstractmethod
    def observe(self, workload: Workload, call: CallT, outcome: OutcomeT, obs: Observation) -> Observation:
        """Fill `obs` from what the runner returned and left behind."""


@dataclass(frozen=True)
class ProbeSlot:
    """One probe to dispatch: its workload, its id and its local folder."""

    workload: Workload
    probe_id: str
    local_dir: Path


def _client_failure(obs: Observation, exc: ClientSideError) -> Observation:
    obs.client_error = str(exc)
    obs.client_error_type = exc.failure_class
    return obs


#: Told of each probe's observation as soon as it is known: its index in the slots, and it.
Observed = Callable[[int, Observation], None]


def dispatch_probes(
    pipeline: Pipeline,
    cluster: Cluster,
    limits: Limits,
    slots: Sequence[ProbeSlot],
    on_observation: Observed | None = None,
) -> list[Observation]:
    """The one loop of both kinds: build, execute, observe; observations aligned with `slots`.

    A shipping pipeline builds every job, runs them as one batch (the cluster may run it
    concurrently) and observes each as its job ends; a runner pipeline drives one probe after
    the other. `on_observation` is told of each observation as soon as it is complete.
    """
    if isinstance(pipeline, ShippingPipeline):
        return _ship(pipeline, cluster, limits, slots, on_observation)
    if isinstance(pipeline, RunnerPipeline):
        out = []
        for n, slot in enumerate(slots):
            out.append(_drive(pipeline, cluster, limits, slot))
            if on_observation is not None:
                on_observation(n, out[-1])
        return out
    raise TypeError(f"pipeline {pipeline.name!r} is neither a ShippingPipeline nor a RunnerPipeline")


def _ship(
    pipeline: ShippingPipeline,
    cluster: Cluster,
    limits: Limits,
    slots: Sequence[ProbeSlot],
    on_observation: Observed | None = None,
) -> list[Observation]:
    started = time.time()
    observations: list[Observation] = []
    built: list[tuple[int, JobSpec]] = []
    for n, slot in enumerate(slots):
        obs = pipeline.new_observation(slot.workload, cluster.name, slot.probe_id, limits, started)
        observations.append(obs)
        try:
            job = pipeline.build(slot.workload, slot.probe_id, limits, slot.local_dir)
        except ClientSideError as exc:
            _client_failure(obs, exc)
            continue
        job.keep_remote = job.keep_remote or pipeline.keep_remote
        built.append((n, job))
    index = {job.probe_id: n for n, job in built}
    observed: set[int] = set()
    batch = len(built) > 1

    def done(job: JobSpec, result: JobResult) -> None:
        n = index[job.probe_id]
        if n in observed:
            return
        observed.add(n)
        obs = observations[n]
        obs.remote_kept = job.keep_remote
        obs.job = result
        obs = observations[n] = pipeline.observe(slots[n].workload, job, result, obs)
        obs.wall_s = (own_wall(obs) if batch else None) or time.time() - started
        if on_observation is not None:
            on_observation(n, obs)

    # The cluster tells each job's result as the job ends (a SLURM array task), so a level is
    # known, journalled and shown then, not when the whole batch has ended.
    told_before = getattr(cluster, "on_job_done", None)  # a plugin may not call Cluster.__init__
    cluster.on_job_done = done
    try:
        results = pipeline.execute(cluster, [job for _, job in built]) if built else []
    finally:
        cluster.on_job_done = told_before
    for (_, job), result in zip(built, results, strict=True):
        done(job, result)
    for n, obs in enumerate(observations):
        if n not in observed:  # failed on this machine, before any job
            obs.wall_s = time.time() - started
            if on_observation is not None:
                on_observation(n, obs)
    return observations


def own_wall(obs: Observation) -> float | None:
    """The wall of one job of a batch, from the scheduler: its staging, its own queue wait, its
    run (the scheduler's StartTime..EndTime, or the runner's own stages when longer: SLURM counts
    whole seconds) and its fetch. None when the cluster told no run time of its own."""
    process = obs.job.timings.get("process")
    if process is None:
        return None
    t = obs.timings
    ran = sum(t.get(k, 0.0) for k in ("startup", "deserialize", "execute", "serialize"))
    return sum(t.get(k, 0.0) for k in ("connect", "stage_in", "queue", "stage_out")) + max(process, ran)


def _drive(pipeline: RunnerPipeline[Any, Any], cluster: Cluster, limits: Limits, slot: ProbeSlot) -> Observation:
    started = time.time()
    obs = pipeline.new_observation(slot.workload, cluster.name, slot.probe_id, limits, started)
    try:
        with pipeline.travelling(slot.workload):
            call = pipeline.build(slot.workload, cluster, slot.probe_id, limits, slot.local_dir)
            outcome = pipeline.execute(call, cluster)
            obs = pipeline.observe(slot.workload, call, outcome, obs)
    except ClientSideError as exc:
        _client_failure(obs, exc)
    obs.wall_s = time.time() - started
    return obs
