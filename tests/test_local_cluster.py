"""The local cluster under real limits: memory (RLIMIT_AS), wall clock (process group kill), cores,
large output, launch errors, a full disk, cancellation and preflight."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from threshold_probe.clusters import make_cluster
from threshold_probe.clusters.local import TAIL_BYTES, LocalCluster
from threshold_probe.config import LocalClusterConfig, ProbeConfig
from threshold_probe.diagnose import diagnose
from threshold_probe.ladder.workload import Workload
from threshold_probe.models import PYTHON, JobSpec, Limits, Observation, Verdict, shared_ref
from threshold_probe.pipelines import make_pipeline

MB = 1024**2


def run_probe(
    source: str, tmp_path: Path, limits: Limits | None = None, cluster: LocalCluster | None = None
) -> tuple[Observation, Verdict]:
    cluster = cluster or make_cluster("local", ProbeConfig())  # type: ignore[assignment]
    assert cluster is not None
    cluster.open()
    workload = Workload(name="w", source=source, func_name="workload")
    local_dir = tmp_path / "probe"
    obs = make_pipeline("native").dispatch(workload, cluster, "p1", limits or Limits(time_s=60), local_dir)
    return obs, diagnose(obs)


def test_memory_limit_is_real(tmp_path: Path) -> None:
    source = "def workload():\n    block = bytearray(600 * 1024 * 1024)\n    return len(block)\n"
    obs, verdict = run_probe(source, tmp_path, Limits(memory_bytes=300 * MB, time_s=60))
    assert verdict.failure_class == "oom"
    assert "MemoryError" in verdict.evidence[0]
    assert any("300MB" in line and "RLIMIT_AS" in line for line in verdict.evidence)
    assert obs.meta is not None and obs.meta["limits"]["RLIMIT_AS"] == 300 * MB
    # The same workload passes without the limit: the limit, not the code, made it fail.
    _, ok = run_probe(source, tmp_path / "free", Limits(time_s=60))
    assert ok.status == "pass"


@pytest.mark.parametrize("limit_mb", [5, 12])
def test_memory_limit_too_small_to_start_is_still_oom(tmp_path: Path, limit_mb: int) -> None:
    # The interpreter (or the runner's first allocation) cannot even start under this limit.
    obs, verdict = run_probe("def workload():\n    return 1\n", tmp_path, Limits(memory_bytes=limit_mb * MB))
    assert obs.result is None
    assert verdict.failure_class == "oom", verdict
    assert any(f"memory limit: {limit_mb}MB" in line for line in verdict.evidence)


def test_wall_clock_limit_kills_the_whole_process_group(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    source = (
        "import subprocess, time\n"
        "def workload():\n"
        "    child = subprocess.Popen(['sleep', '300'])\n"
        f"    open({str(pid_file)!r}, 'w').write(str(child.pid))\n"
        "    time.sleep(300)\n"
    )
    started = time.time()
    obs, verdict = run_probe(source, tmp_path, Limits(time_s=1.5))
    elapsed = time.time() - started
    assert obs.job.timed_out and obs.job.signal == 9
    # The cluster measured the killed process's peak memory itself (the runner could not).
    assert obs.job.peak_rss_mb is not None and obs.job.peak_rss_mb > 5
    assert verdict.failure_class == "timeout"
    assert any("time limit: 1.5s" in line for line in verdict.evidence)
    assert elapsed < 10
    child = int(pid_file.read_text())
    assert not _alive(child), "the workload's child survived the time limit"


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state not in ("Z", "X")


def test_cores_limit_pins_the_job(tmp_path: Path) -> None:
    source = "import os\ndef workload():\n    return len(os.sched_getaffinity(0))\n"
    obs, verdict = run_probe(source, tmp_path, Limits(cores=1, time_s=60))
    assert verdict.status == "pass"
    assert obs.result is not None and obs.result["repr"] == "1"


def test_large_output_is_drained_and_tails_kept(tmp_path: Path) -> None:
    source = (
        "import sys\n"
        "def workload():\n"
        "    chunk = 'o' * 1023 + '\\n'\n"
        "    for _ in range(16 * 1024):\n"
        "        sys.stdout.write(chunk)\n"
        "        sys.stderr.write(chunk.replace('o', 'e'))\n"
        "    print('END-OF-STDOUT')\n"
        "    print('END-OF-STDERR', file=sys.stderr)\n"
        "    return 'done'\n"
    )
    obs, verdict = run_probe(source, tmp_path, Limits(time_s=120))
    assert verdict.status == "pass", verdict
    assert obs.job.stdout_path is not None and obs.job.stderr_path is not None
    assert obs.job.stdout_path.stat().st_size >= 16 * MB
    assert obs.job.stderr_path.stat().st_size >= 16 * MB
    assert obs.job.stdout_tail.rstrip().endswith("END-OF-STDOUT")
    assert obs.job.stderr_tail.rstrip().endswith("END-OF-STDERR")
    assert len(obs.job.stdout_tail.encode()) <= TAIL_BYTES


def test_overlong_argument_is_a_launch_error_not_an_exception(tmp_path: Path) -> None:
    cluster = LocalCluster("local", LocalClusterConfig(workdir=str(tmp_path / "work")))
    cluster.open()
    # One argument over MAX_ARG_STRLEN (128 KiB): execve fails with E2BIG.
    job = JobSpec(probe_id="long", argv=[PYTHON, "-c", "#" + "x" * 200_000], local_dir=tmp_path / "out")
    result = cluster.execute(job)
    assert result.launch_error == "OSError: [Errno 7] Argument list too long"
    assert result.exit_code is None and result.infra_error is None


def test_missing_interpreter_is_infrastructure_trouble(tmp_path: Path) -> None:
    cfg = LocalClusterConfig(python=str(tmp_path / "no-such-python"), workdir=str(tmp_path / "w"))
    cluster = LocalCluster("local", cfg)
    _, verdict = run_probe("def workload():\n    return 1\n", tmp_path, cluster=cluster)
    assert verdict.status == "skip"
    assert "no-such-python" in verdict.evidence[0]
    checks = {c.name: c for c in cluster.preflight()}
    assert checks["python"].status == "fail"


def test_preflight_reports_python_cloudpickle_workdir_and_disk(tmp_path: Path) -> None:
    cluster = LocalCluster("local", LocalClusterConfig(workdir=str(tmp_path / "w")))
    checks = {c.name: c for c in cluster.preflight()}
    assert checks["python"].status == "ok"
    assert f"{sys.version_info[0]}.{sys.version_info[1]}" in checks["python"].detail
    assert checks["cloudpickle"].status == "ok"
    assert checks["workdir"].status == "ok"
    assert "MB free" in checks["disk"].detail
    assert cluster.describe()["python_version"].startswith("3.")


def test_preflight_fails_on_unwritable_workdir(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    cluster = LocalCluster("local", LocalClusterConfig(workdir=str(blocker / "sub")))
    checks = {c.name: c for c in cluster.preflight()}
    assert checks["workdir"].status == "fail"
    assert checks["workdir"].fix


def test_shared_files_are_staged_once_and_job_folders_removed(tmp_path: Path) -> None:
    work = tmp_path / "work"
    cluster = LocalCluster("local", LocalClusterConfig(workdir=str(work)))
    cluster.open()
    argv = [PYTHON, shared_ref("tool.py")]
    results = []
    for n, keep in enumerate((False, True)):
        job = JobSpec(
            probe_id=f"j{n}",
            shared={"tool.py": b"import os; print(os.path.abspath(__file__))\n"},
            argv=argv,
            local_dir=tmp_path / f"out{n}",
            keep_remote=keep,
        )
        results.append(cluster.execute(job))
    cluster.close()  # a finished job's folder is removed while the client goes on, at the latest by close()
    paths = [r.stdout_tail.strip() for r in results]
    assert paths[0] == paths[1] and paths[0].startswith(str(work / "shared"))
    assert results[0].remote_dir and not Path(results[0].remote_dir).exists()
    assert results[1].remote_dir and Path(results[1].remote_dir).is_dir()
    assert "stage_in" in results[0].timings and "process" in results[0].timings


def test_cancel_all_kills_a_running_job(tmp_path: Path) -> None:
    cluster = LocalCluster("local", LocalClusterConfig(workdir=str(tmp_path / "w")))
    cluster.open()
    job = JobSpec(probe_id="c", argv=[PYTHON, "-c", "import time; time.sleep(300)"], local_dir=tmp_path / "o")
    timer = threading.Timer(1.0, cluster.cancel_all)
    timer.start()
    started = time.time()
    result = cluster.execute(job)
    timer.cancel()
    assert result.signal == 9 and not result.timed_out
    assert time.time() - started < 10


def _can_mount() -> bool:
    return os.geteuid() == 0 and shutil.which("mount") is not None


@pytest.mark.skipif(not _can_mount(), reason="mounting a tmpfs needs root")
def test_full_disk_workdir_is_a_transfer_failure(tmp_path: Path) -> None:
    small = tmp_path / "small"
    small.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m,mode=0700", "tmpfs", str(small)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        cluster = LocalCluster("local", LocalClusterConfig(workdir=str(small)))
        # The payload captures 4 MB of data, more than the 1 MB disk holds.
        source = "DATA = 'x' * (4 * 1024 * 1024)\ndef workload():\n    return len(DATA)\n"
        obs, verdict = run_probe(source, tmp_path, cluster=cluster)
    finally:
        subprocess.run(["umount", "-l", str(small)], check=False)
    assert verdict.failure_class == "transfer"
    assert any("No space left on device" in line for line in verdict.evidence)
    assert obs.job.launch_error and obs.job.launch_error.startswith("stage_in:")
