"""SLURM clusters against a real single-node SLURM (munged, slurmctld, slurmd) on loopback.

Jobs are submitted over SSH through the testbed's sshd as the unprivileged test user, exactly
as a login node would be used. Memory is enforced by cgroups where the machine allows it and by
OverMemoryKill otherwise; every assertion here holds for both.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.testbed.testbed import Testbed
from threshold_probe.cli.app import app
from threshold_probe.clusters import make_cluster
from threshold_probe.clusters.slurm import SlurmCluster
from threshold_probe.config import load_config
from threshold_probe.diagnose import diagnose
from threshold_probe.ladder.workload import Workload
from threshold_probe.models import PYTHON, JobSpec, Limits, Observation
from threshold_probe.pipelines import make_pipeline

pytestmark = pytest.mark.slurm

ROOT = Path(__file__).resolve().parent.parent
CLUSTER = "testbed-slurm"

# Memory grows by 200 MiB a level and is held for 1.5 s (OverMemoryKill samples once a second).
# With a limit of 650 MB the first failing level is 4 (700 MiB) whether the limit is an address
# space rlimit (local) or SLURM's RSS limit: the interpreter's own overhead stays inside the gap.
MEMORY_LADDER = """
name = "slurm-memory"
description = "Five levels; memory grows by 200 MiB and is held for 1.5 s."
[ramp]
count = 5
memory_mb = { start = 100, step = 200 }
runtime_s = { start = 1.5, step = 0 }
"""

FAULTS = """
import os, time

def exits_seven():
    os._exit(7)

def raises():
    return {"ratio": 1 / 0}

def sleeps():
    time.sleep(300)
    return {"slept": 300}
"""


@pytest.fixture(scope="module")
def slurm_tb(testbed: Testbed) -> dict[str, Any]:
    """The session's loopback testbed (tests/testbed/fixtures.py), which must include SLURM."""
    if not testbed.slurm or "slurm_conf" not in testbed.slurm or CLUSTER not in testbed.clusters:
        pytest.fail("the loopback testbed did not start SLURM (TP_TESTBED_SLURM=0?)", pytrace=False)
    return {
        "config": testbed.config_path,
        "state_dir": testbed.state_dir,
        "slurm": testbed.slurm,
        "user": testbed.user,
    }


@pytest.fixture
def cluster(slurm_tb: dict[str, Any]) -> Iterator[SlurmCluster]:
    c = make_cluster(CLUSTER, load_config(slurm_tb["config"]))
    assert isinstance(c, SlurmCluster)
    try:
        yield c
    finally:
        c.cancel_all()
        c.close()


def slurm_env(slurm_tb: dict[str, Any]) -> dict[str, str]:
    return {**os.environ, "SLURM_CONF": slurm_tb["slurm"]["slurm_conf"]}


def live_jobs(slurm_tb: dict[str, Any]) -> list[str]:
    """Jobs SLURM still holds in a live state (pending, running, completing)."""
    out = subprocess.run(
        ["squeue", "-h", "-o", "%i %T"], capture_output=True, text=True, env=slurm_env(slurm_tb), timeout=30
    )
    assert out.returncode == 0, out.stderr
    return [line for line in out.stdout.splitlines() if line.strip()]


def job_processes(slurm_tb: dict[str, Any]) -> list[str]:
    """Processes on this machine that belong to a job of this testbed's SLURM (by their environment)."""
    marker = f"SLURM_CONF={slurm_tb['slurm']['slurm_conf']}".encode()
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            environ = Path(f"/proc/{entry}/environ").read_bytes().split(b"\0")
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in environ and any(v.startswith(b"SLURM_JOB_ID=") for v in environ):
            found.append(f"{entry} {cmdline}")
    return found


def invoke(slurm_tb: dict[str, Any], tmp_path: Path, *args: str) -> tuple[int, str, str]:
    runner = CliRunner()
    result = runner.invoke(
        app, ["--config", str(slurm_tb["config"]), "--reports-dir", str(tmp_path / "reports"), *args]
    )
    return result.exit_code, result.stdout, result.stderr


def function_workload(tmp_path: Path, name: str) -> Workload:
    source = textwrap.dedent(FAULTS)
    return Workload(name=name, source=source, func_name=name)


def dispatch(cluster: SlurmCluster, tmp_path: Path, workload: Workload, limits: Limits, probe_id: str) -> Observation:
    pipeline = make_pipeline("native")
    local_dir = tmp_path / probe_id
    local_dir.mkdir(parents=True, exist_ok=True)
    return pipeline.dispatch(workload, cluster, probe_id, limits, local_dir)


# -- thresholds ---------------------------------------------------------------------------------


def test_memory_ladder_threshold_matches_local_with_slurm_oom(slurm_tb: dict[str, Any], tmp_path: Path) -> None:
    ladder = tmp_path / "slurm-memory.toml"
    ladder.write_text(MEMORY_LADDER)
    common = ["--ladder", str(ladder), "--memory", "650MB", "--json", "--quiet", "--fresh"]

    code, out, err = invoke(slurm_tb, tmp_path, "sweep", "--cluster", "local", *common)
    assert code == 0, err
    local = json.loads(out)
    assert local["first_fail"] == 4, local

    code, out, err = invoke(slurm_tb, tmp_path, "sweep", "--cluster", CLUSTER, *common)
    assert code == 0, err
    sweep = json.loads(out)
    assert sweep["first_fail"] == local["first_fail"]
    assert sweep["failure"]["class"] == "oom", sweep["failure"]
    evidence = "\n".join(sweep["failure"]["evidence"])
    # SLURM's own kill: cgroup (OUT_OF_MEMORY, oom-kill) or OverMemoryKill (exceeded memory limit).
    assert any(s in evidence for s in ("OUT_OF_MEMORY", "oom-kill", "exceeded memory limit")), evidence
    if slurm_tb["slurm"]["mode"] == "overmemorykill":
        # SLURM says only FAILED 0:9 here: the job's own output is what makes it oom.
        assert "exceeded memory limit" in evidence, evidence
    else:
        assert "OUT_OF_MEMORY" in evidence or "oom-kill" in evidence, evidence
    verdicts = {p["level"]: p["verdict"] for p in sweep["probes"]}
    assert verdicts == {1: "pass", 2: "pass", 3: "pass", 4: "fail", 5: "fail"}
    # One cause, one signature: a MemoryError under RLIMIT_AS here, SLURM's kill there.
    assert sweep["failure"]["signature"] == local["failure"]["signature"] == "oom::out of memory"

    # --match with the signature the local run printed hunts the same failure on SLURM.
    code, out, err = invoke(
        slurm_tb, tmp_path, "bisect", "--cluster", CLUSTER, "--match", local["failure"]["signature"], *common
    )
    assert code == 0, err
    bis = json.loads(out)
    assert bis["first_fail"] == local["first_fail"] and bis["last_pass"] == 3
    assert bis["failure"]["class"] == "oom"

    # A k-ary bisect: each round's levels go out together (a job array).
    code, out, err = invoke(slurm_tb, tmp_path, "bisect", "--cluster", CLUSTER, "--parallel", "2", *common)
    assert code == 0, err
    par = json.loads(out)
    assert par["first_fail"] == local["first_fail"] and par["failure"]["class"] == "oom"


# -- classification of single probes ------------------------------------------------------------


def test_nonzero_exit_and_exception_are_classified_with_slurm_state(cluster: SlurmCluster, tmp_path: Path) -> None:
    obs = dispatch(cluster, tmp_path, function_workload(tmp_path, "exits_seven"), Limits(), "exit7")
    verdict = diagnose(obs)
    assert obs.job.scheduler["JobState"] == "FAILED" and obs.job.scheduler["ExitCode"] == "7:0"
    assert obs.job.exit_code == 7
    assert verdict.status == "fail" and verdict.failure_class == "no_result"
    assert any("exit code 7" in line for line in verdict.evidence)

    obs = dispatch(cluster, tmp_path, function_workload(tmp_path, "raises"), Limits(), "raises")
    verdict = diagnose(obs)
    assert obs.job.scheduler["JobState"] == "FAILED" and obs.job.scheduler["Reason"] == "NonZeroExitCode"
    assert verdict.failure_class == "exception"
    assert any("ZeroDivisionError" in line for line in verdict.evidence)


def test_scancel_is_a_skip_with_state_in_evidence(
    cluster: SlurmCluster, slurm_tb: dict[str, Any], tmp_path: Path
) -> None:
    box: dict[str, Observation] = {}
    worker = threading.Thread(
        target=lambda: box.setdefault(
            "obs", dispatch(cluster, tmp_path, function_workload(tmp_path, "sleeps"), Limits(), "cancelme")
        )
    )
    worker.start()
    env = slurm_env(slurm_tb)
    deadline = time.monotonic() + 60
    job_id = ""
    while time.monotonic() < deadline and not job_id:
        out = subprocess.run(
            ["squeue", "-h", "-n", "tp-cancelme", "-t", "RUNNING", "-o", "%i"], capture_output=True, text=True, env=env
        )
        job_id = out.stdout.strip()
        time.sleep(0.2)
    assert job_id, "the job never ran"
    subprocess.run(["scancel", job_id], check=True, env=env, timeout=30)
    worker.join(60)
    assert not worker.is_alive()
    obs = box["obs"]
    verdict = diagnose(obs)
    assert obs.job.scheduler["JobState"] == "CANCELLED"
    assert obs.job.signal == 15
    assert verdict.status == "skip", verdict
    assert any("CANCELLED" in line for line in verdict.evidence), verdict.evidence
    assert any("CANCELLED" in line for line in obs.job.scheduler.get("Evidence", "").splitlines())


def test_a_job_cancelled_by_someone_else_is_a_skip_never_a_threshold(slurm_tb: dict[str, Any], tmp_path: Path) -> None:
    """An outside `scancel` says nothing about the workload: the probe is a skip and runs again,
    the level is neither failing nor flaky, and no failing verdict is kept for a later run."""
    ladder = tmp_path / "calm.toml"
    ladder.write_text(
        'name = "calm"\ndescription = "4 small levels that pass"\n[ramp]\ncount = 4\n'
        "runtime_s = { start = 4, step = 0 }\n"
    )
    env = slurm_env(slurm_tb)
    cancelled: list[str] = []

    def cancel_first_running_probe() -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            out = subprocess.run(
                ["squeue", "-h", "-t", "RUNNING", "-o", "%i %j"], capture_output=True, text=True, env=env
            )
            for line in out.stdout.splitlines():
                job_id, _, name = line.partition(" ")
                if name != "tp-preflight":
                    time.sleep(0.5)
                    subprocess.run(["scancel", job_id], env=env, timeout=30)
                    cancelled.append(job_id)
                    return
            time.sleep(0.1)

    canceller = threading.Thread(target=cancel_first_running_probe)
    canceller.start()
    code, out, err = invoke(
        slurm_tb, tmp_path, "bisect", "--cluster", CLUSTER, "--ladder", str(ladder), "--json", "--quiet", "--fresh"
    )
    canceller.join(120)
    assert cancelled, "no probe was ever seen running"
    assert code == 0, err
    data = json.loads(out)
    assert data["first_fail"] is None and data["flaky_band"] is None, data["message"]
    skips = [p for p in data["probes"] if p["verdict"] == "skip"]
    assert len(skips) == 1, [(p["level"], p["verdict"]) for p in data["probes"]]
    assert not [p for p in data["probes"] if p["verdict"] == "fail"], data["probes"]
    # The same bisect again reuses only the passes: the cancelled job is not a verdict to keep.
    code, out, err = invoke(
        slurm_tb, tmp_path, "bisect", "--cluster", CLUSTER, "--ladder", str(ladder), "--json", "--quiet"
    )
    assert code == 0, err
    again = json.loads(out)
    assert again["first_fail"] is None
    assert not [p for p in again["probes"] if p["verdict"] != "pass"], again["probes"]


def test_a_job_folder_removed_on_the_far_side_is_a_skip_never_a_threshold(
    slurm_tb: dict[str, Any], tmp_path: Path
) -> None:
    """A scratch purge (or an administrator) that removes a running job's folder says nothing
    about the workload: the probe is a skip and runs again, and no level is failing or flaky."""
    ladder = tmp_path / "calm.toml"
    ladder.write_text(
        'name = "calm"\ndescription = "4 small levels that pass"\n[ramp]\ncount = 4\n'
        "runtime_s = { start = 4, step = 0 }\n"
    )
    env = slurm_env(slurm_tb)
    removed: list[str] = []

    def remove_first_running_job_folder() -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            out = subprocess.run(
                ["squeue", "-h", "-t", "RUNNING", "-o", "%j %Z"], capture_output=True, text=True, env=env
            )
            for line in out.stdout.splitlines():
                name, _, folder = line.partition(" ")
                if name != "tp-preflight" and folder.strip():
                    time.sleep(0.5)
                    shutil.rmtree(folder.strip())
                    removed.append(folder.strip())
                    return
            time.sleep(0.1)

    remover = threading.Thread(target=remove_first_running_job_folder)
    remover.start()
    code, out, err = invoke(
        slurm_tb, tmp_path, "bisect", "--cluster", CLUSTER, "--ladder", str(ladder), "--json", "--quiet", "--fresh"
    )
    remover.join(120)
    assert removed, "no probe was ever seen running"
    assert code == 0, err
    data = json.loads(out)
    assert data["first_fail"] is None and data["flaky_band"] is None, data["message"]
    assert [p["verdict"] for p in data["probes"]].count("skip") == 1, data["probes"]
    assert not [p for p in data["probes"] if p["verdict"] == "fail"], data["probes"]


@pytest.mark.slow
def test_time_limit_is_timeout(cluster: SlurmCluster, tmp_path: Path) -> None:
    # --time=0:01, whole minutes: SLURM enforces it (limits are checked every 30 s): 60-90 s.
    started = time.monotonic()
    obs = dispatch(cluster, tmp_path, function_workload(tmp_path, "sleeps"), Limits(time_s=60), "slowpoke")
    took = time.monotonic() - started
    verdict = diagnose(obs)
    assert obs.job.scheduler["JobState"] == "TIMEOUT" and obs.job.timed_out
    assert verdict.failure_class == "timeout"
    assert "DUE TO TIME LIMIT" in obs.job.scheduler.get("Evidence", "")
    assert 50 < took < 150


def test_sub_minute_time_limit_is_enforced_by_the_runner(slurm_tb: dict[str, Any], tmp_path: Path) -> None:
    # SLURM counts time limits in minutes: a 3 s limit once let a 10 s function pass.
    target = tmp_path / "slow.py"
    target.write_text("import time\n\ndef ten_seconds():\n    time.sleep(10)\n    return 10\n")
    started = time.monotonic()
    code, out, err = invoke(
        slurm_tb, tmp_path, "run", "--cluster", CLUSTER, "--function", f"{target}:ten_seconds",
        "--time", "3s", "--memory", "500MB", "--json", "--quiet", "--no-preflight",
    )  # fmt: skip
    took = time.monotonic() - started
    assert code == 1, err  # `probe run` exits 1: its probe failed
    data = json.loads(out)
    probe = data["probes"][0]
    assert probe["verdict"] == "fail" and probe["class"] == "timeout", probe
    failure = data["failure"] or probe
    evidence = "\n".join(failure["evidence"])
    assert "time limit of 3s reached: the runner killed the job" in evidence, evidence
    assert "time limit: 3s" in evidence, evidence
    assert failure["signature"] == "timeout::time limit"
    # Killed at 3 s, not at SLURM's rounded-up minute (a job costs about a second besides).
    assert took < 40, took
    assert data["limits"]["time_s"] == 3
    assert data["limits_enforced_by"]["time"] == "runner"
    memory_by = "cgroup" if slurm_tb["slurm"]["mode"] == "cgroup" else "SLURM"
    assert data["limits_enforced_by"]["memory"] == memory_by
    # A function within the limit still passes: the watchdog does not outlive its job.
    target.write_text("def quick():\n    return 1\n")
    code, out, err = invoke(
        slurm_tb, tmp_path, "run", "--cluster", CLUSTER, "--function", f"{target}:quick",
        "--time", "3s", "--json", "--quiet", "--no-preflight", "--fresh",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["probes"][0]["verdict"] == "pass"


def test_memory_below_the_floor_measured_on_slurm_is_exit_2(slurm_tb: dict[str, Any], tmp_path: Path) -> None:
    code, out, err = invoke(slurm_tb, tmp_path, "run", "--cluster", CLUSTER, "--memory", "2MB", "--json", "--quiet")
    assert code == 2, (out, err)
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    # SLURM limits resident memory (its cgroup, or its own sampling): the floor is the runner's peak RSS.
    assert "memory limit 2MB is below the floor of cluster 'testbed-slurm'" in lines[0], lines[0]
    assert "its measured peak RSS" in lines[0], lines[0]
    cache = json.loads((tmp_path / "reports" / "memory-floor.json").read_text())
    assert any(entry["cluster"] == CLUSTER and entry["rss_peak_kb"] > 2048 for entry in cache.values()), cache


def test_rejected_submit_is_one_clear_line(slurm_tb: dict[str, Any], tmp_path: Path) -> None:
    started = time.monotonic()
    code, out, err = invoke(
        slurm_tb, tmp_path, "run", "--cluster", CLUSTER, "--memory", "100TB", "--json", "--quiet", "--no-preflight"
    )
    assert time.monotonic() - started < 60
    if code == 3:
        assert len(err.strip().splitlines()) == 1
        return
    data = json.loads(out)
    probe = data["probes"][0]
    assert probe["class"] == "scheduler", probe
    failure = data.get("failure") or probe
    lines = [ln for ln in failure.get("evidence", []) if "sbatch: error" in ln]
    assert lines and "Memory specification can not be satisfied" in lines[0]


# -- arrays and batching ------------------------------------------------------------------------


def test_sixteen_levels_go_out_as_one_array(cluster: SlurmCluster, tmp_path: Path) -> None:
    jobs = [
        JobSpec(
            probe_id=f"L{i:03d}",
            argv=[PYTHON, "-c", f"import sys; print('level {i}'); sys.exit({i % 2})"],
            local_dir=tmp_path / f"L{i:03d}",
            fetch=[],
        )
        for i in range(16)
    ]
    results = cluster.execute_many(jobs)
    assert len(cluster.submissions) == 1 and cluster.submissions[0][1] == 16
    array_id = cluster.submissions[0][0]
    assert [r.scheduler["JobId"] for r in results] == [f"{array_id}_{i}" for i in range(16)]
    assert [r.exit_code for r in results] == [i % 2 for i in range(16)]
    assert [r.stdout_tail.strip() for r in results] == [f"level {i}" for i in range(16)]
    assert all(r.scheduler["JobState"] == ("FAILED" if i % 2 else "COMPLETED") for i, r in enumerate(results))
    # One watcher batched every task: far fewer squeue calls than task-polls.
    assert cluster.watcher.queries["squeue"] < 16 * 4


def test_cli_sweep_submits_one_array(slurm_tb: dict[str, Any], tmp_path: Path) -> None:
    ladder = tmp_path / "flat.toml"
    ladder.write_text(
        'name = "flat"\ndescription = "16 small levels"\n[ramp]\ncount = 16\nloc = { start = 10, step = 1 }\n'
    )
    code, out, err = invoke(
        slurm_tb, tmp_path, "sweep", "--cluster", CLUSTER, "--ladder", str(ladder), "--json", "--quiet", "--fresh"
    )
    assert code == 0, err
    data = json.loads(out)
    assert len(data["probes"]) == 16 and all(p["verdict"] == "pass" for p in data["probes"])
    jcomp = Path(slurm_tb["slurm"]["slurm_conf"]).parent / "log" / "jobcomp.txt"
    names = [line for line in jcomp.read_text().splitlines() if "Name=tp-array-" in line]
    array_ids = {line.split("ArrayJobId=")[1].split()[0] for line in names if "ArrayJobId=" in line}
    assert len(array_ids) >= 1
    per_array = {a: sum(f"ArrayJobId={a} " in line for line in names) for a in array_ids}
    assert 16 in per_array.values(), per_array


def test_sigint_during_sweep_leaves_no_job_and_no_process(slurm_tb: dict[str, Any], tmp_path: Path) -> None:
    ladder = tmp_path / "slow.toml"
    ladder.write_text(
        'name = "slow"\ndescription = "long levels"\n[ramp]\ncount = 4\nruntime_s = { start = 120, step = 0 }\n'
    )
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "threshold_probe",
            "--config",
            str(slurm_tb["config"]),
            "--reports-dir",
            str(tmp_path / "reports"),
            "sweep",
            "--cluster",
            CLUSTER,
            "--ladder",
            str(ladder),
            "--quiet",
            "--fresh",
            "--no-preflight",
        ],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not (
            any("RUNNING" in j for j in live_jobs(slurm_tb)) and job_processes(slurm_tb)
        ):
            time.sleep(0.2)
        assert any("RUNNING" in j for j in live_jobs(slurm_tb)), "no job started"
        assert job_processes(slurm_tb), "no job process seen"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=120)
        assert b"interrupted" in err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0
    assert live_jobs(slurm_tb) == []
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline and job_processes(slurm_tb):
        time.sleep(0.2)
    assert job_processes(slurm_tb) == []


# -- preflight ----------------------------------------------------------------------------------


def test_preflight_checks_compute_node_python(slurm_tb: dict[str, Any]) -> None:
    cfg = load_config(slurm_tb["config"])
    c = make_cluster(CLUSTER, cfg)
    checks = {ch.name: ch for ch in c.preflight()}
    assert all(ch.status == "ok" for ch in checks.values()), checks
    assert {"controller", "partition", "workdir", "python", "cloudpickle"} <= set(checks)
    c.close()

    bad = cfg.model_copy(deep=True)
    bad.clusters[CLUSTER] = bad.clusters[CLUSTER].model_copy(update={"partition": "nosuch"})
    c = make_cluster(CLUSTER, bad)
    checks = {ch.name: ch for ch in c.preflight()}
    assert checks["partition"].status == "fail" and "debug" in (checks["partition"].fix or "")
    c.close()


def test_a_preflight_job_cancelled_from_outside_is_named_not_blamed_on_python(slurm_tb: dict[str, Any]) -> None:
    env = slurm_env(slurm_tb)
    cancelled: list[str] = []

    def cancel_the_check_job() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not cancelled:
            out = subprocess.run(
                ["squeue", "-h", "-n", "tp-preflight", "-o", "%i"], capture_output=True, text=True, env=env
            )
            for job_id in out.stdout.split():
                subprocess.run(["scancel", job_id], env=env, timeout=30)
                cancelled.append(job_id)
            time.sleep(0.05)

    canceller = threading.Thread(target=cancel_the_check_job)
    canceller.start()
    c = make_cluster(CLUSTER, load_config(slurm_tb["config"]))
    try:
        checks = {ch.name: ch for ch in c.preflight()}
    finally:
        c.close()
        canceller.join(90)
    assert cancelled, "the check job was never seen"
    python = checks["python"]
    assert python.status == "fail"
    assert "CANCELLED" in python.detail, python
    assert "set clusters" not in (python.fix or ""), python


def test_unknown_partition_is_bad_input(slurm_tb: dict[str, Any], tmp_path: Path) -> None:
    """--partition naming no partition is the user's typo (exit 2), not a cluster that cannot be used."""
    code, _out, err = invoke(slurm_tb, tmp_path, "bisect", "--cluster", CLUSTER, "--partition", "nope")
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "partition 'nope' does not exist" in lines[0] and "debug" in lines[0]


# -- infrastructure trouble (last: it restarts the controller) ---------------------------------


def test_unreachable_controller_is_a_skip_not_a_hang(
    cluster: SlurmCluster, slurm_tb: dict[str, Any], tmp_path: Path
) -> None:
    from tests.testbed import slurm as slurm_testbed

    slurm_testbed.stop_controller(slurm_tb["state_dir"])
    try:
        started = time.monotonic()
        obs = dispatch(cluster, tmp_path, function_workload(tmp_path, "raises"), Limits(), "nocontroller")
        assert time.monotonic() - started < 90
        assert obs.job.infra_error and "Unable to contact slurm controller" in obs.job.infra_error
        verdict = diagnose(obs)
        assert verdict.status == "skip" and verdict.evidence == [obs.job.infra_error]
    finally:
        slurm_testbed.start_controller(slurm_tb["state_dir"])
    # Back again: the same cluster object submits as before.
    obs = dispatch(cluster, tmp_path, function_workload(tmp_path, "raises"), Limits(), "after")
    assert diagnose(obs).failure_class == "exception"


def test_remote_folder_is_removed_unless_kept(cluster: SlurmCluster, tmp_path: Path) -> None:
    def job(probe_id: str, keep: bool) -> JobSpec:
        return JobSpec(
            probe_id=probe_id,
            files={"data.txt": b"x"},
            argv=[PYTHON, "-c", "open('out.txt', 'w').write(open('data.txt').read() * 3)"],
            local_dir=tmp_path / probe_id,
            fetch=["out.txt"],
            keep_remote=keep,
        )

    gone = cluster.execute(job("gone", keep=False))
    kept = cluster.execute(job("kept", keep=True))
    for r in (gone, kept):
        assert r.scheduler["JobState"] == "COMPLETED" and r.files["out.txt"].read_text() == "xxx"
        assert r.remote_dir is not None
    # The testbed's "remote" home is on this machine, so the folders can be looked at directly.
    assert not Path(gone.remote_dir or "").exists()
    kept_dir = Path(kept.remote_dir or "")
    assert (kept_dir / "job.sh").is_file() and (kept_dir / "stdout.log").is_file()
    assert (kept_dir / "out.txt").read_text() == "xxx"
    shutil.rmtree(kept_dir)


def test_shell_hostile_workdir(slurm_tb: dict[str, Any], tmp_path: Path) -> None:
    cfg = load_config(slurm_tb["config"])
    # Unique per run: other test sessions on this machine share the test user's home.
    name = f'tp we\'ird "dq" $HOME;x-{os.getpid()}-{time.monotonic_ns()}'
    cfg.clusters[CLUSTER] = cfg.clusters[CLUSTER].model_copy(update={"workdir": f"~/{name}"})
    c = make_cluster(CLUSTER, cfg)
    try:
        jobs = [
            JobSpec(
                probe_id=f"w{i}", argv=[PYTHON, "-c", "import os; print(os.getcwd())"], local_dir=tmp_path / f"w{i}"
            )
            for i in range(3)
        ]
        results = [c.execute(jobs[0]), *c.execute_many(jobs[1:])]
    finally:
        c.close()
    home = Path(f"~{slurm_tb['user']}").expanduser()
    root = home / name
    try:
        for r in results:
            assert r.scheduler["JobState"] == "COMPLETED", r
            assert r.stdout_tail.strip().startswith(f"{root}/jobs/")
        # Only the content-hashed shared files stay; every job folder is gone.
        assert list((root / "jobs").iterdir()) == []
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_job_pending_past_queue_timeout_is_cancelled_as_a_skip(slurm_tb: dict[str, Any], tmp_path: Path) -> None:
    cfg = load_config(slurm_tb["config"])
    # A held job never starts: exactly a queue that does not move.
    cfg.clusters[CLUSTER] = cfg.clusters[CLUSTER].model_copy(update={"sbatch_args": ["--hold"], "queue_timeout": 3.0})
    c = make_cluster(CLUSTER, cfg)
    try:
        started = time.monotonic()
        assert isinstance(c, SlurmCluster)
        obs = dispatch(c, tmp_path, function_workload(tmp_path, "raises"), Limits(), "held")
        assert time.monotonic() - started < 30
    finally:
        c.close()
    assert obs.job.infra_error and "still pending" in obs.job.infra_error and "JobHeldUser" in obs.job.infra_error
    assert diagnose(obs).status == "skip"
    assert live_jobs(slurm_tb) == []


def test_cancel_all_from_another_thread_releases_the_waiter(
    cluster: SlurmCluster, slurm_tb: dict[str, Any], tmp_path: Path
) -> None:
    jobs = [
        JobSpec(probe_id=f"s{i}", argv=[PYTHON, "-c", "import time; time.sleep(300)"], local_dir=tmp_path / f"s{i}")
        for i in range(3)
    ]
    box: dict[str, Any] = {}
    worker = threading.Thread(target=lambda: box.setdefault("results", cluster.execute_many(jobs)))
    worker.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any("RUNNING" in j for j in live_jobs(slurm_tb)):
        time.sleep(0.2)
    cluster.cancel_all()
    assert live_jobs(slurm_tb) == []
    worker.join(60)
    assert not worker.is_alive()
    states = [r.scheduler.get("JobState") for r in box["results"]]
    assert states == ["CANCELLED"] * 3, states


def test_controller_lost_mid_bisect_interrupts_the_run_then_resume_finishes(
    slurm_tb: dict[str, Any], tmp_path: Path
) -> None:
    """A controller that stays down ends the run (interrupted, exit 3, resumable), instead of
    skipping every level that is left and calling the run completed."""
    import sqlite3
    from contextlib import closing

    from tests.testbed import slurm as slurm_testbed
    from tests.testbed.fixtures import write_config

    table = load_config(Path(slurm_tb["config"])).clusters[CLUSTER].model_dump(mode="json", exclude_none=True)
    table["controller_timeout"] = 8.0
    config = write_config(tmp_path / "probe.toml", {CLUSTER: table})
    ladder = tmp_path / "slurm-memory.toml"
    ladder.write_text(MEMORY_LADDER)
    reports = tmp_path / "reports"
    env = {k: v for k, v in os.environ.items() if k not in ("PROBE_CONFIG", "PROBE_REPORTS_DIR")}
    base = [sys.executable, "-m", "threshold_probe", "--config", str(config), "--reports-dir", str(reports)]
    args = ["bisect", "--cluster", CLUSTER, "--ladder", str(ladder), "--memory", "650MB", "--quiet"]

    def done_probes() -> int:
        try:
            with closing(sqlite3.connect(reports / "probe.db", timeout=5)) as con:
                return int(con.execute("SELECT COUNT(*) FROM probes WHERE state='done'").fetchone()[0])
        except sqlite3.Error:
            return 0

    proc = subprocess.Popen(
        [*base, *args, "--fresh"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        deadline = time.monotonic() + 120
        while done_probes() < 1:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "no probe finished in time"
            time.sleep(0.1)
        slurm_testbed.stop_controller(slurm_tb["state_dir"])
        try:
            out, err = proc.communicate(timeout=150)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.communicate()
    finally:
        slurm_testbed.start_controller(slurm_tb["state_dir"])
    assert proc.returncode == 3, (proc.returncode, out, err)
    line = err.strip()
    assert "\n" not in line and "Traceback" not in line, err
    assert "interrupted" in line and "controller" in line and "bisect --resume" in line, line
    runs = json.loads(subprocess.run([*base, "runs", "--json"], env=env, capture_output=True, text=True).stdout)
    assert len(runs) == 1 and runs[0]["status"] == "interrupted" and runs[0]["first_fail"] is None, runs
    # The controller is back: the run finishes with the answer an uninterrupted run gives.
    resumed = subprocess.run(
        [*base, "bisect", "--resume", runs[0]["run_id"], "--json", "--quiet"],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["status"] == "completed" and summary["first_fail"] == 4, summary["message"]
