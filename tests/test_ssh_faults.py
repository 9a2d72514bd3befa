"""Real faults on a real sshd: changed host keys, a killed server mid-sweep, a hung server.

Each test starts its own spare sshd (the shared testbed's servers stay untouched), from the same
testbed code, with the testbed's user and keys.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
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


def test_accept_new_accepts_once_then_refuses_a_changed_key(
    testbed: Testbed, spare: SSHHost, tmp_path: Path
) -> None:
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


def test_sshd_killed_mid_sweep_gives_skips_not_failures_and_the_run_completes(
    testbed: Testbed, spare: SSHHost, tmp_path: Path
) -> None:
    ladder = tmp_path / "slow.toml"
    ladder.write_text(SLOW_LADDER)
    known = tmp_path / "known_hosts"
    known.write_text(spare.known_hosts_line())
    table = spare_table(
        testbed, spare, retries=1, retry_backoff=1.0, connect_timeout=3.0, known_hosts=str(known)
    )
    config = write_config(tmp_path / "probe.toml", {"spare": table})
    reports = tmp_path / "reports"
    args = ["--config", str(config), "--reports-dir", str(reports), "sweep", "--cluster", "spare",
            "--ladder", str(ladder), "--json", "--quiet"]
    outcome: dict[str, Any] = {}

    def sweep() -> None:
        result = CliRunner().invoke(app, [*args, "--fresh"])
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
    verdicts = [p["verdict"] for p in summary["probes"]]
    assert "fail" not in verdicts, "infrastructure trouble never marks a level failed"
    assert "skip" in verdicts and "pass" in verdicts, verdicts
    assert summary["first_fail"] is None
    # Each skip carries its cause.
    records = Store(reports).probes(summary["run_id"])
    causes = [r.verdict.explanation or "" for r in records if r.verdict.status == "skip"]
    assert causes and all((f":{spare.port}" in c or "spare:" in c) for c in causes), causes
    # The levels after sshd came back passed, and a new sweep completes the skipped ones.
    last = max(p["level"] for p in summary["probes"])
    assert any(p["level"] == last and p["verdict"] == "pass" for p in summary["probes"])
    again = CliRunner().invoke(app, args)
    assert again.exit_code == 0, again.stderr
    rerun = json.loads(again.stdout)
    per_level = {p["level"]: p["verdict"] for p in rerun["probes"]}
    assert set(per_level.values()) == {"pass"} and len(per_level) == 10


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
