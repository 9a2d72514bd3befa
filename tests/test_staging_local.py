"""Staging on the local cluster: shared files verified by content, private work folders, and a
workdir that another user owns or can write to is refused (exit 3)."""

from __future__ import annotations

import os
import pwd
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from threshold_probe.cli.app import app
from threshold_probe.clusters.local import LocalCluster
from threshold_probe.config import LocalClusterConfig
from threshold_probe.diagnose import diagnose
from threshold_probe.ladder.workload import Workload
from threshold_probe.models import Limits, Observation, Verdict
from threshold_probe.pipelines import make_pipeline

RUNNER = "runner.py"
FUNC = "def workload():\n    return 41 + 1\n"


def _other_user() -> pwd.struct_passwd:
    """An account that is not us: the testbed's test user when it exists, else `nobody`."""
    for name in ("tp-testbed", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    pytest.fail("no second user account on this machine (useradd one)", pytrace=False)


def _needs_root() -> None:
    if os.geteuid() != 0:
        pytest.fail("planting files as another user needs root: run the tests as root", pytrace=False)


def dispatch(cluster: LocalCluster, tmp_path: Path, probe_id: str, source: str = FUNC) -> tuple[Observation, Verdict]:
    cluster.open()
    workload = Workload(name="w", source=source, func_name="workload")
    obs = make_pipeline("native").dispatch(workload, cluster, probe_id, Limits(time_s=60), tmp_path / probe_id)
    return obs, diagnose(obs)


def staged_runners(workdir: Path) -> list[Path]:
    return sorted((workdir / "shared").glob(f"*/{RUNNER}"))


def test_a_truncated_staged_runner_is_staged_again(tmp_path: Path) -> None:
    work = tmp_path / "work"
    cluster = LocalCluster("local", LocalClusterConfig(workdir=str(work)))
    _, first = dispatch(cluster, tmp_path, "first")
    assert first.status == "pass", first
    [runner] = staged_runners(work)
    whole = runner.read_bytes()
    os.truncate(runner, 8192)
    _, again = dispatch(LocalCluster("local", LocalClusterConfig(workdir=str(work))), tmp_path, "again")
    assert again.status == "pass", again
    assert runner.read_bytes() == whole


def test_a_runner_of_the_same_size_planted_by_another_user_is_never_run(tmp_path: Path) -> None:
    _needs_root()
    work = tmp_path / "work"
    cluster = LocalCluster("local", LocalClusterConfig(workdir=str(work)))
    _, first = dispatch(cluster, tmp_path, "first")
    assert first.status == "pass", first
    [runner] = staged_runners(work)
    size = runner.stat().st_size
    marker = tmp_path / "planted-ran"
    evil = f"open({str(marker)!r}, 'w').write('ran')\n".encode()
    evil += b"#" * (size - len(evil) - 1) + b"\n"
    assert len(evil) == size
    other = _other_user()
    runner.unlink()
    runner.write_bytes(evil)
    os.chown(runner, other.pw_uid, other.pw_gid)
    _, again = dispatch(LocalCluster("local", LocalClusterConfig(workdir=str(work))), tmp_path, "again")
    assert not marker.exists(), "the planted runner ran"
    assert again.status == "pass", again
    assert runner.stat().st_uid == os.geteuid()


def test_a_runner_changed_in_place_with_the_same_size_is_not_reused(tmp_path: Path) -> None:
    work = tmp_path / "work"
    cluster = LocalCluster("local", LocalClusterConfig(workdir=str(work)))
    dispatch(cluster, tmp_path, "first")
    [runner] = staged_runners(work)
    data = bytearray(runner.read_bytes())
    data[: len(b"raise SystemExit(99)\n")] = b"raise SystemExit(99)\n"
    runner.write_bytes(bytes(data))
    obs, again = dispatch(cluster, tmp_path, "again")
    assert again.status == "pass", (again, obs.job.exit_code)


def test_job_folders_payloads_and_logs_are_private(tmp_path: Path) -> None:
    work = tmp_path / "work"
    cluster = LocalCluster("local", LocalClusterConfig(workdir=str(work)))
    cluster.open()
    workload = Workload(name="w", source=FUNC, func_name="workload")
    pipeline = make_pipeline("native")
    job = pipeline.build(workload, "kept", Limits(time_s=60), tmp_path / "kept")
    job.keep_remote = True
    result = cluster.execute(job)
    assert result.exit_code == 0
    job_dir = Path(result.remote_dir or "")
    assert stat.S_IMODE(work.stat().st_mode) == 0o700
    assert stat.S_IMODE(job_dir.stat().st_mode) == 0o700
    for name in ("payload.pkl", "meta.json"):
        assert stat.S_IMODE((job_dir / name).stat().st_mode) & 0o077 == 0, name
    [runner] = staged_runners(work)
    assert stat.S_IMODE(runner.parent.stat().st_mode) & 0o077 == 0
    assert stat.S_IMODE(runner.stat().st_mode) & 0o077 == 0
    shutil.rmtree(job_dir)


def test_the_default_workdir_is_private_to_this_user(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _needs_root()
    # The old default, $TMPDIR/threshold-probe-<uid>, pre-created by another user: not used.
    shared_tmp = tmp_path / "tmp"
    shared_tmp.mkdir(mode=0o1777)
    shared_tmp.chmod(0o1777)
    monkeypatch.setenv("TMPDIR", str(shared_tmp))
    monkeypatch.setattr(tempfile, "tempdir", None)
    squatted = shared_tmp / f"threshold-probe-{os.getuid()}"
    squatted.mkdir()
    other = _other_user()
    os.chown(squatted, other.pw_uid, other.pw_gid)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.delenv("XDG_CACHE_HOME", raising=False)
    monkeypatch.delenv("XDG_RUNTIME_DIR", raising=False)
    cluster = LocalCluster("local")
    _, verdict = dispatch(cluster, tmp_path, "default")
    assert verdict.status == "pass", verdict
    work = cluster.workdir
    assert not str(work).startswith(str(shared_tmp))
    assert str(work).startswith(str(home))
    info = work.stat()
    assert info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) == 0o700
    assert list(squatted.iterdir()) == []


# -- a workdir that is not ours is refused: one line, exit 3 ----------------------------------


@pytest.fixture
def cli_workdir(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    work = tmp_path / "work"
    work.mkdir()
    config = tmp_path / "probe.toml"
    config.write_text(f'[clusters.mine]\ntype = "local"\nworkdir = "{work}"\n')
    yield config, work


def _run_cli(config: Path, tmp_path: Path) -> tuple[int, str, str]:
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
            "mine",
            "--function",
            f"{source}:workload",
            "--quiet",
        ],
    )
    return result.exit_code, result.stdout, result.stderr


def test_a_workdir_owned_by_another_user_is_refused(cli_workdir: tuple[Path, Path], tmp_path: Path) -> None:
    _needs_root()
    config, work = cli_workdir
    other = _other_user()
    os.chown(work, other.pw_uid, other.pw_gid)
    code, _, err = _run_cli(config, tmp_path)
    assert code == 3, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err
    assert str(work) in lines[0] and other.pw_name in lines[0]
    assert list(work.iterdir()) == []


def test_a_workdir_others_can_write_to_is_refused(cli_workdir: tuple[Path, Path], tmp_path: Path) -> None:
    config, work = cli_workdir
    work.chmod(0o777)
    code, _, err = _run_cli(config, tmp_path)
    assert code == 3, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err
    assert str(work) in lines[0] and "writable by others" in lines[0]
    assert list(work.iterdir()) == []


def test_clusters_check_fails_on_a_foreign_workdir(cli_workdir: tuple[Path, Path], tmp_path: Path) -> None:
    _needs_root()
    config, work = cli_workdir
    os.chown(work, _other_user().pw_uid, -1)
    result = CliRunner().invoke(app, ["--config", str(config), "clusters", "check", "mine"])
    assert result.exit_code == 3, result.stdout
    assert any(line.startswith("fail") and "workdir" in line for line in result.stdout.splitlines())


# -- a full disk during staging leaves no partial runner behind ------------------------------


def _can_mount() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None


@pytest.mark.skipif(not _can_mount(), reason="mounting a tmpfs needs root")
def test_a_disk_that_fills_while_staging_leaves_no_partial_runner(tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir(mode=0o700)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(small)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert mounted.returncode == 0, mounted.stderr
    try:
        work = small / "work"
        filler = small / "filler"
        # Leave 8 KiB: less than the runner, so its write stops part way.
        free = shutil.disk_usage(small).free
        with filler.open("wb") as fh:
            fh.write(b"\0" * (free - 8192))
        cluster = LocalCluster("local", LocalClusterConfig(workdir=str(work)))
        _, full = dispatch(cluster, tmp_path, "full")
        assert full.failure_class == "transfer", full
        assert any("No space left on device" in line for line in full.evidence)
        leftovers = [p for p in (work / "shared").rglob("*") if p.is_file()] if (work / "shared").exists() else []
        assert leftovers == [], leftovers
        filler.unlink()
        _, after = dispatch(LocalCluster("local", LocalClusterConfig(workdir=str(work))), tmp_path, "after")
        assert after.status == "pass", after
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)
