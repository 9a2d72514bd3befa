"""The generated SLURM batch script, pinned by golden files (UPDATE_GOLDEN=1 rewrites them)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from threshold_probe.clusters.slurm_script import ScriptTask, render_job_script, sbatch_directives
from threshold_probe.config import SlurmClusterConfig
from threshold_probe.models import Limits

GOLDEN = Path(__file__).parent / "golden"

CONFIG = SlurmClusterConfig(
    type="slurm",
    host="ndoli",
    partition="standard",
    account="proj42",
    qos="short",
    cores=2,
    memory="4GB",
    time="00:10:00",
    gres="gpu:1",
    modules=["python/3.11", "gcc"],
    setup=["source ~/venv/bin/activate"],
    sbatch_args=["--exclusive"],
    python="/opt/py 3/bin/python3",
)
RUNNER = "/home/jdoe/.threshold-probe/shared/0123456789abcdef/runner.py"
BASE = "/home/jdoe/.threshold-probe/jobs"


def _check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.read_text() == text, f"{name} changed; rerun with UPDATE_GOLDEN=1 if that is intended"


def test_single_job_script_matches_golden() -> None:
    folder = f"{BASE}/L003-abc123-9f8e7d"
    script = render_job_script(
        CONFIG,
        Limits(memory_bytes=300 * 1024**2, time_s=90),
        [
            ScriptTask(
                folder=folder,
                argv=[CONFIG.python, RUNNER, "payload.pkl"],
                env={"PYTHONUNBUFFERED": "1", "WEIRD": "a b'c$d"},
            )
        ],
        job_name="tp-L003-abc123",
        output=f"{folder}/stdout.log",
        error=f"{folder}/stderr.log",
    )
    _check_golden("slurm_job.sh", script)


def test_array_script_matches_golden() -> None:
    base = f"{BASE}/array-L001-aaa-3-123abc"
    tasks = [
        ScriptTask(folder=f"{base}/{i}", argv=[CONFIG.python, RUNNER, "payload.pkl"], env={"PYTHONUNBUFFERED": "1"})
        for i in range(3)
    ]
    script = render_job_script(
        CONFIG,
        Limits(),
        tasks,
        job_name="tp-array-L001-aaa-3-123abc",
        output=f"{base}/%a/stdout.log",
        error=f"{base}/%a/stderr.log",
        array_throttle=2,
    )
    _check_golden("slurm_array.sh", script)


def test_script_order_and_shell_syntax(tmp_path: Path) -> None:
    script = (GOLDEN / "slurm_job.sh").read_text()
    lines = script.splitlines()
    first_code = next(i for i, ln in enumerate(lines) if ln and not ln.startswith("#"))
    # Every directive comes before the first command, or sbatch ignores it.
    assert all(not ln.startswith("#SBATCH") for ln in lines[first_code:])
    assert lines[first_code] == "set -euo pipefail"
    order = [
        next(i for i, ln in enumerate(lines) if ln.startswith(p))
        for p in ("set -euo", "module load", "source ", "exec ")
    ]
    assert order == sorted(order)
    for name in ("slurm_job.sh", "slurm_array.sh"):
        proc = subprocess.run(["bash", "-n", str(GOLDEN / name)], capture_output=True, text=True)
        assert proc.returncode == 0, proc.stderr


@pytest.mark.parametrize(
    ("memory", "time", "expected"),
    [
        ("4GB", "00:10:00", ["--mem=4096M", "--time=00:10:00"]),
        # SLURM counts minutes: the request rounds up, and the job's watchdog enforces 90 s.
        ("300MB", "90s", ["--mem=300M", "--time=00:02:00"]),
        ("300MB", "3s", ["--mem=300M", "--time=00:01:00"]),
        ("4096M", "1-00:00:00", ["--mem=4096M", "--time=1-00:00:00"]),
        ("1.5GiB", "2h", ["--mem=1536M", "--time=02:00:00"]),
    ],
)
def test_limits_become_sbatch_values(memory: str, time: str, expected: list[str]) -> None:
    cfg = SlurmClusterConfig(type="slurm", memory=memory, time=time)
    opts = sbatch_directives(cfg, Limits(), job_name="j", output="/o", error="/e")
    assert all(e in opts for e in expected), opts
    # The job's own limits (command-line overrides) win over the config.
    opts = sbatch_directives(cfg, Limits(memory_bytes=100 * 1024**2, cores=3), job_name="j", output="/o", error="/e")
    assert "--mem=100M" in opts and "--cpus-per-task=3" in opts


@pytest.mark.parametrize(("time_s", "watchdog"), [(3.0, True), (90.0, True), (60.0, False), (600.0, False)])
def test_time_limit_that_is_not_whole_minutes_gets_a_watchdog(time_s: float, watchdog: bool) -> None:
    tasks = [ScriptTask(folder=f"/w/{i}", argv=["python3", "runner.py", "payload.pkl"]) for i in range(2)]
    for some in (tasks[:1], tasks):
        script = render_job_script(
            SlurmClusterConfig(type="slurm"), Limits(time_s=time_s), some, job_name="j", output="/o", error="/e"
        )
        lines = [ln.strip() for ln in script.splitlines() if "sleep" in ln]
        if watchdog:
            # One per task, started just before the runner replaces the shell.
            assert len(lines) == len(some), script
            assert all(ln.startswith(f"( sleep {time_s:g} && ") and "kill -KILL $$" in ln for ln in lines)
            order = [ln.strip() for ln in script.splitlines()]
            assert order[order.index(lines[0]) + 1].startswith("exec "), script
        else:
            assert not lines, script
