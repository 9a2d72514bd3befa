"""The built-in local cluster: every job in a fresh interpreter on this machine, under real limits.

- memory: RLIMIT_AS, set in the child before exec, so an allocation past it raises MemoryError;
- time: the job runs in its own session (process group); at the deadline the whole group is
  killed with SIGKILL, children included, and the result says `timed_out`;
- cores: the child is pinned to the first N cores this process may use.

Each job runs in a fresh private folder under `workdir` (default: `threshold-probe/work` in the
user's cache folder; clusters/staging.py says what a workdir must be). Its stdout and stderr go
straight to `stdout.log` and `stderr.log` in the job's `local_dir`, so a workload can write any
amount without a pipe filling up. Fetched files are copied to `local_dir`. Shared files (the
runner) are staged once per content hash, and checked against that hash before each use.
"""

from __future__ import annotations

import contextlib
import errno
import os
import resource  # noqa: F401 - loaded before any fork: apply_limits uses it in the child
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import threshold_probe.clusters.pickle_check as pickle_check
from threshold_probe.clusters.base import Check, Cluster, disk_check, enforcers
from threshold_probe.clusters.jobpaths import TAIL_BYTES, JobPaths, read_tail, resolve_argv, safe_name
from threshold_probe.clusters.lifecycle import JobHooks, JobTry, run_job
from threshold_probe.clusters.staging import secure_workdir, stage_shared, workdir_problem
from threshold_probe.config import ClusterConfigBase, LocalClusterConfig
from threshold_probe.errors import InfraError
from threshold_probe.interrupts import held
from threshold_probe.models import JobResult, JobSpec, Limits
from threshold_probe.remote.launcher import apply_limits, first_cores, wait_exit


def _format_oserror(exc: BaseException) -> str:
    """`OSError: [Errno 7] Argument list too long`: the program's name adds nothing to E2BIG."""
    if isinstance(exc, OSError) and exc.errno == errno.E2BIG:
        return f"{type(exc).__name__}: [Errno {exc.errno}] {exc.strerror}"
    return f"{type(exc).__name__}: {exc}"


def _write_job_file(path: Path, data: bytes) -> None:
    """A new private file in the job's fresh private folder (O_EXCL, O_NOFOLLOW: never another's file).

    Neither a temporary name nor a flush to the disk: nothing reads the folder before the job
    starts, and the folder does not outlive the job (a full disk fails the write, which is
    stage_in's failure, and the folder is removed).
    """
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _default_workdir() -> Path:
    # Not a fixed name in the shared temp folder: another user could create it first.
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache) / "threshold-probe" / "work"


def _make_preexec(limits: Limits) -> Callable[[], None] | None:
    """The function the child runs between fork and exec to apply its limits (as the launcher does)."""
    if limits.memory_bytes is None and limits.cores is None:
        return None
    mem = limits.memory_bytes
    cores = first_cores(limits.cores) if limits.cores else None

    def apply() -> None:
        # Runs in the forked child: only async-signal-safe-ish calls, no allocation-heavy work.
        apply_limits(mem, cores)

    return apply


@dataclass
class _LocalTry(JobTry):
    """One try on this machine: its job folder, command and process, from hook to hook."""

    job_dir: Path | None = None
    argv: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    launched: float = 0.0
    #: The try got as far as fetch: its folder may go in the background.
    fetched: bool = False


class LocalCluster(Cluster, JobHooks[_LocalTry]):
    """This machine. Always available, needs no config."""

    kind = "local"
    config_model = LocalClusterConfig
    config: LocalClusterConfig

    @classmethod
    def create(cls, name: str, config: ClusterConfigBase, *, base_dir: Path | None = None) -> LocalCluster:
        """The cluster of its probe.toml table (paths in it are used as written)."""
        assert isinstance(config, LocalClusterConfig)
        return cls(name, config)

    def __init__(self, name: str, config: LocalClusterConfig | None = None) -> None:
        super().__init__(name, config or LocalClusterConfig())
        self.python = self.config.python or sys.executable
        self.workdir = Path(self.config.workdir).expanduser() if self.config.workdir else _default_workdir()
        self._running: dict[int, subprocess.Popen[bytes]] = {}
        self._lock = threading.Lock()
        self._python_version: str | None = None
        # What the preflight script printed after loading a function pickled here (pickle_check).
        self._pickle_outcome: dict[str, Any] | None = None
        self._pickle_ended = "no exit status"
        # Finished jobs' folders, being removed in threads while the client records the probe;
        # waited for before the next job stages and when the cluster closes.
        self._removing: list[threading.Thread] = []

    # -- lifecycle --------------------------------------------------------------------------

    def open(self) -> None:
        """Create the work folder (private); InfraError when it cannot be made or is not ours alone."""
        secure_workdir(self.workdir, "local cluster")

    def close(self) -> None:
        """Kill anything still running and finish removing job folders; safe to call twice."""
        self.cancel_all()
        self._removed()

    def _removed(self) -> None:
        """Wait until the job folders being removed are gone (a small workdir needs the room)."""
        with self._lock:
            removing, self._removing = self._removing, []
        for thread in removing:
            thread.join()

    def cancel_all(self) -> None:
        """SIGKILL the process group of every running job. Never raises."""
        with self._lock:
            pids = list(self._running)
        for pid in pids:
            with contextlib.suppress(OSError):
                os.killpg(pid, signal.SIGKILL)

    # -- staging ----------------------------------------------------------------------------

    def _stage_shared(self, name: str, data: bytes) -> Path:
        """A shared file under its content hash, checked against it (written anew when it differs)."""
        return stage_shared(self.workdir, name, data)

    # -- execution --------------------------------------------------------------------------

    def execute(self, job: JobSpec) -> JobResult:
        """Stage the files, run the command under the job's limits, copy fetched files back."""
        return run_job(self, job)

    def new_try(self, job: JobSpec) -> _LocalTry:
        """A try of `job` on this machine (the host is known before anything is done)."""
        return _LocalTry(job, JobResult(host=socket.gethostname()))

    def stage(self, t: _LocalTry) -> None:
        """The job's logs (empty), a fresh private job folder, the job's files, the shared files."""
        job, result = t.job, t.result
        local_dir = job.local_dir
        paths = JobPaths.local(local_dir)
        try:
            local_dir.mkdir(parents=True, exist_ok=True)
            # Created before staging, so that a job that never starts still has its (empty) logs.
            paths.stdout.touch()
            paths.stderr.touch()
        except OSError as exc:
            result.infra_error = f"local cluster: cannot write logs to {local_dir}: {exc.strerror or exc}"
            t.stop()
            return
        result.stdout_path = paths.stdout
        result.stderr_path = paths.stderr

        t0 = time.time()
        self._removed()
        try:
            secure_workdir(self.workdir, "local cluster")
        except InfraError as exc:
            result.infra_error = str(exc)
            t.stop()
            return
        try:
            t.job_dir = Path(tempfile.mkdtemp(prefix=f"{safe_name(job.probe_id)}-", dir=self.workdir))
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                result.launch_error = f"stage_in: {_format_oserror(exc)}"
            else:
                result.infra_error = f"local cluster: cannot create a job folder in {self.workdir}: {exc}"
            t.stop()
            return
        result.remote_dir = str(t.job_dir)
        try:
            shared_paths = {name: self._stage_shared(name, data) for name, data in job.shared.items()}
            for name, data in job.files.items():
                target = t.job_dir / name
                target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
                _write_job_file(target, data)
        except OSError as exc:
            # A full disk or a quota: the transfer failed, not the infrastructure.
            result.launch_error = f"stage_in: {_format_oserror(exc)}"
            result.timings["stage_in"] = time.time() - t0
            t.stop()
            return
        result.timings["stage_in"] = time.time() - t0
        t.argv = resolve_argv(job.argv, [self.python], {n: str(p) for n, p in shared_paths.items()})
        t.env = dict(os.environ)
        t.env.update(job.env)
        t.env.setdefault("PYTHONUNBUFFERED", "1")

    def start(self, t: _LocalTry) -> None:
        """Start the process in its own session, its limits set in the child before exec.

        A command that cannot start is the result's launch_error (or infra_error when the
        interpreter itself is missing); the try goes on to fetch its (empty) logs.
        """
        argv, result = t.argv, t.result
        assert t.job_dir is not None and result.stdout_path is not None and result.stderr_path is not None
        with result.stdout_path.open("wb") as out, result.stderr_path.open("wb") as err:
            launched = time.time()
            # A signal between starting the job and recording it would orphan the job: held()
            # raises it once the job is in _running, and it is killed right here.
            proc: subprocess.Popen[bytes] | None = None
            try:
                with held():
                    try:
                        proc = subprocess.Popen(
                            argv,
                            cwd=t.job_dir,
                            env=t.env,
                            stdin=subprocess.DEVNULL,
                            stdout=out,
                            stderr=err,
                            start_new_session=True,
                            preexec_fn=_make_preexec(t.job.limits),  # limits are set in the child
                            close_fds=True,
                            umask=0o077,  # what the job writes in its folder stays private
                        )
                    except OSError as exc:
                        if exc.errno in (errno.ENOENT, errno.EACCES) and exc.filename in (self.python, argv[0]):
                            result.infra_error = f"local cluster: cannot run {argv[0]}: {exc.strerror}"
                        else:
                            result.launch_error = _format_oserror(exc)
                        return
                    except subprocess.SubprocessError as exc:
                        # A preexec failure (for example a core count the machine does not have).
                        result.launch_error = _format_oserror(exc)
                        return
                    result.timings["launched_at"] = launched
                    with self._lock:
                        self._running[proc.pid] = proc
            except BaseException:
                if proc is not None:
                    with contextlib.suppress(OSError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    with self._lock:
                        self._running.pop(proc.pid, None)
                raise
        t.proc, t.launched = proc, launched

    def watch(self, t: _LocalTry) -> None:
        """Wait for the process under the time limit; then kill its whole group and reap it."""
        proc, result = t.proc, t.result
        if proc is None:
            return  # it never started: start said why
        limits = t.job.limits
        try:
            deadline = None if limits.time_s is None else t.launched + limits.time_s
            result.timed_out = wait_exit(proc.pid, deadline) == "timeout"
            # Anything the job left behind in its group goes too: no orphans.
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            returncode = self._reap(proc, result)
        except BaseException:
            # Interrupted while waiting (SIGINT/SIGTERM raise here): cancel_all comes after
            # this job has left _running, so the group is killed now or it would be orphaned.
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            raise
        finally:
            with self._lock:
                self._running.pop(proc.pid, None)
        result.timings["process"] = time.time() - t.launched
        if returncode < 0:
            result.signal = -returncode
        else:
            result.exit_code = returncode

    def fetch(self, t: _LocalTry) -> None:
        """Stage out: copy the fetched files to `local_dir` and keep the tails of the logs."""
        job, result = t.job, t.result
        assert t.job_dir is not None and result.stdout_path is not None and result.stderr_path is not None
        t1 = time.time()
        result.stdout_tail = read_tail(result.stdout_path)
        result.stderr_tail = read_tail(result.stderr_path)
        for name in job.fetch:
            src = t.job_dir / name
            if src.is_file():
                dst = job.local_dir / name
                try:
                    dst.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(src, dst)
                except OSError as exc:
                    result.launch_error = result.launch_error or f"stage_out: {_format_oserror(exc)}"
                    continue
                result.files[name] = dst
        result.timings["stage_out"] = time.time() - t1
        t.fetched = True

    def clean(self, t: _LocalTry) -> None:
        """Remove the job folder unless kept: in a thread after a fetch (the client records the
        probe meanwhile), at once after a failed stage or an interrupt."""
        if t.interrupted and t.proc is not None and t.proc.returncode is None:
            # Interrupted between start and watch: the job's group goes now, not at cancel_all.
            with contextlib.suppress(OSError):
                os.killpg(t.proc.pid, signal.SIGKILL)
            with self._lock:
                self._running.pop(t.proc.pid, None)
        if t.job_dir is None or t.job.keep_remote:
            return
        if not t.fetched:
            shutil.rmtree(t.job_dir, ignore_errors=True)
            return
        remover = threading.Thread(target=shutil.rmtree, args=(t.job_dir,), kwargs={"ignore_errors": True})
        remover.start()
        with self._lock:
            self._removing.append(remover)

    @staticmethod
    def _reap(proc: subprocess.Popen[bytes], result: JobResult) -> int:
        """Reap the process; its rusage gives a peak RSS even when the runner was killed."""
        if proc.returncode is not None:  # pragma: no cover - the fallback wait reaped it
            return proc.returncode
        _, status, usage = os.wait4(proc.pid, 0)
        returncode = os.waitstatus_to_exitcode(status)
        proc.returncode = returncode  # keep Popen consistent: it must not wait again
        result.peak_rss_mb = usage.ru_maxrss / 1024  # KB on Linux
        return returncode

    # -- facts ------------------------------------------------------------------------------

    def _interpreter_facts(self) -> dict[str, Any]:
        """Python, cloudpickle and hostname, from the one preflight script every cluster runs."""
        proc = subprocess.run(
            [self.python, "-"],
            input=pickle_check.check_script(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        facts, outcome = pickle_check.parse_output(proc.stdout)
        if facts is None:
            raise OSError(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip() else "failed")
        self._pickle_outcome = outcome
        self._pickle_ended = f"exit status {proc.returncode}"
        facts.setdefault("cloudpickle", None)  # the script leaves it out when cloudpickle does not import
        return facts

    def preflight(self) -> list[Check]:
        """Interpreter version, cloudpickle, a writable workdir, free disk."""
        checks: list[Check] = []
        try:
            facts = self._interpreter_facts()
        except (OSError, subprocess.SubprocessError, ValueError) as exc:
            checks.append(
                Check(
                    name="python",
                    status="fail",
                    detail=f"{self.python}: {exc}",
                    fix="set clusters.<name>.python to a working interpreter",
                )
            )
            facts = {}
        if facts:
            self._python_version = facts["python"]
            self._far_side = {
                "python": str(facts["python"]),
                "cloudpickle": str(facts.get("cloudpickle")),
                "hostname": str(facts.get("hostname")),
            }
            major_minor = tuple(int(x) for x in facts["python"].split(".")[:2])
            checks.append(
                Check(
                    name="python",
                    status="ok" if major_minor >= (3, 8) else "fail",
                    detail=f"{self.python} is Python {facts['python']}",
                    fix=None if major_minor >= (3, 8) else "the runner needs Python 3.8 or newer",
                )
            )
            cp = facts.get("cloudpickle")
            if cp:
                # As on SSH and SLURM: whether it loads and runs a function pickled here.
                found = pickle_check.version_checks(
                    facts, self._pickle_outcome, python_label=self.python, where="there", ended=self._pickle_ended
                )
                checks += [c for c in found if c.name == "cloudpickle"]
            else:
                checks.append(
                    Check(
                        name="cloudpickle",
                        status="fail",
                        detail="cloudpickle is not importable",
                        fix=f"{self.python} -m pip install cloudpickle",
                    )
                )
        try:
            secure_workdir(self.workdir, "local cluster")
        except InfraError as exc:
            problem = workdir_problem(self.workdir)
            checks.append(
                Check(
                    name="workdir",
                    status="fail",
                    detail=f"{self.workdir}: {problem}" if problem else str(exc),
                    fix="set clusters.<name>.workdir to a folder that only this user owns and can write",
                )
            )
            return checks
        try:
            with tempfile.NamedTemporaryFile(dir=self.workdir):
                pass
            checks.append(Check(name="workdir", status="ok", detail=f"{self.workdir} is writable and private"))
            free = shutil.disk_usage(self.workdir).free
            checks.append(disk_check(free, str(self.workdir), "free some space or set a different workdir"))
        except OSError as exc:
            checks.append(
                Check(
                    name="workdir",
                    status="fail",
                    detail=f"{self.workdir}: {exc.strerror or exc}",
                    fix="set clusters.<name>.workdir to a writable folder",
                )
            )
        return checks

    def enforcement(self, limits: Limits) -> dict[str, str]:
        """Memory by RLIMIT_AS, time by this process (the runner's watchdog), cores by affinity."""
        return enforcers(limits, memory="RLIMIT_AS", time="runner", cores="CPU affinity")

    def node_cpus(self) -> int | None:
        """CPUs this process may use."""
        if hasattr(os, "sched_getaffinity"):
            return len(os.sched_getaffinity(0))
        return os.cpu_count()

    def describe(self) -> dict[str, str]:
        """Kind, host and interpreter, for report headers."""
        facts = {"kind": self.kind, "host": socket.gethostname(), "python": self.python}
        if self._python_version:
            facts["python_version"] = self._python_version
        return facts


__all__ = ["TAIL_BYTES", "LocalCluster", "read_tail"]
