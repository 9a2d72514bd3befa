"""The journal (reports/probe.db) in bad shape: each case is one line with the path and what to do.

Real faults only: a journal truncated to zero bytes beside its run folders, a journal with
garbage written over its pages or its header, a reports folder on a real 16 MiB tmpfs that is
full, and a reports folder behind a real read-only bind mount (root ignores file modes, so a
mount is what makes it read-only here). The commands that only read (runs, report, history,
compare) work on the read-only journal.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

ASSETS = Path(__file__).parent / "assets"
RESUME16 = str(ASSETS / "ladders" / "resume16.toml")


def probe(workspace: Path, reports: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PROBE_CONFIG", "PROBE_REPORTS_DIR")}
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
    assert err.count("\n") == 0, err
    assert "Traceback" not in err and "internal error" not in err, err
    flat = " ".join(err.split())
    for w in words:
        assert w in flat, flat
    return flat


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    (tmp_path / "probe.toml").write_text(f'[clusters.local]\ntype = "local"\nworkdir = "{tmp_path / "wd"}"\n')
    return tmp_path


def two_runs(workspace: Path, reports: Path) -> list[str]:
    for level in ("1", "2"):
        res = probe(workspace, reports, "run", "--ladder", RESUME16, "--level", level, "--json")
        assert res.returncode == 0, res.stderr
    runs = json.loads(probe(workspace, reports, "runs", "--json").stdout)
    return [r["run_id"] for r in runs]


def test_zero_byte_journal_beside_run_folders_is_never_replaced(workspace: Path) -> None:
    reports = workspace / "reports"
    two_runs(workspace, reports)
    db = reports / "probe.db"
    db.write_bytes(b"")
    for args in (("runs",), ("run", "--ladder", RESUME16, "--level", "1")):
        res = probe(workspace, reports, *args)
        one_line(res, 3, str(db), "0 bytes", "2 run folders", "backup", "move it away")
        assert db.stat().st_size == 0  # still the user's file, untouched


def test_a_fresh_empty_journal_without_runs_is_fine(workspace: Path) -> None:
    reports = workspace / "reports"
    reports.mkdir()
    (reports / "probe.db").write_bytes(b"")
    res = probe(workspace, reports, "runs")
    assert res.returncode == 0, res.stderr


@pytest.mark.parametrize("where", ["pages", "header"])
def test_corrupted_journal_gives_one_line(workspace: Path, where: str) -> None:
    reports = workspace / "reports"
    run_ids = two_runs(workspace, reports)
    db = reports / "probe.db"
    data = bytearray(db.read_bytes())
    assert len(data) > 8192
    if where == "header":
        data[0:100] = b"\xa5" * 100
    else:
        # Every page after the first (the schema stays readable, the tables do not).
        for off in range(4096, len(data), 4096):
            data[off : off + 4096] = b"\xa5" * min(4096, len(data) - off)
    db.write_bytes(bytes(data))
    for args in (("runs",), ("report", run_ids[0]), ("run", "--ladder", RESUME16, "--level", "1")):
        res = probe(workspace, reports, *args)
        one_line(res, 3, str(db), "damaged", "move it away")


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 16 MiB tmpfs (needs root, as the testbed does)."""
    mnt = tmp_path / "tmpfs"
    mnt.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16m", "tmpfs", str(mnt)], check=True)
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(path: Path) -> None:
    """Fill the file system to its last byte."""
    for n, size in enumerate((65536, 512, 1)):
        try:
            with (path / f"filler{n}").open("wb", buffering=0) as fh:
                while True:
                    fh.write(b"\0" * size)
        except OSError:
            pass


def test_full_disk_gives_one_line_with_the_path(workspace: Path, small_tmpfs: Path) -> None:
    reports = small_tmpfs / "reports"
    res = probe(workspace, reports, "run", "--ladder", RESUME16, "--level", "1")
    assert res.returncode == 0, res.stderr
    fill(small_tmpfs)
    res = probe(workspace, reports, "run", "--ladder", RESUME16, "--level", "2")
    one_line(res, 3, str(reports), "full", "--reports-dir")
    # Reading still works on the full disk.
    assert probe(workspace, reports, "runs").returncode == 0


@pytest.fixture
def read_only_copy(workspace: Path, tmp_path: Path) -> Iterator[tuple[Path, list[str]]]:
    """A reports folder with two runs, seen through a real read-only bind mount."""
    reports = workspace / "reports"
    run_ids = two_runs(workspace, reports)
    # As a CI artifact: only the files, no -wal or -shm beside the journal.
    artifact = tmp_path / "artifact"
    shutil.copytree(reports, artifact, ignore=shutil.ignore_patterns("*-wal", "*-shm"))
    ro = tmp_path / "ro"
    ro.mkdir()
    subprocess.run(["mount", "--bind", str(artifact), str(ro)], check=True)
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(ro)], check=True)
        with pytest.raises(OSError):
            (ro / "probe").write_text("x")  # really read-only, even for root
        yield ro, run_ids
    finally:
        subprocess.run(["umount", "-l", str(ro)], check=False)


def test_read_only_commands_work_on_a_read_only_journal(
    workspace: Path, read_only_copy: tuple[Path, list[str]]
) -> None:
    ro, run_ids = read_only_copy
    runs = probe(workspace, ro, "runs", "--json")
    assert runs.returncode == 0, runs.stderr
    assert {r["run_id"] for r in json.loads(runs.stdout)} == set(run_ids)
    for fmt in ("rich", "md", "html", "junit", "json"):
        res = probe(workspace, ro, "report", run_ids[0], "--format", fmt)
        assert res.returncode == 0, (fmt, res.stderr)
    hist = probe(workspace, ro, "history")
    assert hist.returncode == 0, hist.stderr
    cmp = probe(workspace, ro, "compare", run_ids[1], run_ids[0])
    assert cmp.returncode == 0, cmp.stderr
    # A command that writes says why it cannot, in one line.
    res = probe(workspace, ro, "run", "--ladder", RESUME16, "--level", "1")
    assert res.returncode in (2, 3), res.stderr
    one_line(res, res.returncode, str(ro))


@pytest.mark.parametrize(
    "args",
    [("runs",), ("runs", "--json"), ("history",), ("report", "latest"), ("compare", "a", "b")],
    ids=["runs", "runs-json", "history", "report", "compare"],
)
def test_a_command_that_only_reads_leaves_no_journal_behind(tmp_path: Path, args: tuple[str, ...]) -> None:
    """Run where no journal is yet, a command that only reads says there is nothing, and makes
    neither the reports folder nor a journal in it."""
    reports = tmp_path / "reports"
    res = probe(tmp_path, reports, *args)
    assert res.returncode in (0, 2), (res.returncode, res.stderr)
    assert "Traceback" not in res.stderr
    assert not reports.exists(), sorted(p.name for p in reports.rglob("*"))
