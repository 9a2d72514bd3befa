"""The submitit pipeline: dispatch through the installed submitit library's own executors.

On a ``slurm`` cluster the workload's function goes to ``submitit.SlurmExecutor``: the cluster's
``partition`` becomes ``partition``, the probe's memory limit ``mem`` (MB), its time limit
``time`` (whole minutes, rounded up) and its cores ``cpus_per_task``. submitit calls ``sbatch``
on this machine (with the cluster's ``slurm_conf`` as ``SLURM_CONF``) and reads its job folder
here, so the folder must be on a file system the compute node shares. On ``local`` the function
goes to ``submitit.LocalExecutor``.

submitit's result file (``<job>_0_result.pkl``) is never unpickled by the client: a helper
process asks submitit to read it (``remote/submitit_helper.py``) and writes JSON. The job's
``_log.out`` / ``_log.err`` become the probe's stdout and stderr, and the traceback submitit
recorded is appended to stderr, so the verdict names the root error.

What submitit gets wrong, and how this pipeline copes (see docs/pipelines.md):

- SLURM takes whole minutes: a sub-minute limit is enforced by the pipeline (``scancel``);
- a job that ended without writing its result file (killed by the cgroup, scancel, node loss)
  is not seen as ended by submitit when SLURM accounting is off (``sacct`` fails): its
  ``result()`` waits far past the job's end. The pipeline watches ``squeue`` and the result
  file itself and ends its wait when the job has left the queue;
- ``LocalExecutor`` enforces no memory limit.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from threshold_probe.clusters.base import Cluster
from threshold_probe.clusters.jobpaths import JobPaths
from threshold_probe.config import SlurmClusterConfig
from threshold_probe.errors import UserError
from threshold_probe.ladder.workload import Workload
from threshold_probe.models import Limits, Observation
from threshold_probe.pipelines.base import RunnerPipeline, load_function

HELPER_PATH = Path(__file__).resolve().parent.parent / "remote" / "submitit_helper.py"
#: How often the pipeline looks at the job while submitit has it.
WATCH_INTERVAL_S = 0.5
#: Bound on a probe when no time limit is set.
DEFAULT_BOUND_S = 600.0
#: Time the job gets past its limit before the pipeline ends it (submitit's own set-up).
GRACE_S = 2.0
#: Bound on submitit's start (sbatch, or the local process) and on the helper.
SUBMIT_TIMEOUT_S = 60.0

# submitit reads SLURM_CONF from the environment of this process: one dispatch at a time.
_env_lock = threading.Lock()


def _import_submitit() -> Any:
    try:
        import submitit
    except ImportError:
        raise UserError("the submitit pipeline needs submitit: pip install 'threshold-probe[submitit]'") from None
    return submitit


def _submitit_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("submitit")
    except PackageNotFoundError:
        return "?"


def slurm_parameters(cluster: Cluster, limits: Limits) -> dict[str, Any]:
    """SlurmExecutor.update_parameters() arguments for a probe on a slurm cluster."""
    cfg = cluster.config
    slurm = cfg if isinstance(cfg, SlurmClusterConfig) else None
    params: dict[str, Any] = {"cpus_per_task": limits.cores or (slurm.cores if slurm else None) or 1}
    if slurm is not None and slurm.partition:
        params["partition"] = slurm.partition
    if limits.memory_bytes is not None:
        params["mem"] = f"{max(1, limits.memory_bytes // 1024**2)}M"
    if limits.time_s is not None:
        params["time"] = max(1, math.ceil(limits.time_s / 60))
        # submitit asks SLURM for USR2 90 s before the end by default: with a time of one or two
        # minutes that is at once, and submitit ends the job as "timed-out" before it ran.
        params["signal_delay_s"] = 1
    return params


@dataclass(frozen=True)
class SubmititCall:
    """A probe's submission through submitit, prepared on this machine."""

    func: Callable[..., Any]
    #: "local" (LocalExecutor) or "slurm" (SlurmExecutor).
    kind: str
    limits: Limits
    #: submitit's job folder (on a file system the compute node shares).
    folder: Path
    local_dir: Path
    params: dict[str, Any]
    slurm_conf: str | None


@dataclass
class SubmititOutcome:
    """What the submission left: the executor, the job, its facts and submitit's result record."""

    executor_note: str
    launch_error: str | None = None
    job: Any = None
    job_id: str = ""
    execute_s: float | None = None
    timed_out: bool = False
    left_queue_without_result: bool = False
    scheduler: dict[str, str] = field(default_factory=dict)
    data: dict[str, Any] = field(default_factory=dict)
    #: submitit's own warnings while it had the job.
    log_lines: list[str] = field(default_factory=list)


class SubmititPipeline(RunnerPipeline[SubmititCall, SubmititOutcome]):
    """Dispatch through submitit's executor; read submitit's job files for the root error."""

    name: ClassVar[str] = "submitit"

    def __init__(self) -> None:
        self.submitit = _import_submitit()

    def _kind(self, cluster: Cluster) -> str:
        kind = cluster.kind
        if kind == "local":
            return kind
        if kind == "slurm":
            cfg = cluster.config
            if isinstance(cfg, SlurmClusterConfig) and cfg.host and not cfg.slurm_conf:
                raise UserError(
                    f"the submitit pipeline calls sbatch on this machine; {cluster.name!r} is reached over SSH"
                    " and names no slurm_conf this machine can use"
                )
            return kind
        raise UserError(f"the submitit pipeline needs a local or slurm cluster; {cluster.name!r} is {kind}")

    def enforcement(self, cluster: Cluster, limits: Limits) -> dict[str, str]:
        """LocalExecutor enforces nothing but time (the pipeline does); SLURM whole minutes."""
        out: dict[str, str] = {}
        if cluster.kind == "slurm":
            out = dict(cluster.enforcement(limits))
            if limits.time_s is not None and limits.time_s % 60:
                out["time"] = "runner"
            return out
        if limits.memory_bytes is not None:
            out["memory"] = "not enforced (submitit LocalExecutor)"
        if limits.time_s is not None:
            out["time"] = "runner"
        if limits.cores is not None:
            out["cores"] = "not enforced (submitit LocalExecutor)"
        return out

    # -- build, execute, observe ---------------------------------------------------------------

    def build(
        self, workload: Workload, cluster: Cluster, probe_id: str, limits: Limits, local_dir: Path
    ) -> SubmititCall:
        """The function, loaded here, and the executor's parameters for this cluster."""
        func = load_function(workload)
        kind = self._kind(cluster)
        folder = (local_dir / "submitit").resolve()
        folder.mkdir(parents=True, exist_ok=True)
        cfg = cluster.config
        slurm_conf = cfg.slurm_conf if kind == "slurm" and isinstance(cfg, SlurmClusterConfig) else None
        if kind == "slurm":
            params = slurm_parameters(cluster, limits)
        else:
            params = {"timeout_min": max(1, math.ceil((limits.time_s or DEFAULT_BOUND_S) / 60))}
        return SubmititCall(func, kind, limits, folder, local_dir, params, slurm_conf)

    def execute(self, call: SubmititCall, cluster: Cluster) -> SubmititOutcome:
        """Submit, watch the job to its end (bounded), and read submitit's record of it."""
        with _env_lock:
            saved = os.environ.get("SLURM_CONF")
            if call.slurm_conf:
                os.environ["SLURM_CONF"] = str(call.slurm_conf)
            try:
                lines: list[str] = []
                with _submitit_log(lines):
                    outcome = self._run(call)
                outcome.log_lines = lines
                return outcome
            finally:
                if call.slurm_conf:
                    if saved is None:
                        os.environ.pop("SLURM_CONF", None)
                    else:
                        os.environ["SLURM_CONF"] = saved

    def _run(self, call: SubmititCall) -> SubmititOutcome:
        sub = self.submitit
        kind, params = call.kind, call.params
        if kind == "slurm":
            executor = sub.SlurmExecutor(folder=call.folder, max_num_timeout=0)
        else:
            executor = sub.LocalExecutor(folder=call.folder)
        executor.update_parameters(**params)
        outcome = SubmititOutcome(
            f"submitit {_submitit_version()} {type(executor).__name__} "
            + " ".join(f"{k}={v}" for k, v in sorted(params.items()))
        )
        try:
            job = executor.submit(call.func)
        except Exception as exc:
            text = str(exc).strip().splitlines()
            outcome.launch_error = (
                f"submitit could not submit the job: {type(exc).__name__}: {text[-1] if text else ''}"
            )
            return outcome
        outcome.job = job
        outcome.job_id = job_id = str(job.job_id)
        result_pickle = Path(job.paths.result_pickle)
        bound = (call.limits.time_s or DEFAULT_BOUND_S) + GRACE_S
        t_submit = time.time()
        try:
            while True:
                if result_pickle.exists():
                    break
                if not self._alive(kind, job, job_id):
                    # Give the node's file system a moment: the job may have just written it.
                    time.sleep(1.0)
                    outcome.left_queue_without_result = not result_pickle.exists()
                    break
                if time.time() - t_submit > bound:
                    outcome.timed_out = True
                    job.cancel(check=False)
                    self._wait_gone(kind, job, job_id, 15.0)
                    break
                time.sleep(WATCH_INTERVAL_S)
        except BaseException:
            # Interrupted: nothing may be left running.
            job.cancel(check=False)
            raise
        outcome.execute_s = time.time() - t_submit
        if kind == "slurm":
            outcome.scheduler = self._scheduler(job_id)
        outcome.data = self._read_result(call.folder, job_id, call.local_dir)
        return outcome

    def _alive(self, kind: str, job: Any, job_id: str) -> bool:
        if kind == "local":
            proc = getattr(job, "_process", None)
            return proc is not None and proc.poll() is None
        try:
            out = subprocess.run(["squeue", "-h", "-j", job_id, "-o", "%T"], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return True
        if out.returncode != 0:
            # squeue refuses a job id it has forgotten: it left the queue.
            return "Invalid job id" not in out.stderr
        state = out.stdout.strip()
        return bool(state) and state not in ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY")

    def _wait_gone(self, kind: str, job: Any, job_id: str, seconds: float) -> None:
        end = time.time() + seconds
        while time.time() < end and self._alive(kind, job, job_id):
            time.sleep(WATCH_INTERVAL_S)

    def _scheduler(self, job_id: str) -> dict[str, str]:
        try:
            out = subprocess.run(["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, timeout=30)
        except (OSError, subprocess.TimeoutExpired):
            return {}
        facts: dict[str, str] = {}
        for item in out.stdout.split():
            key, sep, value = item.partition("=")
            if sep and key in ("JobId", "JobState", "Reason", "ExitCode", "NodeList", "RunTime"):
                facts[key] = value
        return facts

    def _read_result(self, folder: Path, job_id: str, local_dir: Path) -> dict[str, Any]:
        out = local_dir / "submitit-result.json"
        try:
            subprocess.run(
                [sys.executable, str(HELPER_PATH), str(folder), job_id, str(out)],
                capture_output=True,
                text=True,
                timeout=SUBMIT_TIMEOUT_S,
                check=False,
            )
            data = json.loads(out.read_text())
        except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
            return {"unreadable": f"{type(exc).__name__}: {exc}"}
        return data if isinstance(data, dict) else {"unreadable": "not an object"}

    def observe(
        self, workload: Workload, call: SubmititCall, outcome: SubmititOutcome, obs: Observation
    ) -> Observation:
        """submitit's logs and record of the result (or exception) into `obs`."""
        obs.notes.append(outcome.executor_note)
        res = obs.job
        if outcome.launch_error is not None:
            res.launch_error = outcome.launch_error
            obs.notes.extend(f"submitit: {line}" for line in outcome.log_lines)
            return obs
        kind, job, job_id, local_dir = call.kind, outcome.job, outcome.job_id, call.local_dir
        res.scheduler["JobId"] = job_id
        res.remote_dir = str(call.folder)
        obs.timings["execute"] = outcome.execute_s or 0.0
        res.timed_out = outcome.timed_out
        res.scheduler.update(outcome.scheduler)
        data = outcome.data
        stdout = _read_text(Path(job.paths.stdout))
        stderr = _read_text(Path(job.paths.stderr))
        if data.get("traceback"):
            stderr = (
                stderr.rstrip("\n")
                + f"\n# {job_id}_0_result.pkl (submitit's record of the exception):\n{data['traceback']}"
            )
        if re.search(r"UncompletedJobError.*timed-out", str(data.get("traceback") or ""), re.S):
            # SLURM's time limit reached the job first (submitit's own record says so).
            res.timed_out = True
        if data.get("unreadable"):
            obs.notes.append(f"submitit's result file could not be read: {data['unreadable']}")
        out_path, err_path = local_dir / JobPaths.STDOUT, local_dir / JobPaths.STDERR
        out_path.write_text(stdout)
        err_path.write_text(stderr)
        res.stdout_path, res.stderr_path = out_path, err_path
        res.stdout_tail, res.stderr_tail = stdout[-4096:], stderr[-4096:]
        outcome_kind = data.get("outcome")
        if outcome_kind == "success":
            res.exit_code = 0
            obs.result = data.get("result")
        elif outcome_kind is not None:
            res.exit_code = 1
        code, sig = _exit(kind, job, res.scheduler.get("ExitCode"))
        if outcome_kind is None:
            res.exit_code, res.signal = code, sig
        if outcome.left_queue_without_result:
            obs.notes.append(
                "the job ended without writing submitit's result file; with SLURM accounting off"
                " submitit itself does not see that it ended (the pipeline watched squeue)"
                if kind == "slurm"
                else "the job ended without writing submitit's result file"
            )
        if outcome.timed_out:
            obs.notes.append("the job still ran at the probe's time limit and was cancelled by the pipeline")
        obs.notes.extend(f"submitit: {line}" for line in outcome.log_lines)
        return obs


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        line = record.getMessage().splitlines()[0] if record.getMessage() else ""
        # submitit repeats one warning at every poll ("Call #N - ..."): keep each kind once.
        key = line.split(" - ", 1)[-1]
        if key not in (known.split(" - ", 1)[-1] for known in self.lines):
            self.lines.append(line)


@contextlib.contextmanager
def _submitit_log(lines: list[str]) -> Any:
    """submitit's warnings (a failing sacct at every poll) go to `lines` (notes) instead of terminal lines."""
    logger = logging.getLogger("submitit")
    collect = _Collect()
    saved = [(h, h.level) for h in logger.handlers]
    for handler, _ in saved:
        handler.setLevel(logging.CRITICAL + 1)
    logger.addHandler(collect)
    try:
        yield
    finally:
        logger.removeHandler(collect)
        for handler, level in saved:
            handler.setLevel(level)
        lines.extend(collect.lines)


def _read_text(path: Path) -> str:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return ""


def _exit(kind: str, job: Any, exit_code: str | None) -> tuple[int | None, int | None]:
    if kind == "local":
        proc = getattr(job, "_process", None)
        rc = proc.poll() if proc is not None else None
        if rc is None:
            return None, None
        return (None, -rc) if rc < 0 else (rc, None)
    if not exit_code or ":" not in exit_code:
        return None, None
    code, _, sig = exit_code.partition(":")
    try:
        c, s = int(code), int(sig)
    except ValueError:
        return None, None
    return (None, s) if s else (c, None)


__all__ = ["SubmititPipeline", "slurm_parameters"]
