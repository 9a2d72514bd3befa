"""`probe history`: the threshold of every past run over time, from real local runs."""

from __future__ import annotations

from pathlib import Path

from tests.test_report_support import probe, real_sweep, sweep_under_data_limit
from threshold_probe.history import SPARK_BLOCKS


def test_history_lists_thresholds_oldest_first_with_a_sparkline(tmp_path: Path) -> None:
    # Three real sweeps of one cell; the third under a real RLIMIT_DATA of 200 MiB that the
    # machine imposes (probe.toml, limits and interpreter unchanged): the threshold moves down.
    runs = [real_sweep(tmp_path, "400MB", "--fresh"), real_sweep(tmp_path, "400MB", "--fresh")]
    runs.append(sweep_under_data_limit(tmp_path, "400MB", 200 * 1024**2))
    thresholds = [r["first_fail"] for r in runs]
    assert thresholds[0] == thresholds[1] > thresholds[2]

    res = probe(tmp_path, "history", "--json")
    assert res.code == 0, res.err
    data = res.json()
    assert [r["run_id"] for r in data["runs"]] == [r["run_id"] for r in runs]
    assert [r["first_fail"] for r in data["runs"]] == thresholds
    assert all(r["failure_class"] == "oom" for r in data["runs"])
    (cell,) = data["cells"].values()
    assert cell["label"] == "local/native/memory, memory 400MB, time 120s, levels 1..8"
    assert cell["first_fail"] == thresholds
    spark = cell["sparkline"]
    assert len(spark) == 3 and spark[0] == spark[1] == SPARK_BLOCKS[-1] and spark[-1] == SPARK_BLOCKS[0]

    table = probe(tmp_path, "history", "--ladder", "memory")
    assert table.code == 0, table.err
    assert spark in table.out and f"{thresholds[0]} -> {thresholds[-1]}" in table.out
    for r in runs:
        assert r["run_id"] in table.out

    # Filters that match nothing give an empty history, not an error.
    empty = probe(tmp_path, "history", "--cluster", "elsewhere", "--json")
    assert empty.code == 0 and empty.json() == {"runs": [], "cells": {}}
