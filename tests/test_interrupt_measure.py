"""A real SIGINT that arrives while a run measures a workload stops the run (it is not evidence)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from threshold_probe.errors import Interrupted
from threshold_probe.interrupts import interruptible
from threshold_probe.ladder import Workload, load_ladder
from threshold_probe.models import Limits
from threshold_probe.pipelines import make_pipeline
from threshold_probe.session.workloads import Workloads


def _interrupted_while_measuring() -> Workload:
    os.kill(os.getpid(), signal.SIGINT)  # the real signal, delivered to this process mid-measurement
    raise AssertionError("the signal handler raises before this line")


def test_sigint_while_measuring_a_workload_interrupts_the_run() -> None:
    workloads = Workloads(load_ladder("default"))
    with interruptible(), pytest.raises(Interrupted) as caught:
        workloads.metrics_of("L1", _interrupted_while_measuring)
    assert caught.value.exit_code == 130
    # Nothing was recorded as the level's metrics: a resumed run measures it again.
    assert "L1" not in workloads._metrics


def test_a_broken_workload_is_still_recorded_as_evidence() -> None:
    def broken() -> Workload:
        raise ValueError("no source")

    workloads = Workloads(load_ladder("default"))
    assert workloads.metrics_of("L1", broken) == {"error": "ValueError: no source"}


_SIGNALS_WHILE_LOADING = """
import os, signal
os.kill(os.getpid(), signal.SIGINT)

def work():
    return 1
"""


@pytest.mark.parametrize("pipeline", ["native", "source", "inline"])
def test_sigint_while_a_pipeline_builds_is_not_a_serialize_failure(pipeline: str, tmp_path: Path) -> None:
    """Ctrl-C while the function is loaded and pickled stops the run: it is never a `serialize` verdict."""
    workload = Workload(name="w", source=_SIGNALS_WHILE_LOADING, func_name="work")
    with interruptible(), pytest.raises(Interrupted):
        make_pipeline(pipeline).build(workload, "p1", Limits(), tmp_path)
