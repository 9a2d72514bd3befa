"""Renderers on hand-built summaries: the cases a local run cannot produce on demand
(infrastructure skips, hostile stderr, isolate findings, flaky bands)."""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from pathlib import Path

import xmlschema

from tests.test_report_support import JUNIT_XSD
from threshold_probe.models import JobResult, Observation, ProbeRecord, Verdict
from threshold_probe.render import render
from threshold_probe.render.html import nice_ticks
from threshold_probe.summary import FailureSummary, LevelRow, ProbeSummary, RunSummary

HOSTILE = "bad \x1b[31mred\x1b[0m <script>alert('x')</script> & \x00 nul ]]> end"


def _record(probe_id: str, level: int, status: str, stderr: str, stderr_path: Path | None = None) -> ProbeRecord:
    fclass = {"fail": "exception", "skip": None, "pass": None}[status]
    return ProbeRecord(
        run_id="r1",
        probe_id=probe_id,
        level=level,
        workload_hash="abc",
        observation=Observation(
            probe_id=probe_id,
            level=level,
            workload=f"L{level}",
            cluster="edge<1>",
            pipeline="native",
            started_at=time.time(),
            wall_s=0.5,
            job=JobResult(
                stderr_tail=stderr,
                stderr_path=stderr_path,
                infra_error="connection refused" if status == "skip" else None,
            ),
        ),
        verdict=Verdict(
            status=status,  # type: ignore[arg-type]
            failure_class=fclass,
            signature="exception:ValueError:<boom>" if fclass else None,
            explanation="connection refused" if status == "skip" else None,
            evidence=[HOSTILE] if fclass else [],
        ),
    )


def _summary() -> tuple[RunSummary, list[ProbeRecord]]:
    levels = [
        LevelRow(level=1, metrics={"loc": 10, "subprocess_calls": 1, "cc": 2, "pickle_bytes": 800}, summary="good"),
        LevelRow(level=2, metrics={"loc": 20, "subprocess_calls": 2, "cc": 3, "pickle_bytes": 1600}, summary="skip"),
        LevelRow(level=3, metrics={"loc": 30, "subprocess_calls": 3, "cc": 4, "pickle_bytes": 2400}, summary="flaky"),
        LevelRow(
            level=4,
            metrics={"loc": 40, "subprocess_calls": 4, "cc": 5, "pickle_bytes": 3200},
            summary="bad",
            failure_class="exception",
        ),
    ]
    outcomes = [(1, "pass"), (2, "skip"), (3, "pass"), (3, "fail"), (4, "fail")]
    probes = [
        ProbeSummary(
            probe_id=f"p{i}",
            level=lvl,
            verdict=st,  # type: ignore[arg-type]
            failure_class="exception" if st == "fail" else None,
            signature="exception:ValueError:<boom>" if st == "fail" else None,
            timings={"startup": 0.01, "execute": 0.1 * lvl},
            wall_s=0.2 * lvl,
            peak_rss_mb=20.0 * lvl,
        )
        for i, (lvl, st) in enumerate(outcomes)
    ]
    summary = RunSummary(
        run_id="r1",
        kind="bisect",
        cluster="edge<1>",
        pipeline="native",
        ladder="lad & der",
        started_at=time.time(),
        first_fail=4,
        last_pass=1,
        flaky_band=[3],
        failure=FailureSummary(failure_class="exception", signature="exception:ValueError:<boom>", evidence=[HOSTILE]),
        levels=levels,
        probes=probes,
        isolate={
            "drivers": ["memory_mb"],
            "findings": [
                {"dimension": "memory_mb", "sufficient": True, "necessary": True, "threshold": 240},
                {"dimension": "loc", "sufficient": False, "necessary": False},
            ],
            "message": "memory_mb alone drives the failure",
        },
    )
    records = [_record(p.probe_id, p.level or 0, p.verdict, HOSTILE if p.verdict == "fail" else "") for p in probes]
    return summary, records


def test_junit_skip_failure_and_hostile_stderr_are_valid() -> None:
    summary, records = _summary()
    xml = render(summary, "junit", records)
    xmlschema.XMLSchema(str(JUNIT_XSD)).validate(xml)
    suite = ET.fromstring(xml).find("testsuite")
    assert suite is not None
    # A bisect's failing levels are findings: no test failure without a gate.
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("4", "0", "1")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    skipped = cases["level 002 on edge<1>"].find("skipped")
    assert skipped is not None and "connection refused" in (skipped.get("message") or "")
    assert "finding, not a test failure: exception" in (cases["level 004 on edge<1>"].findtext("system-out") or "")
    # With a gate through level 4, the flaky level 3 and the failing level 4 fail the suite.
    summary.params = {"options": {"expect_pass_through": 4}}
    xml = render(summary, "junit", records)
    xmlschema.XMLSchema(str(JUNIT_XSD)).validate(xml)
    suite = ET.fromstring(xml).find("testsuite")
    assert suite is not None
    assert (suite.get("tests"), suite.get("failures"), suite.get("skipped")) == ("4", "2", "1")
    cases = {c.get("name"): c for c in suite.findall("testcase")}
    fail = cases["level 004 on edge<1>"].find("failure")
    assert fail is not None and fail.get("type") == "exception"
    assert fail.get("message") == "exception: exception:ValueError:<boom>"
    err = cases["level 004 on edge<1>"].find("system-err")
    # Terminal control sequences are stripped (they would also be invalid XML); the rest survives intact.
    assert err is not None and "red" in (err.text or "") and "<script>" in (err.text or "")
    assert "\x1b" not in (err.text or "") and "[31m" not in (err.text or "")


def test_html_escapes_everything_and_shows_isolate_and_flaky(tmp_path: Path) -> None:
    summary, records = _summary()
    full = tmp_path / "stderr.log"
    full.write_text("first line of the full log\n" + HOSTILE + "\n")
    records[-1] = _record("p4", 4, "fail", "tail only", stderr_path=full)
    page = render(summary, "html", records)
    assert "<script>" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "edge&lt;1&gt;" in page and "lad &amp; der" in page
    # The full log from disk is preferred over the journal's tail.
    assert "first line of the full log" in page
    assert "Dimension attribution (isolate)" in page and ">memory_mb</text>" in page
    assert "Flaky band:" in page and "levels 3..3" in page


def test_terminal_and_markdown_show_isolate_and_flaky() -> None:
    summary, records = _summary()
    text = render(summary, "rich", records)
    assert "memory_mb (driver)" in text and "flaky band" in text and "levels 3..3" in text
    md = render(summary, "md", records)
    assert "### Isolate" in md and "| memory_mb | yes | yes | 240 | yes |" in md
    assert "**Flaky band:** levels 3..3" in md


def test_nice_ticks_cover_the_maximum() -> None:
    for vmax in (0.0, 0.003, 1.0, 7.0, 99.0, 101.0, 12345.0):
        ticks = nice_ticks(vmax)
        assert ticks[0] == 0 and ticks[-1] >= vmax and 2 <= len(ticks) <= 7
