"""The inline pipeline: the serialized function travels inside the command line.

Job-script generators often embed the function in the command itself, ``python -c "..."`` with a
base64 cloudpickle inside (ClustriX's Kubernetes mode does exactly this), instead of staging a
file. Nothing is uploaded but the runner; the command line carries the payload.

That meets the kernel's argument limits for real: Linux refuses any single argument longer than
MAX_ARG_STRLEN (32 pages, 128 KiB) and a whole command line over ARG_MAX with E2BIG, so the
exec fails before the interpreter starts. The cluster reports "Argument list too long", and
the diagnosis classes it ``arg_too_long``. On the default ladder the base64 pickle crosses 128 KiB
between levels 11 and 12.

Tracebacks: cloudpickle names the code it ships by value ``<dynamic-code>``. The native pipeline
ships the source beside the payload for the runner's ``linecache``; here that would lengthen the
command line and move the very threshold this pipeline measures. The client has the source, so
it maps the frames back on this side instead: a ``<dynamic-code>`` frame whose function is
defined in the workload's source at that line gets the file name and the line's text. Nothing
extra travels.

``embed`` chooses where the base64 goes: ``"code"`` (inside the ``-c`` program, one argument) or
``"argv"`` (a separate argument after the program). Both hit the single-argument limit.
"""

from __future__ import annotations

import ast
import base64
import re
from pathlib import Path
from typing import ClassVar, Literal

from threshold_probe.ast_counts import parse as parse_source
from threshold_probe.clusters.jobpaths import JobPaths
from threshold_probe.ladder.workload import Workload
from threshold_probe.models import PYTHON, JobResult, JobSpec, Limits, Observation, shared_ref
from threshold_probe.pipelines._runner_io import META_NAME, RESULT_NAME, fill_observation
from threshold_probe.pipelines.base import ShippingPipeline
from threshold_probe.pipelines.native import pickle_workload, runner_env
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


_DYNAMIC = "<dynamic-code>"
# `  File "<dynamic-code>", line 31, in raises` (a traceback) and `  File "<dynamic-code>", line 7 in
# segfaults` (a faulthandler stack).
_FRAME = re.compile(r'^(?P<indent>\s*)File "<dynamic-code>", line (?P<line>\d+)(?P<sep>,? in )(?P<name>\S+)\s*$')


def _definitions(source: str) -> list[tuple[str, int, int]]:
    """(name, first line, last line) of every function and lambda the source defines."""
    try:
        tree = parse_source(source)
    except (SyntaxError, ValueError):
        return []
    out = []
    for node in ast.walk(tree):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            out.append((node.name, node.lineno, node.end_lineno or node.lineno))
        elif isinstance(node, ast.Lambda):
            out.append(("<lambda>", node.lineno, node.end_lineno or node.lineno))
    return out


def restore_frames(text: str, workload: Workload) -> str:
    """`text` with the workload's `<dynamic-code>` frames naming its file and showing its lines.

    A frame is mapped only when the workload's source defines a function of that name around
    that line: code of another module shipped by value (--ship-local-modules) keeps its marker.
    """
    if _DYNAMIC not in text:
        return text
    filename = workload.filename or f"<{workload.name}>"
    lines = workload.source.splitlines()
    defs = _definitions(workload.source)
    out: list[str] = []
    for line in text.splitlines(keepends=True):
        m = _FRAME.match(line.rstrip("\n"))
        if m is None:
            out.append(line)
            continue
        number, name = int(m["line"]), m["name"].rsplit(".", 1)[-1]
        if not any(n == name and lo <= number <= hi for n, lo, hi in defs) or number > len(lines):
            out.append(line)
            continue
        out.append(f'{m["indent"]}File "{filename}", line {number}{m["sep"]}{m["name"]}\n')
        code = lines[number - 1].strip()
        if m["sep"].startswith(",") and code:  # a traceback shows the line; a faulthandler stack does not
            out.append(f"{m['indent']}    {code}\n")
    return "".join(out)


#: A larger stderr log is left as it is (its tail above is mapped all the same).
_MAX_RESTORED_BYTES = 16 * 1024**2
RESTORED_STDERR = "stderr.restored.log"


def _restore_stderr_log(obs: Observation, workload: Workload) -> None:
    """Point the observation at a copy of stderr.log with the frames mapped back; the log as
    fetched stays beside it, untouched."""
    path = obs.job.stderr_path
    if path is None:
        return
    try:
        if path.stat().st_size > _MAX_RESTORED_BYTES:
            return
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return
    restored = restore_frames(text, workload)
    if restored == text:
        return
    copy = path.with_name(RESTORED_STDERR)
    try:
        copy.write_text(restored, encoding="utf-8")
    except OSError:
        return
    obs.job.stderr_path = copy


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
            # The time limit, for the runner's stack dump just before it: in the environment, so
            # no argument grows (MAX_ARG_STRLEN counts each argument on its own).
            env=runner_env(limits),
            limits=limits,
            fetch=[META_NAME, RESULT_NAME],
            local_dir=local_dir,
        )

    def observe(self, workload: Workload, job: JobSpec, result: JobResult, obs: Observation) -> Observation:
        """Merge the runner's meta.json and result.json; note the longest argument's size."""
        obs = fill_observation(obs, result)
        obs.job.stderr_tail = restore_frames(obs.job.stderr_tail, workload)
        _restore_stderr_log(obs, workload)
        exc = (obs.meta or {}).get("exception")
        if isinstance(exc, dict) and isinstance(exc.get("traceback"), str):
            exc["traceback"] = restore_frames(exc["traceback"], workload)
        # Counted with the terminating NUL, as the kernel counts it against MAX_ARG_STRLEN.
        longest = max((len(a.encode()) + 1 for a in job.argv), default=0)
        relation = "over" if longest > MAX_ARG_STRLEN else "within"
        obs.notes.append(
            f"longest command-line argument: {longest} bytes, {relation} the {MAX_ARG_STRLEN}-byte limit"
            " on one argument (MAX_ARG_STRLEN)"
        )
        return obs


__all__ = ["MAX_ARG_STRLEN", "InlinePipeline", "inline_program", "restore_frames"]
