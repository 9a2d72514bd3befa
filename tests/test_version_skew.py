"""A far side with another Python minor version (client 3.11, far side 3.12 from pyenv): probes are
`deserialize` with both Pythons and both cloudpickles in the evidence, and the SSH and SLURM
preflights load a real pickle made here and say what to install."""

from __future__ import annotations

import platform
import sys
from pathlib import Path

import cloudpickle
import pytest
from typer.testing import CliRunner

from tests.farpython import far_python
from tests.testbed.fixtures import write_config
from tests.testbed.testbed import Testbed
from threshold_probe.cli.app import app
from threshold_probe.clusters import make_cluster
from threshold_probe.clusters.base import Cluster
from threshold_probe.clusters.local import LocalCluster
from threshold_probe.config import LocalClusterConfig, load_config
from threshold_probe.diagnose import diagnose
from threshold_probe.ladder.workload import Workload
from threshold_probe.models import Limits, Verdict
from threshold_probe.pipelines import make_pipeline

HERE_PY = platform.python_version()
HERE_CP = cloudpickle.__version__
HERE_MINOR = ".".join(HERE_PY.split(".")[:2])
# A loop: its bytecode differs between minor versions (a function that only returns a constant
# happens to survive the trip).
LOOP = "def workload():\n    s = 0\n    for i in range(10):\n        s += i\n    return s\n"


@pytest.fixture(scope="module")
def py312() -> str:
    """Python 3.12 on the far side (3.11 when the client itself is 3.12): another minor version."""
    return far_python("3.12" if sys.version_info[:2] != (3, 12) else "3.11")


def far_version(python: str) -> str:
    import subprocess

    out = subprocess.run(
        [python, "-c", "import platform; print(platform.python_version())"], capture_output=True, text=True
    )
    return out.stdout.strip()


def probe(cluster: Cluster, tmp_path: Path, probe_id: str = "skew") -> Verdict:
    cluster.open()
    try:
        workload = Workload(name="w", source=LOOP, func_name="workload")
        obs = make_pipeline("native").dispatch(workload, cluster, probe_id, Limits(time_s=60), tmp_path / probe_id)
    finally:
        cluster.close()
    return diagnose(obs)


def assert_skew_verdict(verdict: Verdict, far: str) -> None:
    assert verdict.failure_class == "deserialize", verdict
    assert f"client: Python {HERE_PY}, cloudpickle {HERE_CP}" in verdict.evidence
    assert f"far side: Python {far}, cloudpickle {HERE_CP}" in verdict.evidence
    assert f"pickled by Python {HERE_PY}" in (verdict.explanation or "")
    assert f"loaded by Python {far}" in (verdict.explanation or "")


def test_local_far_side_of_another_minor_version_is_deserialize(py312: str, tmp_path: Path) -> None:
    cluster = LocalCluster("py312", LocalClusterConfig(python=py312, workdir=str(tmp_path / "w")))
    assert_skew_verdict(probe(cluster, tmp_path), far_version(py312))


def test_local_preflight_loads_a_real_pickle_and_refuses_a_search_it_cannot_run(py312: str, tmp_path: Path) -> None:
    """The local cluster checks what the SSH and SLURM preflights check: an interpreter that cannot
    load what is pickled here makes the cluster unusable (exit 3), not "level 1 already fails"."""
    config = tmp_path / "probe.toml"
    config.write_text(f'[clusters.skew]\ntype = "local"\npython = "{py312}"\nworkdir = "{tmp_path / "w"}"\n')
    result = CliRunner().invoke(app, ["--config", str(config), "clusters", "check", "skew"])
    assert result.exit_code == 3, result.stdout
    line = next(ln for ln in result.stdout.splitlines() if ln.split()[1:2] == ["cloudpickle"])
    assert line.startswith("fail"), line
    assert f"Python {far_version(py312)}" in line and f"Python {HERE_PY}" in line, line
    assert f"install Python {HERE_MINOR}" in line.split("fix:")[-1], line
    reports = str(tmp_path / "reports")
    args = ["--config", str(config), "--reports-dir", reports, "bisect", "--cluster", "skew", "--to", "4"]
    searched = CliRunner().invoke(app, args)
    assert searched.exit_code == 3, searched.stdout
    assert "already fails" not in searched.stdout


# -- over SSH and SLURM ------------------------------------------------------------------------


def ssh_config(testbed: Testbed, tmp_path: Path, python: str) -> Path:
    return write_config(tmp_path / "probe.toml", {"skew": testbed.cluster_table("ssh", python=python)})


@pytest.mark.ssh
def test_ssh_preflight_loads_a_real_pickle_and_says_what_to_install(
    testbed: Testbed, py312: str, tmp_path: Path
) -> None:
    config = ssh_config(testbed, tmp_path, py312)
    result = CliRunner().invoke(app, ["--config", str(config), "clusters", "check", "skew"])
    assert result.exit_code == 3, result.stdout
    lines = result.stdout.splitlines()
    python_line = next(ln for ln in lines if ln.split()[1:2] == ["python"])
    assert python_line.startswith("ok") and "3.12" in python_line
    line = next(ln for ln in lines if ln.split()[1:2] == ["cloudpickle"])
    assert line.startswith("fail"), line
    far = far_version(py312)
    assert f"Python {far}" in line and f"Python {HERE_PY}" in line and f"cloudpickle {HERE_CP}" in line
    assert f"install Python {HERE_MINOR}" in line.split("fix:")[-1], line


@pytest.mark.ssh
def test_ssh_probe_on_another_minor_version_is_deserialize(testbed: Testbed, py312: str, tmp_path: Path) -> None:
    cluster = make_cluster("skew", load_config(ssh_config(testbed, tmp_path, py312)))
    assert_skew_verdict(probe(cluster, tmp_path), far_version(py312))


def slurm_config(testbed: Testbed, tmp_path: Path, python: str) -> Path:
    if not testbed.slurm or "testbed-slurm" not in testbed.clusters:
        pytest.fail("the loopback testbed did not start SLURM (TP_TESTBED_SLURM=0?)", pytrace=False)
    cfg = load_config(testbed.config_path)
    table = cfg.clusters["testbed-slurm"].model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    table.update(type="slurm", python=python)
    return write_config(tmp_path / "probe.toml", {"skew": table})


@pytest.mark.slurm
def test_slurm_preflight_loads_a_real_pickle_and_says_what_to_install(
    testbed: Testbed, py312: str, tmp_path: Path
) -> None:
    config = slurm_config(testbed, tmp_path, py312)
    result = CliRunner().invoke(app, ["--config", str(config), "clusters", "check", "skew"])
    assert result.exit_code == 3, result.stdout
    lines = result.stdout.splitlines()
    line = next(ln for ln in lines if ln.split()[1:2] == ["cloudpickle"])
    assert line.startswith("fail"), result.stdout
    far = far_version(py312)
    assert f"Python {far}" in line and f"Python {HERE_PY}" in line and f"cloudpickle {HERE_CP}" in line
    assert f"install Python {HERE_MINOR}" in line.split("fix:")[-1], line


@pytest.mark.slurm
def test_slurm_probe_on_another_minor_version_is_deserialize(testbed: Testbed, py312: str, tmp_path: Path) -> None:
    cluster = make_cluster("skew", load_config(slurm_config(testbed, tmp_path, py312)))
    assert_skew_verdict(probe(cluster, tmp_path), far_version(py312))
