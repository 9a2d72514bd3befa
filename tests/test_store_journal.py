"""The journal (reports/probe.db) and the cache, through the Store API and the CLI."""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from threshold_probe.cli.app import app
from threshold_probe.errors import UserError
from threshold_probe.store import RunInfo, Store, atomic_write

ASSETS = Path(__file__).parent / "assets"
MEMORY = str(ASSETS / "ladders" / "memory.toml")


@pytest.fixture
def store(tmp_path: Path) -> Store:
    return Store(tmp_path / "reports")


def _run(store: Store, run_id: str, kind: str = "bisect", started_at: float = 1.0) -> None:
    store.start_run(
        RunInfo(
            run_id=run_id,
            kind=kind,
            cluster="local",
            pipeline="native",
            ladder="memory",
            status="running",
            started_at=started_at,
        )
    )


def test_the_journal_is_in_wal_mode_and_every_probe_row_starts_dispatched(store: Store) -> None:
    _run(store, "r1")
    store.probe_dispatched("r1", "L001-aaaaaa", 1, 1, "key-1")
    with closing(sqlite3.connect(store.db_path)) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("SELECT state FROM probes").fetchall() == [("dispatched",)]
    assert store.unfinished("r1") == 1


def test_cancel_unfinished_touches_only_that_runs_dispatched_probes(store: Store) -> None:
    _run(store, "r1")
    _run(store, "r2")
    store.probe_dispatched("r1", "p1", 1, 1, "k")
    store.probe_dispatched("r1", "p2", 2, 1, "k2")
    store.probe_dispatched("r2", "p3", 1, 1, "k")
    assert store.cancel_unfinished("r1") == 2
    assert store.cancel_unfinished("r1") == 0
    assert store.unfinished("r1") == 0 and store.unfinished("r2") == 1
    with closing(sqlite3.connect(store.db_path)) as db:
        states = dict(db.execute("SELECT probe_id, state FROM probes").fetchall())
    assert states == {"p1": "cancelled", "p2": "cancelled", "p3": "dispatched"}


def test_a_partial_summary_loads_before_the_run_ends(store: Store) -> None:
    _run(store, "r1")
    store.save_partial("r1", {"run_id": "r1", "status": "running", "probes": []})
    info = store.get_run("r1")
    assert info.status == "running" and info.summary == {"run_id": "r1", "status": "running", "probes": []}
    assert json.loads((store.run_dir("r1") / "run.json").read_text())["status"] == "running"
    store.finish_run("r1", "completed", {"run_id": "r1", "status": "completed"})
    assert store.get_run("r1").status == "completed"


def test_atomic_write_replaces_whole_files_and_leaves_no_temporary_file(tmp_path: Path) -> None:
    target = tmp_path / "out" / "run.json"
    atomic_write(target, "old")
    atomic_write(target, b"new")
    assert target.read_text() == "new"
    assert [p.name for p in target.parent.iterdir()] == ["run.json"]


def test_run_ids_resolve_by_prefix_and_unknown_ones_are_user_errors(store: Store) -> None:
    _run(store, "20260101-000000-bisect-aaaa", started_at=1)
    _run(store, "20260101-000000-sweep-bbbb", kind="sweep", started_at=2)
    assert store.get_run("20260101-000000-bis").run_id == "20260101-000000-bisect-aaaa"
    assert store.get_run("latest").run_id == "20260101-000000-sweep-bbbb"
    with pytest.raises(UserError):
        store.get_run("20260101")  # two runs share that prefix
    with pytest.raises(UserError):
        store.get_run("nope")
    assert [r.run_id for r in store.runs(kind="sweep")] == ["20260101-000000-sweep-bbbb"]


def test_an_unreadable_journal_is_one_line_exit_3(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    reports.mkdir()
    (reports / "probe.db").write_bytes(b"this is not a database" * 100)
    result = CliRunner().invoke(app, ["--reports-dir", str(reports), "runs"], env={"PROBE_CONFIG": None})
    assert result.exit_code == 3
    assert "is damaged" in result.stderr and "Traceback" not in result.stderr


# -- the cache, through the CLI ----------------------------------------------------------------


def sweep(tmp_path: Path, *args: str) -> dict[str, Any]:
    (tmp_path / "probe.toml").touch()
    result = CliRunner().invoke(
        app,
        [
            "--config",
            str(tmp_path / "probe.toml"),
            "--reports-dir",
            str(tmp_path / "reports"),
            "sweep",
            "--ladder",
            MEMORY,
            "--to",
            "5",
            "--json",
            "--quiet",
            *args,
        ],
        env={"PROBE_REPORTS_DIR": None},
    )
    assert result.exit_code == 0, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def test_repeats_reuse_one_cached_verdict_each_and_more_repeats_dispatch(tmp_path: Path) -> None:
    first = sweep(tmp_path, "--memory", "300MB", "--repeat", "2", "--fresh")
    assert not any(p["cached"] for p in first["probes"])
    second = sweep(tmp_path, "--memory", "300MB", "--repeat", "2")
    assert all(p["cached"] for p in second["probes"])
    assert (second["last_pass"], second["first_fail"]) == (first["last_pass"], first["first_fail"])
    with closing(sqlite3.connect(tmp_path / "reports" / "probe.db")) as db:
        sources = [
            json.loads(r)["cached_from"]
            for (r,) in db.execute("SELECT record FROM probes WHERE run_id=?", (second["run_id"],))
        ]
    originals = {p["probe_id"] for p in first["probes"]}
    assert sorted(sources) == sorted(originals)  # each earlier probe stands in for exactly one ask

    # A third repeat has no earlier verdict to reuse: it really runs.
    third = sweep(tmp_path, "--memory", "300MB", "--repeat", "3")
    fresh = [p for p in third["probes"] if not p["cached"]]
    assert sorted(p["attempt"] for p in fresh) == [3] * 5

    # Other limits are another probe: nothing is reused.
    other = sweep(tmp_path, "--memory", "400MB")
    assert not any(p["cached"] for p in other["probes"])
