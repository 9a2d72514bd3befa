"""SIGINT and SIGTERM to a real `probe` process while a probe runs.

The run must stop, kill the workload's whole process group (no orphan: no process is left whose
working folder is under the local cluster's workdir), journal the run as interrupted, print the
run id and the exact resume command on one stderr line, and exit 130 (SIGINT) or 143 (SIGTERM).
The printed command, run as it is, must then complete the run.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import pytest

ASSETS = Path(__file__).parent / "assets"
SLOW = str(ASSETS / "ladders" / "slow.toml")
START_TIMEOUT_S = 120


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A folder with its own probe.toml: the local cluster works in a folder of its own."""
    (tmp_path / "probe.toml").write_text(f'[clusters.local]\ntype = "local"\nworkdir = "{tmp_path / "wd"}"\n')
    return tmp_path


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PROBE_CONFIG", "PROBE_REPORTS_DIR")}


def processes_under(folder: Path) -> list[int]:
    """Live processes whose working folder is inside `folder` (a probe's job folder)."""
    found = []
    prefix = str(folder.resolve())
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cwd = os.readlink(entry / "cwd")
        except OSError:  # gone, a zombie, or not ours
            continue
        if cwd == prefix or cwd.startswith(prefix + "/"):
            found.append(int(entry.name))
    return found


def start(workspace: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "threshold_probe", "--reports-dir", str(workspace / "reports"), *args],
        cwd=workspace,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for_workload(proc: subprocess.Popen[str], workdir: Path, count: int = 1) -> list[int]:
    """Wait until `count` processes run in a job folder (the probe is really in flight)."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        pids = processes_under(workdir)
        if len(pids) >= count:
            return pids
        if proc.poll() is not None:
            out, err = proc.communicate()
            pytest.fail(f"probe ended (exit {proc.returncode}) before its workload started:\n{err}\n{out}")
        if time.monotonic() > deadline:
            proc.kill()
            pytest.fail("the workload never started")
        time.sleep(0.05)


def wait_gone(workdir: Path, timeout: float = 10) -> list[int]:
    deadline = time.monotonic() + timeout
    while processes_under(workdir) and time.monotonic() < deadline:
        time.sleep(0.05)
    return processes_under(workdir)


def one_error_line(stderr: str) -> str:
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert len(lines) == 1, stderr
    return lines[0]


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_during_a_sweep_cancels_journals_and_prints_the_resume_command(
    workspace: Path, signum: signal.Signals, code: int
) -> None:
    workdir = workspace / "wd"
    # Each level computes for a minute; --time 3s ends it as a timeout, so the resume is quick.
    proc = start(workspace, "sweep", "--ladder", SLOW, "--time", "3s", "--fresh", "--quiet")
    workload = wait_for_workload(proc, workdir)
    os.kill(proc.pid, signum)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err

    # No orphan: the workload's process group is gone, and so is its job folder.
    assert wait_gone(workdir) == []
    assert all(not Path(f"/proc/{pid}/cwd").exists() for pid in workload)
    assert not [p for p in workdir.iterdir() if p.name != "shared"]

    # One line: the run id and the exact command that resumes it.
    line = one_error_line(err)
    assert f"interrupted by {signum.name}" in line
    with closing(sqlite3.connect(workspace / "reports" / "probe.db")) as db:
        ((run_id, status),) = db.execute("SELECT run_id, status FROM runs").fetchall()
        states = [s for (s,) in db.execute("SELECT state FROM probes WHERE run_id=?", (run_id,))]
    assert run_id in line
    assert status == "interrupted"
    assert states == ["cancelled"]  # the probe in flight; nothing else had started
    summary = json.loads((workspace / "reports" / run_id / "run.json").read_text())
    assert summary["status"] == "interrupted"
    command = line.split("resume with: ", 1)[1]
    argv = shlex.split(command)
    assert argv[0] == "probe" and argv[-3:] == ["sweep", "--resume", run_id]

    # The printed command, run as it is from another folder, finishes the run under the same id.
    elsewhere = workspace / "elsewhere"
    elsewhere.mkdir()
    resumed = subprocess.run(
        [sys.executable, "-m", "threshold_probe", *argv[1:], "--json", "--quiet"],
        cwd=elsewhere,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert resumed.returncode == 0, resumed.stderr
    done = json.loads(resumed.stdout)
    assert done["run_id"] == run_id and done["status"] == "completed"
    assert [p["level"] for p in done["probes"]] == [1, 2, 3]
    assert {p["class"] for p in done["probes"]} == {"timeout"}
    assert out == ""  # --quiet and no --json: nothing on stdout before the interruption


def test_sigint_kills_the_whole_process_group_of_a_user_function(workspace: Path) -> None:
    """A function that starts a child and waits: Ctrl-C leaves neither behind."""
    source = workspace / "spawner.py"
    source.write_text(
        "import subprocess\nimport time\n\n\n"
        "def spawn_and_wait():\n"
        "    subprocess.Popen(['sleep', '300'])\n"
        "    time.sleep(300)\n"
        "    return {}\n"
    )
    proc = start(workspace, "run", "--function", f"{source}:spawn_and_wait", "--quiet")
    wait_for_workload(proc, workspace / "wd", count=2)  # the runner and its `sleep`
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert wait_gone(workspace / "wd") == []
    line = one_error_line(err)
    assert "interrupted by SIGINT" in line and "--resume" not in line  # a single probe: run it again


def test_a_second_signal_during_the_clean_up_does_not_cut_it_short(workspace: Path) -> None:
    proc = start(workspace, "bisect", "--ladder", SLOW, "--fresh", "--quiet")
    wait_for_workload(proc, workspace / "wd")
    # Both pending at once: whichever Python handles first wins, the other must change nothing.
    os.kill(proc.pid, signal.SIGTERM)
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode in (130, 143), err
    assert "interrupted by" in one_error_line(err)
    with closing(sqlite3.connect(workspace / "reports" / "probe.db")) as db:
        assert db.execute("SELECT status FROM runs").fetchone()[0] == "interrupted"
    assert wait_gone(workspace / "wd") == []
