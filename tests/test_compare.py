"""`probe compare`: threshold moves, flipped levels and changes beyond noise, from real local runs."""

from __future__ import annotations

from pathlib import Path

from tests.test_report_support import probe, real_sweep, sweep_under_data_limit
from threshold_probe.compare import beyond_noise


def test_compare_names_the_threshold_move_and_the_flipped_levels(tmp_path: Path) -> None:
    # One cell (same config, limits, interpreter and levels); then the machine caps each
    # process's data at 200 MiB, a real change of the far side that lowers the threshold.
    a = real_sweep(tmp_path, "400MB")
    b = sweep_under_data_limit(tmp_path, "400MB", 200 * 1024**2)
    assert b["cell"] == a["cell"] and not any(p["cached"] for p in b["probes"])
    assert b["first_fail"] < a["first_fail"]

    res = probe(tmp_path, "compare", a["run_id"], b["run_id"], "--json")
    assert res.code == 0, res.err
    cmp = res.json()
    assert cmp["same_cell"] is True and cmp["differences"] == []
    assert cmp["threshold_moved"] == "down" and cmp["regressed"] is True
    assert (cmp["first_fail_a"], cmp["first_fail_b"]) == (a["first_fail"], b["first_fail"])
    # Exactly the levels between the two thresholds flipped from pass to fail.
    flipped = {f["level"]: f for f in cmp["flipped"]}
    assert sorted(flipped) == list(range(b["first_fail"], a["first_fail"]))
    assert all(f["before"] == "pass" and f["after"] == "fail" and f["regression"] for f in flipped.values())
    assert all(f["class_after"] == "oom" for f in flipped.values())
    assert f"threshold moved down: first failing level {a['first_fail']} -> {b['first_fail']}" in cmp["regressions"]
    # Same ladder, same source: the static metrics did not change.
    assert not [m for m in cmp["metric_changes"] if m["metric"] in ("LOC", "CC", "pickle bytes")]

    # The reverse direction is an improvement, not a regression.
    back = probe(tmp_path, "compare", b["run_id"], a["run_id"], "--json").json()
    assert back["threshold_moved"] == "up" and back["regressed"] is False
    assert all(not f["regression"] for f in back["flipped"])

    text = probe(tmp_path, "compare", a["run_id"], b["run_id"])
    assert text.code == 0 and "regression:" in text.out and "levels that flipped" in text.out

    same = probe(tmp_path, "compare", a["run_id"], a["run_id"], "--json").json()
    assert same["threshold_moved"] == "same" and same["flipped"] == [] and same["timing_changes"] == []


def test_noise_rule() -> None:
    # Needs both 50 ms and 20 %: 40 ms on a 10 ms stage is noise, as is 100 ms on a 1 s stage.
    assert not beyond_noise([0.010], [0.050])
    assert not beyond_noise([1.0], [1.1])
    assert beyond_noise([1.0], [1.3])
    # With three or more probes a side, it must also beat 3 x MAD.
    assert not beyond_noise([1.0, 1.5, 0.6, 1.4, 0.5], [1.3, 1.9, 0.8, 1.8, 0.9])
    assert beyond_noise([1.0, 1.02, 0.98], [1.5, 1.52, 1.49])
    assert not beyond_noise([], [1.0])
