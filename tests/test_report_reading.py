"""Reports as people read them, from a real bisect and isolate under a real 300MB RLIMIT_AS on the
local cluster, and a real triage of a runner-style test suite.

Markdown never prints `None` and quotes the threshold level's stderr; the HTML memory chart draws
the memory limit; isolate probes are named by the dimension value they tried (`memory_mb=276`) in
every format; JUnit numbers are rounded; the triage table never cuts a function name or a path.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import xmlschema

from tests.test_report_support import JUNIT_XSD, MEMORY_LADDER, probe

ROOT = Path(__file__).resolve().parent.parent
SUITE = (Path(__file__).parent / "assets" / "runner_suite").resolve()
_SVG_NS = "{http://www.w3.org/2000/svg}"


@pytest.fixture(scope="module")
def isolated(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A bisect of the memory ladder under a real 300MB limit, then isolation of its threshold.

    The bisect checks both ends first, so level 8 fails before level 5 is found: the first
    failing probe is not the threshold level's. Isolation then tries memory_mb values alone.
    """
    workdir = tmp_path_factory.mktemp("reading")
    res = probe(
        workdir, "bisect", "--ladder", str(MEMORY_LADDER), "--memory", "300MB", "--isolate", "--json", "--quiet"
    )
    assert res.code == 0, res.err
    data: dict[str, Any] = res.json()
    assert data["first_fail"] == 5 and data["failure"]["class"] == "oom"
    fails = [p for p in data["probes"] if p["verdict"] == "fail" and p["level"] is not None]
    assert fails[0]["level"] != 5  # the top of the ladder was probed first
    assert data["isolate"]["drivers"] == ["memory_mb"]
    assert any(p["spec"] for p in data["probes"])  # isolate probes, each one spec off the ladder
    return workdir, data


def _report(workdir: Path, run_id: str, fmt: str) -> str:
    res = probe(workdir, "report", run_id, "--format", fmt)
    assert res.code == 0, res.err
    return res.out


def _isolate_values(data: dict[str, Any]) -> set[str]:
    """`memory_mb=276` for every memory_mb value isolation tried alone (the two ends are levels)."""
    finding = next(f for f in data["isolate"]["findings"] if f["dimension"] == "memory_mb")
    ends = (finding["low_value"], finding["high_value"])
    return {f"memory_mb={t['value']}" for t in finding["tried"] if t["value"] not in ends}


# -- Markdown ----------------------------------------------------------------------------------------


def test_markdown_never_prints_none(isolated: tuple[Path, dict[str, Any]]) -> None:
    workdir, data = isolated
    md = _report(workdir, data["run_id"], "md")
    assert not re.search(r"\bNone\b", md), md
    # loc is not a driver: it has no threshold, shown as a dash, as every other unknown is.
    row = next(line for line in md.splitlines() if line.startswith("| loc |"))
    assert row.split("|")[4].strip() == "-"
    row = next(line for line in md.splitlines() if line.startswith("| memory_mb |"))
    memory = next(f for f in data["isolate"]["findings"] if f["dimension"] == "memory_mb")
    assert row.split("|")[4].strip() == str(memory["threshold"])


def test_markdown_stderr_block_is_the_threshold_levels(isolated: tuple[Path, dict[str, Any]]) -> None:
    workdir, data = isolated
    md = _report(workdir, data["run_id"], "md")
    block = md[md.index("<details>") :]
    assert block.startswith("<details><summary>stderr of level 5 ")
    assert "workload_5" in block and "MemoryError" in block
    assert "workload_8" not in block


# -- HTML --------------------------------------------------------------------------------------------


def _peak_memory_chart(page: str) -> ET.Element:
    start = page.index('<svg xmlns="http://www.w3.org/2000/svg"', page.index("Peak memory and wall time"))
    svg = ET.fromstring(page[start : page.index("</svg>", start) + len("</svg>")])
    assert svg.get("aria-label") == "peak memory"
    return svg


def test_html_memory_chart_draws_the_memory_limit(isolated: tuple[Path, dict[str, Any]]) -> None:
    workdir, data = isolated
    svg = _peak_memory_chart(_report(workdir, data["run_id"], "html"))
    limit = [el for el in svg.iter(f"{_SVG_NS}line") if el.get("class") == "limit"]
    assert len(limit) == 1, "one line at the run's memory limit"
    label = [el for el in svg.iter(f"{_SVG_NS}text") if el.get("class") == "limit"]
    assert [el.text for el in label] == ["memory limit 300MB"]
    # The probes peaked just under the 300MB limit: the line is above every bar, and close to the
    # tallest (the chart's scale includes the limit).
    y_limit = float(limit[0].get("y1", "nan"))
    assert limit[0].get("y1") == limit[0].get("y2")
    tops = [float(r.get("y", "nan")) for r in svg.iter(f"{_SVG_NS}rect")]
    heights = [float(r.get("height", "nan")) for r in svg.iter(f"{_SVG_NS}rect")]
    assert tops and y_limit < min(tops)
    tallest = max(heights)
    peak = max(p["peak_rss_mb"] for p in data["probes"] if p["level"] is not None and not p["spec"])
    bottom = min(tops) + tallest
    assert (bottom - y_limit) == pytest.approx(tallest * 300 / peak, rel=0.02)


# -- isolate probes, in every format -----------------------------------------------------------------


def test_isolate_probes_are_labelled_dimension_value(isolated: tuple[Path, dict[str, Any]]) -> None:
    workdir, data = isolated
    run_id = data["run_id"]
    values = _isolate_values(data)
    # The threshold isolation found (it moves with the runner's own footprint) is one of them.
    edge = next(f for f in data["isolate"]["findings"] if f["dimension"] == "memory_mb")["threshold"]
    assert f"memory_mb={edge}" in values

    md = _report(workdir, run_id, "md")
    html = _report(workdir, run_id, "html")
    junit = _report(workdir, run_id, "junit")
    rich = _report(workdir, run_id, "rich")
    # Labels, not ids or "None" (the quoted stderr names the workload file, which may say spec).
    shown = [
        re.sub(r"```text.*?```", "", md, flags=re.S),
        re.sub(r"<pre>.*?</pre>", "", html, flags=re.S),
        " ".join(c.get("name", "") for c in ET.fromstring(junit).iter("testcase")),
        rich,
    ]
    for text in shown:
        assert "spec-" not in text and "level None" not in text
    for value in values:
        assert f"| {value} |" in md
        assert f">{value} #" in html  # the stage timings, one bar per probe
    # The failing isolate probes' stderr, each under its label.
    assert re.search(r"<summary>isolate probe memory_mb=\d+ attempt 1 - oom", html)
    # JUnit: each isolate probe is a testcase named by what it tried.
    names = [c.get("name", "") for c in ET.fromstring(junit).iter("testcase")]
    for value in values:
        assert f"{value} on local" in names
    assert "loc=20 on local" in names  # the passing spec with only loc raised
    assert len(set(names)) == len(names)  # a value probed twice is "memory_mb=276 on local #2"
    # The JSON keeps the spec itself: it is the machine interface.
    doc = json.loads(_report(workdir, run_id, "json"))
    assert any(p["spec"] and p["spec"]["memory_mb"] == edge for p in doc["probes"])


# -- JUnit -------------------------------------------------------------------------------------------


def test_junit_numbers_are_rounded_and_the_xml_valid(isolated: tuple[Path, dict[str, Any]]) -> None:
    workdir, data = isolated
    junit = _report(workdir, data["run_id"], "junit")
    xmlschema.XMLSchema(str(JUNIT_XSD)).validate(junit)
    root = ET.fromstring(junit)
    times = [el.get("time", "") for el in root.iter() if el.get("time") is not None]
    assert times and all(re.fullmatch(r"\d+\.\d{3}", t) for t in times), times
    outs = "\n".join(el.text or "" for el in root.iter("system-out"))
    assert "peak_mb=" in outs
    assert not re.findall(r"\d+\.\d{4,}", outs), "no number with more than 3 decimals"
    peaks = re.findall(r"peak_mb=(\S+)", outs)
    assert peaks and all(re.fullmatch(r"\d+\.\d", p) or p == "-" for p in peaks), peaks
    props = {p.get("name"): p.get("value", "") for p in root.iter("property")}
    assert not [v for v in props.values() if re.search(r"\d+\.\d{4,}", v)]
    tests = int(root.get("tests", "0"))
    assert tests == len(root.findall("./testsuite/testcase"))


# -- triage table ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def triaged(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A real triage of the runner-style suite through the source pipeline (6 of 15 fail)."""
    workdir = tmp_path_factory.mktemp("triage")
    (workdir / "probe.toml").write_text("")
    # Its own process, as a user runs it (the measuring of source is then independent of
    # whatever the test process parsed before).
    data: dict[str, Any] = json.loads(
        _probe_cli(workdir, None, "triage", str(SUITE), "--pipeline", "source", "-P", "2", "--json", "-q")
    )
    assert data["counts"]["fail"] == 6
    return workdir, data


def _probe_cli(workdir: Path, columns: int | None, *args: str) -> str:
    """`probe ARGS` in a child process, stdout piped, at COLUMNS columns (or none set)."""
    env = {k: v for k, v in os.environ.items() if k not in ("COLUMNS", "LINES", "PROBE_CONFIG", "PROBE_REPORTS_DIR")}
    if columns is not None:
        env["COLUMNS"] = str(columns)
    where = ["--config", str(workdir / "probe.toml"), "--reports-dir", str(workdir / "reports")]
    proc = subprocess.run(
        [sys.executable, "-m", "threshold_probe", *where, *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


@pytest.mark.parametrize("columns", [80, 100, 124, 200, None], ids=lambda c: f"columns={c or 'piped'}")
def test_triage_table_never_cuts_names_or_paths(triaged: tuple[Path, dict[str, Any]], columns: int | None) -> None:
    workdir, data = triaged
    out = _probe_cli(workdir, columns, "report", data["run_id"])
    if columns is not None:
        assert max(len(line) for line in out.splitlines()) <= columns
    table = out[out.index("\nfunctions") :]
    table = table[: table.index("\nnot probed")]
    header = next(line for line in table.splitlines() if "function" in line and "where" in line)
    assert "verdict" in header and "class" in header  # the answer is never the column dropped
    rows = [line for line in table.splitlines() if line.startswith("│")]
    probed = [f for f in data["functions"] if f["verdict"] != "not probed"]
    assert len(rows) == len(probed)
    for f in probed:
        where = f"{f['file'].rsplit('/', 1)[-1]}:{f['line']}"
        row = next((r for r in rows if f" {f['name']} " in r), None)
        assert row is not None, f"{f['name']} is cut or folded at {columns} columns:\n{table}"
        assert f" {where} " in row and f" {f['verdict']} " in row
        if f["verdict"] == "fail":
            assert f" {f['class']} " in row
    rest = out[out.index("\nnot probed") :]
    for f in data["functions"]:
        if f["verdict"] == "not probed":
            assert f" {f['name']} " in rest, f"{f['name']} is cut or folded at {columns} columns:\n{rest}"
    if columns == 200:
        for short in ("LOC", "CC", "pickle B", "col-0 str", "closure"):
            assert short in header  # room for every column: none dropped


def test_a_run_of_your_function_names_it_in_markdown_and_junit(tmp_path: Path) -> None:
    """`probe run -f FILE:FUNC` has no level: its stderr block and its testcase name the function."""
    target = f"{ROOT / 'tests' / 'assets' / 'functions' / 'crashy.py'}:raises"
    res = probe(tmp_path, "run", "-f", target, "--quiet")
    assert res.code == 1, res.err  # the function raised: a failing run
    md = _report(tmp_path, "latest", "md")
    assert not re.search(r"\bNone\b", md), md
    assert f"<details><summary>stderr of {target} (last " in md.replace("\\_", "_")
    assert "ZeroDivisionError" in md[md.index("<details>") :]
    junit = _report(tmp_path, "latest", "junit")
    xmlschema.XMLSchema(str(JUNIT_XSD)).validate(junit)
    cases = list(ET.fromstring(junit).iter("testcase"))
    assert [c.get("name") for c in cases] == [f"{target} on local"]
    failure = cases[0].find("failure")
    assert failure is not None and failure.get("type") == "exception"


def test_every_field_of_the_json_summary_is_documented() -> None:
    """docs/report-schema.md names every field the shipped JSON Schema holds, for runs and probes."""
    from threshold_probe.render.json import shipped_schema

    doc = (ROOT / "docs" / "report-schema.md").read_text()
    schema = shipped_schema()
    rows = {line.split("|")[1] for line in doc.splitlines() if line.startswith("| `")}
    named = {name for row in rows for name in re.findall(r"`([a-z_]+)`", row)}
    assert not [k for k in schema["properties"] if k not in named]
    probes = next(line for line in doc.splitlines() if line.startswith("| `probes` |"))
    assert not [k for k in schema["$defs"]["ProbeSummary"]["properties"] if f"`{k}`" not in probes]
