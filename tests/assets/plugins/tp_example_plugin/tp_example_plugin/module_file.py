"""A pipeline that ships the function's whole module file and imports it on the far side.

Runners that copy the user's script next to the job and import it work this way: module-level
helpers and constants travel (unlike source shipping), and nothing is pickled.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from threshold_probe.ladder.workload import Workload
from threshold_probe.models import PYTHON, JobResult, JobSpec, Limits, Observation
from threshold_probe.pipelines import META_NAME, RESULT_NAME, ClientSideError, ShippingPipeline, fill_observation

MODULE_NAME = "shipped_module.py"

# The far side: run the module, reach the function, call it, write result.json like the runner.
DRIVER = """
import json, runpy, sys, traceback
try:
    namespace = runpy.run_path(sys.argv[1], run_name="shipped_module")
    result = eval(sys.argv[2], namespace)()
except BaseException:
    traceback.print_exc()
    sys.exit(12)
text = repr(result)
with open("result.json", "w") as fh:
    json.dump({"type": type(result).__name__, "size": len(text), "encoding": "repr", "repr": text[:200]}, fh)
"""


class ModuleFilePipeline(ShippingPipeline):
    """Ship the module file; import it and call the function on the far side."""

    name: ClassVar[str] = "module-file"

    def build(self, workload: Workload, probe_id: str, limits: Limits, local_dir: Path) -> JobSpec:
        """The module as a file, and a driver given on the command line."""
        try:
            compile(workload.source, workload.name, "exec")
        except SyntaxError as exc:
            raise ClientSideError("syntax", exc) from exc
        return JobSpec(
            probe_id=probe_id,
            files={MODULE_NAME: workload.source.encode()},
            argv=[PYTHON, "-c", DRIVER, MODULE_NAME, workload.accessor or workload.func_name],
            limits=limits,
            fetch=[META_NAME, RESULT_NAME],
            local_dir=local_dir,
        )

    def observe(self, workload: Workload, job: JobSpec, result: JobResult, obs: Observation) -> Observation:
        """result.json (and meta.json, absent here) into the observation; the cluster gave the rest."""
        return fill_observation(obs, result)
