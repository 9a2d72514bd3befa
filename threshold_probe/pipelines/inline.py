"""The inline pipeline: the serialized function travels inside the command line.

Job-script generators often embed the function in the command itself, ``python -c "..."`` with a
base64 cloudpickle inside (ClustriX's Kubernetes mode does exactly this), instead of staging a
file. Nothing is uploaded but the runner; the command line carries the payload.

That meets the kernel's argument limits for real: Linux refuses any single argument longer than
MAX_ARG_STRLEN (32 pages, 128 KiB) and a whole command line over ARG_MAX with E2BIG, so the
exec fails before the interpreter starts. The cluster reports "Argument list too long", and
the diagnosis classes it ``arg_too_long``. On the default ladder the base64 pickle crosses 128 KiB
between levels 11 and 12.

``embed`` chooses where the base64 goes: ``"code"`` (inside the ``-c`` program, one argument) or
``"argv"`` (a separate argument after the program). Both hit the single-argument limit.
"""

from __future__ import annotations

import base64
from pathlib import Path
from typing import ClassVar, Literal

from threshold_probe.clusters.jobpaths import JobPaths
from threshold_probe.ladder.workload import Workload
from threshold_probe.models import PYTHON, JobResult, JobSpec, Limits, Observation, shared_ref
from threshold_probe.pipelines._runner_io import META_NAME, RESULT_NAME, fill_observation
from threshold_probe.pipelines.base import ShippingPipeline
from threshold_probe.pipelines.native import pickle_workload
from threshold_probe.remote import runner_source

RUNNER_NAME = JobPaths.RUNNER
#: The file the inline program writes the decoded payload to, for the standard runner to load.
PAYLOAD_NAME = JobPaths.PAYLOAD
#: Linux's limit on one argument (MAX_ARG_STRLEN = 32 * PAGE_SIZE), for reports and tests.
MAX_ARG_STRLEN = 32 * 4096

# The program run by `python -c`. It decodes the payload, writes it where the runner expects it,
# and runs the runner as __main__ so meta.json, result.json and exit codes are the native ones.
_PROGRAM = (
    "import base64,runpy,sys\n"
    "_b64={b64}\n"
    "_runner=sys.argv[1]\n"
    "with open({payload!r},'wb') as _fh:\n"
    "    _fh.write(base64.b64decode(_b64 if _b64 is not None else sys.argv[2]))\n"
    "sys.argv=[_runner,{payload!r}]\n"
    "runpy.run_path(_runner,run_name='__main__')\n"
)


def inline_program(b64: str | None) -> str:
    """The `-c` program; with `b64` None it reads the payload from its second argument."""
    return _PROGRAM.format(b64=repr(b64) if b64 is not None else "None", payload=PAYLOAD_NAME)


class InlinePipeline(ShippingPipeline):
    """cloudpickle -> base64 -> the command line (`python -c`), then the standard runner."""

    name: ClassVar[str] = "inline"
    embed: ClassVar[Literal["code", "argv"]] = "code"

    def build(self, workload: Workload, probe_id: str, limits: Limits, local_dir: Path) -> JobSpec:
        """A job whose argv carries the pickled function; only the runner is staged."""
        b64 = base64.b64encode(pickle_workload(workload)).decode("ascii")
        if self.embed == "argv":
            argv = [PYTHON, "-c", inline_program(None), shared_ref(RUNNER_NAME), b64]
        else:
            argv = [PYTHON, "-c", inline_program(b64), shared_ref(RUNNER_NAME)]
        return JobSpec(
            probe_id=probe_id,
            files={},
            shared={RUNNER_NAME: runner_source()},
            argv=argv,
            limits=limits,
            fetch=[META_NAME, RESULT_NAME],
            local_dir=local_dir,
        )

    def observe(self, workload: Workload, job: JobSpec, result: JobResult, obs: Observation) -> Observation:
        """Merge the runner's meta.json and result.json; note the longest argument's size."""
        obs = fill_observation(obs, result)
        # Counted with the terminating NUL, as the kernel counts it against MAX_ARG_STRLEN.
        longest = max((len(a.encode()) + 1 for a in job.argv), default=0)
        relation = "over" if longest > MAX_ARG_STRLEN else "within"
        obs.notes.append(
            f"longest command-line argument: {longest} bytes, {relation} the {MAX_ARG_STRLEN}-byte limit"
            " on one argument (MAX_ARG_STRLEN)"
        )
        return obs


__all__ = ["MAX_ARG_STRLEN", "InlinePipeline", "inline_program"]
