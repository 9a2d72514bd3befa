"""The submitit pipeline through the real submitit from PyPI: LocalExecutor on `local`,
SlurmExecutor on the loopback testbed's SLURM (sbatch on this machine with its SLURM_CONF).

Every fault is real: a raising function, a real cgroup/SLURM memory kill, a real time limit.
The verdict must name the root error from submitit's own job files, which the client never
unpickles.
"""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import submitit  # noqa: F401  - the extra must be installed: this test is never skipped
from typer.testing import CliRunner

from tests.testbed.testbed import Testbed
from threshold_probe.cli.app import app
from threshold_probe.clusters import make_cluster
from threshold_probe.clusters.base import Cluster
from threshold_probe.config import load_config
from threshold_probe.diagnose import diagnose
from threshold_probe.ladder.workload import Workload
from threshold_probe.models import Limits, Observation
from threshold_probe.pipelines import make_pipeline
from threshold_probe.pipelines.submitit import slurm_parameters

SLURM = "testbed-slurm"

SOURCE = """\
import time

def ok():
    return {"answer": 6 * 7}

def boom():
    value = 3
    raise ValueError(f"bad value {value}")

def hog():
    blocks = []
    for _ in range(40):
        blocks.append(bytearray(50 * 1024 * 1024))
        time.sleep(0.05)
    return len(blocks)

def sleepy():
    time.sleep(120)
"""


def workload(func: str) -> Workload:
    return Workload(name=f"submitit-{func}", source=SOURCE, func_name=func)


def dispatch(cluster: Cluster, func: str, limits: Limits, tmp_path: Path) -> Observation:
    probe_id = f"sb-{os.getpid()}-{tmp_path.name}-{func}"
    return make_pipeline("submitit").dispatch(workload(func), cluster, probe_id, limits, tmp_path / func)


def no_result_unpickled_here(obs: Observation) -> None:
    # The client read only the helper's JSON; the pickle is submitit's.
    folder = Path(str(obs.job.remote_dir))
    assert any(p.name.endswith("_result.pkl") for p in folder.iterdir()) or obs.job.timed_out


# -- local ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local() -> Cluster:
    return make_cluster("local", load_config(None))


def test_version_is_the_pinned_one() -> None:
    assert version("submitit") == "1.5.4"


def test_local_pass_returns_through_local_executor(local: Cluster, tmp_path: Path) -> None:
    obs = dispatch(local, "ok", Limits(time_s=60), tmp_path)
    assert diagnose(obs).status == "pass", obs
    assert obs.result is not None and obs.result["repr"] == "{'answer': 42}"
    assert any("LocalExecutor" in n for n in obs.notes)
    no_result_unpickled_here(obs)


def test_local_exception_names_the_root_error_from_submitits_result_file(local: Cluster, tmp_path: Path) -> None:
    obs = dispatch(local, "boom", Limits(time_s=60), tmp_path)
    verdict = diagnose(obs)
    assert verdict.status == "fail" and verdict.failure_class == "exception", verdict
    assert verdict.signature == "exception:ValueError:bad value <n>" or "ValueError" in str(verdict.signature)
    assert "_result.pkl (submitit's record of the exception)" in obs.job.stderr_tail
    assert "bad value 3" in obs.job.stderr_tail


def test_local_timeout_is_enforced_by_the_pipeline(local: Cluster, tmp_path: Path) -> None:
    obs = dispatch(local, "sleepy", Limits(time_s=3), tmp_path)
    verdict = diagnose(obs)
    assert verdict.failure_class == "timeout", verdict
    assert obs.job.timed_out and obs.wall_s < 60
    assert (
        make_pipeline("submitit")
        .enforcement(local, Limits(time_s=3, memory_bytes=1))["memory"]
        .startswith("not enforced")
    )


def test_an_ssh_cluster_is_a_user_error_exit_2(tmp_path: Path, testbed: Testbed) -> None:
    result = CliRunner().invoke(
        app,
        [
            "--config",
            str(testbed.config_path),
            "--reports-dir",
            str(tmp_path / "r"),
            "compare-pipelines",
            "--pipelines",
            "native,submitit",
            "--cluster",
            "testbed-ssh",
            "--from",
            "1",
            "--to",
            "1",
            "--quiet",
        ],
    )
    assert result.exit_code == 2, result.output
    assert "submitit pipeline needs a local or slurm cluster" in result.stderr


# -- SLURM ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def slurm_tb(testbed: Testbed) -> dict[str, Any]:
    if not testbed.slurm or "slurm_conf" not in testbed.slurm or SLURM not in testbed.clusters:
        pytest.fail("the loopback testbed did not start SLURM (TP_TESTBED_SLURM=0?)", pytrace=False)
    return {"config": testbed.config_path, "slurm": testbed.slurm}


@pytest.fixture(scope="module")
def slurm(slurm_tb: dict[str, Any]) -> Iterator[Cluster]:
    c = make_cluster(SLURM, load_config(Path(slurm_tb["config"])))
    yield c


@pytest.mark.slurm
def test_slurm_parameters_map_partition_memory_and_time(slurm: Cluster) -> None:
    params = slurm_parameters(slurm, Limits(memory_bytes=300 * 1024**2, time_s=90, cores=1))
    assert params["mem"] == "300M" and params["time"] == 2 and params["cpus_per_task"] == 1
    if getattr(slurm.config, "partition", None):
        assert params["partition"] == slurm.config.partition


@pytest.mark.slurm
def test_slurm_pass(slurm: Cluster, tmp_path: Path) -> None:
    obs = dispatch(slurm, "ok", Limits(time_s=60, memory_bytes=512 * 1024**2), tmp_path)
    assert diagnose(obs).status == "pass", (obs.notes, obs.job.stderr_tail)
    assert obs.result is not None and obs.result["repr"] == "{'answer': 42}"
    assert any("SlurmExecutor" in n for n in obs.notes)
    assert obs.job.scheduler.get("JobId")
    no_result_unpickled_here(obs)


@pytest.mark.slurm
def test_slurm_exception_names_the_users_line(slurm: Cluster, tmp_path: Path) -> None:
    obs = dispatch(slurm, "boom", Limits(time_s=60, memory_bytes=512 * 1024**2), tmp_path)
    verdict = diagnose(obs)
    assert verdict.status == "fail" and verdict.failure_class == "exception", (verdict, obs.job.stderr_tail)
    assert "ValueError" in str(verdict.signature)
    assert "bad value 3" in obs.job.stderr_tail


@pytest.mark.slurm
def test_slurm_oom_is_slurms_kill_and_the_wait_ends(slurm: Cluster, tmp_path: Path) -> None:
    obs = dispatch(slurm, "hog", Limits(time_s=60, memory_bytes=300 * 1024**2), tmp_path)
    verdict = diagnose(obs)
    assert verdict.failure_class == "oom", (verdict, obs.job.scheduler, obs.job.stderr_tail, obs.notes)
    # Killed before submitit wrote its result: the pipeline saw the job leave the queue.
    assert any("without writing submitit's result file" in n for n in obs.notes), obs.notes
    assert obs.wall_s < 60


@pytest.mark.slurm
def test_slurm_sub_minute_timeout(slurm: Cluster, tmp_path: Path) -> None:
    obs = dispatch(slurm, "sleepy", Limits(time_s=3, memory_bytes=512 * 1024**2), tmp_path)
    verdict = diagnose(obs)
    assert verdict.failure_class == "timeout", (verdict, obs.notes)
    assert obs.job.timed_out and obs.wall_s < 45
    assert make_pipeline("submitit").enforcement(slurm, Limits(time_s=3))["time"] == "runner"
    state = subprocess.run(
        ["squeue", "-h", "-j", str(obs.job.scheduler["JobId"])],
        capture_output=True,
        text=True,
        env={**os.environ, "SLURM_CONF": str(slurm.config.slurm_conf)},
    )
    assert state.stdout.strip() == ""  # nothing left running


@pytest.mark.slurm
def test_compare_pipelines_native_submitit_on_slurm(slurm_tb: dict[str, Any], tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        [
            "--config",
            str(slurm_tb["config"]),
            "--reports-dir",
            str(tmp_path / "reports"),
            "compare-pipelines",
            "--pipelines",
            "native,submitit",
            "--cluster",
            SLURM,
            "--from",
            "1",
            "--to",
            "2",
            "--time",
            "60s",
            "--json",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, (result.stdout, result.stderr)
    data = json.loads(result.stdout)
    assert data["pipelines"] == ["native", "submitit"] and data["cluster"] == SLURM
    rows = {row["level"]: row["cells"] for row in data["matrix"]}
    assert sorted(rows) == [1, 2]
    assert all(rows[n][p]["verdict"] == "pass" for n in rows for p in ("native", "submitit")), rows
