"""The clustrix pipeline: dispatch through the installed ClustriX library's `@cluster` decorator.

The probe's cluster (an ``ssh`` cluster from probe.toml; ``slurm`` is mapped too) becomes
ClustriX's configuration: cluster_type, cluster_host, cluster_port, username, key_file,
remote_work_dir, python_executable, and the decorator's cores, memory, time and partition. The
workload's function is wrapped with ``clustrix.cluster(...)`` and called, exactly as a user would.

ClustriX's exception is captured, and its remote job folder is kept and read (through the
probe's own cluster, with ``remote/clustrix_helper.py``): the job's ``job.out`` and ``job.err``
become the probe's stdout and stderr, and the exception ClustriX pickled into ``error.pkl`` (read
on the far side with an unpickler that refuses every global) is appended to stderr, so the
verdict names the root error and keeps ClustriX's own message as evidence.

What ClustriX 0.1.1 does in SSH mode, and how this pipeline copes (see docs/pipelines.md):

- its job script ignores ``python_executable``: it sources ``venv/bin/activate`` in the job folder
  (a venv it never creates in SSH mode) and runs a bare ``python``. With ``provision_venv`` (the
  default) the pipeline links ``venv`` in each job folder ClustriX may create to the cluster's
  Python environment; without it, a host with no ``python`` on PATH fails every level;
- it names job folders by the second (``job_<unix time>``); ``remote_work_dir`` is therefore one
  folder per probe;
- it learns that a job failed only when ``job.err`` has lines, but its script writes the
  exception to ``error.pkl`` and exits without printing it, so a raising function leaves ClustriX
  polling for ever. The pipeline watches the job folder itself and stops ClustriX's wait once the
  job has ended (noted in the evidence);
- ``auto_parallel`` (on by default) splits a function whose first loop is ``for x in range(N)``
  into jobs called with extra ``_chunk_range_<x>`` / ``_chunk_index`` keyword arguments.
  ``clustrix`` keeps ClustriX's default; ``clustrix-serial`` turns it off.
- it enforces no memory or time limit in SSH mode; the pipeline ends a job at the probe's time
  limit itself.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from threshold_probe.clusters.base import Cluster, SSHEndpoint
from threshold_probe.clusters.jobpaths import JobPaths
from threshold_probe.config import SlurmClusterConfig, SSHClusterConfig
from threshold_probe.errors import UserError
from threshold_probe.ladder.workload import Workload
from threshold_probe.models import PYTHON, JobResult, JobSpec, Limits, Observation, shared_ref
from threshold_probe.pipelines._runner_io import read_json_file
from threshold_probe.pipelines.base import RunnerPipeline, load_function, local_modules_by_value

HELPER_NAME = "clustrix_helper.py"
HELPER_PATH = Path(__file__).resolve().parent.parent / "remote" / HELPER_NAME
#: Seconds ahead for which job folders (with their venv link) are made before the call.
PREPARE_WINDOW_S = 180
#: How often the pipeline looks at the job folder while ClustriX waits.
WATCH_INTERVAL_S = 1.0
#: ClustriX's poll interval (its default is 30 s; a probe should not wait that long).
CLUSTRIX_POLL_S = 1
#: After the job has ended, how long ClustriX gets to notice before its wait is stopped.
NOTICE_GRACE_S = 3 * CLUSTRIX_POLL_S + 3.0
#: Bound on a probe when the cluster sets no time limit.
DEFAULT_BOUND_S = 600.0
HELPER_LIMITS = Limits(time_s=120.0)

_clustrix_lock = threading.Lock()


def _import_clustrix() -> Any:
    try:
        import clustrix
    except ImportError:
        raise UserError("the clustrix pipeline needs ClustriX: pip install 'threshold-probe[clustrix]'") from None
    return clustrix


def _clustrix_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("clustrix")
    except PackageNotFoundError:
        return "?"


def _hms(seconds: float) -> str:
    s = max(1, int(seconds))
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _memory(limits: Limits) -> str | None:
    if limits.memory_bytes is None:
        return None
    return f"{max(1, limits.memory_bytes // 1024**2)}MB"


@dataclass(frozen=True)
class ClustrixCall:
    """A probe's call through ClustriX, prepared on this machine."""

    func: Callable[..., Any]
    probe_id: str
    limits: Limits
    local_dir: Path
    #: The cluster's work folder, under which the far side gets one folder per probe.
    workdir: str


@dataclass
class ClustrixOutcome:
    """What the call and ClustriX's job folder left: the far side's preparation, the call, the folder."""

    prep_result: JobResult
    prep: dict[str, Any] | None
    call: _ClustrixCall | None = None
    collected: dict[str, Any] | None = None
    coll_result: JobResult | None = None
    timed_out: bool = False
    stopped_wait: bool = False


def _ssh_cluster(cluster: Cluster) -> tuple[SSHClusterConfig | SlurmClusterConfig, SSHEndpoint]:
    """The cluster's typed configuration and SSH endpoint; UserError when ClustriX cannot reach it."""
    cfg = cluster.config
    endpoint = cluster.ssh_endpoint() if cluster.kind in ("ssh", "slurm") else None
    if endpoint is None or not isinstance(cfg, SSHClusterConfig | SlurmClusterConfig):
        raise UserError(
            f"the clustrix pipeline needs an ssh or slurm cluster reached over SSH; {cluster.name!r} is {cluster.kind}"
        )
    return cfg, endpoint


class ClustrixPipeline(RunnerPipeline[ClustrixCall, ClustrixOutcome]):
    """Dispatch through `clustrix.cluster`; read ClustriX's job folder for the root error."""

    name: ClassVar[str] = "clustrix"
    #: ClustriX's `auto_parallel`; None keeps ClustriX's own default (True).
    auto_parallel: ClassVar[bool | None] = None
    #: Link `venv` in ClustriX's job folders to the cluster's Python environment (see module doc).
    provision_venv: ClassVar[bool] = True

    def __init__(self) -> None:
        self.clustrix = _import_clustrix()

    # -- configuration -------------------------------------------------------------------------

    def clustrix_config(self, cluster: Cluster, root: str) -> dict[str, Any]:
        """ClustriX's configure() arguments for a probe.toml cluster, jobs under `root`."""
        cfg, endpoint = _ssh_cluster(cluster)
        if endpoint.via_jump:
            raise UserError(f"ClustriX cannot reach {cluster.name!r}: it does not support ProxyJump")
        if endpoint.via_proxy_command:
            raise UserError(f"ClustriX cannot reach {cluster.name!r}: it does not support ProxyCommand")
        out: dict[str, Any] = {
            "cluster_type": cluster.kind,
            "cluster_host": endpoint.host,
            "cluster_port": endpoint.port,
            "username": endpoint.user,
            "key_file": endpoint.identity_files[0] if endpoint.identity_files else None,
            "remote_work_dir": root,
            "python_executable": cfg.python,
            "default_cores": cfg.cores or 1,
            "default_memory": cfg.memory or "1GB",
            "default_time": _hms(float(cfg.limits().time_s or 3600)),
            "default_partition": cfg.partition if isinstance(cfg, SlurmClusterConfig) else None,
            # ClustriX writes these into its SLURM job script (its SSH script runs none of them).
            "module_loads": list(cfg.modules),
            "pre_execution_commands": list(cfg.setup),
            "job_poll_interval": CLUSTRIX_POLL_S,
            # Keep the job folder: it is the evidence.
            "cleanup_on_success": False,
        }
        if endpoint.password_env:
            from threshold_probe.clusters.sshconfig import password_from_env

            # Read from the environment at call time; it never reaches a report or the journal.
            out["password"] = password_from_env(endpoint.password_env)
        if self.auto_parallel is not None:
            out["auto_parallel"] = self.auto_parallel
        return out

    # -- far-side helper ----------------------------------------------------------------------

    def _helper(
        self, cluster: Cluster, probe_id: str, local_dir: Path, step: str, args: list[str], fetch: list[str]
    ) -> tuple[JobResult, dict[str, Any] | None]:
        folder = local_dir / f"clustrix-{step}"
        job = JobSpec(
            probe_id=f"{probe_id}-cx-{step}",
            shared={HELPER_NAME: HELPER_PATH.read_bytes()},
            argv=[PYTHON, shared_ref(HELPER_NAME), *args],
            limits=HELPER_LIMITS,
            fetch=fetch,
            local_dir=folder,
        )
        result = cluster.execute(job)
        data, _ = read_json_file(result.files.get(fetch[0]))
        return result, data

    def enforcement(self, cluster: Cluster, limits: Limits) -> dict[str, str]:
        """ClustriX's SSH mode enforces no limit: the pipeline ends a job at the time limit
        itself; memory and cores are not enforced. Its SLURM mode hands them to sbatch."""
        if cluster.kind != "ssh":
            return cluster.enforcement(limits)
        out = {}
        if limits.memory_bytes is not None:
            out["memory"] = "not enforced (ClustriX over SSH)"
        if limits.time_s is not None:
            out["time"] = "runner"
        if limits.cores is not None:
            out["cores"] = "not enforced (ClustriX over SSH)"
        return out

    # -- build, execute, observe ---------------------------------------------------------------

    def travelling(self, workload: Workload) -> AbstractContextManager[None]:
        """ClustriX pickles inside the call: the user's sibling modules go by value meanwhile."""
        return local_modules_by_value(workload)

    def build(
        self, workload: Workload, cluster: Cluster, probe_id: str, limits: Limits, local_dir: Path
    ) -> ClustrixCall:
        """The function, loaded here; a cluster ClustriX cannot use fails before the far side is touched."""
        func = load_function(workload)
        self.clustrix_config(cluster, "")
        cfg = cluster.config
        workdir = cfg.workdir if isinstance(cfg, SSHClusterConfig | SlurmClusterConfig) else None
        return ClustrixCall(func, probe_id, limits, local_dir, str(workdir or "~/.threshold-probe"))

    def execute(self, call: ClustrixCall, cluster: Cluster) -> ClustrixOutcome:
        """Prepare the far side, call the function through ClustriX, watch and read its job folder."""
        started = time.time()
        probe_id, local_dir, limits = call.probe_id, call.local_dir, call.limits
        start = int(time.time()) - 1
        prep_args = ["prepare", call.workdir, probe_id, str(start), str(PREPARE_WINDOW_S if self.provision_venv else 0)]
        prep_result, prep = self._helper(cluster, probe_id, local_dir, "prepare", prep_args, ["prepare.json"])
        outcome = ClustrixOutcome(prep_result, prep)
        if prep is None:
            return outcome
        root = str(prep["root"])
        config = self.clustrix_config(cluster, root)

        # ClustriX enforces no time limit in SSH mode: the probe does (plus its own set-up time).
        bound = (limits.time_s or DEFAULT_BOUND_S) + 10.0
        outcome.call = running = _ClustrixCall(self.clustrix, config, call.func, limits)
        running.start()
        ended_at: float | None = None
        seen_jobs = 0
        try:
            while running.alive():
                running.wait(WATCH_INTERVAL_S)
                if not running.alive():
                    break
                now = time.time()
                if now - started > bound:
                    outcome.timed_out = True
                    break
                _, status = self._helper(cluster, probe_id, local_dir, "status", ["status", root], ["status.json"])
                if status is None:
                    continue
                jobs = status.get("jobs") or []
                submitted = sum(1 for j in jobs if j.get("submitted"))
                if submitted and not status.get("running") and submitted == seen_jobs:
                    # Ended, and no new job folder since the last look (auto_parallel submits
                    # chunks one after another): give ClustriX its grace to notice.
                    ended_at = ended_at or now
                    if now - ended_at > NOTICE_GRACE_S:
                        outcome.stopped_wait = True
                        break
                else:
                    ended_at = None
                seen_jobs = submitted
        except BaseException:
            # Interrupted (Ctrl-C, SIGTERM): ClustriX started the job with nohup, so end it here
            # before the run records the interruption; nothing may be left running.
            running.stop()
            with contextlib.suppress(Exception):
                self._helper(cluster, probe_id, local_dir, "collect", ["collect", root, "1"], ["collect.json"])
            raise
        if running.alive():
            running.stop()
        outcome.coll_result, outcome.collected = self._helper(
            cluster,
            probe_id,
            local_dir,
            "collect",
            ["collect", root, "1" if outcome.timed_out else "0"],
            ["collect.json", "job_stdout.log", "job_stderr.log"],
        )
        running.wait(5.0)
        return outcome

    def observe(
        self, workload: Workload, call: ClustrixCall, outcome: ClustrixOutcome, obs: Observation
    ) -> Observation:
        """The job's logs, ClustriX's record of the exception and the folder's evidence, into `obs`."""
        prep, prep_result = outcome.prep, outcome.prep_result
        if prep is None:
            obs.job.infra_error = prep_result.infra_error or (
                "clustrix pipeline: could not prepare the far side: "
                + (prep_result.launch_error or prep_result.stderr_tail.strip()[-300:] or "no prepare.json")
            )
            return obs
        obs.notes.append(f"ClustriX {_clustrix_version()} remote_work_dir: {prep['root']}")
        if self.provision_venv:
            obs.notes.append(f"job folders' venv -> {prep.get('venv')} ({prep.get('venv_how')})")
            # ClustriX's job runs in that environment: its versions are the far side's.
            versions = prep.get("versions")
            if isinstance(versions, dict):
                obs.far_side = {k: str(versions[k]) if versions.get(k) else None for k in ("python", "cloudpickle")}
        if outcome.call is None or outcome.coll_result is None:
            return obs
        self._fill(
            obs,
            outcome.call,
            outcome.collected,
            outcome.coll_result,
            call.local_dir,
            outcome.timed_out,
            outcome.stopped_wait,
        )
        return obs

    def _fill(
        self,
        obs: Observation,
        call: _ClustrixCall,
        collected: dict[str, Any] | None,
        coll_result: JobResult,
        local_dir: Path,
        timed_out: bool,
        stopped_wait: bool,
    ) -> None:
        job = obs.job
        jobs: list[dict[str, Any]] = list((collected or {}).get("jobs") or [])
        stdout_text = "".join(str(j.get("stdout") or "") for j in jobs)
        stderr_parts = [str(j.get("stderr") or "") for j in jobs]
        for j in jobs:
            err = j.get("error_pkl")
            if isinstance(err, dict):
                # ClustriX's script pickles the exception and exits without printing it.
                tb = err.get("traceback") or ""
                stderr_parts.append(f"# {j.get('dir')}/error.pkl (ClustriX's record of the exception):\n{tb}")
                if err.get("unreadable"):
                    obs.notes.append(f"error.pkl could not be read as plain data: {err['unreadable']}")
        stderr_text = "\n".join(p.rstrip("\n") for p in stderr_parts if p.strip())
        out_path, err_path = local_dir / JobPaths.STDOUT, local_dir / JobPaths.STDERR
        out_path.write_text(stdout_text)
        err_path.write_text(stderr_text + ("\n" if stderr_text else ""))
        job.stdout_path, job.stderr_path = out_path, err_path
        job.stdout_tail, job.stderr_tail = stdout_text[-4096:], stderr_text[-4096:]
        job.host = coll_result.host
        job.remote_dir = str(jobs[0]["dir"]) if jobs else (collected or {}).get("root")
        job.timed_out = timed_out
        if len(jobs) > 1:
            obs.notes.append(f"ClustriX used {len(jobs)} job folders (auto_parallel chunks)")
        for name in ("collect.json", "job_stdout.log", "job_stderr.log"):
            if name in coll_result.files:
                job.files[name] = coll_result.files[name]
        for j in jobs:
            files = j.get("files") or {}
            obs.notes.append(f"{j.get('dir')}: " + ", ".join(f"{n} ({f.get('size')} B)" for n, f in files.items()))
            start = (files.get("job.sh") or {}).get("mtime")
            end = max(
                [(files.get(n) or {}).get("mtime") or 0.0 for n in ("result.pkl", "error.pkl", "job.err", "job.out")]
            )
            if start and end and end >= start:
                obs.timings["execute"] = max(obs.timings.get("execute", 0.0), end - start)
        if collected is None:
            obs.notes.append(
                "the job folder could not be read: "
                + (coll_result.infra_error or coll_result.launch_error or "no collect.json")
            )
        if stopped_wait:
            obs.notes.append(
                "the job had ended but ClustriX kept polling: it sees a failure only when job.err has lines,"
                " and its job script writes the exception to error.pkl instead; its wait was stopped"
            )
        if timed_out:
            obs.notes.append("the job still ran at the probe's time limit and was killed (ClustriX enforces none)")
        if call.exc is not None and not call.stopped:
            raised = f"{type(call.exc).__name__}: {_first_line(call.exc)}"
            script_error = _script_error_line(stderr_text)
            if _is_connection_error(call.exc) and not jobs:
                job.infra_error = f"ClustriX could not reach the cluster: {raised}"
            if script_error is not None:
                # The job script itself failed (no interpreter, no venv): that line is the root
                # error; ClustriX's summary of it is evidence.
                obs.client_error = script_error
                obs.client_error_type = "launch"
                obs.notes.insert(0, f"ClustriX raised {raised}")
            else:
                # The job's own traceback, when there is one, outranks this in the diagnosis.
                obs.client_error = raised
                obs.client_error_type = "launch"
        if call.done and call.exc is None:
            job.exit_code = 0
            obs.result = _summarize(call.result)
        elif any(isinstance(j.get("error_pkl"), dict) for j in jobs):
            job.exit_code = 1  # ClustriX's script: error.pkl, then sys.exit(1)
        if not obs.timings and call.elapsed is not None:
            obs.timings["execute"] = call.elapsed


class ClustrixSerialPipeline(ClustrixPipeline):
    """ClustriX with auto_parallel off: one job per call, the function called without extra arguments."""

    name: ClassVar[str] = "clustrix-serial"
    auto_parallel: ClassVar[bool | None] = False


class ClustrixStopped(Exception):
    """Raised inside ClustriX's call once the pipeline has stopped waiting for it."""


class _ClustrixCall:
    """The decorated function called in a thread, so the pipeline can watch and bound it."""

    def __init__(self, clustrix: Any, config: dict[str, Any], func: Callable[..., Any], limits: Limits) -> None:
        self.clustrix = clustrix
        self.config = config
        self.func = func
        self.limits = limits
        self.result: Any = None
        self.exc: BaseException | None = None
        self.done = False
        self.stopped = False
        self.elapsed: float | None = None
        self.executors: list[Any] = []
        self._thread = threading.Thread(target=self._run, name="clustrix-call", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def alive(self) -> bool:
        return self._thread.is_alive()

    def wait(self, seconds: float) -> None:
        self._thread.join(seconds)

    def stop(self) -> None:
        """End ClustriX's endless wait: it returns once its job is no longer tracked."""
        self.stopped = True
        for ex in list(self.executors):
            with contextlib.suppress(Exception):
                ex.active_jobs.clear()

    @contextlib.contextmanager
    def _tracked(self) -> Iterator[None]:
        # ClustriX makes its executor inside the wrapper; record it so that stop() can reach it.
        import clustrix.decorator as deco

        original = deco.ClusterExecutor
        executors = self.executors

        call = self

        class TrackedExecutor(original):  # type: ignore[misc, valid-type]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, **kwargs)
                executors.append(self)

            # Once stopped, ClustriX may still be submitting chunks (auto_parallel): refuse them,
            # so nothing keeps running on the far side after the probe.
            def submit_job(self, *args: Any, **kwargs: Any) -> Any:
                if call.stopped:
                    raise ClustrixStopped("threshold-probe stopped ClustriX's call")
                return super().submit_job(*args, **kwargs)

            def wait_for_result(self, *args: Any, **kwargs: Any) -> Any:
                if call.stopped:
                    raise ClustrixStopped("threshold-probe stopped ClustriX's call")
                return super().wait_for_result(*args, **kwargs)

        deco.ClusterExecutor = TrackedExecutor
        try:
            yield
        finally:
            deco.ClusterExecutor = original

    def _run(self) -> None:
        t0 = time.time()
        try:
            with _clustrix_lock:
                # configure() changes one global object: start each call from ClustriX's defaults,
                # so nothing leaks from an earlier probe (auto_parallel of another variant, say).
                from dataclasses import asdict

                from clustrix.config import ClusterConfig

                self.clustrix.configure(**{**asdict(ClusterConfig()), **self.config})
                kwargs: dict[str, Any] = {"cores": self.limits.cores or self.config["default_cores"]}
                if self.limits.memory_bytes:
                    kwargs["memory"] = _memory(self.limits)
                if self.limits.time_s:
                    kwargs["time"] = _hms(self.limits.time_s)
                wrapped = self.clustrix.cluster(**kwargs)(self.func)
                with self._tracked():
                    self.result = wrapped()
        except BaseException as exc:  # ClustriX re-raises the job's exception or its own
            self.exc = exc
        else:
            self.done = True
        finally:
            self.elapsed = time.time() - t0
            for ex in self.executors:
                with contextlib.suppress(Exception):
                    ex.disconnect()


_SCRIPT_ERROR = re.compile(
    r"(command not found|No such file or directory|Permission denied|syntax error|unexpected EOF)"
)


def _script_error_line(stderr: str) -> str | None:
    """The last line where the job's shell script (not Python) reported an error, if any."""
    if "Traceback (most recent call last):" in stderr:
        return None
    found = [line.strip() for line in stderr.splitlines() if _SCRIPT_ERROR.search(line)]
    return found[-1] if found else None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _is_connection_error(exc: BaseException) -> bool:
    import socket

    names = {"SSHException", "NoValidConnectionsError", "AuthenticationException"}
    return isinstance(exc, (ConnectionError, TimeoutError, socket.gaierror, EOFError)) or type(exc).__name__ in names


def _summarize(value: Any) -> dict[str, Any]:
    """The result.json-like summary of what ClustriX returned (it unpickled it, not us)."""
    import hashlib

    try:
        encoded = json.dumps(value, sort_keys=True).encode()
        encoding = "json"
    except (TypeError, ValueError):
        encoded = repr(value).encode("utf-8", "replace")
        encoding = "repr"
    short = repr(value)
    return {
        "type": type(value).__name__,
        "size": len(encoded),
        "encoding": encoding,
        "repr": short if len(short) <= 200 else short[:197] + "...",
        "sha256": hashlib.sha256(encoded).hexdigest(),
    }


__all__ = ["ClustrixPipeline", "ClustrixSerialPipeline"]
