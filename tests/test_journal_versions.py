"""The journal's schema version: an older journal is migrated in place, a newer one is refused.

`tests/data/journal-v1` is a real journal written by the release before schema versions (see its
README): two finished bisects and one killed with SIGKILL. The tests copy it and open it with
this release, through the CLI, on the local cluster.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path

import pytest

from threshold_probe.journal import SCHEMA_VERSION
from threshold_probe.states import ProbeState, RunState
from threshold_probe.store import RunInfo, Store

V1 = Path(__file__).parent / "data" / "journal-v1"
DONE_300MB = "20261130-201650-bisect-c67a"
KILLED = "20261130-201721-bisect-e692"


def probe(workspace: Path, *args: str, reports: Path | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PROBE_CONFIG", "PROBE_REPORTS_DIR")}
    reports = reports or workspace / "reports"
    return subprocess.run(
        [sys.executable, "-m", "threshold_probe", "--reports-dir", str(reports), *args],
        cwd=workspace,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def one_line(res: subprocess.CompletedProcess[str], code: int, *words: str) -> str:
    assert res.returncode == code, (res.returncode, res.stderr, res.stdout)
    err = res.stderr.strip()
    assert err.count("\n") == 0 and "Traceback" not in err, err
    flat = " ".join(err.split())
    for w in words:
        assert w in flat, flat
    return flat


def user_version(db_path: Path) -> int:
    with closing(sqlite3.connect(db_path)) as db:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


def probe_rows(db_path: Path) -> list[tuple[object, ...]]:
    with closing(sqlite3.connect(db_path)) as db:
        return db.execute("SELECT * FROM probes ORDER BY probe_id").fetchall()


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    """A copy of the version-1 journal and its run folders, with a local cluster of its own."""
    shutil.copytree(V1 / "reports", tmp_path / "reports")
    (tmp_path / "probe.toml").write_text(f'[clusters.local]\ntype = "local"\nworkdir = "{tmp_path / "wd"}"\n')
    return tmp_path


def read_outputs(workspace: Path, reports: Path | None = None) -> dict[str, str]:
    """What the read-only commands print as JSON, keyed like the files of expected/."""
    out: dict[str, str] = {}
    for name, args in (
        ("runs.json", ("runs", "--json")),
        ("history.json", ("history", "--json")),
        (f"report-{DONE_300MB}.json", ("report", DONE_300MB, "--json")),
        (f"report-{KILLED}.json", ("report", KILLED, "--json")),
    ):
        res = probe(workspace, *args, reports=reports)
        assert res.returncode == 0, (args, res.stderr)
        out[name] = res.stdout
    return out


def test_a_version_1_journal_reads_the_same_before_and_after_its_migration(workspace: Path) -> None:
    db_path = workspace / "reports" / "probe.db"
    expected = {p.name: p.read_text() for p in (V1 / "expected").iterdir()}
    rows = probe_rows(db_path)
    assert user_version(db_path) == 0

    # The commands that only read leave it as it is, and print what the old release printed.
    assert read_outputs(workspace) == expected
    assert user_version(db_path) == 0

    # Opening it to write migrates it in place, keeping every row.
    Store(workspace / "reports").close()
    assert user_version(db_path) == SCHEMA_VERSION
    assert probe_rows(db_path) == rows
    assert read_outputs(workspace) == expected
    with closing(sqlite3.connect(db_path)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"

    store = Store(workspace / "reports", readonly=True)
    try:
        runs = {info.run_id: info.status for info in store.runs()}
        assert all(type(status) is RunState for status in runs.values())
        assert runs[DONE_300MB] is RunState.COMPLETED and runs[KILLED] is RunState.RUNNING
        assert len(store.probes(DONE_300MB)) == 10
    finally:
        store.close()


def test_the_killed_run_of_a_version_1_journal_resumes(workspace: Path) -> None:
    db_path = workspace / "reports" / "probe.db"
    with closing(sqlite3.connect(db_path)) as db:
        before = {r[0] for r in db.execute("SELECT probe_id FROM probes WHERE run_id=? AND state='done'", (KILLED,))}
    assert len(before) == 3

    resumed = probe(workspace, "bisect", "--resume", "--json")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming run {KILLED}" in " ".join(resumed.stderr.split())
    summary = json.loads(resumed.stdout)
    assert summary["run_id"] == KILLED and summary["status"] == "completed"
    assert summary["search_status"] == "found"
    assert summary["first_fail"] == summary["last_pass"] + 1
    assert summary["failure"]["class"] == "oom"
    assert user_version(db_path) == SCHEMA_VERSION
    with closing(sqlite3.connect(db_path)) as db:
        rows = db.execute("SELECT probe_id, state, record FROM probes WHERE run_id=?", (KILLED,)).fetchall()
    assert {r[1] for r in rows} == {"done"}
    assert before <= {r[0] for r in rows}  # the journal's probes were kept, not dispatched again
    assert sum(json.loads(r[2])["cached_from"] is None for r in rows) == len(rows)

    runs = json.loads(probe(workspace, "runs", "--json").stdout)
    assert {r["run_id"]: r["status"] for r in runs}[KILLED] == "completed"
    shown = probe(workspace, "report", KILLED)
    assert shown.returncode == 0, shown.stderr
    assert f"level {summary['first_fail']} is the first to fail" in shown.stdout
    # The finished runs of the old journal still read as they did.
    expected = (V1 / "expected" / f"report-{DONE_300MB}.json").read_text()
    assert probe(workspace, "report", DONE_300MB, "--json").stdout == expected


@pytest.fixture
def read_only_reports(workspace: Path, tmp_path: Path) -> Iterator[Path]:
    """The version-1 reports folder behind a real read-only bind mount (root ignores file modes)."""
    ro = tmp_path / "ro"
    ro.mkdir()
    subprocess.run(["mount", "--bind", str(workspace / "reports"), str(ro)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(ro)], check=True)
        with pytest.raises(OSError):
            (ro / "probe").write_text("x")
        yield ro
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)


def test_a_version_1_journal_on_read_only_storage_is_read_as_it_is(workspace: Path, read_only_reports: Path) -> None:
    expected = {p.name: p.read_text() for p in (V1 / "expected").iterdir()}
    assert read_outputs(workspace, read_only_reports) == expected
    # A command that writes would migrate it first: it cannot, and says why in one line.
    res = probe(workspace, "bisect", "--resume", reports=read_only_reports)
    one_line(res, 3, str(read_only_reports / "probe.db"), "read-only")
    assert user_version(workspace / "reports" / "probe.db") == 0  # the same file, seen writable


@pytest.mark.parametrize("command", [("runs",), ("report", DONE_300MB), ("bisect", "--resume")])
def test_a_journal_newer_than_this_release_is_refused_in_one_line(workspace: Path, command: tuple[str, ...]) -> None:
    db_path = workspace / "reports" / "probe.db"
    newer = SCHEMA_VERSION + 1
    with closing(sqlite3.connect(db_path)) as db:
        db.execute(f"PRAGMA user_version={newer}")
    rows = probe_rows(db_path)
    res = probe(workspace, *command)
    one_line(res, 3, str(db_path), f"schema version {newer}", "newer than", "upgrade threshold-probe")
    assert user_version(db_path) == newer and probe_rows(db_path) == rows


def test_a_version_1_journal_with_a_state_this_release_does_not_know_is_left_as_it_was(workspace: Path) -> None:
    db_path = workspace / "reports" / "probe.db"
    with closing(sqlite3.connect(db_path)) as db, db:
        db.execute("UPDATE runs SET status='paused' WHERE run_id=?", (KILLED,))
    with open(db_path, "rb") as fh:
        before = fh.read()
    res = probe(workspace, "bisect", "--resume")
    one_line(res, 3, str(db_path), "schema version", "state", "left as it was")
    assert user_version(db_path) == 0
    with closing(sqlite3.connect(db_path)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert db.execute("SELECT status FROM runs WHERE run_id=?", (KILLED,)).fetchone()[0] == "paused"
    # Nothing of the failed migration was kept (its pages went to the WAL and were rolled back).
    with closing(sqlite3.connect(db_path)) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    with open(db_path, "rb") as fh:
        assert fh.read() == before


def test_the_store_and_the_journal_refuse_a_state_they_do_not_know(tmp_path: Path) -> None:
    store = Store(tmp_path / "reports")
    try:
        info = RunInfo(
            run_id="r1",
            kind="bisect",
            cluster="local",
            pipeline="native",
            ladder="default",
            status="running",
            started_at=1.0,
        )
        assert info.status is RunState.RUNNING
        store.start_run(info)
        for wrong in ("paused", "stopped", "RUNNING"):
            with pytest.raises(ValueError, match=wrong):
                store.set_run_status("r1", wrong)
            with pytest.raises(ValueError, match=wrong):
                store.finish_run("r1", wrong, {})
        with pytest.raises(ValueError):
            store.start_run(info.model_copy(update={"status": RunState.STOPPED}))
        store.set_run_status("r1", RunState.INTERRUPTED)
        got = store.get_run("r1")
        assert got.status is RunState.INTERRUPTED and got.status == "interrupted"
        assert f"{got.status}" == str(got.status) == "interrupted"
        assert json.dumps({"status": got.status}) == '{"status": "interrupted"}'
        store.probe_dispatched("r1", "p1", 1, 1, "key")
        assert store.unfinished("r1") == 1
        assert store.cancel_unfinished("r1") == 1
    finally:
        store.close()
    # The journal itself holds the same words, whoever writes to it.
    with closing(sqlite3.connect(tmp_path / "reports" / "probe.db")) as db:
        assert db.execute("SELECT state FROM probes").fetchone()[0] == ProbeState.CANCELLED
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            db.execute("UPDATE runs SET status='paused'")
        with pytest.raises(sqlite3.IntegrityError, match="CHECK"):
            db.execute("UPDATE probes SET state='lost'")
