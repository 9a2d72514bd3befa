"""Staging on a real SLURM (over SSH, as the unprivileged test user): a staged runner that a full
disk cut short or that was changed is never used again, `clusters check` looks at staged files,
job folders, payloads and logs are private, and a workdir others can write to is refused."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.testbed.fixtures import write_config
from tests.testbed.testbed import Testbed
from threshold_probe.cli.app import app
from threshold_probe.clusters import make_cluster
from threshold_probe.clusters.slurm import SlurmCluster
from threshold_probe.config import load_config
from threshold_probe.diagnose import diagnose
from threshold_probe.ladder.workload import Workload
from threshold_probe.models import Limits, Observation, Verdict
from threshold_probe.pipelines import make_pipeline

pytestmark = pytest.mark.slurm

CLUSTER = "testbed-slurm"
FUNC = "def workload():\n    return 41 + 1\n"


@pytest.fixture
def far(testbed: Testbed) -> Iterator[dict[str, Any]]:
    """A fresh workdir of the test user's own (other test sessions share its home) and a config."""
    if not testbed.slurm or CLUSTER not in testbed.clusters:
        pytest.fail("the loopback testbed did not start SLURM (TP_TESTBED_SLURM=0?)", pytrace=False)
    name = f"tp-staging-{os.getpid()}-{time.monotonic_ns()}"
    root = testbed.home / name
    yield {"tb": testbed, "name": name, "root": root}
    subprocess.run(["umount", "-l", str(root)], capture_output=True, check=False)
    shutil.rmtree(root, ignore_errors=True)


def config_for(far: dict[str, Any], tmp_path: Path, workdir: str) -> Path:
    cfg = load_config(far["tb"].config_path)
    table = cfg.clusters[CLUSTER].model_dump(mode="json", exclude_none=True, exclude_defaults=True)
    table["type"] = "slurm"
    table["workdir"] = workdir
    return write_config(tmp_path / "probe.toml", {CLUSTER: table})


def new_cluster(config: Path) -> SlurmCluster:
    c = make_cluster(CLUSTER, load_config(config))
    assert isinstance(c, SlurmCluster)
    return c


def dispatch(config: Path, tmp_path: Path, probe_id: str) -> tuple[Observation, Verdict]:
    cluster = new_cluster(config)
    try:
        workload = Workload(name="w", source=FUNC, func_name="workload")
        pipeline = make_pipeline("native")
        job_dir = tmp_path / probe_id
        job_dir.mkdir(parents=True, exist_ok=True)
        obs = pipeline.dispatch(workload, cluster, probe_id, Limits(time_s=60), job_dir)
    finally:
        cluster.close()
    return obs, diagnose(obs)


def staged_runner(root: Path) -> Path:
    [runner] = sorted((root / "shared").glob("*/runner.py"))
    return runner


def test_a_truncated_staged_runner_is_never_reused(far: dict[str, Any], tmp_path: Path) -> None:
    config = config_for(far, tmp_path, f"~/{far['name']}")
    _, first = dispatch(config, tmp_path, "first")
    assert first.status == "pass", first
    runner = staged_runner(far["root"])
    whole = runner.read_bytes()
    os.truncate(runner, 8192)
    _, again = dispatch(config, tmp_path, "again")
    assert again.status == "pass", again
    assert runner.read_bytes() == whole


def test_clusters_check_finds_a_damaged_staged_runner(far: dict[str, Any], tmp_path: Path) -> None:
    config = config_for(far, tmp_path, f"~/{far['name']}")
    _, first = dispatch(config, tmp_path, "first")
    assert first.status == "pass", first
    runner = staged_runner(far["root"])
    size = runner.stat().st_size
    os.truncate(runner, 8192)
    result = CliRunner().invoke(app, ["--config", str(config), "clusters", "check", CLUSTER])
    line = next((ln for ln in result.stdout.splitlines() if "runner.py" in ln), "")
    assert line.split()[:2] == ["warn", "staged"], result.stdout
    assert "8192 bytes" in line and "staged again" in line
    assert not runner.exists()
    _, after = dispatch(config, tmp_path, "after")
    assert after.status == "pass", after
    assert runner.stat().st_size == size


def test_a_disk_that_fills_while_staging_leaves_no_runner_to_reuse(far: dict[str, Any], tmp_path: Path) -> None:
    root: Path = far["root"]
    root.mkdir(mode=0o700)
    pw = pwd.getpwnam(far["tb"].user)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size=1m,mode=0700,uid={pw.pw_uid},gid={pw.pw_gid}", "tmpfs", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert mounted.returncode == 0, mounted.stderr
    config = config_for(far, tmp_path, f"~/{far['name']}")
    filler = root / "filler"
    # Leave 8 KiB: the runner (about 14 KiB) is cut short part way through.
    free = shutil.disk_usage(root).free
    with filler.open("wb") as fh:
        fh.write(b"\0" * (free - 8192))
    os.chown(filler, pw.pw_uid, pw.pw_gid)
    _, full = dispatch(config, tmp_path, "full")
    assert full.failure_class == "transfer", full
    assert any("No space left on device" in line for line in full.evidence), full.evidence
    filler.unlink()
    _, after = dispatch(config, tmp_path, "after")
    assert after.status == "pass", after


def test_job_folders_payloads_and_logs_are_private(far: dict[str, Any], tmp_path: Path) -> None:
    config = config_for(far, tmp_path, f"~/{far['name']}")
    cluster = new_cluster(config)
    workload = Workload(name="w", source=FUNC, func_name="workload")
    job = make_pipeline("native").build(workload, "kept", Limits(time_s=60), tmp_path / "kept")
    job.keep_remote = True
    try:
        result = cluster.execute(job)
    finally:
        cluster.close()
    assert result.exit_code == 0, result
    job_dir = Path(result.remote_dir or "")
    for path in (far["root"], far["root"] / "jobs", job_dir, staged_runner(far["root"]).parent):
        assert stat.S_IMODE(path.stat().st_mode) == 0o700, path
    for name in ("payload.pkl", "stdout.log", "stderr.log", "meta.json", "job.sh", "result.json"):
        mode = stat.S_IMODE((job_dir / name).stat().st_mode)
        assert mode & 0o077 == 0, (name, oct(mode))
    assert stat.S_IMODE(staged_runner(far["root"]).stat().st_mode) & 0o077 == 0


def test_a_workdir_others_can_write_to_is_refused(far: dict[str, Any], tmp_path: Path) -> None:
    root: Path = far["root"]
    root.mkdir()
    pw = pwd.getpwnam(far["tb"].user)
    os.chown(root, pw.pw_uid, pw.pw_gid)
    root.chmod(0o777)
    config = config_for(far, tmp_path, f"~/{far['name']}")
    source = tmp_path / "f.py"
    source.write_text(FUNC)
    result = CliRunner().invoke(
        app,
        [
            "--config",
            str(config),
            "--reports-dir",
            str(tmp_path / "reports"),
            "run",
            "--cluster",
            CLUSTER,
            "--function",
            f"{source}:workload",
            "--quiet",
        ],
    )
    assert result.exit_code == 3, (result.stdout, result.stderr)
    lines = [ln for ln in result.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "writable by others" in lines[0] and far["name"] in lines[0], lines
    assert list(root.iterdir()) == []


def test_a_runner_of_the_same_size_planted_by_another_user_is_never_run(far: dict[str, Any], tmp_path: Path) -> None:
    config = config_for(far, tmp_path, f"~/{far['name']}")
    _, first = dispatch(config, tmp_path, "first")
    assert first.status == "pass", first
    runner = staged_runner(far["root"])
    size = runner.stat().st_size
    # Somewhere the test user can write: the planted code would run as that user.
    marker = Path("/tmp") / f"tp-planted-{os.getpid()}-{time.monotonic_ns()}"
    evil = f"open({str(marker)!r}, 'w').write('ran')\n".encode()
    evil += b"#" * (size - len(evil) - 1) + b"\n"
    runner.unlink()
    runner.write_bytes(evil)  # as root: another user's file of the same size
    try:
        _, again = dispatch(config, tmp_path, "again")
        assert not marker.exists(), "the planted runner ran"
        assert again.status == "pass", again
        assert runner.stat().st_uid == far["tb"].home.stat().st_uid
    finally:
        marker.unlink(missing_ok=True)
