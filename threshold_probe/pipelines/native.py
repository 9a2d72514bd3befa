"""The native pipeline: cloudpickle the function by value and run it with the far-side runner."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar

import cloudpickle

from threshold_probe.clusters.jobpaths import JobPaths
from threshold_probe.errors import Interrupted
from threshold_probe.ladder.workload import Workload
from threshold_probe.models import PYTHON, JobResult, JobSpec, Limits, Observation, shared_ref
from threshold_probe.pipelines._runner_io import META_NAME, RESULT_NAME, fill_observation
from threshold_probe.pipelines.base import ClientSideError, ShippingPipeline, load_function, local_modules_by_value
from threshold_probe.remote import runner_source

PAYLOAD_NAME = JobPaths.PAYLOAD
RUNNER_NAME = JobPaths.RUNNER
#: The workload's source beside the payload (the runner puts it in linecache), and the time limit
#: the runner dumps every thread's stack just before (remote/runner.py).
SOURCE_NAME = JobPaths.SOURCE
TIME_LIMIT_ENV = "TP_TIME_LIMIT"


def source_file(workload: Workload) -> bytes:
    """source.json: the file name tracebacks should show, and its text."""
    name = workload.filename or f"<{workload.name}>"
    return json.dumps({"filename": name, "source": workload.source}).encode()


def runner_env(limits: Limits) -> dict[str, str]:
    """What the runner needs to know of the limits: the time limit, for the stack dump before it."""
    return {TIME_LIMIT_ENV: repr(float(limits.time_s))} if limits.time_s else {}


def pickle_workload(workload: Workload) -> bytes:
    """The workload's function, pickled by value; ClientSideError when that fails here."""
    with local_modules_by_value(workload):
        func = load_function(workload)
        try:
            # The workload's module cannot be imported anywhere, so cloudpickle ships it by value.
            data: bytes = cloudpickle.dumps(func)
        except Interrupted:
            raise  # Ctrl-C while pickling stops the run; it says nothing about the function
        except Exception as exc:
            raise ClientSideError("serialize", exc) from exc
    return data


class NativePipeline(ShippingPipeline):
    """cloudpickle + runner.py: the way most remote-function libraries ship a function."""

    name: ClassVar[str] = "native"

    def build(self, workload: Workload, probe_id: str, limits: Limits, local_dir: Path) -> JobSpec:
        """A job with the pickled function as payload and the runner as a shared file."""
        return JobSpec(
            probe_id=probe_id,
            files={PAYLOAD_NAME: pickle_workload(workload), SOURCE_NAME: source_file(workload)},
            shared={RUNNER_NAME: runner_source()},
            argv=[PYTHON, shared_ref(RUNNER_NAME), PAYLOAD_NAME],
            env=runner_env(limits),
            limits=limits,
            fetch=[META_NAME, RESULT_NAME],
            local_dir=local_dir,
        )

    def observe(self, workload: Workload, job: JobSpec, result: JobResult, obs: Observation) -> Observation:
        """Merge the runner's meta.json and result.json into the observation."""
        return fill_observation(obs, result)
