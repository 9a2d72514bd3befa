"""Evidence carries what was measured, and one cause has one signature on every cluster."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import tomllib

from tests.testbed.fixtures import write_config
from tests.testbed.testbed import Testbed
from threshold_probe.clusters import make_cluster
from threshold_probe.clusters.base import Cluster
from threshold_probe.config import ProbeConfig, load_config
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
    sleepy = Workload(name="sleepy", source="import time\ndef sleepy():\n    time.sleep(30)\n", func_name="sleepy")
    local = make_pipeline("native").dispatch(
        sleepy, make_cluster("local", ProbeConfig()), "t", Limits(time_s=1), tmp_path / "local"
    )
    on_local = diagnose(local)
    on_slurm = diagnose(slurm_observation(tmp_path, "TIMEOUT", "0:9", "slurm_time_limit.txt"))
    assert on_local.failure_class == on_slurm.failure_class == "timeout"
    assert on_local.signature == on_slurm.signature == "timeout::time limit"
    assert any("JobState=TIMEOUT" in line for line in on_slurm.evidence)


# -- the clustrix pipeline: the far side's versions as measured --------------------------------

OLD_CLOUDPICKLE = "2.2.1"


@pytest.fixture(scope="module")
def old_cloudpickle_ssh(testbed: Testbed, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The testbed's SSH host with a far-side Python whose cloudpickle is 2.2.1 (a real venv)."""
    base = testbed.public_dir or testbed.state_dir
    venv = base / f"venv-cloudpickle-{OLD_CLOUDPICKLE}"
    python = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
    subprocess.run([python, "-m", "venv", "--clear", "--without-pip", str(venv)], check=True, timeout=300)
    site = next((venv / "lib").glob("python3*/site-packages"))
    pip = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps"]
    subprocess.run([*pip, "--target", str(site), f"cloudpickle=={OLD_CLOUDPICKLE}"], check=True, timeout=600)
    for root, dirs, files in os.walk(venv):  # sshd runs the far side as the test user
        for name in dirs:
            os.chmod(os.path.join(root, name), 0o755)
        for name in files:
            path = os.path.join(root, name)
            if not os.path.islink(path):
                os.chmod(path, os.stat(path).st_mode | 0o444)
    with testbed.config_path.open("rb") as fh:
        table = dict(tomllib.load(fh)["clusters"]["testbed-ssh"])
    table["python"] = str(venv / "bin" / "python")
    config = write_config(tmp_path_factory.mktemp("skew") / "probe.toml", {"old-cloudpickle": table})
    cluster = make_cluster("old-cloudpickle", load_config(config))
    cluster.open()
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.mark.ssh
def test_clustrix_skew_evidence_names_the_far_side_versions_measured(
    old_cloudpickle_ssh: Cluster, tmp_path: Path
) -> None:
    workload = Workload(name="ok", source="def workload():\n    return 1\n", func_name="workload")
    obs = make_pipeline("clustrix-serial").dispatch(
        workload, old_cloudpickle_ssh, f"skew-{os.getpid()}", Limits(time_s=60), tmp_path
    )
    verdict = diagnose(obs)
    assert verdict.failure_class == "deserialize", verdict
    far_python = subprocess.run(
        ["/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable, "-c",
         "import platform; print(platform.python_version())"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert f"far side: Python {far_python}, cloudpickle {OLD_CLOUDPICKLE}" in verdict.evidence, verdict.evidence
    assert not any("unknown" in line or "missing" in line for line in verdict.evidence if "far side" in line)
    assert f"cloudpickle {OLD_CLOUDPICKLE}" in (verdict.explanation or ""), verdict.explanation
