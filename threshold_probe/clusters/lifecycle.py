"""The part of a job's lifecycle every cluster shares: one try, retried while infrastructure trouble may pass.

A cluster's `execute` is stage -> start -> watch -> fetch -> clean for one try; what happens around
the try is the same for every cluster and lives here:

- a try reports `(result, retryable)`: `result.infra_error` set means the infrastructure failed
  (a refused or dropped connection, a controller that does not answer), and `retryable` says
  whether trying again can help (a changed host key or an auth failure cannot);
- a retryable failure is tried again up to `retries` times, with exponential backoff from
  `backoff_s` seconds, and never after a cancel (Ctrl-C);
- what still fails says how many attempts were made; what cannot get better says so.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

from threshold_probe.models import JobResult


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
