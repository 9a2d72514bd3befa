"""Real faults on a real sshd: changed host keys, a killed server mid-sweep, a hung server.

Each test starts its own spare sshd (the shared testbed's servers stay untouched), from the same
testbed code, with the testbed's user and keys.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.testbed.fixtures import write_config
from tests.testbed.testbed import SSHHost, Testbed, free_port
from threshold_probe.cli.app import app
from threshold_probe.clusters import make_cluster
from threshold_probe.clusters.ssh import SSHCluster
from threshold_probe.config import load_config
from threshold_probe.diagnose import diagnose
from threshold_probe.ladder.workload import Workload
from threshold_probe.models import Limits, Observation
from threshold_probe.pipelines import make_pipeline
from threshold_probe.store import Store

pytestmark = pytest.mark.ssh

#: Sixteen levels; memory jumps past 300 MB at level 11, so the true answer under --memory 300MB
#: is "level 11 is the first to fail" (level 10 the last to pass).
RESUME16 = str(Path(__file__).parent / "assets" / "ladders" / "resume16.toml")

SLOW_LADDER = """
name = "ssh-slow"
description = "Ten small levels, each busy for 0.7 s, so that a sweep is still running when sshd dies."
[ramp]
count = 10
runtime_s = { start = 0.7, step = 0 }
"""


@pytest.fixture
def spare(testbed: Testbed, tmp_path: Path) -> Iterator[SSHHost]:
    """A throwaway sshd on 127.0.0.1 with its own host key, for tests that break it."""
    host = SSHHost(
        name="spare",
        dir=tmp_path / "spare-sshd",
        addr="127.0.0.1",
        port=free_port(),
        authorized_keys=testbed.host("ssh").authorized_keys,
    )
    host.prepare()
    host.start()
    try:
        yield host
    finally:
        host.resume()
        host.kill()


def spare_table(tb: Testbed, host: SSHHost, **overrides: Any) -> dict[str, Any]:
    table = tb.cluster_table("ssh", host=host.addr, port=host.port, workdir="~/.threshold-probe-faults")
    table.update(overrides)
    return table


def cluster_for(tmp_path: Path, table: dict[str, Any], name: str = "spare") -> SSHCluster:
    config = write_config(tmp_path / f"{name}.toml", {name: table})
    cluster = make_cluster(name, load_config(config))
    assert isinstance(cluster, SSHCluster)
    return cluster


def probe(cluster: SSHCluster, tmp_path: Path, probe_id: str) -> Observation:
    workload = Workload(name=probe_id, source="def workload():\n    return 1\n", func_name="workload", level=1)
    return make_pipeline("native").dispatch(workload, cluster, probe_id, Limits(), tmp_path / probe_id)


# -- host keys --------------------------------------------------------------------------------


def test_accept_new_accepts_once_then_refuses_a_changed_key(testbed: Testbed, spare: SSHHost, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    table = spare_table(testbed, spare, known_hosts=str(known), host_key_policy="accept-new")
    with cluster_for(tmp_path, table) as first:
        assert diagnose(probe(first, tmp_path, "first")).status == "pass"
    lines = known.read_text().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"[127.0.0.1]:{spare.port} ssh-ed25519 ")
    with cluster_for(tmp_path, table) as again:
        assert diagnose(probe(again, tmp_path, "again")).status == "pass"
    assert known.read_text().splitlines() == lines, "a known host is not added twice"

    spare.rekey()
    changed = cluster_for(tmp_path, table)
    started = time.monotonic()
    obs = probe(changed, tmp_path, "changed")
    changed.close()
    verdict = diagnose(obs)
    assert verdict.status == "skip"
    assert obs.job.infra_error is not None and "CHANGED" in obs.job.infra_error
    assert f"ssh-keygen -R '[127.0.0.1]:{spare.port}'" in obs.job.infra_error
    assert time.monotonic() - started < 5, "a changed key is refused at once, never retried"
    assert known.read_text().splitlines() == lines, "the known key is never replaced"


def test_reject_policy_refuses_unknown_and_changed_keys_with_a_fix(
    testbed: Testbed, spare: SSHHost, tmp_path: Path
) -> None:
    empty = tmp_path / "empty_known_hosts"
    empty.write_text("")
    unknown = cluster_for(tmp_path, spare_table(testbed, spare, known_hosts=str(empty)), "unknown")
    checks = unknown.preflight()
    unknown.close()
    assert [(c.name, c.status) for c in checks] == [("connect", "fail")]
    assert "is not in" in checks[0].detail and checks[0].fix and "accept-new" in checks[0].fix
    assert empty.read_text() == "", "policy reject never writes known_hosts"

    known = tmp_path / "known_hosts"
    known.write_text(spare.known_hosts_line())
    table = spare_table(testbed, spare, known_hosts=str(known))
    with cluster_for(tmp_path, table) as good:
        assert diagnose(probe(good, tmp_path, "good")).status == "pass"
    spare.rekey()
    rekeyed = write_config(tmp_path / "rekeyed.toml", {"rekeyed": table})
    result = CliRunner().invoke(app, ["--config", str(rekeyed), "clusters", "check", "rekeyed"])
    assert result.exit_code == 3
    line = result.stdout.strip()
    assert "\n" not in line, "one problem, one line"
    assert "has CHANGED" in line and "fix:" in line and "ssh-keygen -R" in line


# -- a server that dies or hangs --------------------------------------------------------------


def test_sshd_killed_mid_sweep_and_back_within_the_retry_budget_the_run_completes(
    testbed: Testbed, spare: SSHHost, tmp_path: Path
) -> None:
    ladder = tmp_path / "slow.toml"
    ladder.write_text(SLOW_LADDER)
    known = tmp_path / "known_hosts"
    known.write_text(spare.known_hosts_line())
    # A budget of 1 + 2 + 4 s of backoff: longer than the 2.5 s sshd stays down.
    table = spare_table(testbed, spare, retries=3, retry_backoff=1.0, connect_timeout=3.0, known_hosts=str(known))
    config = write_config(tmp_path / "probe.toml", {"spare": table})
    reports = tmp_path / "reports"
    args = [
        "--config",
        str(config),
        "--reports-dir",
        str(reports),
        "sweep",
        "--cluster",
        "spare",
        "--ladder",
        str(ladder),
        "--json",
        "--quiet",
        "--fresh",
    ]
    outcome: dict[str, Any] = {}

    def sweep() -> None:
        result = CliRunner().invoke(app, args)
        outcome["code"], outcome["out"], outcome["err"] = result.exit_code, result.stdout, result.stderr

    worker = threading.Thread(target=sweep)
    worker.start()
    time.sleep(2.5)  # a couple of levels done, one in flight
    spare.kill()  # the listener and every per-connection sshd: the link drops
    time.sleep(2.5)
    spare.start()
    worker.join(timeout=120)
    assert not worker.is_alive()
    assert outcome["code"] == 0, outcome["err"]
    summary = json.loads(outcome["out"])
    assert summary["status"] == "completed"
    # The probe in flight was retried once the host was back: every level passes, none is lost.
    per_level = {p["level"]: p["verdict"] for p in summary["probes"]}
    assert per_level == dict.fromkeys(range(1, 11), "pass"), summary["probes"]
    assert summary["first_fail"] is None


def test_sshd_killed_and_kept_down_mid_sweep_claims_no_threshold(
    testbed: Testbed, spare: SSHHost, tmp_path: Path
) -> None:
    ladder = tmp_path / "slow.toml"
    ladder.write_text(SLOW_LADDER)
    config, reports = lost_host_setup(testbed, spare, tmp_path)
    args = ("sweep", "--cluster", "spare", "--ladder", str(ladder), "--fresh", "--quiet")
    result, _took = start_then_fault(config, reports, 2, spare.kill, *args)
    run = only_run(reports)
    assert result.returncode == 3, result.stderr
    line = result.stderr.strip()
    assert "\n" not in line and "connection refused" in line and f"sweep --resume {run['run_id']}" in line, line
    assert run["status"] == "interrupted"
    assert_no_untested_boundary(reports, config, run["run_id"])
    skipped = [r for r in Store(reports).probes(run["run_id"]) if r.verdict.status == "skip"]
    assert not skipped, "the probe that met the lost host is not a finished skip: it runs again on resume"


def test_hung_sshd_banner_timeout_is_a_skip(testbed: Testbed, spare: SSHHost, tmp_path: Path) -> None:
    known = tmp_path / "known_hosts"
    known.write_text(spare.known_hosts_line())
    table = spare_table(testbed, spare, retries=0, connect_timeout=1.5, known_hosts=str(known))
    cluster = cluster_for(tmp_path, table)
    spare.pause()  # the kernel still accepts; the banner never comes
    try:
        started = time.monotonic()
        obs = probe(cluster, tmp_path, "hung")
        assert time.monotonic() - started < 10
    finally:
        spare.resume()
    assert diagnose(obs).status == "skip"
    assert obs.job.infra_error is not None and "banner" in obs.job.infra_error.lower()
    # The same cluster object reconnects once the server answers again.
    obs = probe(cluster, tmp_path, "back")
    cluster.close()
    assert diagnose(obs).status == "pass", obs.job


# -- a host lost in the middle of a run -------------------------------------------------------
#
# These run `probe` as a real process, so that what reaches the terminal (stderr) is exactly
# what a user sees, paramiko's own logging included.


def cli(config: Path, reports: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "threshold_probe", "--config", str(config), "--reports-dir", str(reports), *args]


def clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ("PROBE_CONFIG", "PROBE_REPORTS_DIR")}


def run_cli(config: Path, reports: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        cli(config, reports, *args), env=clean_env(), capture_output=True, text=True, timeout=timeout, check=False
    )


def finished_probes(reports: Path) -> int:
    db = reports / "probe.db"
    if not db.exists():
        return 0
    try:
        with closing(sqlite3.connect(db, timeout=5)) as con:
            return int(con.execute("SELECT COUNT(*) FROM probes WHERE state='done'").fetchone()[0])
    except sqlite3.Error:
        return 0


def start_then_fault(
    config: Path, reports: Path, after: int, fault: Any, *args: str, timeout: float = 120
) -> tuple[subprocess.CompletedProcess[str], float]:
    """Start `probe ARGS`, cause `fault()` once `after` probes finished; (the result, seconds from
    the fault to the end of the process)."""
    proc = subprocess.Popen(
        cli(config, reports, *args), env=clean_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    deadline = time.monotonic() + 120
    try:
        while finished_probes(reports) < after:
            assert proc.poll() is None, f"probe ended before the fault: {proc.communicate()}"
            assert time.monotonic() < deadline, "no probe finished in time"
            time.sleep(0.05)
        fault()
        faulted = time.monotonic()
        out, err = proc.communicate(timeout=timeout)
        took = time.monotonic() - faulted
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err), took


def only_run(reports: Path) -> dict[str, Any]:
    infos = Store(reports).runs()
    assert len(infos) == 1, [i.run_id for i in infos]
    info = infos[0]
    return {"run_id": info.run_id, "status": info.status, "summary": info.summary or {}}


def assert_one_line_interrupt(result: subprocess.CompletedProcess[str], run_id: str, *causes: str) -> str:
    """Exit 3, one line on stderr naming the cause and the resume command, no traceback."""
    assert result.returncode == 3, (result.returncode, result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"one line, not: {result.stderr!r}"
    line = lines[0]
    assert "Traceback" not in result.stderr and "paramiko" not in result.stderr.lower(), result.stderr
    for cause in causes:
        assert cause in line, line
    assert "interrupted" in line and f"bisect --resume {run_id}" in line, line
    return line


def assert_no_untested_boundary(reports: Path, config: Path, run_id: str) -> None:
    """Neither the journal, nor `probe runs`, nor `probe history` claims a threshold."""
    runs = json.loads(run_cli(config, reports, "runs", "--json").stdout)
    mine = [r for r in runs if r["run_id"] == run_id]
    assert mine and mine[0]["status"] == "interrupted", mine
    assert mine[0]["first_fail"] is None and mine[0]["last_pass"] is None, mine
    history = json.loads(run_cli(config, reports, "history", "--json").stdout)
    assert [e["first_fail"] for e in history["runs"] if e["run_id"] == run_id] in ([], [None]), history


def assert_resumed_to_the_true_answer(reports: Path, config: Path, run_id: str, *resume: str) -> None:
    done_before = {r.probe_id for r in Store(reports).probes(run_id)}
    result = run_cli(config, reports, *resume, "--json", "--quiet")
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["run_id"] == run_id and summary["status"] == "completed"
    assert (summary["last_pass"], summary["first_fail"]) == (10, 11), summary["message"]
    assert summary["failure"]["class"] == "oom"
    # No finished probe ran twice: per workload and attempt, exactly one finished probe.
    with closing(sqlite3.connect(reports / "probe.db")) as con:
        rows = con.execute(
            "SELECT cache_key, attempt, COUNT(*) FROM probes WHERE run_id=? AND state='done' GROUP BY 1, 2",
            (run_id,),
        ).fetchall()
    assert rows and all(n == 1 for _, _, n in rows), rows
    assert done_before <= {p["probe_id"] for p in summary["probes"]}, "the finished probes are reused"


def lost_host_setup(testbed: Testbed, spare: SSHHost, tmp_path: Path, **table: Any) -> tuple[Path, Path]:
    known = tmp_path / "known_hosts"
    known.write_text(spare.known_hosts_line())
    settings: dict[str, Any] = {"retries": 2, "retry_backoff": 0.5, "connect_timeout": 3.0, "known_hosts": str(known)}
    settings.update(table)
    config = write_config(tmp_path / "probe.toml", {"spare": spare_table(testbed, spare, **settings)})
    return config, tmp_path / "reports"


BISECT_ARGS = ("bisect", "--cluster", "spare", "--ladder", RESUME16, "--memory", "300MB", "--fresh", "--quiet")


@pytest.mark.parametrize("how", ["by-id", "latest"])
def test_sshd_killed_and_kept_down_mid_bisect_interrupts_the_run_then_resume_finishes(
    testbed: Testbed, spare: SSHHost, tmp_path: Path, how: str
) -> None:
    config, reports = lost_host_setup(testbed, spare, tmp_path)
    result, took = start_then_fault(config, reports, 3, spare.kill, *BISECT_ARGS)
    run = only_run(reports)
    line = assert_one_line_interrupt(result, run["run_id"], "connection refused")
    assert took < 30, f"the retry budget (about 1.5 s) ends the run, not {took:.0f} s of skips"
    assert run["status"] == "interrupted"
    assert "undecided between levels" in line and "undecided between levels" in run["summary"]["message"]
    assert_no_untested_boundary(reports, config, run["run_id"])
    # Resumed while the host is still down: the run stays interrupted, and says so again.
    still = run_cli(config, reports, "bisect", "--resume", run["run_id"], "--quiet")
    assert_one_line_interrupt(still, run["run_id"], "connection refused")
    assert only_run(reports)["status"] == "interrupted"
    # The host is back: the run finishes with the true answer.
    spare.start()
    resume = ["bisect", "--resume", run["run_id"]] if how == "by-id" else ["bisect", "--resume"]
    assert_resumed_to_the_true_answer(reports, config, run["run_id"], *resume)


def test_host_key_changed_mid_bisect_interrupts_the_run_at_once(
    testbed: Testbed, spare: SSHHost, tmp_path: Path
) -> None:
    # A budget of 2 + 4 + 8 s: a fault that is retried would take longer than the bound below.
    config, reports = lost_host_setup(testbed, spare, tmp_path, retries=3, retry_backoff=2.0)
    known = tmp_path / "known_hosts"
    before = known.read_text()
    result, took = start_then_fault(config, reports, 3, spare.rekey, *BISECT_ARGS)
    run = only_run(reports)
    assert_one_line_interrupt(result, run["run_id"], "CHANGED")
    assert took < 10, f"a changed host key is never retried ({took:.1f} s)"
    assert known.read_text() == before, "the known key is never replaced"
    assert_no_untested_boundary(reports, config, run["run_id"])
    # The user checks the new key and records it; the run then finishes.
    known.write_text(spare.known_hosts_line())
    assert_resumed_to_the_true_answer(reports, config, run["run_id"], "bisect", "--resume", run["run_id"])


def test_authentication_failure_mid_bisect_interrupts_the_run_at_once(
    testbed: Testbed, spare: SSHHost, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    # sshd reads the file as the test user: a folder that user can enter (pytest's is root's own).
    readable = Path(tempfile.mkdtemp(prefix="tp-authorized-"))
    request.addfinalizer(lambda: shutil.rmtree(readable, ignore_errors=True))
    readable.chmod(0o755)
    keys = readable / "authorized_keys"
    shutil.copy(spare.authorized_keys, keys)
    keys.chmod(0o644)
    spare.kill()
    spare.authorized_keys = keys
    spare.write_config()
    spare.start()
    config, reports = lost_host_setup(testbed, spare, tmp_path, retries=3, retry_backoff=2.0)
    authorized = keys.read_text()

    def revoke() -> None:
        # The client's key is no longer accepted, and the open connection drops.
        keys.write_text("")
        spare.kill()
        spare.start()

    result, took = start_then_fault(config, reports, 3, revoke, *BISECT_ARGS)
    run = only_run(reports)
    assert_one_line_interrupt(result, run["run_id"], "authentication failed")
    assert took < 10, f"an authentication failure is never retried ({took:.1f} s)"
    assert_no_untested_boundary(reports, config, run["run_id"])
    keys.write_text(authorized)
    assert_resumed_to_the_true_answer(reports, config, run["run_id"], "bisect", "--resume")


SLOW_PROBES = """
name = "ssh-slow-probes"
description = "Six levels of 4 s of work each: a probe is in flight when sshd freezes."
[ramp]
count = 6
runtime_s = { start = 4, step = 0 }
"""

#: What docs/clusters.md states: a probe in flight waits at most its time limit plus this grace.
PROBE_GRACE_S = 30


def test_frozen_sshd_mid_probe_ends_the_run_within_the_time_limit_and_grace(
    testbed: Testbed, spare: SSHHost, tmp_path: Path
) -> None:
    ladder = tmp_path / "slow.toml"
    ladder.write_text(SLOW_PROBES)
    config, reports = lost_host_setup(testbed, spare, tmp_path, connect_timeout=2.0)
    limit = 20
    args = ("bisect", "--cluster", "spare", "--ladder", str(ladder), "--time", f"{limit}s", "--fresh")
    try:
        result, took = start_then_fault(config, reports, 1, spare.freeze, *args, timeout=limit + 120)
    finally:
        spare.thaw()
    run = only_run(reports)
    assert took < limit + PROBE_GRACE_S, f"a frozen host held the run for {took:.0f} s"
    assert result.returncode == 3, result.stderr
    # Progress lines may come first; the error is the last line, and nothing from paramiko.
    assert "Traceback" not in result.stderr and "paramiko" not in result.stderr.lower(), result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "interrupted" in last and f"bisect --resume {run['run_id']}" in last, last
    assert run["status"] == "interrupted"
    # paramiko's own account of the failure went to the run's log file.
    log = reports / run["run_id"] / "run.log"
    text = log.read_text() if log.is_file() else ""
    assert "paramiko.transport" in text and "Error reading SSH protocol banner" in text, text[-2000:]
    resumed = run_cli(config, reports, "bisect", "--resume", "--json", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    summary = json.loads(resumed.stdout)
    assert summary["status"] == "completed" and summary["first_fail"] is None
    assert {p["verdict"] for p in summary["probes"]} == {"pass"}


# -- far-side files lost under a running probe -----------------------------------------------


def test_a_probe_folder_removed_on_the_far_side_is_a_skip_never_a_threshold(testbed: Testbed, tmp_path: Path) -> None:
    """A purge of the workdir (a cron job, an administrator) that removes a running probe's folder
    says nothing about the workload: the probe is tried again; no level fails or is flaky."""
    ladder = tmp_path / "calm.toml"
    ladder.write_text(
        'name = "calm"\ndescription = "4 small levels that pass"\n[ramp]\ncount = 4\n'
        "runtime_s = { start = 3, step = 0 }\n"
    )
    workdir = "~/.threshold-probe-purged"
    config = write_config(tmp_path / "probe.toml", {"purged": testbed.cluster_table("ssh", workdir=workdir)})
    far = testbed.home / workdir[2:]
    removed: list[Path] = []

    def remove_first_running_probe_folder() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            found = sorted(far.glob("tp-*/L0*")) if far.exists() else []
            if found:
                time.sleep(0.5)
                shutil.rmtree(found[0])
                removed.append(found[0])
                return
            time.sleep(0.05)

    remover = threading.Thread(target=remove_first_running_probe_folder)
    remover.start()
    search = ["bisect", "--cluster", "purged", "--ladder", str(ladder), "--json", "--quiet", "--fresh"]
    result = CliRunner().invoke(app, ["--config", str(config), "--reports-dir", str(tmp_path / "reports"), *search])
    remover.join(90)
    assert removed, "no probe folder was ever seen"
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["first_fail"] is None and data["flaky_band"] is None, data["message"]
    # Infrastructure trouble is tried again at once (retries): the level is judged by its retry.
    assert {p["verdict"] for p in data["probes"]} <= {"pass", "skip"}, data["probes"]
