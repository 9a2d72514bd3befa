"""One job lifecycle for every cluster: stage -> start -> watch -> fetch -> clean, and its retry.

`drive` runs one try through a backend's hooks (a `Lifecycle`), in this order, each over the
try's state (a `Try`, which the backend extends with what its hooks hand on to each other):

- `stage(t)`: the job's files and the shared files where the job will run;
- `start(t)`: the job's command started, under its limits, and recorded for `cancel_all`;
- `watch(t)`: wait until the job ends, or its time limit ends it;
- `fetch(t)`: its status, logs and fetched files into the result and `job.local_dir`;
- `clean(t)`: the job's folder removed unless kept. It runs always: after a hook that stopped
  the try, after one that raised, and after Ctrl-C (`t.interrupted` says so, and the exception
  goes on after it).

A hook that finds the try cannot go on says why in the result and calls `t.stop(...)`: the
steps after it are skipped, up to `clean`. A backend whose far side stages, starts, watches and
fetches in one round trip (SSH) implements the hooks it does not need as no-ops and says so.

A cluster that runs one job at a time implements `JobHooks` (the hooks plus `new_try(job)`,
the state of a fresh try with a `JobTry`'s job and result) and its `execute` is `run_job`. SLURM
drives a batch (one job or one array) the same way, over a try of its own.

What happens around the try is the same for every cluster that retries (`run_job` with a
`Retry`):

- a try reports `(result, retryable)`: `result.infra_error` set means the infrastructure failed
  (a refused or dropped connection, a controller that does not answer), and `retryable` says
  whether trying again can help (a changed host key or an auth failure cannot);
- a retryable failure is tried again up to `retries` times, with exponential backoff from
  `backoff_s` seconds, and never after a cancel (Ctrl-C);
- what still fails says how many attempts were made; what cannot get better says so.
"""

from __future__ import annotations

import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from threshold_probe.models import JobResult, JobSpec


class Try:
    """The state of one try, handed from hook to hook; backends extend it (`JobTry` for one job)."""

    #: A hook ended the try early: the steps after it are skipped, up to `clean`.
    stopped: bool = False
    #: A hook raised (Ctrl-C, SIGTERM, a bug): `clean` runs, then the exception goes on.
    interrupted: bool = False

    def stop(self) -> None:
        """End the try after the current hook (the result says why); `clean` still runs."""
        self.stopped = True


@dataclass
class JobTry(Try):
    """The state of one try of one job: the job, its result so far, and whether to retry it."""

    job: JobSpec
    result: JobResult = field(default_factory=JobResult)
    #: Whether an `infra_error` of this try is worth trying again.
    retryable: bool = True

    def stop(self, *, retryable: bool = True) -> None:
        """End the try after the current hook (its result says why); `clean` still runs."""
        super().stop()
        self.retryable = retryable


T = TypeVar("T", bound=Try)
J = TypeVar("J", bound=JobTry)


class Lifecycle(ABC, Generic[T]):
    """The steps of a try, which `drive` runs in order; see the module docstring."""

    @abstractmethod
    def stage(self, t: T) -> None:
        """Put the job's files and the shared files where the job will run."""

    @abstractmethod
    def start(self, t: T) -> None:
        """Start the job's command under its limits, recorded so that `cancel_all` finds it."""

    @abstractmethod
    def watch(self, t: T) -> None:
        """Wait until the job ends or its time limit ends it."""

    @abstractmethod
    def fetch(self, t: T) -> None:
        """Fill the result: status, logs and fetched files (into `job.local_dir`)."""

    @abstractmethod
    def clean(self, t: T) -> None:
        """Remove what the try left where the job ran, unless kept; runs always and must not raise."""


class JobHooks(Lifecycle[J]):
    """What a cluster implements so that `run_job` can run its jobs one at a time."""

    @abstractmethod
    def new_try(self, job: JobSpec) -> J:
        """The state of a fresh try of `job`; nothing is done yet."""


@dataclass(frozen=True)
class Retry:
    """How often infrastructure trouble is tried again, and how long to wait before the first retry."""

    retries: int = 0
    backoff_s: float = 1.0

    @property
    def attempts(self) -> int:
        return 1 + max(0, self.retries)


def with_retry(attempt: Callable[[], tuple[JobResult, bool]], retry: Retry, cancelled: threading.Event) -> JobResult:
    """Run `attempt` until it succeeds, fails for good, or the attempts run out; see the module docstring."""
    attempts = retry.attempts
    result = JobResult()
    for n in range(attempts):
        if cancelled.is_set():
            result.infra_error = result.infra_error or "cancelled"
            return result
        result, retryable = attempt()
        if result.infra_error is None:
            return result
        if not retryable:
            if result.cluster_lost:
                result.infra_error = f"{result.infra_error} (not retried: it cannot get better by itself)"
            return result
        if n + 1 < attempts:
            cancelled.wait(retry.backoff_s * (2**n))
    if cancelled.is_set():
        result.cluster_lost = False  # Ctrl-C: the run says so itself
    if attempts > 1 and result.infra_error:
        # "problem (after N attempts); fix: ...": the count belongs to the problem.
        problem, sep, fix = result.infra_error.partition("; fix: ")
        result.infra_error = f"{problem} (after {attempts} attempts){sep}{fix}"
    return result


#: A start that lost the cluster (no login node, no controller) is tried this many more times,
#: after 1 s, 2 s, ...; one that stays lost ends the run instead of skipping level after level.
LOST_RETRIES = 2
LOST_RETRY_BACKOFF_S = 1.0


def retry_lost(start: Callable[[], JobResult | None]) -> JobResult | None:
    """Run `start` (None: it started) again while its result says the cluster is lost, a few times."""
    result = start()
    for n in range(LOST_RETRIES):
        if result is None or not result.cluster_lost:
            break
        time.sleep(LOST_RETRY_BACKOFF_S * 2**n)
        result = start()
    return result


def drive(steps: Lifecycle[T], t: T) -> T:
    """Run the steps of one try in order, until one stops it; `clean` always, then any exception."""
    try:
        for step in (steps.stage, steps.start, steps.watch, steps.fetch):
            step(t)
            if t.stopped:
                break
    except BaseException:
        t.interrupted = True
        raise
    finally:
        steps.clean(t)
    return t


def one_try(hooks: JobHooks[J], job: JobSpec) -> tuple[JobResult, bool]:
    """One try of `job`: (result, whether an infra_error in it is worth retrying)."""
    t = drive(hooks, hooks.new_try(job))
    return t.result, t.retryable


def run_job(
    hooks: JobHooks[J], job: JobSpec, retry: Retry | None = None, cancelled: threading.Event | None = None
) -> JobResult:
    """Run `job` through the hooks; with `retry`, tries that fail retryably are tried again."""
    if retry is None:
        return one_try(hooks, job)[0]
    return with_retry(lambda: one_try(hooks, job), retry, cancelled or threading.Event())
