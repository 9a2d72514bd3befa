"""The one job lifecycle: stage -> start -> watch -> fetch -> clean over a cluster's hooks, and its retry.

A tiny in-memory backend records the hooks it is called through (no server, no process); the
local cluster is then followed through the same hooks with a real job.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from threshold_probe.clusters.lifecycle import JobHooks, JobTry, Lifecycle, Retry, Try, drive, one_try, run_job
from threshold_probe.clusters.local import LocalCluster
from threshold_probe.config import LocalClusterConfig
from threshold_probe.models import PYTHON, JobSpec


@dataclass
class _Try(JobTry):
    attempt: int = 0


class _Backend(JobHooks[_Try]):
    """Calls are recorded; `fail_at` makes one hook stop the try, `raise_at` makes it raise."""

    def __init__(
        self,
        *,
        fail_at: str | None = None,
        raise_at: str | None = None,
        error: BaseException | None = None,
        flaky_tries: int = 0,
        retryable: bool = True,
    ) -> None:
        self.calls: list[str] = []
        self.fail_at = fail_at
        self.raise_at = raise_at
        self.error = error or RuntimeError("broken")
        self.flaky_tries = flaky_tries
        self.retryable = retryable
        self.tries = 0
        self.clean_saw_interrupted: list[bool] = []

    def new_try(self, job: JobSpec) -> _Try:
        self.tries += 1
        self.calls.append("new_try")
        return _Try(job, attempt=self.tries)

    def _step(self, name: str, t: _Try) -> None:
        self.calls.append(name)
        if name == self.raise_at:
            raise self.error
        if name == self.fail_at:
            t.result.launch_error = f"{name} failed"
            t.stop(retryable=False)
        if name == "start" and t.attempt <= self.flaky_tries:
            t.result.infra_error = "connection refused"
            t.stop(retryable=self.retryable)

    def stage(self, t: _Try) -> None:
        self._step("stage", t)

    def start(self, t: _Try) -> None:
        self._step("start", t)

    def watch(self, t: _Try) -> None:
        self._step("watch", t)

    def fetch(self, t: _Try) -> None:
        self._step("fetch", t)
        t.result.exit_code = 0

    def clean(self, t: _Try) -> None:
        self.calls.append("clean")
        self.clean_saw_interrupted.append(t.interrupted)


def _job(tmp_path: Path) -> JobSpec:
    return JobSpec(probe_id="p1", argv=["true"], local_dir=tmp_path)


def test_the_hooks_run_in_lifecycle_order(tmp_path: Path) -> None:
    backend = _Backend()
    result = run_job(backend, _job(tmp_path))
    assert backend.calls == ["new_try", "stage", "start", "watch", "fetch", "clean"]
    assert result.exit_code == 0
    assert backend.clean_saw_interrupted == [False]


@pytest.mark.parametrize("step", ["stage", "start", "watch"])
def test_a_hook_that_stops_the_try_skips_the_rest_but_clean(tmp_path: Path, step: str) -> None:
    backend = _Backend(fail_at=step)
    result, retryable = one_try(backend, _job(tmp_path))
    order = ["stage", "start", "watch", "fetch"]
    assert backend.calls == ["new_try", *order[: order.index(step) + 1], "clean"]
    assert result.launch_error == f"{step} failed"
    assert result.exit_code is None
    assert retryable is False


@pytest.mark.parametrize("step", ["stage", "start", "watch", "fetch"])
def test_clean_runs_after_a_hook_that_raises(tmp_path: Path, step: str) -> None:
    backend = _Backend(raise_at=step)
    with pytest.raises(RuntimeError, match="broken"):
        run_job(backend, _job(tmp_path))
    assert backend.calls[-1] == "clean"
    assert backend.clean_saw_interrupted == [True]


@pytest.mark.parametrize("step", ["stage", "start", "watch"])
def test_clean_runs_after_ctrl_c_and_the_interrupt_goes_on(tmp_path: Path, step: str) -> None:
    backend = _Backend(raise_at=step, error=KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        run_job(backend, _job(tmp_path), Retry(retries=3, backoff_s=0.0), threading.Event())
    order = ["stage", "start", "watch"]
    assert backend.calls == ["new_try", *order[: order.index(step) + 1], "clean"]
    assert backend.clean_saw_interrupted == [True]
    assert backend.tries == 1  # an interrupt is never retried


def test_a_retryable_try_is_tried_again_by_the_driver(tmp_path: Path) -> None:
    backend = _Backend(flaky_tries=2)
    result = run_job(backend, _job(tmp_path), Retry(retries=2, backoff_s=0.0), threading.Event())
    assert backend.tries == 3
    assert result.infra_error is None
    assert result.exit_code == 0
    # Every try is cleaned, the failed ones too.
    assert backend.calls.count("clean") == 3


def test_retries_that_run_out_say_how_many_attempts_were_made(tmp_path: Path) -> None:
    backend = _Backend(flaky_tries=5)
    result = run_job(backend, _job(tmp_path), Retry(retries=1, backoff_s=0.0), threading.Event())
    assert backend.tries == 2
    assert result.infra_error == "connection refused (after 2 attempts)"


def test_a_try_that_cannot_get_better_is_not_retried(tmp_path: Path) -> None:
    backend = _Backend(flaky_tries=5, retryable=False)
    result = run_job(backend, _job(tmp_path), Retry(retries=3, backoff_s=0.0), threading.Event())
    assert backend.tries == 1
    assert result.infra_error == "connection refused"


def test_without_a_retry_policy_a_failing_try_is_run_once(tmp_path: Path) -> None:
    backend = _Backend(flaky_tries=5)
    result = run_job(backend, _job(tmp_path))
    assert backend.tries == 1
    assert result.infra_error == "connection refused"


def test_a_cancelled_run_starts_no_try(tmp_path: Path) -> None:
    cancelled = threading.Event()
    cancelled.set()
    backend = _Backend()
    result = run_job(backend, _job(tmp_path), Retry(retries=2, backoff_s=0.0), cancelled)
    assert backend.tries == 0
    assert result.infra_error == "cancelled"


@dataclass
class _BatchTry(Try):
    """A try over several jobs at once, as SLURM drives an array."""

    jobs: list[str]
    done: list[str] | None = None


class _BatchBackend(Lifecycle[_BatchTry]):
    def __init__(self) -> None:
        self.calls: list[str] = []

    def stage(self, t: _BatchTry) -> None:
        self.calls.append(f"stage {len(t.jobs)}")

    def start(self, t: _BatchTry) -> None:
        self.calls.append("start")
        raise KeyboardInterrupt

    def watch(self, t: _BatchTry) -> None:  # pragma: no cover - start raises
        self.calls.append("watch")

    def fetch(self, t: _BatchTry) -> None:  # pragma: no cover - start raises
        self.calls.append("fetch")

    def clean(self, t: _BatchTry) -> None:
        self.calls.append(f"clean interrupted={t.interrupted}")


def test_a_batch_is_driven_through_the_same_steps() -> None:
    backend = _BatchBackend()
    with pytest.raises(KeyboardInterrupt):
        drive(backend, _BatchTry(jobs=["a", "b", "c"]))
    assert backend.calls == ["stage 3", "start", "clean interrupted=True"]


class _RecordingLocal(LocalCluster):
    """The local cluster, its hooks recorded; `interrupt_in` raises KeyboardInterrupt after that hook."""

    def __init__(self, workdir: Path, interrupt_in: str | None = None) -> None:
        super().__init__("local", LocalClusterConfig(workdir=str(workdir)))
        self.calls: list[str] = []
        self.interrupt_in = interrupt_in

    def _after(self, name: str) -> None:
        self.calls.append(name)
        if name == self.interrupt_in:
            raise KeyboardInterrupt

    def stage(self, t: Any) -> None:
        super().stage(t)
        self._after("stage")

    def start(self, t: Any) -> None:
        super().start(t)
        self._after("start")

    def watch(self, t: Any) -> None:
        super().watch(t)
        self._after("watch")

    def fetch(self, t: Any) -> None:
        super().fetch(t)
        self._after("fetch")

    def clean(self, t: Any) -> None:
        super().clean(t)
        self.calls.append("clean")


def _local_job(tmp_path: Path) -> JobSpec:
    return JobSpec(
        probe_id="hooks",
        files={"payload.txt": b"x"},
        argv=[PYTHON, "-c", "print(open('payload.txt').read())"],
        fetch=["payload.txt"],
        local_dir=tmp_path / "out",
    )


def test_the_local_cluster_runs_a_job_through_the_hooks(tmp_path: Path) -> None:
    work = tmp_path / "work"
    cluster = _RecordingLocal(work)
    cluster.open()
    result = cluster.execute(_local_job(tmp_path))
    cluster.close()
    assert cluster.calls == ["stage", "start", "watch", "fetch", "clean"]
    assert result.exit_code == 0 and result.stdout_tail.strip() == "x"
    assert result.files["payload.txt"].read_bytes() == b"x"
    assert result.remote_dir and not Path(result.remote_dir).exists()


@pytest.mark.parametrize("step", ["stage", "start", "watch"])
def test_ctrl_c_after_a_local_hook_leaves_no_job_folder(tmp_path: Path, step: str) -> None:
    work = tmp_path / "work"
    cluster = _RecordingLocal(work, interrupt_in=step)
    cluster.open()
    with pytest.raises(KeyboardInterrupt):
        cluster.execute(_local_job(tmp_path))
    assert cluster.calls[-1] == "clean"
    leftovers = [p.name for p in work.iterdir() if p.name != "shared"]
    assert leftovers == []
    cluster.close()
