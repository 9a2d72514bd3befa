"""The journal and report files: readable by others, and safe to open from many processes at once."""

from __future__ import annotations

import multiprocessing
import os
import stat
from pathlib import Path

from threshold_probe.store import Store, atomic_write


def test_atomic_write_gives_the_mode_a_plain_open_would(tmp_path: Path) -> None:
    target = tmp_path / "report.html"
    atomic_write(target, "<html></html>")
    plain = tmp_path / "plain.html"
    plain.write_text("x")
    assert stat.S_IMODE(target.stat().st_mode) == stat.S_IMODE(plain.stat().st_mode)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def _open_and_list(path: str) -> int:
    store = Store(Path(path))
    try:
        return len(store.runs())
    finally:
        store.close()


def test_many_processes_open_one_new_journal_at_once(tmp_path: Path) -> None:
    # Each round starts from no journal at all, where the switch to WAL mode races.
    ctx = multiprocessing.get_context("fork" if hasattr(os, "fork") else "spawn")
    for round_ in range(25):
        folder = tmp_path / f"r{round_}"
        with ctx.Pool(16) as pool:
            assert pool.map(_open_and_list, [str(folder)] * 32) == [0] * 32
