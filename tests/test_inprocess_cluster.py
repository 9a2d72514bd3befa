"""The in-process test cluster stands in for the local cluster faithfully: for the same behaviour
of a function, both give the same verdict, class and signature, through the real native pipeline
and the real diagnosis. The local side runs for real (real processes, a real time limit)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.inprocess_cluster import InProcessCluster, Killed, Outcome, Pass, Raise, TimedOut
from threshold_probe.clusters import Cluster, make_cluster
from threshold_probe.config import ProbeConfig
from threshold_probe.diagnose import diagnose
from threshold_probe.ladder.workload import Workload
from threshold_probe.models import Limits
from threshold_probe.pipelines import make_pipeline

LIMITS = Limits(memory_bytes=300 * 1024**2, time_s=2)

#: Each case: the function the local cluster runs for real, and the outcome the in-process
#: cluster is told to give.
CASES: dict[str, tuple[str, Outcome]] = {
    "pass": ("def workload():\n    return {'answer': 42}\n", Pass({"answer": 42})),
    "exception": ("def workload():\n    raise ValueError('bad value')\n", Raise("ValueError", "bad value")),
    "memory-error": ("def workload():\n    raise MemoryError()\n", Raise("MemoryError")),
    "timeout": ("import time\n\ndef workload():\n    time.sleep(30)\n", TimedOut()),
    "signal": ("import os\n\ndef workload():\n    os.kill(os.getpid(), 9)\n", Killed(9)),
}


def verdict_on(cluster: Cluster, source: str, folder: Path) -> tuple[str, str | None, str | None]:
    """Status, failure class and signature of one probe of `source` on `cluster`."""
    workload = Workload(name="w", source=source, func_name="workload", level=1)
    verdict = diagnose(make_pipeline("native").dispatch(workload, cluster, "L001-contract", LIMITS, folder))
    return verdict.status, verdict.failure_class, verdict.signature


@pytest.mark.parametrize("case", sorted(CASES))
def test_in_process_outcomes_give_the_verdicts_of_the_real_local_cluster(tmp_path: Path, case: str) -> None:
    source, outcome = CASES[case]
    real = verdict_on(make_cluster("local", ProbeConfig()), source, tmp_path / "local")
    stand_in = InProcessCluster("local", lambda level, job: outcome)
    double = verdict_on(stand_in, source, tmp_path / "inprocess")
    assert double == real
    assert len(stand_in.jobs) == 1 and stand_in.levels == [1]


def test_run_runs_the_jobs_own_function_in_this_process(tmp_path: Path) -> None:
    cluster = InProcessCluster()  # Run() by default
    workload = Workload(name="w", source="def workload():\n    return 6 * 7\n", func_name="workload")
    obs = make_pipeline("native").dispatch(workload, cluster, "spec-1", Limits(), tmp_path)
    assert diagnose(obs).status == "pass"
    assert obs.result is not None and obs.result["repr"] == "42"
    assert cluster.levels == [None]
