"""`probe history`: the threshold of every past run over time, from real local runs."""

from __future__ import annotations

from pathlib import Path

from tests.test_report_support import probe, real_sweep
from threshold_probe.history import SPARK_BLOCKS


def test_history_lists_thresholds_oldest_first_with_a_sparkline(tmp_path: Path) -> None:
    # Three real sweeps under tighter and tighter memory limits: the threshold moves down.
    runs = [real_sweep(tmp_path, mem) for mem in ("400MB", "300MB", "250MB")]
    thresholds = [r["first_fail"] for r in runs]
    assert thresholds[0] > thresholds[2] and thresholds == sorted(thresholds, reverse=True)

    res = probe(tmp_path, "history", "--json")
    assert res.code == 0, res.err
    data = res.json()
    assert [r["run_id"] for r in data["runs"]] == [r["run_id"] for r in runs]
    assert [r["first_fail"] for r in data["runs"]] == thresholds
    assert all(r["failure_class"] == "oom" for r in data["runs"])
    cell = data["cells"]["local/native/memory"]
    assert cell["first_fail"] == thresholds
    spark = cell["sparkline"]
    assert len(spark) == 3 and spark[0] == SPARK_BLOCKS[-1] and spark[-1] == SPARK_BLOCKS[0]

    table = probe(tmp_path, "history", "--ladder", "memory")
    assert table.code == 0, table.err
    assert spark in table.out and f"{thresholds[0]} -> {thresholds[-1]}" in table.out
    for r in runs:
        assert r["run_id"] in table.out

    # Filters that match nothing give an empty history, not an error.
    empty = probe(tmp_path, "history", "--cluster", "elsewhere", "--json")
    assert empty.code == 0 and empty.json() == {"runs": [], "cells": {}}
