"""`probe shrink`: a failing function reduced for real on local, over SSH and in SLURM jobs.

Each candidate is probed on the cluster; the result keeps the failure's signature (and, when
native passes, native's pass), and an interrupted shrink resumes from the journal.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.every_cluster import CLUSTERS
from threshold_probe.cli.app import app

NAME_FAILURE = """\
import os

LIMIT = 3


def helper(x):
    return x + 1


def job():
    total = 0
    for i in range(3):
        total += i
    data = [1, 2, 3]
    label = "x" * LIMIT
    value = helper(total)
    return value + len(data) + len(label)
"""

SYNTAX_FAILURE = '''\
import sys


class Jobs:
    @staticmethod
    def run():
        a = 1
        b = 2
        script = """
print('far side')
"""
        c = a + b
        return len(script) + c
'''

OOM = """\
def grow(mb):
    blocks = []
    extra = [i * 2 for i in range(10)]
    for _ in range(mb):
        blocks.append(bytearray(1024 * 1024))
    note = "done"
    return len(blocks) + len(extra) + len(note)
"""

SIGNATURE = """\
def job():
    data = {"key": 1}
    found = data["key"]
    spare = [1, 2]
    return found / 0
"""


def invoke(tmp_path: Path, config: Path | None, *args: str) -> Any:
    base = ["--reports-dir", str(tmp_path / "reports")]
    if config is not None:
        base += ["--config", str(config)]
    return CliRunner().invoke(app, [*base, *args], env={"PROBE_CONFIG": None, "PROBE_REPORTS_DIR": None})


def shrink_json(tmp_path: Path, config: Path | None, *args: str, code: int = 0) -> dict[str, Any]:
    result = invoke(tmp_path, config, "shrink", "--json", "-q", *args)
    assert result.exit_code == code, result.stdout + result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_a_name_failure_keeps_the_helper_and_natives_pass(
    cluster_config: Path | None, tmp_path: Path, cluster: str
) -> None:
    src = write(tmp_path, "jobs.py", NAME_FAILURE)
    out = tmp_path / "min.py"
    data = shrink_json(
        tmp_path,
        cluster_config,
        "--function",
        f"{src}:job",
        "--cluster",
        cluster,
        "--pipeline",
        "source",
        "-o",
        str(out),
    )
    assert data["signature"] == "name:NameError:name 'helper' is not defined"
    # native passes the original: every candidate had to pass through it too
    assert data["kept"] == "signature+difference"
    assert "native passes" in data["kept_text"]
    shrunk = out.read_text()
    assert shrunk == data["source"]
    assert "def helper" in shrunk and "helper" in shrunk.split("def job")[1]
    assert data["lines"] <= 5 < data["original_lines"]
    assert data["probes_native"] >= 1 and data["probes"] == data["probes_pipeline"] + data["probes_native"]
    assert data["diff"].startswith("--- a/jobs.py")
    assert "features" in data and "closure_refs" in data["features"]
    # The reproducer runs as the same kind of target and fails the same way.
    again = invoke(
        tmp_path,
        cluster_config,
        "run",
        "--function",
        f"{out}:job",
        "--cluster",
        cluster,
        "--pipeline",
        "source",
        "--json",
        "-q",
        "--fresh",
    )
    assert again.exit_code == 1, again.stdout + again.stderr
    assert json.loads(again.stdout)["failure"]["signature"] == data["signature"]
    # The run keeps its result: `probe report` shows it again.
    shown = invoke(tmp_path, cluster_config, "report", data["run_id"], "--json")
    assert shown.exit_code == 0, shown.stdout + shown.stderr
    assert json.loads(shown.stdout)["source"] == data["source"]


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_a_syntax_failure_keeps_the_column_0_text(cluster_config: Path | None, tmp_path: Path, cluster: str) -> None:
    src = write(tmp_path, "jobs.py", SYNTAX_FAILURE)
    data = shrink_json(
        tmp_path, cluster_config, "--function", f"{src}:Jobs.run", "--cluster", cluster, "--pipeline", "source"
    )
    assert data["failure_class"] == "syntax"
    assert data["signature"].startswith("syntax:IndentationError:")
    assert data["kept"] == "signature+difference"
    # ast.unparse would turn the column-0 string into one line: the text reducer keeps it as written
    assert "\nprint('far side')\n" in data["source"]
    assert "import sys" not in data["source"] and "c = a + b" not in data["source"]
    assert data["lines"] < data["original_lines"]


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_an_oom_with_an_argument_keeps_the_allocation(
    cluster_config: Path | None, tmp_path: Path, cluster: str
) -> None:
    src = write(tmp_path, "grow.py", OOM)
    data = shrink_json(
        tmp_path,
        cluster_config,
        "--function",
        f"{src}:grow",
        "--arg",
        "mb=400",
        "--memory",
        "200MB",
        "--cluster",
        cluster,
        "--pipeline",
        "native",
    )
    assert data["failure_class"] == "oom"
    assert data["kept"] == "signature"  # native is the pipeline: no difference to keep
    assert "bytearray" in data["source"] and "range(mb)" in data["source"]
    assert "note" not in data["source"] and "extra" not in data["source"]
    assert "--arg mb=400" in data["command"]
    assert data["limits"]["memory_bytes"] == 200 * 1024 * 1024


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_a_candidate_that_fails_differently_is_rejected(
    cluster_config: Path | None, tmp_path: Path, cluster: str
) -> None:
    src = write(tmp_path, "div.py", SIGNATURE)
    data = shrink_json(
        tmp_path, cluster_config, "--function", f"{src}:job", "--cluster", cluster, "--pipeline", "native"
    )
    assert data["signature"] == "exception:ZeroDivisionError:division by zero"
    assert "spare" not in data["source"]
    # Removing `data` or `found` alone gives a NameError: probed, and rejected.
    db = sqlite3.connect(tmp_path / "reports" / "probe.db")
    signatures = {r[0] for r in db.execute("SELECT signature FROM probes WHERE run_id=?", (data["run_id"],))}
    assert any(s and s.startswith("name:NameError") for s in signatures), signatures
    # What was kept still fails the same way.
    out = write(tmp_path, "min.py", data["source"])
    again = invoke(tmp_path, cluster_config, "run", "--function", f"{out}:job", "--cluster", cluster, "--json", "-q")
    assert again.exit_code == 1
    assert json.loads(again.stdout)["failure"]["signature"] == data["signature"]


def test_a_level_that_passed_has_nothing_to_shrink(tmp_path: Path) -> None:
    ran = invoke(tmp_path, None, "bisect", "--ladder", "seed", "--hi", "2", "--json", "-q")
    assert ran.exit_code == 0, ran.stdout + ran.stderr
    run_id = json.loads(ran.stdout)["run_id"]
    result = invoke(tmp_path, None, "shrink", run_id, "--level", "1")
    assert result.exit_code == 2
    assert "level 1 passed: nothing to shrink" in result.stderr


def test_a_target_that_no_longer_fails_exits_1_with_its_verdict(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    src = write(tmp_path, "needs.py", f"def job():\n    with open({str(marker)!r}) as fh:\n        return fh.read()\n")
    ran = invoke(tmp_path, None, "run", "--function", f"{src}:job", "--json", "-q")
    assert ran.exit_code == 1, ran.stdout + ran.stderr
    run_id = json.loads(ran.stdout)["run_id"]
    marker.write_text("here now")  # the recorded failure is gone
    result = invoke(tmp_path, None, "shrink", run_id)
    assert result.exit_code == 1, result.stdout + result.stderr
    assert "did not reproduce its failure exception:FileNotFoundError" in result.stderr
    assert "(new verdict: pass)" in result.stderr
    # A function that passes from the start: the same exit, and nothing to shrink.
    ok = write(tmp_path, "ok.py", "def job():\n    return 1\n")
    passed = invoke(tmp_path, None, "shrink", "--function", f"{ok}:job")
    assert passed.exit_code == 1
    assert "passed on local through native: nothing to shrink (new verdict: pass)" in passed.stderr


def _shrink_probes(db_path: Path, run_id: str) -> list[tuple[str, str]]:
    db = sqlite3.connect(db_path)
    rows = db.execute("SELECT cache_key, state FROM probes WHERE run_id=?", (run_id,)).fetchall()
    return [(r[0], r[1]) for r in rows]


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_a_shrink_killed_with_9_resumes_from_the_journal(
    cluster_config: Path | None, tmp_path: Path, cluster: str
) -> None:
    src = write(tmp_path, "jobs.py", NAME_FAILURE)
    reports = tmp_path / "reports"
    base = [sys.executable, "-m", "threshold_probe", "--reports-dir", str(reports)]
    if cluster_config is not None:
        base += ["--config", str(cluster_config)]
    env = {k: v for k, v in os.environ.items() if k not in ("PROBE_CONFIG", "PROBE_REPORTS_DIR")}
    proc = subprocess.Popen(
        [*base, "shrink", "-q", "--function", f"{src}:job", "--cluster", cluster, "--pipeline", "source"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    db_path = reports / "probe.db"
    deadline = time.monotonic() + 180
    done = 0
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            db = sqlite3.connect(db_path)
            done = db.execute("SELECT COUNT(*) FROM probes WHERE state='done' AND run_id LIKE '%shrink%'").fetchone()[0]
            db.close()
        except sqlite3.Error:
            done = 0
        if done >= 4:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the shrink ended before it could be killed"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    db = sqlite3.connect(db_path)
    run_id, status = db.execute("SELECT run_id, status FROM runs WHERE kind='shrink'").fetchone()
    before = db.execute("SELECT COUNT(*) FROM probes WHERE run_id=? AND state='done'", (run_id,)).fetchone()[0]
    db.close()
    assert status == "running" and before >= 4
    resumed = subprocess.run(
        [*base, "shrink", "--resume", run_id, "--json", "-q"], capture_output=True, text=True, env=env, timeout=600
    )
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    data = json.loads(resumed.stdout)
    assert data["run_id"] == run_id
    assert "def helper" in data["source"] and data["lines"] <= 5
    # No finished probe ran twice: each candidate (cache key) has one finished probe.
    finished = [key for key, state in _shrink_probes(db_path, run_id) if state == "done"]
    assert len(finished) == len(set(finished)) == data["probes"]
    assert data["probes"] > before
