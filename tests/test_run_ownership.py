"""Exactly one process owns a run, and a resumed run leaves no orphan on the far side.

- Two `probe bisect --resume RUN_ID` started together: one runs the run to its end, the other
  exits 3 with one line naming the owner's pid; no probe is dispatched twice.
- `kill -9` of the client while a SLURM job of its bisect runs: `--resume` cancels the orphan job
  recorded in the journal before it submits anything, so no duplicate ever runs beside it
  (watched in squeue), and the orphan's job folder is removed.
- `kill -9` of the client during an SSH run: the next run on that cluster removes the dead
  session's folder and says so.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

from tests.test_resume_kill import journal_rows, kill_after, only_run_id
from tests.testbed.testbed import Testbed

ASSETS = Path(__file__).parent / "assets"
SLOW6 = str(ASSETS / "ladders" / "slow6.toml")

# Three levels of 12 s of work each on SLURM: long enough for a killed client's job to be
# still running when --resume starts.
SLURM_SLOW = """
name = "slurm-slow"
description = "Three levels; 12 s of work each."
[ramp]
count = 3
memory_mb = { start = 10, step = 10 }
runtime_s = { start = 12, step = 0 }
"""


def _env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PROBE_CONFIG", "PROBE_REPORTS_DIR")}


def start(workspace: Path, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "threshold_probe", "--reports-dir", str(workspace / "reports"), *args],
        cwd=workspace,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def run(workspace: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "threshold_probe", "--reports-dir", str(workspace / "reports"), *args],
        cwd=workspace,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def test_two_concurrent_resumes_only_one_runs(tmp_path: Path) -> None:
    (tmp_path / "probe.toml").write_text(f'[clusters.local]\ntype = "local"\nworkdir = "{tmp_path / "wd"}"\n')
    kill_after(tmp_path, 1, "bisect", "--ladder", SLOW6, "--memory", "300MB", "--fresh", "--quiet")
    run_id = only_run_id(tmp_path, "bisect")

    procs = [start(tmp_path, "bisect", "--resume", run_id, "--json") for _ in range(2)]
    outs = [p.communicate(timeout=300) for p in procs]
    codes = sorted(p.returncode for p in procs)
    assert codes == [0, 3], [(p.returncode, err) for p, (_o, err) in zip(procs, outs, strict=True)]
    winner = next(p for p in procs if p.returncode == 0)
    loser_err = next(err for p, (_o, err) in zip(procs, outs, strict=True) if p.returncode == 3)
    # One line, naming the process that owns the run.
    assert loser_err.strip().count("\n") == 0, loser_err
    assert f"pid {winner.pid}" in loser_err and run_id in loser_err
    assert "Traceback" not in loser_err

    summary = json.loads(next(o for p, (o, _e) in zip(procs, outs, strict=True) if p.returncode == 0))
    assert summary["status"] == "completed" and (summary["last_pass"], summary["first_fail"]) == (3, 4)
    rows = journal_rows(tmp_path, run_id)
    finished = Counter((r["cache_key"], r["attempt"]) for r in rows if r["state"] == "done")
    assert not [k for k, n in finished.items() if n > 1], "a probe ran twice"
    assert all(r["state"] in ("done", "cancelled") for r in rows)


def test_owner_lock_is_released_when_the_run_ends(tmp_path: Path) -> None:
    """After a finished run, resuming it again is allowed (nothing owns it any more)."""
    (tmp_path / "probe.toml").write_text(f'[clusters.local]\ntype = "local"\nworkdir = "{tmp_path / "wd"}"\n')
    kill_after(tmp_path, 1, "bisect", "--ladder", SLOW6, "--memory", "300MB", "--fresh", "--quiet")
    run_id = only_run_id(tmp_path, "bisect")
    runs = json.loads(run(tmp_path, "runs", "--json").stdout)
    assert runs[0]["status"] == "stopped"
    first = run(tmp_path, "bisect", "--resume", run_id, "--json")
    assert first.returncode == 0, first.stderr
    again = run(tmp_path, "bisect", "--resume", run_id, "--json")
    assert again.returncode == 0, again.stderr
    rows = journal_rows(tmp_path, run_id)
    finished = Counter((r["cache_key"], r["attempt"]) for r in rows if r["state"] == "done")
    assert not [k for k, n in finished.items() if n > 1]


# -- SLURM ---------------------------------------------------------------------------------------


def slurm_env(tb: Testbed) -> dict[str, str]:
    return {**os.environ, "SLURM_CONF": tb.slurm["slurm_conf"]}


def live_jobs(tb: Testbed) -> dict[str, str]:
    """Live jobs of this testbed's SLURM: job (or array) id -> name."""
    out = subprocess.run(
        ["squeue", "-h", "-o", "%F|%j|%T"], capture_output=True, text=True, env=slurm_env(tb), timeout=30
    )
    assert out.returncode == 0, out.stderr
    jobs = {}
    for line in out.stdout.splitlines():
        if line.strip():
            job_id, name, _state = line.split("|")
            jobs[job_id] = name
    return jobs


def job_state(tb: Testbed, job_id: str) -> str:
    out = subprocess.run(
        ["scontrol", "show", "job", "-o", job_id], capture_output=True, text=True, env=slurm_env(tb), timeout=30
    )
    m = re.search(r"JobState=(\S+)", out.stdout)
    return m.group(1) if m else out.stderr.strip()


def remote_job_folders(tb: Testbed) -> set[str]:
    jobs = tb.home / ".threshold-probe" / "jobs"
    return {p.name for p in jobs.iterdir()} if jobs.is_dir() else set()


@pytest.mark.slurm
@pytest.mark.slow
def test_kill9_during_a_slurm_bisect_then_resume_cancels_the_orphan(testbed: Testbed, tmp_path: Path) -> None:
    if not testbed.slurm or "testbed-slurm" not in testbed.clusters:
        pytest.fail("the loopback testbed did not start SLURM", pytrace=False)
    ladder = tmp_path / "slurm-slow.toml"
    ladder.write_text(SLURM_SLOW)
    config = str(testbed.config_path)
    ours_before = set(live_jobs(testbed))
    folders_before = remote_job_folders(testbed)
    args = ["--config", config, "bisect", "--cluster", "testbed-slurm", "--ladder", str(ladder)]
    proc = start(tmp_path, *args, "--time", "2m", "--fresh", "--quiet", "--no-preflight")
    deadline = time.monotonic() + 180
    try:
        while True:
            live = {j: n for j, n in live_jobs(testbed).items() if j not in ours_before and n.startswith("tp-")}
            if live:
                break
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no SLURM job appeared"
            time.sleep(0.2)
        time.sleep(1.0)  # the job is really running, and its id is back with the client
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.communicate()
    orphans = set(live_jobs(testbed)) - ours_before
    assert orphans, "the orphan job should still be in the queue after kill -9"
    run_id = only_run_id(tmp_path, "bisect")
    # The far side's workdir is shared with other users of the testbed: the orphan's folders are
    # those named after the probes in flight at the kill.
    in_flight = [str(r["probe_id"]) for r in journal_rows(tmp_path, run_id) if r["state"] == "dispatched"]
    assert in_flight
    orphan_folders = {
        name
        for name in remote_job_folders(testbed) - folders_before
        if any(name.startswith((f"{p}-", f"array-{p}-")) for p in in_flight)
    }
    assert orphan_folders, "the orphan's job folder exists on the far side"

    # Watch the queue while the run resumes: an orphan and a new job must never be live together.
    overlaps: list[dict[str, str]] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            live = live_jobs(testbed)
            mine = {j: n for j, n in live.items() if j not in ours_before}
            if set(mine) & orphans and set(mine) - orphans:
                overlaps.append(mine)
            time.sleep(0.2)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    try:
        resumed = run(tmp_path, "--config", config, "bisect", "--resume", run_id, "--json", timeout=300)
    finally:
        stop.set()
        watcher.join(10)
    assert resumed.returncode == 0, resumed.stderr
    assert not overlaps, f"a duplicate ran beside the orphan: {overlaps}"
    for job_id in orphans:
        assert job_state(testbed, job_id) == "CANCELLED"
    assert "orphan" in resumed.stderr or "cancelled" in resumed.stderr
    # The orphan's folder is gone; the resumed run left nothing behind either.
    assert not (remote_job_folders(testbed) & orphan_folders)
    summary = json.loads(resumed.stdout)
    assert summary["status"] == "completed"
    with closing(sqlite3.connect(tmp_path / "reports" / "probe.db")) as db:
        left = db.execute("SELECT COUNT(*) FROM remote_work WHERE run_id=? AND state!='done'", (run_id,))
        assert left.fetchone()[0] == 0


def _sessions(tb: Testbed) -> set[str]:
    wd = tb.home / ".threshold-probe"
    return {p.name for p in wd.glob("tp-*")} if wd.is_dir() else set()


@pytest.mark.ssh
def test_a_dead_ssh_session_folder_is_removed_by_the_next_run(testbed: Testbed, tmp_path: Path) -> None:
    config = str(testbed.config_path)
    before = _sessions(testbed)
    ladder = tmp_path / "slow.toml"
    ladder.write_text(SLURM_SLOW.replace("runtime_s = { start = 12", "runtime_s = { start = 30"))
    proc = start(tmp_path, "--config", config, "run", "--cluster", "testbed-ssh", "--ladder", str(ladder))
    home = testbed.home / ".threshold-probe"
    deadline = time.monotonic() + 60
    dead: set[str] = set()
    try:
        # The workdir is shared with other users of the testbed: ours is the new session folder
        # that holds the probe in flight (its folder is named after the probe id).
        while not dead:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no session folder of ours appeared"
            time.sleep(0.1)
            db_path = tmp_path / "reports" / "probe.db"
            if not db_path.exists():
                continue
            try:
                with closing(sqlite3.connect(db_path, timeout=5)) as db:
                    ids = [r[0] for r in db.execute("SELECT probe_id FROM probes WHERE state='dispatched'")]
            except sqlite3.OperationalError:
                continue  # the journal file exists, its tables are being made
            dead = {s for s in _sessions(testbed) - before for p in ids if any((home / s).glob(f"{p}-*"))}
        time.sleep(1.0)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.communicate()
    assert len(dead) == 1
    time.sleep(1.0)
    again = run(
        tmp_path,
        "--config",
        config,
        "run",
        "--cluster",
        "testbed-ssh",
        "--level",
        "1",
        "--ladder",
        str(ASSETS / "ladders" / "slow6.toml"),
    )
    assert again.returncode == 0, again.stderr
    assert not (_sessions(testbed) & dead), "the dead session's folder is still there"
    said: Any = " ".join(again.stderr.split())
    assert "removed" in said and next(iter(dead)) in said
