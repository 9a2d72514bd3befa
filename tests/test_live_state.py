"""What a run shows while it runs: live SLURM job states, levels as they finish, walls of their own.

The SLURM tests run a real job array on the loopback testbed, throttled to one task at a time
(`array_throttle = 1`), so that SLURM itself holds the later tasks PENDING with a reason while the
first runs. The levels run for different times, so a level printed as it finishes arrives well
before the last one. Isolation runs on the local cluster: its progress names each probe by the
dimension it changes.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import tomllib
from typer.testing import CliRunner

from tests.testbed.fixtures import write_config
from tests.testbed.testbed import Testbed
from threshold_probe.cli.app import app

ROOT = Path(__file__).resolve().parent.parent
CLUSTER = "testbed-slurm"
THROTTLED = "slurm-one-at-a-time"
ISOLATE_LADDER = str(Path(__file__).parent / "assets" / "ladders" / "isolate.toml")

# Three levels: two short, the last one 6 s longer. One task at a time, so level 3 ends last.
RUNTIME_LADDER = """
name = "live"
description = "Three levels; the last runs 6 s longer."
[[levels]]
runtime_s = 0.1
[[levels]]
runtime_s = 0.1
[[levels]]
runtime_s = 6.5
"""


@pytest.fixture(scope="module")
def slurm_config(testbed: Testbed, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The testbed's clusters plus its SLURM cluster throttled to one array task at a time."""
    if not testbed.slurm or CLUSTER not in testbed.clusters:
        pytest.fail("the loopback testbed did not start SLURM (TP_TESTBED_SLURM=0?)", pytrace=False)
    tables = tomllib.loads(testbed.config_path.read_text())["clusters"]
    throttled = {**tables[CLUSTER], "array_throttle": 1, "poll_interval": 0.2, "max_poll_interval": 0.5}
    return write_config(tmp_path_factory.mktemp("live") / "probe.toml", {**tables, THROTTLED: throttled})


def run_timed(config: Path, tmp_path: Path, *args: str) -> tuple[int, str, list[tuple[float, str]], float]:
    """Run the CLI with stdout and stderr piped; stderr lines with the time each arrived."""
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("PROBE_REPORTS_DIR", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "threshold_probe", "--config", str(config), "--reports-dir", str(tmp_path / "r"), *args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        text=True,
    )
    lines: list[tuple[float, str]] = []

    def read() -> None:
        assert proc.stderr is not None
        for line in proc.stderr:
            lines.append((time.monotonic(), line.rstrip("\n")))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        # stdout here, stderr in the reader: communicate() would read stderr too, taking lines.
        assert proc.stdout is not None
        out = proc.stdout.read()
        proc.wait(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(10)
    return proc.returncode, out, lines, time.monotonic()


def level_line_times(lines: list[tuple[float, str]]) -> dict[int, float]:
    """When each level's finished line (`level N  pass ...`) arrived."""
    found: dict[int, float] = {}
    for at, line in lines:
        m = re.match(r"^\s+level (\d+)\s+(pass|fail|skip|flaky)\b", line)
        if m:
            found.setdefault(int(m.group(1)), at)
    return found


@pytest.fixture(scope="module")
def throttled_sweep(slurm_config: Path, tmp_path_factory: pytest.TempPathFactory) -> list[tuple[float, str]]:
    """A sweep of RUNTIME_LADDER, one array task at a time, with its progress piped: the stderr
    lines with the time each arrived."""
    tmp_path = tmp_path_factory.mktemp("sweep")
    ladder = tmp_path / "live.toml"
    ladder.write_text(RUNTIME_LADDER)
    code, out, lines, _ = run_timed(
        slurm_config, tmp_path, "sweep", "--cluster", THROTTLED, "--ladder", str(ladder), "--json", "--fresh",
        "--no-preflight",
    )  # fmt: skip
    err = "\n".join(line for _, line in lines)
    assert code == 0, err
    assert [p["verdict"] for p in json.loads(out)["probes"]] == ["pass", "pass", "pass"], err
    return lines


@pytest.mark.slurm
def test_array_sweep_shows_each_live_job_and_its_scheduler_state(throttled_sweep: list[tuple[float, str]]) -> None:
    lines = throttled_sweep
    err = "\n".join(line for _, line in lines)
    ids = {m.group(1) for _, line in lines if (m := re.search(r"\bjob (\d+)_\d\b", line))}
    assert len(ids) == 1, err  # one array
    array_id = ids.pop()
    # SLURM holds level 3 back (one task at a time), and says why; each task runs on a node.
    assert any(re.search(rf"level 3 +job {array_id}_2 PENDING \(JobArrayTaskLimit\)", line) for _, line in lines), err
    # Level 3 runs for seconds: it is seen RUNNING on its node (a short task may start and end
    # between two polls).
    assert any(re.search(rf"level 3 +job {array_id}_2 RUNNING on \S+", line) for _, line in lines), err
    # A job's state is shown while it is live: before its level's line, never after it.
    at = level_line_times(lines)
    running = next(t for t, line in lines if f"job {array_id}_2 RUNNING" in line)
    assert running < at[3], err
    for task in range(3):
        assert not any(t > at[task + 1] and f"job {array_id}_{task} " in line for t, line in lines), err


@pytest.mark.slurm
def test_array_sweep_prints_levels_as_they_finish(throttled_sweep: list[tuple[float, str]]) -> None:
    lines = throttled_sweep
    err = "\n".join(line for _, line in lines)
    at = level_line_times(lines)
    assert set(at) == {1, 2, 3}, err
    # Level 3 runs 6.4 s longer than levels 1 and 2: they are printed long before it ends.
    assert at[3] - at[2] > 4.0, (at, err)
    assert at[1] <= at[2] < at[3], (at, err)


@pytest.mark.slurm
def test_array_levels_have_walls_of_their_own_from_the_scheduler(slurm_config: Path, tmp_path: Path) -> None:
    ladder = tmp_path / "live.toml"
    ladder.write_text(RUNTIME_LADDER)
    started = time.monotonic()
    code, out, lines, ended = run_timed(
        slurm_config, tmp_path, "sweep", "--cluster", CLUSTER, "--ladder", str(ladder), "--json", "--quiet",
        "--fresh", "--no-preflight",
    )  # fmt: skip
    assert code == 0, lines
    probes = {p["level"]: p for p in json.loads(out)["probes"]}
    walls = {n: p["wall_s"] for n, p in probes.items()}
    # Level 3 runs 6.4 s longer than level 1, and SLURM's own times say so.
    assert walls[3] - walls[1] > 4.0, walls
    assert walls[1] < 5.0, walls
    for n, p in probes.items():
        # Its own queue wait and run: at least what the runner measured of the function.
        assert "queue" in p["timings"], p["timings"]
        assert p["timings"]["execute"] <= walls[n], (n, p["timings"], walls)
    assert probes[3]["timings"]["execute"] >= 6.0
    # No wall is the array's total unless it is the last task's.
    assert walls[1] < (ended - started) - 4.0, (walls, ended - started)


@pytest.mark.slurm
def test_memory_above_every_node_is_bad_input(slurm_config: Path, tmp_path: Path) -> None:
    result = CliRunner().invoke(
        app,
        ["--config", str(slurm_config), "--reports-dir", str(tmp_path / "r"), "bisect", "--cluster", CLUSTER,
         "--memory", "500GB"],
    )  # fmt: skip
    err = result.stderr
    assert result.exit_code == 2, (result.exit_code, result.stdout, err)
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    sinfo = subprocess.run(
        ["sinfo", "-h", "-o", "%m"],
        capture_output=True,
        text=True,
        env={**os.environ, "SLURM_CONF": _slurm_conf(slurm_config)},
        timeout=30,
    )
    largest = max(int(t.rstrip("+")) for t in sinfo.stdout.split())
    assert "500GB" in lines[0] and f"{largest} MB" in lines[0], lines[0]


def _slurm_conf(config: Path) -> str:
    """The slurm.conf the testbed's SLURM cluster names, for asking sinfo directly."""
    m = re.search(r'slurm_conf = "([^"]+)"', config.read_text())
    assert m, config.read_text()
    return m.group(1)


def test_isolate_progress_names_the_dimension_and_value_of_each_probe(tmp_path: Path) -> None:
    (tmp_path / "probe.toml").write_text("")
    reports = tmp_path / "reports"

    def invoke(*args: str) -> Any:
        return CliRunner().invoke(
            app,
            ["--config", str(tmp_path / "probe.toml"), "--reports-dir", str(reports), *args],
            env={"PROBE_REPORTS_DIR": None, "COLUMNS": "200"},
        )

    found = invoke("bisect", "--ladder", ISOLATE_LADDER, "--memory", "300MB", "--json", "--quiet")
    assert found.exit_code == 0, found.stderr
    result = invoke("isolate", json.loads(found.stdout)["run_id"])
    assert result.exit_code == 0, result.stderr
    probe_lines = [line for line in result.stderr.splitlines() if re.match(r"^\s+\S.*\s(pass|fail|skip|flaky)\b", line)]
    assert probe_lines, result.stderr
    assert not any(line.split()[0] == "spec" or "-spec-" in line for line in probe_lines), result.stderr
    labelled = [line for line in probe_lines if re.match(r"^\s+memory_mb=\d+\s", line)]
    assert labelled, result.stderr
    # Every off-ladder probe names what it changed, e.g. `loc=120` or `memory_mb=266`.
    for line in probe_lines:
        first = line.split()[0]
        assert first in ("level",) or re.fullmatch(r"[a-z_]+=[\w.]+(,[a-z_]+=[\w.]+)*", first), line
