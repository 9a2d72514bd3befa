"""`probe gc`: old runs go (folders and journal rows); a baseline nightly still uses stays."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from contextlib import closing
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.test_run_ownership import SLURM_SLOW, _sessions, run, start
from tests.testbed.testbed import Testbed
from threshold_probe.cli.app import app


def invoke(tmp_path: Path, *args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(
        app, ["--config", str(tmp_path / "probe.toml"), "--reports-dir", str(tmp_path / "r"), *args]
    )
    return result.exit_code, result.stdout, result.stderr


def three_runs(tmp_path: Path, config: str = "") -> list[str]:
    (tmp_path / "probe.toml").write_text(config)
    ids = []
    for _ in range(3):
        code, out, err = invoke(tmp_path, "run", "--level", "1", "--fresh", "--json")
        assert code == 0, err
        ids.append(json.loads(out)["run_id"])
    return ids


def run_ids(tmp_path: Path) -> set[str]:
    code, out, _ = invoke(tmp_path, "runs", "--json")
    assert code == 0
    return {r["run_id"] for r in json.loads(out)}


def test_gc_removes_old_runs_and_keeps_the_newest_of_each_series(tmp_path: Path) -> None:
    a, b, c = three_runs(tmp_path)
    for run_id in (a, b, c):
        assert (tmp_path / "r" / run_id).is_dir()

    code, out, _ = invoke(tmp_path, "gc", "--older-than", "0s", "--dry-run")
    assert code == 0
    assert f"would remove {a}" in out and f"would remove {b}" in out and "would remove 2 run(s)" in out
    assert run_ids(tmp_path) == {a, b, c}  # a dry run removes nothing
    assert (tmp_path / "r" / a).is_dir()

    code, out, _ = invoke(tmp_path, "gc", "--older-than", "0s", "--json")
    assert code == 0
    doc = json.loads(out)
    assert {r["run_id"] for r in doc["removed"]} == {a, b}
    assert doc["freed_bytes"] > 0 and doc["freed_bytes"] == sum(r["bytes"] for r in doc["removed"])
    assert [k["run_id"] for k in doc["kept"]] == [c] and "baseline" in doc["kept"][0]["reason"]
    assert run_ids(tmp_path) == {c}
    assert not (tmp_path / "r" / a).exists() and not (tmp_path / "r" / b).exists()
    assert (tmp_path / "r" / c).is_dir()


def test_gc_never_removes_a_pinned_nightly_baseline(tmp_path: Path) -> None:
    (tmp_path / "probe.toml").write_text("")
    a = three_runs(tmp_path)[0]
    (tmp_path / "probe.toml").write_text(f'[nightly.baseline]\n"local/native/default" = "{a}"\n')
    code, out, err = invoke(tmp_path, "gc", "--older-than", "0s")
    assert code == 0, err
    assert f"kept {a}: pinned in [nightly.baseline]" in out
    assert "removed 1 run(s), freed" in out
    assert a in run_ids(tmp_path) and (tmp_path / "r" / a).is_dir()


def test_keep_n_keeps_the_newest_runs_whatever_their_age(tmp_path: Path) -> None:
    a, b, c = three_runs(tmp_path)
    code, out, _ = invoke(tmp_path, "gc", "--keep", "2")
    assert code == 0, out
    assert f"removed {a}" in out
    assert run_ids(tmp_path) == {b, c}


def test_bad_age_is_one_line_and_exit_2(tmp_path: Path) -> None:
    (tmp_path / "probe.toml").write_text("")
    code, _, err = invoke(tmp_path, "gc", "--older-than", "soon")
    assert code == 2 and "--older-than 'soon'" in err and len(err.strip().splitlines()) == 1


@pytest.mark.ssh
def test_gc_removes_the_far_side_folder_of_a_killed_ssh_run(testbed: Testbed, tmp_path: Path) -> None:
    config = str(testbed.config_path)
    before = _sessions(testbed)
    ladder = tmp_path / "slow.toml"
    ladder.write_text(SLURM_SLOW.replace("runtime_s = { start = 12", "runtime_s = { start = 30"))
    proc = start(tmp_path, "--config", config, "run", "--cluster", "testbed-ssh", "--ladder", str(ladder))
    home = testbed.home / ".threshold-probe"
    deadline = time.monotonic() + 60
    dead: set[str] = set()
    try:
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
        os.kill(proc.pid, signal.SIGKILL)  # a real kill: the far side keeps the session folder
    finally:
        proc.communicate()
    (folder,) = dead

    dry = run(tmp_path, "--config", config, "gc", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would remove" in dry.stdout and folder in dry.stdout
    assert folder in _sessions(testbed)

    done = run(tmp_path, "--config", config, "gc")
    assert done.returncode == 0, done.stderr
    said = " ".join(done.stdout.split())
    assert "far side: testbed-ssh:" in said and folder in said
    assert folder not in _sessions(testbed), "the dead run's session folder is still there"
