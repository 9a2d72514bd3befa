"""Evidence carries what was measured, and one cause has one signature on every cluster."""

from __future__ import annotations

import time
from pathlib import Path

from threshold_probe.clusters import make_cluster
from threshold_probe.config import ProbeConfig
from threshold_probe.diagnose import diagnose
from threshold_probe.ladder.workload import Workload
from threshold_probe.models import JobResult, Limits, Observation
from threshold_probe.pipelines import make_pipeline
from threshold_probe.signature import matches

ASSETS = Path(__file__).parent / "assets" / "diagnose"

GREEDY = Workload(
    name="greedy",
    source="def greedy():\n    block = bytearray(2 * 1024**3)\n    return len(block)\n",
    func_name="greedy",
)


def slurm_observation(tmp_path: Path, state: str, exit_code: str, log: str) -> Observation:
    """What the SLURM cluster reports of a job SLURM itself ended (its recorded state and log)."""
    stderr = tmp_path / f"{state}.log"
    stderr.write_text((ASSETS / log).read_text())
    job = JobResult(
        signal=9,
        stderr_path=stderr,
        stderr_tail=stderr.read_text(),
        scheduler={"JobId": "77", "JobState": state, "Reason": "None", "ExitCode": exit_code},
    )
    return Observation(
        probe_id="s",
        workload="greedy",
        cluster="slurm",
        pipeline="native",
        limits=Limits(memory_bytes=300 * 1024**2, time_s=3),
        started_at=time.time(),
        wall_s=1.0,
        job=job,
    )


def test_oom_has_one_signature_on_local_and_slurm(tmp_path: Path) -> None:
    # A real MemoryError under a real RLIMIT_AS on this machine.
    limits = Limits(memory_bytes=300 * 1024**2, time_s=60)
    local = make_pipeline("native").dispatch(
        GREEDY, make_cluster("local", ProbeConfig()), "l", limits, tmp_path / "local"
    )
    on_local = diagnose(local)
    assert on_local.failure_class == "oom" and any("MemoryError" in line for line in on_local.evidence)

    on_slurm = diagnose(slurm_observation(tmp_path, "OUT_OF_MEMORY", "0:125", "slurm_oom.txt"))
    assert on_slurm.failure_class == "oom"
    assert on_local.signature == on_slurm.signature == "oom::out of memory"
    # How each cluster reported it stays in the evidence.
    assert any("JobState=OUT_OF_MEMORY" in line for line in on_slurm.evidence), on_slurm.evidence
    # --match with either signature finds the other.
    assert on_local.signature is not None and matches(on_slurm, on_local.signature)


def test_timeout_has_one_signature_whoever_enforced_it(tmp_path: Path) -> None:
    sleepy = Workload(
        name="sleepy", source="import time\ndef sleepy():\n    time.sleep(30)\n", func_name="sleepy"
    )
    local = make_pipeline("native").dispatch(
        sleepy, make_cluster("local", ProbeConfig()), "t", Limits(time_s=1), tmp_path / "local"
    )
    on_local = diagnose(local)
    on_slurm = diagnose(slurm_observation(tmp_path, "TIMEOUT", "0:9", "slurm_time_limit.txt"))
    assert on_local.failure_class == on_slurm.failure_class == "timeout"
    assert on_local.signature == on_slurm.signature == "timeout::time limit"
    assert any("JobState=TIMEOUT" in line for line in on_slurm.evidence)
