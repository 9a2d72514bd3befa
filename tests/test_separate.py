"""The separator search of probe triage: single rules, their support, and the best pair."""

from __future__ import annotations

import time
from typing import Literal

from threshold_probe.separate import split
from threshold_probe.triage import TriageFunction, build_report


def test_a_single_feature_separates_with_its_support() -> None:
    failing = [{"multiline_strings_col0": 1, "loc": 7}, {"multiline_strings_col0": 2, "loc": 160}]
    passing = [{"multiline_strings_col0": 0, "loc": n} for n in (2, 5, 150, 200)]
    found = split(failing, passing)
    best = found.separators[0]
    assert best.feature == "multiline_strings_col0"
    assert best.statement() == "fails iff multiline_strings_col0 >= 1: 2 of 2 fail, 0 of 4 pass"
    loc = next(r for r in found.sizes if r.feature == "loc")
    assert not loc.separates and loc.op == ">="
    assert found.pair is None


def test_no_single_feature_then_the_best_pair() -> None:
    # Two causes: a closure or a column-0 string; neither alone catches every failure.
    failing = [
        {"closure_refs": 1, "multiline_strings_col0": 0, "loc": 3},
        {"closure_refs": 0, "multiline_strings_col0": 1, "loc": 4},
        {"closure_refs": 2, "multiline_strings_col0": 0, "loc": 9},
    ]
    passing = [{"closure_refs": 0, "multiline_strings_col0": 0, "loc": n} for n in (2, 3, 8, 300)]
    found = split(failing, passing)
    assert found.separators == []
    assert found.best is not None and not found.best.separates
    assert found.pair is not None and found.pair.separates and found.pair.join == "or"
    assert {found.pair.first.feature, found.pair.second.feature} == {"closure_refs", "multiline_strings_col0"}
    assert found.pair.statement().endswith("3 of 3 fail, 0 of 4 pass")


def _row(name: str, verdict: Literal["pass", "fail"], cls: str | None, **metrics: int) -> TriageFunction:
    return TriageFunction(
        file="t.py",
        line=1,
        name=name,
        target=f"t.py:{name}",
        scope="nested",
        metrics=dict(metrics),
        verdict=verdict,
        failure_class=cls,
        signature=f"{cls}:X" if cls else None,
    )


def test_the_conclusion_says_when_no_single_feature_separates() -> None:
    rows = [
        _row("a", "fail", "name", closure_refs=1, global_refs=0, loc=3),
        _row("b", "fail", "name", closure_refs=0, global_refs=1, loc=4),
        _row("c", "pass", None, closure_refs=0, global_refs=0, loc=200),
        _row("d", "pass", None, closure_refs=0, global_refs=0, loc=2),
    ]
    report = build_report(
        run_id="r",
        status="completed",
        cluster="local",
        pipeline="source",
        paths=["t"],
        functions=rows,
        file_errors=[],
        started_at=time.time(),
        limits={},
        cluster_info={},
        params={},
        reports_dir="/tmp",
    )
    (group,) = report.groups
    assert any(line.startswith("no single feature separates them") for line in group.findings)
    assert "no single feature separates it" in report.conclusion and "the best pair is" in report.conclusion
    assert "closure_refs >= 1 or global_refs >= 1" in report.conclusion
