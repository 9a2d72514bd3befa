"""Flakiness through the CLI: a workload that fails at random is reported flaky, with its pass rate.

The randomness and the failures are real:

- **A node pool where half the nodes have less memory.** A local cluster whose interpreter is a
  small shell script: for each probe it draws a byte from /dev/urandom and, half the time, lowers
  the address-space limit to 150 MiB (`ulimit -v`) before it execs Python. Under `--memory 300MB`
  a 200 MiB level then runs out of memory (a real MemoryError under RLIMIT_AS) on about half the
  probes, while 40 and 100 MiB always pass and 400 MiB always fails. This is how a flaky threshold
  looks on a real cluster with mixed node types.
- **A user function that raises when `random.random() < 0.5`**, probed with
  `probe run --function FILE:FUNC --repeat N`.

With p = 0.5 and 12 probes, a flaky level looks clean by chance with probability 2 / 2**12.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.inprocess_cluster import InProcessCluster, Raise, first_fail
from threshold_probe.cli.app import app

ASSETS = Path(__file__).parent / "assets"
FLAKY = str(ASSETS / "ladders" / "flaky.toml")
MEMORY = str(ASSETS / "ladders" / "memory.toml")

HALF_THE_NODES_SMALL = """#!/bin/sh
# A pool of nodes where every other job lands on a node with 150 MiB of address space per job.
if [ "$(od -An -N1 -tu1 /dev/urandom)" -lt 128 ]; then ulimit -v 153600; fi
exec "{python}" "$@"
"""


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    wrapper = tmp_path / "pool-python"
    wrapper.write_text(HALF_THE_NODES_SMALL.format(python=sys.executable))
    wrapper.chmod(0o755)
    (tmp_path / "probe.toml").write_text(
        f'[clusters.pool]\ntype = "local"\npython = "{wrapper}"\nworkdir = "{tmp_path / "wd"}"\n'
    )
    return tmp_path


def invoke(workspace: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        app,
        ["--config", str(workspace / "probe.toml"), "--reports-dir", str(workspace / "reports"), *args],
        env={"PROBE_REPORTS_DIR": None, "COLUMNS": "200"},
    )
    return result.exit_code, result.stdout, result.stderr


def run_json(workspace: Path, *args: str) -> dict[str, Any]:
    code, out, err = invoke(workspace, *args, "--json", "--quiet")
    # `probe run` exits 1 when its probe failed; the searches complete with 0 whatever they found.
    assert code == (1 if args[0] == "run" and json.loads(out)["search_status"] in ("fail", "flaky") else 0), err
    data: dict[str, Any] = json.loads(out)
    return data


def check_level_3_is_flaky(data: dict[str, Any]) -> None:
    assert data["search_status"] == "flaky"
    assert data["flaky_band"] == [3, 3]
    rows = {row["level"]: row for row in data["levels"]}
    assert rows[3]["summary"] == "flaky"
    assert 0 < rows[3]["pass_rate"] < 1
    assert rows[4]["summary"] == "bad"
    for level in (1, 2):
        if level in rows and rows[level]["probes"]:
            assert rows[level]["summary"] == "good"
    assert "flaky (pass rate" in data["message"]
    # Every failure is a real out-of-memory, on either kind of node.
    assert {p["class"] for p in data["probes"] if p["verdict"] == "fail"} == {"oom"}


def test_a_sweep_reports_the_flaky_level_with_its_pass_rate(workspace: Path) -> None:
    data = run_json(
        workspace,
        "sweep",
        "--cluster",
        "pool",
        "--ladder",
        FLAKY,
        "--memory",
        "300MB",
        "--from",
        "2",
        "--repeat",
        "12",
        "--fresh",
    )
    check_level_3_is_flaky(data)
    assert [p["level"] for p in data["probes"]].count(3) == 12
    code, out, err = invoke(workspace, "report", data["run_id"])
    assert code == 0, err
    assert "no clean threshold: level 3 is flaky" in out


def test_a_bisect_reports_a_flaky_band_not_a_threshold(workspace: Path) -> None:
    data = run_json(
        workspace,
        "bisect",
        "--cluster",
        "pool",
        "--ladder",
        FLAKY,
        "--memory",
        "300MB",
        "--repeat",
        "12",
        "--fresh",
    )
    check_level_3_is_flaky(data)
    assert data["status"] == "completed"
    code, out, err = invoke(workspace, "report", data["run_id"])
    assert code == 0, err
    assert "no clean threshold: level 3 is flaky" in out
    assert "is the first to fail" not in out.splitlines()[0]


def test_run_repeat_of_one_level_reports_its_pass_rate(workspace: Path) -> None:
    data = run_json(
        workspace,
        "run",
        "--cluster",
        "pool",
        "--ladder",
        FLAKY,
        "--memory",
        "300MB",
        "--level",
        "3",
        "--repeat",
        "12",
    )
    assert data["search_status"] == "flaky"
    assert len(data["probes"]) == 12
    passed = sum(p["verdict"] == "pass" for p in data["probes"])
    assert 0 < passed < 12
    assert f"{passed} of 12 probes passed ({round(100 * passed / 12)}%)" in data["message"]
    assert data["first_fail"] is None and data["last_pass"] is None


def test_a_function_that_fails_at_random_is_flaky_with_its_pass_rate(workspace: Path) -> None:
    source = workspace / "draws.py"
    source.write_text(
        "import random\n\n\n"
        "def unlucky_half():\n"
        "    if random.random() < 0.5:\n"
        "        raise RuntimeError('unlucky draw')\n"
        "    return {'ok': True}\n"
    )
    code, out, err = invoke(workspace, "run", "--function", f"{source}:unlucky_half", "--repeat", "16", "--quiet")
    assert code == 1, err  # some repeats failed
    assert "fails at random, not at a threshold" in " ".join(out.split())
    data = run_json(workspace, "run", "--function", f"{source}:unlucky_half", "--repeat", "16")
    assert data["search_status"] == "flaky"
    verdicts = [p["verdict"] for p in data["probes"]]
    assert len(verdicts) == 16 and "pass" in verdicts and "fail" in verdicts
    assert {p["class"] for p in data["probes"] if p["verdict"] == "fail"} == {"exception"}
    assert data["failure"]["class"] == "exception"
    assert any("unlucky draw" in line for line in data["failure"]["evidence"])
    assert f"{verdicts.count('pass')} of 16 probes passed" in data["message"]


def test_bisect_confirms_the_boundary_with_probes_that_really_run(
    workspace: Path, inprocess: Callable[..., InProcessCluster]
) -> None:
    """--confirm 2: the last pass and the first fail get two more probes each, dispatched even when
    the same verdicts are in the cache, unless the cache is allowed (on the in-process cluster,
    which counts the jobs it is given: level 5 raises MemoryError)."""
    cluster = inprocess(first_fail(5, Raise("MemoryError")))
    args = ("bisect", "--ladder", MEMORY, "--memory", "300MB", "--confirm", "2")
    first = run_json(workspace, *args, "--fresh")
    lp, ff = first["last_pass"], first["first_fail"]
    assert first["search_status"] == "found" and (lp, ff) == (4, 5)
    assert len(cluster.jobs) == len(first["probes"])
    for run in (first, run_json(workspace, *args, "--fresh")):
        at_boundary = [p for p in run["probes"] if p["level"] in (lp, ff)]
        assert sorted((p["level"], p["attempt"]) for p in at_boundary) == [
            (lp, 1),
            (lp, 2),
            (lp, 3),
            (ff, 1),
            (ff, 2),
            (ff, 3),
        ]
        assert not any(p["cached"] for p in run["probes"])
        for p in run["probes"]:
            folder = workspace / "reports" / run["run_id"] / "probes" / p["probe_id"]
            assert (folder / "stdout.log").exists()  # it ran: the cluster wrote its log
    assert len(cluster.jobs) == len(first["probes"]) * 2
    cached = run_json(workspace, *args)
    assert len(cluster.jobs) == len(first["probes"]) * 2  # nothing dispatched: every verdict reused
    assert len(cached["probes"]) == len(first["probes"])
    assert all(p["cached"] for p in cached["probes"])
    assert (cached["last_pass"], cached["first_fail"]) == (lp, ff)
