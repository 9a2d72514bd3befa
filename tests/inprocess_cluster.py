"""An in-process cluster for the unit tests of probe, resume, summary and render.

Like submitit's DebugExecutor or httpx's MockTransport: the search, the journal, the pipeline,
the diagnosis and the renderers run for real, but no process is started and no limit is enforced.
A handler says what each job does (`Pass`, `Raise`, `Killed`, `TimedOut`, `Infra`, or `Run` for
the job's own function), and the real far-side runner (threshold_probe/remote/runner.py) writes
meta.json, result.json and the traceback on stderr for it, in this process, in microseconds.

What it proves is orchestration: which levels are probed and in which order, what is journalled
and replayed, what the summary and the reports say. Real limits, real kills and real servers
stay with the integration tests (test_diagnose_local.py, test_limits.py, tests on the testbed).

Use the `inprocess` fixture: `cluster = inprocess(handler)` makes `--cluster local` (the default)
of every `probe` command run in this process, with `handler` deciding each job::

    cluster = inprocess(first_fail(12, Raise("MemoryError", "")))
    probe(workdir, "bisect", "--ladder", LADDER)
    assert cluster.levels == [1, 16, 8, 12, 10, 11, 12, 11]

Only the native pipeline's job (PYTHON runner.py payload.pkl) can run here.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from threshold_probe.clusters.base import Check, Cluster
from threshold_probe.models import JobResult, JobSpec, Limits
from threshold_probe.remote import runner as far_runner

#: The files the runner writes (and the native pipeline fetches).
_META, _RESULT = far_runner.META_NAME, far_runner.RESULT_NAME
_LEVEL = re.compile(r"^L(\d+)-")
# The runner reads and writes files relative to the working directory, which is process-wide.
_CWD_LOCK = threading.Lock()


@dataclass(frozen=True)
class Pass:
    """The function returns `value`."""

    value: Any = None


@dataclass(frozen=True)
class Raise:
    """The function raises a builtin exception `exc_type(message)`, e.g. Raise("MemoryError")."""

    exc_type: str = "RuntimeError"
    message: str = ""


@dataclass(frozen=True)
class Killed:
    """The process dies by `signal` while running the function (as after an OOM kill): no result,
    meta.json stays at `running`, stderr holds `stderr`."""

    signal: int = 9
    stderr: str = ""


@dataclass(frozen=True)
class TimedOut:
    """The cluster kills the job at its time limit."""


@dataclass(frozen=True)
class Infra:
    """Infrastructure trouble (a skip); `lost` when it will not go away (the run is interrupted)."""

    message: str = "in-process cluster: connection refused"
    lost: bool = False


@dataclass(frozen=True)
class Run:
    """The job's own function, run in this process by the real runner (keep it cheap)."""


Outcome = Pass | Raise | Killed | TimedOut | Infra | Run
Handler = Callable[[int | None, JobSpec], Outcome]


def level_of(job: JobSpec) -> int | None:
    """The ladder level of a job, from its probe id (`L023-...`); None for a user's function."""
    m = _LEVEL.match(job.probe_id)
    return int(m.group(1)) if m else None


def first_fail(level: int, failure: Outcome, passing: Outcome | None = None) -> Handler:
    """Levels below `level` pass, `level` and above end with `failure`."""
    ok = passing or Pass()

    def handler(lvl: int | None, job: JobSpec) -> Outcome:
        return failure if lvl is not None and lvl >= level else ok

    return handler


def _raise(exc_type: str, message: str) -> None:
    import builtins

    raise getattr(builtins, exc_type)(message)


def _return(value: Any) -> Any:
    return value


class InProcessCluster(Cluster):
    """A cluster that runs every job in the test process, as its handler says."""

    kind = "local"

    def __init__(self, name: str = "local", handler: Handler | None = None, peak_mb: float = 30.0) -> None:
        super().__init__(name, None)
        self.handler: Handler = handler or (lambda level, job: Run())
        #: The peak memory every job reports. The runner would measure the whole test process,
        #: whose size depends on the tests run before: a job near a memory limit would then look
        #: like an out-of-memory, and the memory floor would move.
        self.peak_mb = peak_mb
        #: Every job it was given, in order (as MockTransport keeps its requests).
        self.jobs: list[JobSpec] = []
        self.opened = 0
        self.closed = 0

    @property
    def levels(self) -> list[int | None]:
        """The level of every job it ran, in order."""
        return [level_of(job) for job in self.jobs]

    def open(self) -> None:
        self.opened += 1

    def close(self) -> None:
        self.closed += 1

    def preflight(self) -> list[Check]:
        """This interpreter, which is the far side too."""
        version = ".".join(str(n) for n in sys.version_info[:3])
        self._far_side = {
            "python": version,
            "cloudpickle": str(cloudpickle.__version__),
            "hostname": socket.gethostname(),
        }
        return [
            Check(name="python", status="ok", detail=f"{sys.executable} is Python {version}"),
            Check(name="cloudpickle", status="ok", detail=f"cloudpickle {cloudpickle.__version__}"),
        ]

    def enforcement(self, limits: Limits) -> dict[str, str]:
        """Nothing is enforced here: the handler decides what a job does."""
        set_limits = {"memory": limits.memory_bytes, "time": limits.time_s, "cores": limits.cores}
        return {name: "in-process" for name, value in set_limits.items() if value is not None}

    def node_cpus(self) -> int | None:
        return os.cpu_count()

    def describe(self) -> dict[str, str]:
        return {"kind": self.kind, "host": socket.gethostname(), "python": sys.executable}

    def execute(self, job: JobSpec) -> JobResult:
        """Run the job as the handler says and leave what the runner would have left."""
        self.jobs.append(job)
        outcome = self.handler(level_of(job), job)
        result = JobResult(host=socket.gethostname())
        if isinstance(outcome, Infra):
            result.infra_error = outcome.message
            result.cluster_lost = outcome.lost
            return result
        local_dir = job.local_dir
        job_dir = local_dir / "job"
        job_dir.mkdir(parents=True, exist_ok=True)
        for name, data in job.files.items():
            (job_dir / name).parent.mkdir(parents=True, exist_ok=True)
            (job_dir / name).write_bytes(data)
        result.remote_dir = str(job_dir)
        result.timings["launched_at"] = time.time()
        stdout, stderr = io.StringIO(), io.StringIO()
        with _in_folder(job_dir), contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            code = _run_runner(job_dir, outcome)
        self._own_peak(job_dir / _META)
        if isinstance(outcome, Killed):
            result.signal = outcome.signal
            stderr.write(outcome.stderr)
        elif isinstance(outcome, TimedOut):
            result.timed_out = True
            result.signal = 9
        else:
            result.exit_code = code
        for name, text in (("stdout.log", stdout.getvalue()), ("stderr.log", stderr.getvalue())):
            (local_dir / name).write_text(text)
        result.stdout_path, result.stderr_path = local_dir / "stdout.log", local_dir / "stderr.log"
        result.stdout_tail, result.stderr_tail = stdout.getvalue()[-4096:], stderr.getvalue()[-4096:]
        for name in job.fetch:
            if (job_dir / name).is_file():
                (local_dir / name).write_bytes((job_dir / name).read_bytes())
                result.files[name] = local_dir / name
        return result

    def _own_peak(self, meta_path: Path) -> None:
        """Replace the test process's memory figures in meta.json with the job's own (peak_mb)."""
        if not meta_path.is_file():
            return
        meta = json.loads(meta_path.read_text())
        kb = int(self.peak_mb * 1024)
        meta.update(rss_peak_kb_self=kb, rss_peak_kb_children=0, vm_peak_kb_self=kb)
        meta_path.write_text(json.dumps(meta))


@contextlib.contextmanager
def _in_folder(folder: Path) -> Iterator[None]:
    with _CWD_LOCK:
        before = os.getcwd()
        os.chdir(folder)
        try:
            yield
        finally:
            os.chdir(before)


def _run_runner(job_dir: Path, outcome: Outcome) -> int:
    """The real runner's Runner on the job's payload (Run) or on a stand-in function."""
    payload = job_dir / "payload.pkl"
    if not isinstance(outcome, Run):
        if isinstance(outcome, Raise):
            stand_in: Any = {"func": _raise, "args": [outcome.exc_type, outcome.message]}
        elif isinstance(outcome, Pass):
            stand_in = {"func": _return, "args": [outcome.value]}
        else:
            stand_in = {"func": _return, "args": [None]}
        payload = job_dir / "stand-in.pkl"
        payload.write_bytes(cloudpickle.dumps(stand_in))
    far_runner._RUNNER_START = time.time()
    # The runner is untyped far-side code (Python 3.8, stdlib only).
    runner_class: Any = far_runner.Runner
    runner = runner_class(str(payload))
    if isinstance(outcome, Killed | TimedOut):
        # What a hard kill in the middle of the function leaves behind.
        runner.checkpoint("running", "execute")
        return -9
    # The runner stops its own time-limit timer (ITIMER_REAL) when the function returns; here
    # that timer is pytest-timeout's, which must keep running.
    stop = far_runner.stop_watching_the_clock
    far_runner.stop_watching_the_clock = lambda: None
    try:
        code: int = runner.run()
    finally:
        far_runner.stop_watching_the_clock = stop
    return code


@pytest.fixture
def inprocess(monkeypatch: pytest.MonkeyPatch) -> Callable[..., InProcessCluster]:
    """`inprocess(handler)`: the `local` cluster of every probe command runs in this process."""

    def install(handler: Handler | None = None, name: str = "local") -> InProcessCluster:
        cluster = InProcessCluster(name, handler)
        _route(monkeypatch, name, cluster)
        return cluster

    return install


@contextlib.contextmanager
def routed(handler: Handler | None = None, name: str = "local") -> Iterator[InProcessCluster]:
    """The same as the `inprocess` fixture for a `with` block (in a module-scoped fixture)."""
    cluster = InProcessCluster(name, handler)
    with pytest.MonkeyPatch.context() as monkeypatch:
        _route(monkeypatch, name, cluster)
        yield cluster


def _route(monkeypatch: pytest.MonkeyPatch, name: str, cluster: InProcessCluster) -> None:
    """Make `make_cluster(name, ...)` return `cluster` wherever the package looks it up: the
    registry function itself and every module that imported it by name."""
    import threshold_probe.cli.app  # noqa: F401 - loads every module a command may use
    import threshold_probe.clusters as registry

    original = registry.make_cluster

    def make_cluster(wanted: str, config: Any, *args: Any, **kwargs: Any) -> Cluster:
        if wanted == name:
            # The configured table of that name, for whatever reads the cluster's settings.
            cluster.config = config.cluster(wanted)
            return cluster
        return original(wanted, config, *args, **kwargs)

    monkeypatch.setattr(registry, "make_cluster", make_cluster)
    for module in list(sys.modules.values()):
        name_ok = module is not None and module.__name__.startswith("threshold_probe.")
        if name_ok and getattr(module, "make_cluster", None) is original:
            monkeypatch.setattr(module, "make_cluster", make_cluster)


__all__ = [
    "Handler",
    "InProcessCluster",
    "Infra",
    "Killed",
    "Outcome",
    "Pass",
    "Raise",
    "Run",
    "TimedOut",
    "first_fail",
    "inprocess",
    "level_of",
    "routed",
]
