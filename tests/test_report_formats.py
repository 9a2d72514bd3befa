"""`probe report` in every format, from a sweep through the CLI on the in-process cluster.

What is rendered is the point here: the levels pass until level 5, whose function raises
MemoryError under the 300MB limit. The same reports from runs under real limits on real servers
are tested in test_report_testbed.py; a real MemoryError under RLIMIT_AS in test_diagnose_local.py.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import xmlschema

from tests.inprocess_cluster import Raise, first_fail, routed
from tests.test_report_support import JUNIT_XSD, probe, real_sweep
from threshold_probe.render.json import schema_text, shipped_schema
from threshold_probe.summary import SCHEMA_VERSION, RunSummary


@pytest.fixture(scope="module")
def swept(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """One sweep: levels pass until level 5 raises MemoryError under the 300MB limit."""
    workdir = tmp_path_factory.mktemp("report")
    with routed(first_fail(5, Raise("MemoryError"))) as cluster:
        data = real_sweep(workdir, "300MB")
    assert cluster.levels == list(range(1, 9))
    assert data["first_fail"] == 5 and data["failure"]["class"] == "oom"
    return workdir, data


def test_rich_report_shows_header_levels_verdict_and_timings(swept: tuple[Path, dict[str, Any]]) -> None:
    workdir, data = swept
    res = probe(workdir, "report", "latest")
    assert res.code == 0, res.err
    out = res.out
    ff = data["first_fail"]
    for text in (data["run_id"], "cluster", "local", "native", "memory", "python", "memory 300MB"):
        assert text in out
    # The level table: one row per level, the first failing one marked fail with its class.
    rows = {int(m.group(1)): m.group(0) for m in re.finditer(r"^│\s+(\d+) │.*$", out, re.M)}
    assert sorted(rows) == list(range(1, 9))
    assert "fail" in rows[ff] and "oom" in rows[ff]
    assert "pass" in rows[ff - 1] and "oom" not in rows[ff - 1]
    assert f"level {ff} is the first to fail (oom); level {ff - 1} is the last to pass" in out
    assert "MemoryError" in out  # evidence from stderr
    for stage in ("startup", "execute", "wall"):
        assert stage in out


def test_json_report_is_the_versioned_summary(swept: tuple[Path, dict[str, Any]]) -> None:
    workdir, data = swept
    res = probe(workdir, "report", data["run_id"], "--json")
    assert res.code == 0, res.err
    doc = json.loads(res.out)
    assert doc["schema_version"] == SCHEMA_VERSION
    assert doc["first_fail"] == data["first_fail"] and doc["failure"]["class"] == "oom"
    assert {p["level"] for p in doc["probes"]} == set(range(1, 9))
    # It round-trips through the model and matches --format json.
    assert RunSummary.model_validate(doc).run_id == data["run_id"]
    again = probe(workdir, "report", data["run_id"], "--format", "json")
    assert json.loads(again.out) == doc
    # Every top-level key is declared by the shipped JSON Schema.
    schema = shipped_schema()
    assert set(doc) <= set(schema["properties"])
    assert set(schema["required"]) <= set(doc)


def test_shipped_schema_equals_the_regenerated_one() -> None:
    shipped = Path(__file__).parents[1] / "threshold_probe" / "schema" / "run-summary.schema.json"
    assert shipped.read_text() == schema_text(), "regenerate with: python -m threshold_probe.schema"


def test_markdown_report_has_verdict_table_and_evidence(swept: tuple[Path, dict[str, Any]]) -> None:
    workdir, data = swept
    res = probe(workdir, "report", "--format", "md")
    assert res.code == 0, res.err
    md, ff = res.out, data["first_fail"]
    assert md.startswith("## threshold-probe: local / native / memory")
    assert f"level {ff} is the first to fail (oom)" in md
    assert "| level | LOC | subprocess calls | CC | pickle bytes | verdict | wall | peak MB | failure class |" in md
    assert re.search(rf"^\| \*\*{ff}\*\* \|.*\| \*\*fail\*\* \|.*\| oom \|$", md, re.M)
    assert len(re.findall(r"^\| \d+ \|", md, re.M)) == 7  # the other seven levels
    assert "```text" in md and "MemoryError" in md


def test_junit_report_is_valid_and_names_the_failure(swept: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    workdir, data = swept
    target = tmp_path / "sub" / "report.xml"
    res = probe(workdir, "report", "--format", "junit", "-o", str(target))
    assert res.code == 0, res.err
    assert res.out == ""  # -o: the report goes to the file only
    xml = target.read_text()
    xmlschema.XMLSchema(str(JUNIT_XSD)).validate(xml)
    root = ET.fromstring(xml)
    cases = root.findall("./testsuite/testcase")
    assert len(cases) == 8 and all("on local" in c.get("name", "") for c in cases)
    # A sweep is run to find failing levels: without a gate they are findings, not test failures,
    # and the threshold is a property of the suite.
    assert root.get("failures") == "0" and not [c for c in cases if c.find("failure") is not None]
    props = {p.get("name"): p.get("value") for p in root.findall("./testsuite/properties/property")}
    assert props["first_fail"] == str(data["first_fail"]) and props["failure_class"] == "oom"
    first = next(c for c in cases if f"level {data['first_fail']:03d}" in c.get("name", ""))
    out = first.find("system-out")
    assert out is not None and "finding, not a test failure: oom" in (out.text or "")
    assert data["failure"]["signature"] in (out.text or "")
    err = first.find("system-err")
    assert err is not None and "MemoryError" in (err.text or "")
    # No leftover temporary file beside the report: it was written atomically.
    assert [p.name for p in target.parent.iterdir()] == ["report.xml"]


def test_html_report_is_self_contained(swept: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    workdir, _data = swept
    target = tmp_path / "report.html"
    res = probe(workdir, "report", "--format", "html", "-o", str(target))
    assert res.code == 0, res.err
    page = target.read_text()
    assert page.startswith("<!DOCTYPE html>")
    # Nothing to fetch: no scripts, stylesheets, images or fonts from anywhere.
    assert not re.search(r"<(script|link|img|iframe)\b", page)
    assert not re.search(r"(src|href)\s*=\s*[\"']?(https?:)?//", page)
    assert "url(" not in page
    assert page.count("<svg") >= 7  # 4 metrics, memory, wall time, stage timings
    assert "MemoryError" in page


def test_rich_report_to_file_is_plain_text(swept: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    workdir, data = swept
    target = tmp_path / "report.txt"
    res = probe(workdir, "report", data["run_id"][:20], "-o", str(target))
    assert res.code == 0, res.err
    text = target.read_text()
    assert "\x1b[" not in text and data["run_id"] in text and "verdict" in text


def test_bad_input_is_one_line_exit_2(swept: tuple[Path, dict[str, Any]]) -> None:
    workdir, _ = swept
    for args in (("report", "no-such-run"), ("report", "--format", "pdf")):
        res = probe(workdir, *args)
        assert res.code == 2
        assert len(res.err.strip().splitlines()) == 1 and "Traceback" not in res.err
