"""SSH clusters against a real OpenSSH server on loopback (tests/testbed)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
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
from threshold_probe.clusters.ssh import SSHCluster
from threshold_probe.config import load_config
from threshold_probe.diagnose import diagnose
from threshold_probe.ladder.workload import Workload
from threshold_probe.models import Limits, Observation
from threshold_probe.pipelines import make_pipeline

pytestmark = pytest.mark.ssh

MEMORY_LADDER = """
name = "ssh-memory"
description = "Six levels; memory grows by 150 MiB."
[ramp]
count = 6
memory_mb = { start = 40, step = 150 }
"""


def invoke(config: Path, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, ["--config", str(config), "--reports-dir", str(tmp_path / "reports"), *args])
    return result.exit_code, result.stdout, result.stderr


def ssh_cluster(tb: Testbed, tmp_path: Path, host: str = "ssh", **overrides: Any) -> SSHCluster:
    """A cluster on one testbed sshd, with table overrides, from its own probe.toml."""
    config = write_config(tmp_path / f"probe-{host}.toml", {"c": tb.cluster_table(host, **overrides)})
    cluster = make_cluster("c", load_config(config))
    assert isinstance(cluster, SSHCluster)
    return cluster


def dispatch(cluster: SSHCluster, tmp_path: Path, source: str, limits: Limits, probe_id: str) -> Observation:
    workload = Workload(name=probe_id, source=source, func_name="workload", level=1)
    local_dir = tmp_path / probe_id
    local_dir.mkdir(parents=True, exist_ok=True)
    return make_pipeline("native").dispatch(workload, cluster, probe_id, limits, local_dir)


def accepted_logins(tb: Testbed, host: str) -> int:
    return tb.host(host).log_path.read_text(errors="replace").count("Accepted publickey for")


@pytest.fixture
def cluster(testbed: Testbed, tmp_path: Path) -> Iterator[SSHCluster]:
    c = ssh_cluster(testbed, tmp_path)
    with c:
        yield c


# -- the same answers as on this machine ------------------------------------------------------


def test_sweep_and_bisect_give_the_same_verdicts_as_local(testbed: Testbed, tmp_path: Path) -> None:
    ladder = tmp_path / "ssh-memory.toml"
    ladder.write_text(MEMORY_LADDER)
    common = ["--ladder", str(ladder), "--memory", "420MB", "--time", "60s", "--json", "--quiet", "--fresh"]
    code, out, err = invoke(testbed.config_path, tmp_path, "sweep", "--cluster", "local", *common)
    assert code == 0, err
    local = json.loads(out)
    logins = accepted_logins(testbed, "ssh")
    code, out, err = invoke(testbed.config_path, tmp_path, "sweep", "--cluster", "testbed-ssh", *common)
    assert code == 0, err
    remote = json.loads(out)

    def verdicts(summary: dict[str, Any]) -> dict[int, tuple[str, str | None]]:
        return {p["level"]: (p["verdict"], p.get("class")) for p in summary["probes"]}

    assert verdicts(remote) == verdicts(local)
    assert verdicts(remote)[1] == ("pass", None) and verdicts(remote)[6] == ("fail", "oom")
    assert remote["first_fail"] == local["first_fail"] == 4
    # One SSH login for the whole sweep: the connection is reused by every probe.
    assert accepted_logins(testbed, "ssh") - logins == 1
    code, out, err = invoke(testbed.config_path, tmp_path, "bisect", "--cluster", "testbed-ssh", *common)
    assert code == 0, err
    bisect = json.loads(out)
    assert (bisect["last_pass"], bisect["first_fail"]) == (3, 4)
    assert bisect["failure"]["class"] == "oom"


def test_second_host_is_a_second_cluster(testbed: Testbed, tmp_path: Path) -> None:
    code, out, err = invoke(
        testbed.config_path, tmp_path, "run", "--cluster", "testbed-ssh2", "--level", "1", "--json", "--quiet"
    )
    assert code == 0, err
    summary = json.loads(out)
    assert [p["verdict"] for p in summary["probes"]] == ["pass"]
    assert "127.0.0.2" in summary["cluster_info"]["host"]


# -- limits, for real, on the far side --------------------------------------------------------


def test_limits_are_enforced_on_the_far_side(cluster: SSHCluster, tmp_path: Path) -> None:
    mem = dispatch(
        cluster,
        tmp_path,
        "def workload():\n    return len(bytearray(500 * 1024 * 1024))\n",
        Limits(memory_bytes=300 * 1024**2),
        "mem",
    )
    assert diagnose(mem).failure_class == "oom"
    cores = dispatch(
        cluster,
        tmp_path,
        "import os\ndef workload():\n    return len(os.sched_getaffinity(0))\n",
        Limits(cores=1),
        "cores",
    )
    assert cores.result is not None and cores.result["repr"] == "1"
    # The time limit kills the whole process group: the workload's own child goes too.
    marker = f"tp-orphan-{os.getpid()}"
    source = (
        "import subprocess, time\n"
        "def workload():\n"
        f"    subprocess.Popen(['bash', '-c', 'exec -a {marker} sleep 120'])\n"
        "    time.sleep(120)\n"
    )
    started = time.monotonic()
    slow = dispatch(cluster, tmp_path, source, Limits(time_s=2), "slow")
    assert time.monotonic() - started < 20
    assert slow.job.timed_out and slow.job.signal == 9
    assert diagnose(slow).failure_class == "timeout"
    ps = subprocess.run(["pgrep", "-f", marker], capture_output=True, text=True)
    assert ps.stdout.strip() == "", f"left behind: {ps.stdout}"


def test_32_mib_of_stdout_and_stderr_complete_with_tails(cluster: SSHCluster, tmp_path: Path) -> None:
    source = (
        "import sys\n"
        "def workload():\n"
        "    block = 'x' * 1023 + '\\n'\n"
        "    for _ in range(32 * 1024):\n"
        "        sys.stdout.write(block)\n"
        "        sys.stderr.write(block)\n"
        "    print('END-OF-STDOUT')\n"
        "    print('END-OF-STDERR', file=sys.stderr)\n"
        "    return 1\n"
    )
    started = time.monotonic()
    obs = dispatch(cluster, tmp_path, source, Limits(time_s=120), "big")
    assert time.monotonic() - started < 60
    assert diagnose(obs).status == "pass", obs.job
    job = obs.job
    assert job.stdout_path is not None and job.stderr_path is not None
    assert job.stdout_path.stat().st_size >= 32 * 1024**2
    assert job.stderr_path.stat().st_size >= 32 * 1024**2
    assert job.stdout_tail.rstrip().endswith("END-OF-STDOUT")
    assert job.stderr_tail.rstrip().endswith("END-OF-STDERR")
    assert {"connect", "stage_in", "stage_out", "execute"} <= set(obs.timings)


def test_failures_are_classified_like_local(cluster: SSHCluster, tmp_path: Path) -> None:
    raised = dispatch(cluster, tmp_path, "def workload():\n    raise KeyError('gone')\n", Limits(), "raises")
    verdict = diagnose(raised)
    assert verdict.status == "fail" and verdict.failure_class == "exception"
    assert any("KeyError" in e for e in verdict.evidence)
    killed = dispatch(
        cluster,
        tmp_path,
        "import os, signal\ndef workload():\n    os.kill(os.getpid(), signal.SIGKILL)\n",
        Limits(),
        "killed",
    )
    assert killed.job.signal == 9 and not killed.job.timed_out


# -- the remote folder ------------------------------------------------------------------------


HOSTILE = "~/tp work 'it''s' \"q\" $HOME; echo pwned && `id` dir"


def test_shell_hostile_workdir_works_and_is_left_empty(testbed: Testbed, tmp_path: Path) -> None:
    remote = testbed.home / HOSTILE[2:]
    cluster = ssh_cluster(testbed, tmp_path, workdir=HOSTILE)
    with cluster:
        for i in range(2):
            obs = dispatch(cluster, tmp_path, "def workload():\n    return 'fine'\n", Limits(), f"h{i}")
            assert diagnose(obs).status == "pass", obs.job
            assert obs.job.remote_dir is not None and obs.job.remote_dir.startswith(str(remote))
            assert not Path(obs.job.remote_dir).exists()
    assert remote.is_dir(), "the workdir with its odd name was created as given"
    assert list(remote.iterdir()) == []
    assert not (testbed.home / "pwned").exists()


def test_keep_remote_leaves_the_probe_folder_and_says_where(testbed: Testbed, tmp_path: Path) -> None:
    workdir = f"~/tp-keep-{os.getpid()}"
    cluster = ssh_cluster(testbed, tmp_path, workdir=workdir)
    workload = Workload(name="k", source="def workload():\n    return 5\n", func_name="workload", level=1)
    pipeline = make_pipeline("native")
    with cluster:
        job = pipeline.build(workload, "kept", Limits(), tmp_path / "kept")
        job.keep_remote = True
        result = cluster.execute(job)
    assert result.remote_dir is not None
    kept = Path(result.remote_dir)
    assert kept.is_dir() and (kept / "meta.json").is_file() and (kept / "payload.pkl").is_file()
    # Only the kept folder remains of the session; the staged runner is gone.
    assert [p.name for p in kept.parent.iterdir()] == [kept.name]
    subprocess.run(["rm", "-rf", str(testbed.home / workdir[2:])], check=True)


def test_keep_remote_from_the_cli_is_named_in_the_report(testbed: Testbed, tmp_path: Path) -> None:
    workdir = f"~/tp-keep-cli-{os.getpid()}"
    config = write_config(tmp_path / "probe.toml", {"c": testbed.cluster_table("ssh", workdir=workdir)})
    code, out, err = invoke(config, tmp_path, "run", "--level", "1", "--cluster", "c", "--keep-remote", "--json", "-q")
    assert code == 0, err
    data = json.loads(out)
    (kept,) = [p["remote_dir"] for p in data["probes"]]
    assert kept and Path(kept).is_dir() and (Path(kept) / "meta.json").is_file()
    code, out, err = invoke(config, tmp_path, "report", data["run_id"])
    assert code == 0, err
    assert "remote folders kept" in out
    code, out, err = invoke(config, tmp_path, "report", data["run_id"], "--json")
    assert [p["remote_dir"] for p in json.loads(out)["probes"]] == [kept]
    # Without --keep-remote nothing is left and the summary points nowhere.
    code, out, err = invoke(config, tmp_path, "run", "--level", "1", "--cluster", "c", "--fresh", "--json", "-q")
    assert code == 0, err
    assert [p["remote_dir"] for p in json.loads(out)["probes"]] == [None]
    subprocess.run(["rm", "-rf", str(testbed.home / workdir[2:])], check=True)


def test_cancel_all_kills_the_remote_process_group(testbed: Testbed, tmp_path: Path) -> None:
    marker = f"tp-sleeper-{os.getpid()}"
    source = f"import subprocess\ndef workload():\n    subprocess.run(['bash', '-c', 'exec -a {marker} sleep 300'])\n"
    # Not the marker: commands that stage into the workdir must not look like the job.
    workdir = f"~/tp-cancelled-work-{os.getpid()}"
    cluster = ssh_cluster(testbed, tmp_path, workdir=workdir)
    cluster.open()
    results: list[Observation] = []
    worker = threading.Thread(
        target=lambda: results.append(dispatch(cluster, tmp_path, source, Limits(time_s=300), "c"))
    )
    worker.start()
    deadline = time.monotonic() + 30
    while subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode != 0:
        assert time.monotonic() < deadline, "the remote job never started"
        time.sleep(0.05)
    cluster.cancel_all()
    worker.join(timeout=20)
    assert not worker.is_alive()
    cluster.close()
    assert results and results[0].job.infra_error is not None
    deadline = time.monotonic() + 5
    while subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, "the remote job survived cancel_all"
        time.sleep(0.05)
    assert list((testbed.home / workdir[2:]).iterdir()) == []
    subprocess.run(["rm", "-rf", str(testbed.home / workdir[2:])], check=True)


# -- ssh config: aliases and jump hosts -------------------------------------------------------


def test_alias_from_ssh_config_supplies_hostname_port_user_and_key(testbed: Testbed, tmp_path: Path) -> None:
    table = {
        "type": "ssh",
        "host": "testbed-alias",
        "ssh_config": str(testbed.ssh_config),
        "known_hosts": str(testbed.known_hosts),
        "python": testbed.python,
    }
    config = write_config(tmp_path / "alias.toml", {"alias": table})
    cluster = make_cluster("alias", load_config(config))
    assert isinstance(cluster, SSHCluster)
    with cluster:
        obs = dispatch(cluster, tmp_path, "def workload():\n    return 3\n", Limits(), "alias")
    assert diagnose(obs).status == "pass", obs.job
    h = testbed.host("ssh")
    assert cluster.describe()["host"] == f"{testbed.user}@{h.addr}:{h.port}"


def test_proxyjump_through_the_second_host(testbed: Testbed, tmp_path: Path) -> None:
    table = {
        "type": "ssh",
        "host": "testbed-jump",
        "ssh_config": str(testbed.ssh_config),
        "known_hosts": str(testbed.known_hosts),
        "python": testbed.python,
    }
    config = write_config(tmp_path / "jump.toml", {"jump": table})
    jump_logins = accepted_logins(testbed, "ssh2")
    cluster = make_cluster("jump", load_config(config))
    assert isinstance(cluster, SSHCluster)
    with cluster:
        obs = dispatch(cluster, tmp_path, "def workload():\n    return 4\n", Limits(), "jump")
        assert diagnose(obs).status == "pass", obs.job
        assert "via" in cluster.describe()["host"]
    # The jump host saw the login of the first hop.
    assert accepted_logins(testbed, "ssh2") == jump_logins + 1


# -- preflight --------------------------------------------------------------------------------


def test_preflight_of_a_good_cluster(testbed: Testbed, tmp_path: Path) -> None:
    code, out, err = invoke(testbed.config_path, tmp_path, "clusters", "check", "testbed-ssh", "--json")
    assert code == 0, err + out
    report = json.loads(out)
    assert report["usable"] is True
    names = {c["name"]: c for c in report["checks"]}
    assert {"connect", "python", "cloudpickle", "workdir", "disk", "latency"} <= set(names)
    assert all(c["status"] == "ok" for c in report["checks"]), report["checks"]
    assert "loads what cloudpickle" in names["cloudpickle"]["detail"]


def test_preflight_of_an_unreachable_port_is_one_line_with_a_fix(testbed: Testbed, tmp_path: Path) -> None:
    from tests.testbed.testbed import free_port

    table = testbed.cluster_table("ssh", port=free_port())
    config = write_config(tmp_path / "bad.toml", {"nowhere": table})
    code, out, err = invoke(config, tmp_path, "clusters", "check", "nowhere")
    assert code == 3
    lines = [ln for ln in out.splitlines() if ln.strip()]
    assert len(lines) == 1, out
    assert "connection refused" in lines[0] and "fix:" in lines[0]
    # A bisect runs the preflight first and stops with exit 3 instead of a fake threshold.
    code, out, err = invoke(config, tmp_path, "bisect", "--cluster", "nowhere", "--quiet")
    assert code == 3 and "connection refused" in err and "Traceback" not in err


def test_preflight_spots_a_missing_interpreter(testbed: Testbed, tmp_path: Path) -> None:
    cluster = ssh_cluster(testbed, tmp_path, python="/nonexistent/python3")
    try:
        checks = {c.name: c for c in cluster.preflight()}
    finally:
        cluster.close()
    assert checks["connect"].status == "ok"
    assert checks["python"].status == "fail" and checks["python"].fix


def test_ctrl_c_during_a_probe_kills_the_remote_job_and_removes_what_was_staged(
    testbed: Testbed, tmp_path: Path
) -> None:
    marker = f"tp-interrupted-{os.getpid()}"
    func = tmp_path / "sleepy.py"
    func.write_text(
        f"import subprocess\ndef sleepy():\n    subprocess.run(['bash', '-c', 'exec -a {marker} sleep 300'])\n"
    )
    workdir = f"~/tp-sigint-work-{os.getpid()}"
    config = write_config(tmp_path / "probe.toml", {"c": testbed.cluster_table("ssh", workdir=workdir)})
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "threshold_probe",
            "--config",
            str(config),
            "--reports-dir",
            str(tmp_path / "r"),
            "run",
            "--cluster",
            "c",
            "--function",
            f"{func}:sleepy",
            "--quiet",
            "--no-preflight",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        while subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode != 0:
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the remote job never started"
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    deadline = time.monotonic() + 5
    while subprocess.run(["pgrep", "-f", marker], capture_output=True).returncode == 0:
        assert time.monotonic() < deadline, "the remote job survived Ctrl-C"
        time.sleep(0.05)
    remote = testbed.home / workdir[2:]
    assert list(remote.iterdir()) == [], "the session folder (runner, payload) was removed"
    subprocess.run(["rm", "-rf", str(remote)], check=True)


def test_clusters_list_names_the_testbed_clusters_without_contacting_them(testbed: Testbed, tmp_path: Path) -> None:
    code, out, err = invoke(testbed.config_path, tmp_path, "clusters", "list", "--json")
    assert code == 0, err
    rows = {r["name"]: r for r in json.loads(out)}
    assert {"local", "testbed-ssh", "testbed-ssh2"} <= set(rows)
    h2 = testbed.host("ssh2")
    assert rows["testbed-ssh2"]["type"] == "ssh"
    assert rows["testbed-ssh2"]["host"] == f"{testbed.user}@{h2.addr}:{h2.port}"
    assert rows["testbed-ssh"]["python"] == testbed.python


def test_a_removed_remote_session_is_staged_again(testbed: Testbed, tmp_path: Path) -> None:
    workdir = f"~/tp-removed-{os.getpid()}"
    cluster = ssh_cluster(testbed, tmp_path, workdir=workdir, retry_backoff=0.1)
    remote = testbed.home / workdir[2:]
    with cluster:
        assert diagnose(dispatch(cluster, tmp_path, "def workload():\n    return 1\n", Limits(), "a")).passed
        subprocess.run(["rm", "-rf", str(remote)], check=True)  # a cleanup job on the host, say
        obs = dispatch(cluster, tmp_path, "def workload():\n    return 2\n", Limits(), "b")
        assert diagnose(obs).passed, obs.job
        assert obs.result is not None and obs.result["repr"] == "2"
    assert list(remote.iterdir()) == []
    subprocess.run(["rm", "-rf", str(remote)], check=True)
