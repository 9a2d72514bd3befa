"""Staging on an SSH cluster (the testbed's sshd, as the unprivileged test user): a workdir others
can write to is refused with one line and exit 3, and a disk that fills while the launcher is
staged leaves nothing behind that a later run could pick up."""

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
from threshold_probe.clusters.transport import TransportError
from threshold_probe.config import load_config
from threshold_probe.diagnose import diagnose
from threshold_probe.ladder.workload import Workload
from threshold_probe.models import Limits
from threshold_probe.pipelines import make_pipeline

pytestmark = pytest.mark.ssh

FUNC = "def workload():\n    return 41 + 1\n"


@pytest.fixture
def far(testbed: Testbed, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A workdir of the test user's own, its path on this machine, and a config naming it."""
    name = f"tp-staging-ssh-{os.getpid()}-{time.monotonic_ns()}"
    root = testbed.home / name
    config = write_config(tmp_path / "probe.toml", {"s": testbed.cluster_table("ssh", workdir=f"~/{name}")})
    yield {"tb": testbed, "root": root, "config": config, "pw": pwd.getpwnam(testbed.user)}
    subprocess.run(["umount", "-l", str(root)], capture_output=True, check=False)
    shutil.rmtree(root, ignore_errors=True)


def run_cli(config: Path, tmp_path: Path) -> tuple[int, str, str]:
    source = tmp_path / "f.py"
    source.write_text(FUNC)
    args = ["--config", str(config), "--reports-dir", str(tmp_path / "reports")]
    result = CliRunner().invoke(app, [*args, "run", "--cluster", "s", "--function", f"{source}:workload", "--quiet"])
    return result.exit_code, result.stdout, result.stderr


def test_a_workdir_others_can_write_to_is_refused(far: dict[str, Any], tmp_path: Path) -> None:
    root: Path = far["root"]
    root.mkdir()
    os.chown(root, far["pw"].pw_uid, far["pw"].pw_gid)
    root.chmod(0o777)
    code, _, err = run_cli(far["config"], tmp_path)
    assert code == 3, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in err, lines
    assert "refusing workdir" in lines[0] and "writable by others (mode 777)" in lines[0]
    assert list(root.iterdir()) == []
    check = CliRunner().invoke(app, ["--config", str(far["config"]), "clusters", "check", "s"])
    assert check.exit_code == 3
    assert any(ln.startswith("fail") and "writable by others" in ln for ln in check.stdout.splitlines()), check.stdout


def test_a_disk_that_fills_while_staging_leaves_nothing_behind(far: dict[str, Any], tmp_path: Path) -> None:
    root: Path = far["root"]
    root.mkdir(mode=0o700)
    pw = far["pw"]
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size=1m,mode=0700,uid={pw.pw_uid},gid={pw.pw_gid}", "tmpfs", str(root)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert mounted.returncode == 0, mounted.stderr
    filler = root / "filler"
    # Leave 8 KiB: less than the launcher, so its write stops part way.
    free = shutil.disk_usage(root).free
    with filler.open("wb") as fh:
        fh.write(b"\0" * (free - 8192))
    cluster = make_cluster("s", load_config(far["config"]))
    with pytest.raises(TransportError, match="No space left on device"):
        cluster.open()
    cluster.close()
    assert sorted(p.name for p in root.iterdir()) == ["filler"]
    filler.unlink()
    cluster = make_cluster("s", load_config(far["config"]))
    cluster.open()
    try:
        workload = Workload(name="w", source=FUNC, func_name="workload")
        obs = make_pipeline("native").dispatch(workload, cluster, "after", Limits(time_s=60), tmp_path / "after")
    finally:
        cluster.close()
    assert diagnose(obs).status == "pass"


def test_probe_folders_payloads_and_logs_are_private(far: dict[str, Any], tmp_path: Path) -> None:
    cluster = make_cluster("s", load_config(far["config"]))
    workload = Workload(name="w", source=FUNC, func_name="workload")
    job = make_pipeline("native").build(workload, "kept", Limits(time_s=60), tmp_path / "kept")
    job.keep_remote = True
    cluster.open()
    try:
        result = cluster.execute(job)
    finally:
        cluster.close()
    assert result.exit_code == 0, result
    job_dir = Path(result.remote_dir or "")
    for folder in (far["root"], job_dir.parent, job_dir):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder
    for name in ("payload.pkl", "meta.json", "result.json", "stdout.log", "stderr.log"):
        mode = stat.S_IMODE((job_dir / name).stat().st_mode)
        assert mode & 0o077 == 0, (name, oct(mode))
