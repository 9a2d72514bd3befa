"""`probe repro`: the folder runs by hand, without threshold-probe, on local, an SSH host and in a
SLURM job, and fails with the same root error and a non-zero exit."""

from __future__ import annotations

import io
import json
import os
import shlex
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.every_cluster import CLUSTERS
from threshold_probe.cli.app import app

NAME_FAILURE = """\
def helper(x):
    return x + 1


def job():
    return helper(2)
"""

OOM = """\
def grow(mb):
    blocks = []
    for _ in range(mb):
        blocks.append(bytearray(1024 * 1024))
    return len(blocks)
"""

#: An interpreter without threshold-probe: the system one (cloudpickle is added by path for native).
BARE_PYTHON = "/usr/bin/python3"


def invoke(tmp_path: Path, config: Path | None, *args: str) -> Any:
    base = ["--reports-dir", str(tmp_path / "reports")]
    if config is not None:
        base += ["--config", str(config)]
    return CliRunner().invoke(app, [*base, *args], env={"PROBE_CONFIG": None, "PROBE_REPORTS_DIR": None})


def failing_run(tmp_path: Path, config: Path | None, cluster: str, *args: str) -> str:
    ran = invoke(tmp_path, config, "run", "--cluster", cluster, "--json", "-q", "--fresh", *args)
    assert ran.exit_code == 1, ran.stdout + ran.stderr
    run_id: str = json.loads(ran.stdout)["run_id"]
    return run_id


def run_by_hand(tmp_path: Path, folder: Path, cluster: str, testbed: Any) -> subprocess.CompletedProcess[str]:
    """Run the folder as a person would: copy it to the host and `sh run.sh` with its Python."""
    if cluster == "local":
        site = tmp_path / "site"
        site.mkdir()
        import cloudpickle

        (site / "cloudpickle").symlink_to(Path(cloudpickle.__file__).parent)
        env = {"PATH": os.environ["PATH"], "PYTHON": BARE_PYTHON, "PYTHONPATH": str(site)}
        bare = subprocess.run([BARE_PYTHON, "-c", "import threshold_probe"], cwd=folder, env=env, capture_output=True)
        assert bare.returncode != 0, "threshold_probe must not be importable where the folder runs"
        return subprocess.run(["sh", "run.sh"], cwd=folder, env=env, capture_output=True, text=True, timeout=120)
    host = testbed.host("ssh")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(folder, arcname="repro")
    remote = f"repro-{tmp_path.name}"
    run = f"PYTHON={shlex.quote(testbed.python)} sh run.sh"
    if cluster == "testbed-slurm":
        slurm = testbed.slurm
        run = (
            f"SLURM_CONF={shlex.quote(slurm['slurm_conf'])} srun -p {shlex.quote(slurm['partition'])} --mem=900M"
            f" sh -c {shlex.quote(run)}"
        )
    script = (
        f"rm -rf {remote} && mkdir {remote} && tar -x -C {remote} && cd {remote}/repro"
        f" && ! {shlex.quote(testbed.python)} -c 'import threshold_probe' 2>/dev/null && {run}"
    )
    ssh = [
        "ssh",
        "-i",
        str(testbed.client_key),
        "-o",
        f"UserKnownHostsFile={testbed.known_hosts}",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        "BatchMode=yes",
        "-p",
        str(host.port),
        f"{testbed.user}@{host.addr}",
        script,
    ]
    proc = subprocess.run(ssh, input=buf.getvalue(), capture_output=True, timeout=180)
    return subprocess.CompletedProcess(proc.args, proc.returncode, proc.stdout.decode(), proc.stderr.decode())


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_a_source_pipeline_name_failure_runs_by_hand(
    cluster_config: Path | None, tmp_path: Path, cluster: str, request: pytest.FixtureRequest
) -> None:
    src = tmp_path / "jobs.py"
    src.write_text(NAME_FAILURE)
    run_id = failing_run(tmp_path, cluster_config, cluster, "--function", f"{src}:job", "--pipeline", "source")
    folder = tmp_path / "repro"
    made = invoke(tmp_path, cluster_config, "repro", run_id, "-o", str(folder), "--json")
    assert made.exit_code == 0, made.stdout + made.stderr
    written = json.loads(made.stdout)
    assert {"run.sh", "README.md", "payload.json", "runner.py", "source_runner.py"} <= set(written["files"])
    readme = (folder / "README.md").read_text()
    assert f"cluster: {cluster}" in readme and "name:NameError:name 'helper' is not defined" in readme
    testbed = request.getfixturevalue("testbed") if cluster != "local" else None
    done = run_by_hand(tmp_path, folder, cluster, testbed)
    assert done.returncode != 0, done.stdout + done.stderr
    assert "NameError: name 'helper' is not defined" in done.stderr


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_a_native_oom_runs_by_hand_under_its_memory_limit(
    cluster_config: Path | None, tmp_path: Path, cluster: str, request: pytest.FixtureRequest
) -> None:
    src = tmp_path / "grow.py"
    src.write_text(OOM)
    run_id = failing_run(
        tmp_path,
        cluster_config,
        cluster,
        "--function",
        f"{src}:grow",
        "--arg",
        "mb=400",
        "--memory",
        "200MB",
        "--pipeline",
        "native",
    )
    folder = tmp_path / "repro"
    made = invoke(tmp_path, cluster_config, "repro", run_id, "-o", str(folder))
    assert made.exit_code == 0, made.stdout + made.stderr
    script = (folder / "run.sh").read_text()
    assert "ulimit -v 204800" in script
    testbed = request.getfixturevalue("testbed") if cluster != "local" else None
    done = run_by_hand(tmp_path, folder, cluster, testbed)
    assert done.returncode != 0, done.stdout + done.stderr
    assert "MemoryError" in done.stderr


def test_repro_of_a_level_that_passed_is_refused(tmp_path: Path) -> None:
    ran = invoke(tmp_path, None, "bisect", "--ladder", "seed", "--hi", "2", "--json", "-q")
    assert ran.exit_code == 0, ran.stdout + ran.stderr
    run_id = json.loads(ran.stdout)["run_id"]
    result = invoke(tmp_path, None, "repro", run_id, "--level", "1", "-o", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert "level 1 passed: nothing to reproduce" in result.stderr
    # The whole run passed: repro says so in its own words, not in those of shrink.
    whole = invoke(tmp_path, None, "repro", run_id, "-o", str(tmp_path / "out"))
    assert whole.exit_code == 2
    assert f"run {run_id} has no failing probe: nothing to reproduce" in whole.stderr
    assert not (tmp_path / "out").exists()
