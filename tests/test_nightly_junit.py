"""The night's JUnit file says what the baseline was, in words, never Python's `None`."""

from __future__ import annotations

from pathlib import Path

from tests.inprocess_cluster import Raise, first_fail, routed
from tests.test_report_support import real_sweep
from threshold_probe.render.nightly import nightly_junit
from threshold_probe.store import Store
from threshold_probe.summary import RunSummary
from threshold_probe.view import run_view
from threshold_probe.view.nightly import NightCellView, NightlyCell


def test_a_regression_against_a_baseline_without_failure_says_none(tmp_path: Path) -> None:
    with routed(first_fail(5, Raise("MemoryError"))):
        data = real_sweep(tmp_path, "300MB")
    store = Store(tmp_path / "reports", readonly=True)
    summary = RunSummary.model_validate(store.get_run(data["run_id"]).summary)
    view = run_view(summary, store.probes(summary.run_id))
    # The baseline passed every level; tonight's run fails from level 5.
    cell = NightlyCell(
        cluster="local",
        pipeline="native",
        ladder="memory",
        status="regressed",
        run_id=summary.run_id,
        baseline="20261130-000000-sweep-abcd",
        baseline_first_fail=None,
        first_fail=5,
        regressions=["first fail none -> 5"],
    )
    xml = nightly_junit([NightCellView(cell, view)], {})
    assert "None" not in xml
    assert "baseline 20261130-000000-sweep-abcd (first fail none); now first fail 5" in xml
