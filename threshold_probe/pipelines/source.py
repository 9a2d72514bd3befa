"""The source pipeline: ship the function's source text, rebuild it on the far side.

This is what source-shipping runners do. The client takes ``inspect.getsource`` of the function
as the level defines it (module-level, nested inside a factory, or a static method), and the
module's imports and module-level assignments as a preamble. The far side
(``remote/source_runner.py``) strips the decorators, dedents, ``exec``s it in a fresh namespace and
calls it.

What does not travel fails for real on the far side: a closure variable of an enclosing function
or a module-level helper function is a NameError, and an indented definition holding column-0
lines (a triple-quoted script) cannot be dedented and is an IndentationError.
"""

from __future__ import annotations

import ast
import inspect
import json
from pathlib import Path
from typing import Any, ClassVar

from threshold_probe.ast_counts import parse as parse_source
from threshold_probe.clusters.jobpaths import JobPaths
from threshold_probe.ladder.workload import Workload
from threshold_probe.models import PYTHON, JobResult, JobSpec, Limits, Observation, shared_ref
from threshold_probe.pipelines._runner_io import META_NAME, RESULT_NAME, fill_observation
from threshold_probe.pipelines.base import ClientSideError, ShippingPipeline, load_function
from threshold_probe.remote import runner_source

PAYLOAD_NAME = JobPaths.SOURCE_PAYLOAD
RUNNER_NAME = JobPaths.RUNNER
SOURCE_RUNNER_NAME = JobPaths.SOURCE_RUNNER
SOURCE_RUNNER_PATH = Path(__file__).resolve().parent.parent / "remote" / SOURCE_RUNNER_NAME


def source_runner_source() -> bytes:
    """The bytes of the far-side source runner."""
    return SOURCE_RUNNER_PATH.read_bytes()


def module_preamble(source: str, *, imports: bool = True, assignments: bool = True) -> str:
    """The module-level statements a source runner ships with a function, in source order.

    Imports (and ``from __future__``) when `imports`; plain and annotated assignments (constants
    and data) when `assignments`. Function and class definitions, and any other statement, do
    not travel.
    """
    try:
        tree = parse_source(source)
    except SyntaxError:
        return ""
    kinds: tuple[type[ast.stmt], ...] = ()
    if imports:
        kinds += (ast.Import, ast.ImportFrom)
    if assignments:
        kinds += (ast.Assign, ast.AnnAssign)
    parts = []
    for node in tree.body:
        if isinstance(node, kinds):
            segment = ast.get_source_segment(source, node)
            if segment:
                parts.append(segment)
    return "\n".join(parts) + ("\n" if parts else "")


def function_source(workload: Workload) -> tuple[str, str]:
    """(name, source text) of the workload's function as `inspect.getsource` gives it."""
    func = load_function(workload)
    try:
        text = inspect.getsource(func)
    except (OSError, TypeError) as exc:
        raise ClientSideError("serialize", exc) from exc
    return func.__name__, text


class SourcePipeline(ShippingPipeline):
    """Ship source text, exec it on the far side: closures and helpers do not travel."""

    name: ClassVar[str] = "source"
    #: The source runner is stdlib only: cloudpickle on the far side is not needed.
    needs_cloudpickle: ClassVar[bool] = False
    #: Module-level imports travel with the function (without them nothing would run).
    ship_imports: ClassVar[bool] = True
    #: Module-level assignments (constants, data) travel too; helper functions never do.
    ship_assignments: ClassVar[bool] = True

    def payload(self, workload: Workload) -> dict[str, Any]:
        """What travels: the function's name and source, the preamble, a file name for tracebacks."""
        name, text = function_source(workload)
        preamble = module_preamble(workload.source, imports=self.ship_imports, assignments=self.ship_assignments)
        return {
            "name": name,
            "source": text,
            "preamble": preamble,
            "filename": f"<shipped {workload.name}>",
            "definition_scope": workload.definition_scope,
        }

    def build(self, workload: Workload, probe_id: str, limits: Limits, local_dir: Path) -> JobSpec:
        """A job with the source as payload.json and both runners as shared files."""
        data = json.dumps(self.payload(workload), indent=1).encode()
        # Kept beside the probe's logs: the exact text the far side received.
        local_dir.mkdir(parents=True, exist_ok=True)
        (local_dir / PAYLOAD_NAME).write_bytes(data)
        return JobSpec(
            probe_id=probe_id,
            files={PAYLOAD_NAME: data},
            shared={RUNNER_NAME: runner_source(), SOURCE_RUNNER_NAME: source_runner_source()},
            argv=[PYTHON, shared_ref(SOURCE_RUNNER_NAME), shared_ref(RUNNER_NAME), PAYLOAD_NAME],
            limits=limits,
            fetch=[META_NAME, RESULT_NAME],
            local_dir=local_dir,
        )

    def observe(self, workload: Workload, job: JobSpec, result: JobResult, obs: Observation) -> Observation:
        """Merge the runner's meta.json and result.json into the observation."""
        return fill_observation(obs, result)


__all__ = ["SourcePipeline", "function_source", "module_preamble", "source_runner_source"]
