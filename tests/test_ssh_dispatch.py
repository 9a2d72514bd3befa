"""How a probe travels over SSH: several at once on one connection, and the runner as a script."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.testbed.fixtures import write_config
from tests.testbed.testbed import Testbed
from threshold_probe.clusters import make_cluster
from threshold_probe.clusters.ssh import SSHCluster
from threshold_probe.config import load_config
from threshold_probe.ladder.workload import Workload
from threshold_probe.models import Limits
from threshold_probe.pipelines import make_pipeline
from threshold_probe.pipelines.base import ProbeSlot, dispatch_probes

pytestmark = pytest.mark.ssh


def accepted_logins(tb: Testbed) -> int:
    return tb.host("ssh").log_path.read_text(errors="replace").count("Accepted publickey for")


@pytest.fixture
def cluster(testbed: Testbed, tmp_path: Path) -> Iterator[SSHCluster]:
    config = write_config(tmp_path / "probe.toml", {"c": testbed.cluster_table("ssh")})
    c = make_cluster("c", load_config(config))
    assert isinstance(c, SSHCluster)
    with c:
        yield c


def slots(tmp_path: Path, source: str, count: int, prefix: str) -> list[ProbeSlot]:
    out = []
    for i in range(count):
        workload = Workload(name=f"{prefix}{i}", source=source, func_name="workload", level=i + 1)
        out.append(ProbeSlot(workload, f"{prefix}{i}", tmp_path / f"{prefix}{i}"))
    return out


def test_eight_probes_run_side_by_side_over_one_connection(
    testbed: Testbed, cluster: SSHCluster, tmp_path: Path
) -> None:
    pipeline = make_pipeline("native")
    # Connected (and the launcher staged) before counting logins.
    dispatch_probes(pipeline, cluster, Limits(), slots(tmp_path, "def workload():\n    return 0\n", 1, "w"))
    logins = accepted_logins(testbed)
    source = "def workload():\n    import time\n    time.sleep(1.5)\n    return 1\n"
    observations = dispatch_probes(pipeline, cluster, Limits(time_s=60), slots(tmp_path, source, 8, "p"))
    assert [o.job.exit_code for o in observations] == [0] * 8, [o.job.infra_error for o in observations]
    assert [o.result and o.result["repr"] for o in observations] == ["1"] * 8
    # Each job's own run, on the far side's clock: all eight were running at one moment.
    starts = [o.job.timings["launched_at"] for o in observations]
    ends = [o.job.timings["launched_at"] + o.job.timings["process"] for o in observations]
    assert max(starts) < min(ends), (starts, ends)
    # On the one connection: no new login for the batch.
    assert accepted_logins(testbed) == logins


SCRIPT_FACTS = """
def workload():
    import json, os, sys
    main = sys.modules["__main__"]
    facts = {"argv": sys.argv, "main_file": main.__file__, "path0": sys.path[0], "cwd": os.getcwd()}
    print(json.dumps(facts))
    return 0
"""


def test_the_runner_starts_as_a_script_from_its_cached_bytecode(cluster: SSHCluster, tmp_path: Path) -> None:
    pipeline = make_pipeline("native")
    (first,) = dispatch_probes(pipeline, cluster, Limits(), slots(tmp_path, SCRIPT_FACTS, 1, "a"))
    (second,) = dispatch_probes(pipeline, cluster, Limits(), slots(tmp_path, SCRIPT_FACTS, 1, "b"))
    for obs in (first, second):
        assert obs.job.exit_code == 0, obs.job.stderr_tail
    seen = json.loads(second.job.stdout_tail.strip().splitlines()[-1])
    runner = seen["argv"][0]
    # What the workload sees is what `python runner.py payload.pkl` gives it.
    assert runner.endswith("/runner.py") and runner.startswith("/"), seen
    assert seen["argv"][1:] == ["payload.pkl"], seen
    assert seen["main_file"] == runner
    assert seen["path0"] == runner.rpartition("/")[0]
    assert seen["cwd"] != seen["path0"]
    # The first probe left the runner's bytecode beside it; later probes load it from there.
    folder = shlex.quote(runner.rpartition("/")[0])
    res = cluster.transport.run(f"ls {folder}/__pycache__")
    assert res.ok and "runner." in res.text(), res.text()


def test_the_first_probe_of_a_session_stages_the_runner_in_its_own_round_trip(testbed: Testbed, tmp_path: Path) -> None:
    config = write_config(tmp_path / "probe.toml", {"c": testbed.cluster_table("ssh")})
    c = make_cluster("c", load_config(config))
    assert isinstance(c, SSHCluster)
    commands: list[str] = []
    transport = c.transport
    run, run_streaming = transport.run, transport.run_streaming

    def counted_run(command: str, *args: Any, **kwargs: Any) -> Any:
        commands.append(command)
        return run(command, *args, **kwargs)

    def counted_streaming(command: str, *args: Any, **kwargs: Any) -> Any:
        commands.append(command)
        return run_streaming(command, *args, **kwargs)

    transport.run = counted_run  # type: ignore[method-assign]
    transport.run_streaming = counted_streaming  # type: ignore[method-assign]
    pipeline = make_pipeline("native")
    with c:
        opened = len(commands)  # the session folder and the launcher
        source = "def workload():\n    return 3\n"
        for prefix in ("a", "b"):
            (obs,) = dispatch_probes(pipeline, c, Limits(), slots(tmp_path, source, 1, prefix))
            assert obs.job.exit_code == 0, obs.job.stderr_tail
            assert obs.result is not None and obs.result["repr"] == "3"
        # One command a probe, the first one too: the runner came in the first probe's stdin.
        assert len(commands) - opened == 2, commands[opened:]


def far_side_launchers(marker: str) -> list[str]:
    ps = subprocess.run(["pgrep", "-f", f"{marker}.*launcher.run"], capture_output=True, text=True)
    return ps.stdout.split()


def wait_for(predicate: Callable[[], bool], seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def test_the_next_launcher_waits_ahead_and_goes_with_the_session(testbed: Testbed, tmp_path: Path) -> None:
    workdir = f"~/tp-ahead-{os.getpid()}"
    config = write_config(tmp_path / "probe.toml", {"c": testbed.cluster_table("ssh", workdir=workdir)})
    c = make_cluster("c", load_config(config))
    assert isinstance(c, SSHCluster)
    pipeline = make_pipeline("native")
    source = "def workload():\n    return 5\n"
    with c:
        (first,) = dispatch_probes(pipeline, c, Limits(), slots(tmp_path, source, 1, "a"))
        assert first.job.exit_code == 0, first.job.stderr_tail
        # After a probe, the next one's launcher is already running on the far side, waiting.
        assert wait_for(lambda: len(far_side_launchers(workdir[2:])) == 1), far_side_launchers(workdir[2:])
        (second,) = dispatch_probes(pipeline, c, Limits(), slots(tmp_path, source, 1, "b"))
        assert second.job.exit_code == 0, second.job.stderr_tail
        assert second.result is not None and second.result["repr"] == "5"
    # Closing the cluster ends the waiting launcher, and leaves nothing in the workdir.
    assert wait_for(lambda: far_side_launchers(workdir[2:]) == []), far_side_launchers(workdir[2:])
    remote = testbed.home / workdir[2:]
    assert list(remote.iterdir()) == []
    subprocess.run(["rm", "-rf", str(remote)], check=True)
