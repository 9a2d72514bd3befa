"""How a function travels to a cluster and back. A pipeline knows nothing of SSH or SLURM."""

from __future__ import annotations

import contextlib
import sys
import time
import types
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, ClassVar

import cloudpickle

from threshold_probe.clusters.base import Cluster
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


class Pipeline(ABC):
    """Build a job from a workload, and turn what the cluster saw into an observation.

    Most pipelines only implement `build` and `observe`; one that drives a whole third-party
    runner overrides `dispatch`.
    """

    name: ClassVar[str] = "abstract"
    #: The far side must load cloudpickle (and what this client pickles); a pipeline that ships
    #: source text does not, so a preflight does not refuse a host without it.
    needs_cloudpickle: ClassVar[bool] = True
    #: Leave each probe's remote folder in place (the report then says where it is).
    keep_remote: bool = False

    @abstractmethod
    def build(self, workload: Workload, probe_id: str, limits: Limits, local_dir: Path) -> JobSpec:
        """The job that runs this workload. Raise ClientSideError when it cannot be built."""

    @abstractmethod
    def observe(self, workload: Workload, job: JobSpec, result: JobResult, obs: Observation) -> Observation:
        """Fill `obs` from the job's result and fetched files (meta.json, result.json, logs)."""

    def enforcement(self, cluster: Cluster, limits: Limits) -> dict[str, str]:
        """Who enforces each limit: the cluster's mechanisms, unless the pipeline runs the job
        some other way (a driving pipeline overrides this)."""
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
        started = time.time()
        obs = self.new_observation(workload, cluster.name, probe_id, limits, started)
        try:
            job = self.build(workload, probe_id, limits, local_dir)
        except ClientSideError as exc:
            obs.client_error = str(exc)
            obs.client_error_type = exc.failure_class
            obs.wall_s = time.time() - started
            return obs
        job.keep_remote = job.keep_remote or self.keep_remote
        result = cluster.execute(job)
        obs.remote_kept = job.keep_remote
        obs.job = result
        obs = self.observe(workload, job, result, obs)
        obs.wall_s = time.time() - started
        return obs
