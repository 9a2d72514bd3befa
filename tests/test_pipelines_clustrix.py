"""The clustrix pipeline against the loopback SSH testbed, through the real ClustriX 0.1.1 from PyPI.

Every fault here is ClustriX's own behaviour on a real sshd: its job script, its job folder, its
polling. The pipeline must show the job's root error (from job.err and ClustriX's error.pkl),
keep ClustriX's message as evidence, and never leave a job running.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import clustrix  # noqa: F401  - the extra must be installed: this test is never skipped
import pytest
from typer.testing import CliRunner

from tests.testbed.testbed import Testbed
from threshold_probe.cli.app import app
from threshold_probe.clusters import make_cluster
from threshold_probe.clusters.base import Cluster
from threshold_probe.config import load_config
from threshold_probe.diagnose import diagnose
from threshold_probe.ladder import load_ladder
from threshold_probe.ladder.workload import Workload
from threshold_probe.models import Limits, Observation
from threshold_probe.pipelines import make_pipeline
from threshold_probe.pipelines.clustrix import ClustrixSerialPipeline

pytestmark = pytest.mark.ssh

CLUSTER = "testbed-ssh"
LIMITS = Limits(memory_bytes=1024**3, time_s=60)


@pytest.fixture(scope="module")
def cluster(testbed: Testbed) -> Iterator[Cluster]:
    c = make_cluster(CLUSTER, load_config(testbed.config_path))
    c.open()
    try:
        yield c
    finally:
        c.close()


def dispatch(pipeline_name: str, workload: Workload, cluster: Cluster, tmp_path: Path) -> Observation:
    probe_id = f"cx-{os.getpid()}-{tmp_path.name}"
    return make_pipeline(pipeline_name).dispatch(workload, cluster, probe_id, LIMITS, tmp_path)


def no_process_in(root: str) -> bool:
    """Nothing runs with its working directory in ClustriX's folder (we are root: /proc is readable)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{pid}/cwd").startswith(root):
                return False
        except OSError:
            continue
    return True


def test_clustrix_version_and_configuration_mapping(testbed: Testbed, cluster: Cluster) -> None:
    assert version("clustrix") == "0.1.1"
    table = testbed.cluster_table("ssh")
    pipeline = ClustrixSerialPipeline()
    cfg = pipeline.clustrix_config(cluster, "/remote/root")
    assert cfg["cluster_type"] == "ssh"
    assert cfg["cluster_host"] == table["host"] and cfg["cluster_port"] == table["port"]
    assert cfg["username"] == table["user"] and cfg["key_file"] == table["identity_file"]
    assert cfg["python_executable"] == table["python"] and cfg["remote_work_dir"] == "/remote/root"
    assert cfg["cleanup_on_success"] is False and cfg["auto_parallel"] is False
    assert {"default_cores", "default_memory", "default_time", "default_partition"} <= set(cfg)


def test_passing_function_returns_through_clustrix_and_its_folder_is_kept(cluster: Cluster, tmp_path: Path) -> None:
    workload = Workload(name="ok", source="def workload():\n    return {'answer': 6 * 7}\n", func_name="workload")
    obs = dispatch("clustrix-serial", workload, cluster, tmp_path)
    verdict = diagnose(obs)
    assert verdict.status == "pass", (verdict, obs.notes)
    assert obs.job.exit_code == 0 and obs.result is not None and obs.result["repr"] == "{'answer': 42}"
    remote = Path(obs.job.remote_dir or "")
    assert remote.name.startswith("job_") and (remote / "result.pkl").is_file() and (remote / "job.sh").is_file()
    assert "execute" in obs.timings
    # Only the job folder ClustriX used is left; the pre-made ones are gone.
    assert [p.name for p in remote.parent.iterdir()] == [remote.name]


def test_raising_function_shows_the_root_error_clustrix_hid_in_error_pkl(cluster: Cluster, tmp_path: Path) -> None:
    source = "def workload():\n    values = [1, 2]\n    return values[7]\n"
    obs = dispatch("clustrix-serial", Workload(name="ix", source=source, func_name="workload"), cluster, tmp_path)
    verdict = diagnose(obs)
    assert verdict.failure_class == "exception", verdict
    assert verdict.evidence[0] == "IndexError: list index out of range"
    # ClustriX never noticed (job.err stayed empty): the pipeline says so and stopped its wait.
    assert any("ClustriX kept polling" in line for line in verdict.evidence)
    assert "error.pkl" in obs.job.stderr_tail
    assert obs.job.remote_dir is not None and no_process_in(str(Path(obs.job.remote_dir).parent))
    assert obs.wall_s < 45


def test_auto_parallel_splits_a_range_loop_into_jobs_with_extra_arguments(cluster: Cluster, tmp_path: Path) -> None:
    source = "def workload():\n    total = 0\n    for i in range(2):\n        total += i\n    return total\n"
    obs = dispatch("clustrix", Workload(name="loop", source=source, func_name="workload"), cluster, tmp_path)
    verdict = diagnose(obs)
    assert verdict.failure_class == "exception", verdict
    # The chunk's extra keyword argument is the proof of the split. How many chunk folders exist
    # when the first error stops the wait depends on timing, so their count is not asserted.
    assert verdict.evidence[0] == "TypeError: workload() got an unexpected keyword argument '_chunk_range_i'"


class BareClustrix(ClustrixSerialPipeline):
    """ClustriX on a host as it is: no venv in the job folder, no `python` on PATH."""

    name = "clustrix-bare"
    provision_venv = False


def test_without_a_job_venv_clustrix_finds_no_python(cluster: Cluster, tmp_path: Path) -> None:
    if any((Path(d) / "python").exists() for d in ("/usr/local/bin", "/usr/bin", "/bin")):
        pytest.fail("this host has a `python` on the default PATH; the testbed expects only python3")
    workload = Workload(name="ok", source="def workload():\n    return 1\n", func_name="workload")
    obs = BareClustrix().dispatch(workload, cluster, f"bare-{os.getpid()}", LIMITS, tmp_path)
    verdict = diagnose(obs)
    assert verdict.failure_class == "launch", verdict
    # The job script's own line is the root error, not ClustriX's summary of it.
    assert verdict.evidence[0] == "job.sh: line 4: python: command not found"
    text = "\n".join(verdict.evidence)
    assert "venv/bin/activate: No such file or directory" in text
    assert "ClustriX raised RuntimeError: Job ssh_" in text


def test_default_ladder_level_through_clustrix_serial(cluster: Cluster, tmp_path: Path) -> None:
    obs = dispatch("clustrix-serial", load_ladder("default").workload(2), cluster, tmp_path)
    verdict = diagnose(obs)
    assert verdict.status == "pass", (verdict, obs.notes)
    # The workload writes to stdout and stderr: ClustriX's job.out / job.err are the probe's logs.
    assert "stdout line 000000" in (obs.job.stdout_path.read_text() if obs.job.stdout_path else "")


def test_sweep_of_features_ladder_reports_root_errors_per_level(
    testbed: Testbed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The features ladder where the range-loop feature appears: clustrix splits it, clustrix-serial does not."""
    ladder = load_ladder("features")
    level = next(lv.number for lv in ladder.levels if int(lv.values.get("top_level_range_loops", 0)) > 0)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(
        app,
        [
            "--config",
            str(testbed.config_path),
            "--reports-dir",
            str(tmp_path / "r"),
            "sweep",
            "-C",
            CLUSTER,
            "--pipeline",
            "clustrix-serial",
            "--ladder",
            "features",
            "--from",
            str(level - 1),
            "--to",
            str(level),
            "--json",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    verdicts = {p["level"]: p["verdict"] for p in data["probes"]}
    assert verdicts == {level - 1: "pass", level: "pass"}, data["probes"]


@pytest.mark.slow
@pytest.mark.parametrize("ladder", ["default", "features"])
def test_every_level_of_the_shipped_ladders_through_clustrix(
    testbed: Testbed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ladder: str
) -> None:
    """What ClustriX 0.1.1 does with each level of the default and features ladders over SSH.

    It pickles by value, so every syntactic feature travels, and in SSH mode it applies no memory
    limit: the levels whose memory native fails on under 1GB pass through ClustriX.
    """
    monkeypatch.chdir(tmp_path)
    base = ["--config", str(testbed.config_path), "--reports-dir", str(tmp_path / "r")]
    result = CliRunner().invoke(
        app,
        [
            *base,
            "sweep",
            "-C",
            CLUSTER,
            "--pipeline",
            "clustrix-serial",
            "--ladder",
            ladder,
            "--memory",
            "1GB",
            "--json",
            "-q",
        ],
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    verdicts = {p["level"]: (p["verdict"], p["class"]) for p in data["probes"]}
    assert sorted(verdicts) == list(range(1, 41))
    assert all(v == ("pass", None) for v in verdicts.values()), {k: v for k, v in verdicts.items() if v[0] != "pass"}
    assert data["first_fail"] is None


def test_clustrix_on_the_local_cluster_is_a_clear_user_error(tmp_path: Path) -> None:
    from threshold_probe.config import ProbeConfig
    from threshold_probe.errors import UserError

    workload = Workload(name="ok", source="def workload():\n    return 1\n", func_name="workload")
    local = make_cluster("local", ProbeConfig())
    with pytest.raises(UserError, match="needs an ssh or slurm cluster"):
        ClustrixSerialPipeline().dispatch(workload, local, "l", LIMITS, tmp_path)


@pytest.mark.slurm
def test_slurm_mode_fails_setting_up_its_environment(testbed: Testbed, tmp_path: Path) -> None:
    """ClustriX's SLURM mode runs a bare `python -m venv` over SSH before submitting anything."""
    if testbed.slurm is None:
        pytest.fail("the loopback testbed did not start SLURM (TP_TESTBED_SLURM=0?)", pytrace=False)
    slurm = make_cluster("testbed-slurm", load_config(testbed.config_path))
    slurm.open()
    try:
        workload = Workload(name="ok", source="def workload():\n    return 1\n", func_name="workload")
        obs = make_pipeline("clustrix-serial").dispatch(workload, slurm, f"sl-{os.getpid()}", LIMITS, tmp_path)
    finally:
        slurm.close()
    verdict = diagnose(obs)
    assert verdict.failure_class == "launch", verdict
    assert verdict.evidence[0].startswith("RuntimeError: Environment setup failed:")
    assert "python: command not found" in verdict.evidence[0]
    # Nothing was submitted: the job folder holds what ClustriX uploaded before the setup.
    assert any("requirements.txt" in line and "job.sh" not in line for line in verdict.evidence)


SLEEPER = "import time\n\ndef workload():\n    time.sleep(120)\n    return 1\n"


def test_time_limit_is_enforced_by_the_pipeline_and_the_job_killed(cluster: Cluster, tmp_path: Path) -> None:
    workload = Workload(name="sleep", source=SLEEPER, func_name="workload")
    obs = make_pipeline("clustrix-serial").dispatch(
        workload, cluster, f"t-{os.getpid()}", Limits(memory_bytes=1024**3, time_s=4), tmp_path
    )
    verdict = diagnose(obs)
    assert verdict.failure_class == "timeout", verdict
    assert any("ClustriX enforces none" in line for line in obs.notes)
    assert obs.wall_s < 40
    assert obs.job.remote_dir is not None and no_process_in(str(Path(obs.job.remote_dir).parent))


def test_interrupt_kills_the_job_clustrix_started(testbed: Testbed, tmp_path: Path) -> None:
    import signal
    import subprocess
    import sys
    import time

    func = tmp_path / "sleeper.py"
    func.write_text(SLEEPER)
    proc = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "probe"),
            "--config",
            str(testbed.config_path),
            "--reports-dir",
            str(tmp_path / "r"),
            "run",
            "-C",
            CLUSTER,
            "--pipeline",
            "clustrix-serial",
            "--function",
            f"{func}:workload",
            "-q",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = testbed.home / ".threshold-probe" / "clustrix"
    deadline = time.time() + 60
    running: list[Path] = []
    while time.time() < deadline and not running:
        time.sleep(0.5)
        running = [p for p in base.glob("workload-*/job_*") if (p / "job.sh").exists() and not no_process_in(str(p))]
    assert running, "the job never started"
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert no_process_in(str(running[0].parent))
