"""`kill -9` of a real `probe` process in the middle of a run, then `--resume`.

The probe process is a real subprocess (`python -m threshold_probe`) on the local cluster under a
real memory limit. The test watches the journal (reports/probe.db) and kills the process with
SIGKILL once some probes have finished. It then checks that the journal and the report files
load, that `--resume` completes with the right answer, and that no probe that had finished is
dispatched again: per (workload, attempt) the journal holds exactly one finished probe; the only
extra row is the probe that was in flight at the kill, marked `cancelled` by the resume.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest

ASSETS = Path(__file__).parent / "assets"
RESUME16 = str(ASSETS / "ladders" / "resume16.toml")
ISOLATE = str(ASSETS / "ladders" / "isolate.toml")
KILL_TIMEOUT_S = 180


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A folder with its own probe.toml: the local cluster works in a folder of its own."""
    (tmp_path / "probe.toml").write_text(f'[clusters.local]\ntype = "local"\nworkdir = "{tmp_path / "wd"}"\n')
    return tmp_path


def probe(workspace: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """Run `probe` to its end in a real subprocess."""
    env = {k: v for k, v in os.environ.items() if k not in ("PROBE_CONFIG", "PROBE_REPORTS_DIR")}
    return subprocess.run(
        [sys.executable, "-m", "threshold_probe", "--reports-dir", str(workspace / "reports"), *args],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def finished_probes(workspace: Path) -> int:
    """Finished probes in the journal so far (0 before it exists)."""
    db_path = workspace / "reports" / "probe.db"
    if not db_path.exists():
        return 0
    try:
        with closing(sqlite3.connect(db_path, timeout=5)) as db:
            return int(db.execute("SELECT COUNT(*) FROM probes WHERE state='done'").fetchone()[0])
    except sqlite3.Error:
        return 0


def kill_after(workspace: Path, finished: int, *args: str) -> None:
    """Start `probe ARGS`, wait until it has finished `finished` probes, then SIGKILL it."""
    finished += finished_probes(workspace)  # those of earlier runs do not count
    env = {k: v for k, v in os.environ.items() if k not in ("PROBE_CONFIG", "PROBE_REPORTS_DIR")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "threshold_probe", "--reports-dir", str(workspace / "reports"), *args],
        cwd=workspace,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + KILL_TIMEOUT_S
    try:
        while finished_probes(workspace) < finished:
            if proc.poll() is not None:
                out, err = proc.communicate()
                pytest.fail(f"the run ended (exit {proc.returncode}) before it could be killed:\n{err}\n{out}")
            if time.monotonic() > deadline:
                pytest.fail(f"no {finished} finished probes after {KILL_TIMEOUT_S} s")
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None and time.monotonic() > deadline:
            proc.kill()
        proc.communicate()
    assert proc.returncode == -signal.SIGKILL


def journal_rows(workspace: Path, run_id: str) -> list[dict[str, object]]:
    """The probe rows of one run, in dispatch order."""
    with closing(sqlite3.connect(workspace / "reports" / "probe.db", timeout=5)) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute(
            "SELECT probe_id, level, attempt, cache_key, state, record FROM probes WHERE run_id=?"
            " ORDER BY dispatched_at",
            (run_id,),
        ).fetchall()
    return [dict(r) for r in rows]


def only_run_id(workspace: Path, kind: str) -> str:
    with closing(sqlite3.connect(workspace / "reports" / "probe.db", timeout=5)) as db:
        rows = db.execute("SELECT run_id, status FROM runs WHERE kind=?", (kind,)).fetchall()
    assert len(rows) == 1, rows
    run_id, status = rows[0]
    assert status == "running"  # killed: nobody could write anything else
    return str(run_id)


def check_killed_run_loads(workspace: Path, run_id: str) -> set[str]:
    """The journal, run.json and `probe report` all load after the kill; returns the finished probe ids."""
    with closing(sqlite3.connect(workspace / "reports" / "probe.db", timeout=5)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    rows = journal_rows(workspace, run_id)
    done = {str(r["probe_id"]) for r in rows if r["state"] == "done"}
    in_flight = [r for r in rows if r["state"] == "dispatched"]
    assert len(in_flight) <= 1, in_flight  # probes are dispatched one at a time on the local cluster
    for r in rows:
        if r["state"] == "done":
            json.loads(str(r["record"]))
    partial = json.loads((workspace / "reports" / run_id / "run.json").read_text())
    assert partial["run_id"] == run_id and partial["status"] == "running"
    assert len(partial["probes"]) >= 1
    assert "--resume" in partial["message"]
    for probe_id in done:
        observation = workspace / "reports" / run_id / "probes" / probe_id / "probe.json"
        json.loads(observation.read_text())
    shown = probe(workspace, "report", run_id)
    assert shown.returncode == 0, shown.stderr
    assert "no answer yet" in shown.stdout
    as_json = probe(workspace, "report", run_id, "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["status"] == "running"
    return done


def check_nothing_dispatched_twice(workspace: Path, run_id: str, done_before: set[str]) -> None:
    """Each (workload, attempt) finished exactly once; the only extra row is the cancelled one."""
    rows = journal_rows(workspace, run_id)
    states = Counter(str(r["state"]) for r in rows)
    assert set(states) <= {"done", "cancelled"}, states
    assert states["cancelled"] <= 1, states
    finished = Counter((r["cache_key"], r["attempt"]) for r in rows if r["state"] == "done")
    twice = {k: n for k, n in finished.items() if n > 1}
    assert not twice, f"finished more than once: {twice}"
    still = {str(r["probe_id"]) for r in rows if r["state"] == "done"}
    assert done_before <= still  # the journal's probes were kept, not replaced by new dispatches
    for r in rows:
        if r["state"] == "done":
            assert json.loads(str(r["record"]))["cached_from"] is None  # --fresh: every one really ran
    cancelled = [r for r in rows if r["state"] == "cancelled"]
    for r in cancelled:
        # The probe in flight at the kill ran again, once.
        assert finished[(r["cache_key"], r["attempt"])] == 1


@pytest.mark.parametrize(("how", "after"), [("by-id", 3), ("latest", 5)])
def test_kill9_in_the_middle_of_a_bisect_then_resume(workspace: Path, how: str, after: int) -> None:
    kill_after(workspace, after, "bisect", "--ladder", RESUME16, "--memory", "300MB", "--fresh", "--quiet")
    run_id = only_run_id(workspace, "bisect")
    done_before = check_killed_run_loads(workspace, run_id)
    assert len(done_before) >= after
    # The killed run is listed as stopped, not as still running.
    runs = json.loads(probe(workspace, "runs", "--json").stdout)
    assert [(r["run_id"], r["status"]) for r in runs] == [(run_id, "stopped")]

    resume_args = ["bisect", "--resume", run_id] if how == "by-id" else ["bisect", "--resume"]
    resumed = probe(workspace, *resume_args, "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming run {run_id}" in " ".join(resumed.stderr.split())
    summary = json.loads(resumed.stdout)
    assert summary["run_id"] == run_id and summary["status"] == "completed"
    # The same answer an uninterrupted bisect gives (the ladder jumps past 300MB at level 11).
    assert (summary["last_pass"], summary["first_fail"]) == (10, 11)
    assert summary["search_status"] == "found"
    assert summary["failure"]["class"] == "oom"
    check_nothing_dispatched_twice(workspace, run_id, done_before)
    # Both ends, a binary search of 16 levels and one confirmation of each boundary level.
    assert len(summary["probes"]) <= 4 + 2 + 2

    # The finished run is listed as completed and renders.
    runs = json.loads(probe(workspace, "runs", "--json").stdout)
    assert [(r["run_id"], r["status"]) for r in runs] == [(run_id, "completed")]
    assert "level 11 is the first to fail" in probe(workspace, "report", run_id).stdout


def test_kill9_in_the_middle_of_a_sweep_then_resume(workspace: Path) -> None:
    kill_after(workspace, 6, "sweep", "--ladder", RESUME16, "--memory", "300MB", "--fresh", "--quiet")
    run_id = only_run_id(workspace, "sweep")
    done_before = check_killed_run_loads(workspace, run_id)

    resumed = probe(workspace, "sweep", "--resume", "--json")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["run_id"] == run_id and summary["status"] == "completed"
    assert (summary["last_pass"], summary["first_fail"]) == (10, 11)
    check_nothing_dispatched_twice(workspace, run_id, done_before)
    levels = Counter(p["level"] for p in summary["probes"])
    assert levels == Counter(range(1, 17))  # every level exactly once


def test_kill9_in_the_middle_of_an_isolate_then_resume(workspace: Path) -> None:
    found = probe(workspace, "bisect", "--ladder", ISOLATE, "--memory", "300MB", "--json", "--quiet")
    assert found.returncode == 0, found.stderr
    bisect_id = json.loads(found.stdout)["run_id"]

    kill_after(workspace, 4, "isolate", bisect_id, "--fresh", "--quiet")
    run_id = only_run_id(workspace, "isolate")
    done_before = check_killed_run_loads(workspace, run_id)

    resumed = probe(workspace, "isolate", "--resume", run_id, "--json")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["run_id"] == run_id and summary["status"] == "completed"
    assert summary["isolate"]["drivers"] == ["memory_mb"]
    assert summary["params"]["options"]["from_run"] == bisect_id
    check_nothing_dispatched_twice(workspace, run_id, done_before)


def test_resume_without_an_interrupted_run_is_one_line_exit_2(workspace: Path) -> None:
    done = probe(workspace, "run", "--level", "1", "--ladder", RESUME16, "--quiet")
    assert done.returncode == 0, done.stderr
    nothing = probe(workspace, "bisect", "--resume")
    assert nothing.returncode == 2
    assert nothing.stderr.strip().count("\n") == 0 and "no interrupted bisect run to resume" in nothing.stderr


def test_resume_does_not_pick_a_run_refused_before_its_first_probe(workspace: Path) -> None:
    """A run that bad input ended before any probe (a level not in the ladder) has nothing to
    continue: `--resume` without a run id passes over it, never repeating its error."""
    refused = probe(workspace, "sweep", "--from", "50", "--quiet")
    assert refused.returncode == 2 and "level 50 is not in ladder" in refused.stderr, refused.stderr
    nothing = probe(workspace, "sweep", "--resume")
    assert nothing.returncode == 2
    assert "no interrupted sweep run to resume" in nothing.stderr and "level 50" not in nothing.stderr
    # Named by its id, it is still tried, and refused for what it is.
    refused_id = json.loads(probe(workspace, "runs", "--json").stdout)[0]["run_id"]
    named = probe(workspace, "sweep", "--resume", refused_id)
    assert named.returncode == 2 and "level 50 is not in ladder" in named.stderr, named.stderr
    unknown = probe(workspace, "sweep", "--resume", "20990101-000000-sweep-ffff")
    assert unknown.returncode == 2 and "Traceback" not in unknown.stderr
    without_flag = probe(workspace, "sweep", "20990101-000000-sweep-ffff")
    assert without_flag.returncode == 2 and "only goes with --resume" in without_flag.stderr


def test_a_run_still_going_is_not_resumed_twice(workspace: Path) -> None:
    slow = str(ASSETS / "ladders" / "slow.toml")
    env = {k: v for k, v in os.environ.items() if k not in ("PROBE_CONFIG", "PROBE_REPORTS_DIR")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "threshold_probe",
            "--reports-dir",
            str(workspace / "reports"),
            "bisect",
            "--ladder",
            slow,
            "--fresh",
            "--quiet",
        ],
        cwd=workspace,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + KILL_TIMEOUT_S
        wd = workspace / "wd"
        while not wd.is_dir() or not [p for p in wd.iterdir() if p.name != "shared"]:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        busy = probe(workspace, "bisect", "--resume")
        assert busy.returncode == 3
        assert f"is being run by pid {proc.pid} right now" in " ".join(busy.stderr.split())
    finally:
        proc.terminate()  # SIGTERM: it cancels its probe and journals
        _, err = proc.communicate(timeout=60)
    assert proc.returncode == 143, err
    with closing(sqlite3.connect(workspace / "reports" / "probe.db", timeout=5)) as db:
        assert db.execute("SELECT status FROM runs").fetchone()[0] == "interrupted"


def test_kill9_before_the_first_probe_finished_then_resume(workspace: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("PROBE_CONFIG", "PROBE_REPORTS_DIR")}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "threshold_probe",
            "--reports-dir",
            str(workspace / "reports"),
            "bisect",
            "--ladder",
            RESUME16,
            "--memory",
            "300MB",
            "--fresh",
            "--quiet",
        ],
        cwd=workspace,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    deadline = time.monotonic() + KILL_TIMEOUT_S
    while not list((workspace / "reports").glob("*/run.json")):
        assert proc.poll() is None and time.monotonic() < deadline
        time.sleep(0.01)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    run_id = only_run_id(workspace, "bisect")
    assert json.loads((workspace / "reports" / run_id / "run.json").read_text())["status"] == "running"
    shown = probe(workspace, "report", run_id)
    assert shown.returncode == 0, shown.stderr
    assert "running: no answer yet" in shown.stdout

    resumed = probe(workspace, "bisect", "--resume", run_id, "--json")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert (summary["last_pass"], summary["first_fail"], summary["status"]) == (10, 11, "completed")
    check_nothing_dispatched_twice(workspace, run_id, set())


SCALED = str(ASSETS / "functions" / "scaled.py")
# 300 MB of address space: 100,000 KiB fits beside the runner, 400,000 KiB cannot.
SCALED_VALUES = "1000,2000,5000,10000,20000,50000,100000,400000,800000,1600000,3200000,6400000"


def test_kill9_in_the_middle_of_a_scaled_bisect_then_resume(workspace: Path) -> None:
    # `hold` keeps each probe going a little, so the kill lands mid-run, not after the last probe.
    args = (
        "bisect",
        "-f",
        f"{SCALED}:allocate",
        "--scale",
        "kib",
        "--values",
        SCALED_VALUES,
        "--arg",
        "hold=0.5",
        "--memory",
        "300MB",
        "--fresh",
        "--quiet",
    )
    kill_after(workspace, 3, *args)
    run_id = only_run_id(workspace, "bisect")
    done_before = check_killed_run_loads(workspace, run_id)
    assert len(done_before) >= 3

    resumed = probe(workspace, "bisect", "--resume", run_id, "--json")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["run_id"] == run_id and summary["status"] == "completed"
    # The answer an uninterrupted scaled bisect gives, in the function's own values.
    assert summary["scale"]["name"] == "kib"
    assert (summary["scale"]["last_pass_value"], summary["scale"]["first_fail_value"]) == (100000, 400000)
    assert summary["failure"]["class"] == "oom"
    assert "allocate fails from kib=400,000" in summary["message"]
    check_nothing_dispatched_twice(workspace, run_id, done_before)
    assert "kib=400,000" in probe(workspace, "report", run_id).stdout


def test_a_run_resumed_after_its_cluster_changed_says_its_finished_probes_run_again(workspace: Path) -> None:
    """Probes made on the cluster as it was (another interpreter) are not replayed, and the
    resume does not claim they were: it names how many run again, and why."""
    kill_after(workspace, 2, "bisect", "--ladder", RESUME16, "--memory", "300MB", "--fresh", "--quiet")
    run_id = only_run_id(workspace, "bisect")
    done_before = {str(r["probe_id"]) for r in journal_rows(workspace, run_id) if r["state"] == "done"}
    # The same interpreter behind a wrapper is another configured python: another cluster.
    other = workspace / "python-elsewhere"
    other.write_text(f'#!/bin/sh\nexec "{sys.executable}" "$@"\n')
    other.chmod(0o755)
    (workspace / "probe.toml").write_text(
        f'[clusters.local]\ntype = "local"\nworkdir = "{workspace / "wd"}"\npython = "{other}"\n'
    )
    resumed = probe(workspace, "bisect", "--resume", run_id, "--json")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert not done_before & {p["probe_id"] for p in summary["probes"]}, "a probe of the old cluster was replayed"
    said = " ".join(resumed.stderr.split())
    assert f"{len(done_before)} finished probes of this run were made on cluster 'local' as it was then" in said, said
    assert "run again" in said, said
