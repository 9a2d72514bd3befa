"""`probe nightly`: real matrix runs on the local cluster, a real regression, a real dead cluster."""

from __future__ import annotations

import json
import re
import sys
import xml.etree.ElementTree as ET
from html import unescape
from pathlib import Path
from typing import Any

import xmlschema

from tests.test_report_support import JUNIT_XSD, MEMORY_LADDER, chromium_dom, probe

NOTIFY_SCRIPT = """\
import pathlib, sys
pathlib.Path(sys.argv[0]).with_name("notified.txt").write_text(sys.argv[1])
"""


def _config(path: Path, memory: str, clusters: list[str], extra: str = "") -> Path:
    path.write_text(
        f"""
[clusters.local]
type = "local"
memory = "{memory}"
{extra}
[nightly]
clusters = {json.dumps(clusters)}
pipelines = ["native"]
ladders = [{json.dumps(str(MEMORY_LADDER))}]
output = "nightly-out"
"""
    )
    return path


def _night(workdir: Path, config: Path, *extra: str) -> tuple[int, dict[str, Any], str]:
    res = probe(workdir, "nightly", "--json", *extra, config=config)
    return res.code, json.loads(res.out), res.err


def test_nightly_names_a_regression_when_the_threshold_moves_down(tmp_path: Path) -> None:
    notify = tmp_path / "notify.py"
    notify.write_text(NOTIFY_SCRIPT)
    marker = tmp_path / "notified.txt"
    command = f"{sys.executable} {notify}"
    loose = _config(tmp_path / "loose.toml", "400MB", ["local"])
    tight = _config(tmp_path / "tight.toml", "250MB", ["local"])

    # Night 1: no baseline yet, nothing can have regressed.
    code, first, err = _night(tmp_path, loose, "--notify-command", command)
    assert code == 0, err
    (cell1,) = first["cells"]
    assert cell1["status"] == "ok" and cell1["baseline"] is None and cell1["first_fail"] is not None
    assert not marker.exists()

    # Night 2: a tighter memory limit lowers the threshold: exit 1, and the regression is named.
    code, second, err = _night(tmp_path, tight, "--notify-command", command)
    assert code == 1, err
    (cell2,) = second["cells"]
    assert cell2["status"] == "regressed" and cell2["baseline"] == cell1["run_id"]
    assert cell2["first_fail"] < cell1["first_fail"] == cell2["baseline_first_fail"]
    moved = f"threshold moved down: first failing level {cell1['first_fail']} -> {cell2['first_fail']}"
    assert moved in cell2["regressions"]
    assert cell2["newly_failing"] == list(range(cell2["first_fail"], cell1["first_fail"]))
    out = tmp_path / "nightly-out"
    assert marker.read_text() == str(out / "nightly.html")

    # The JUnit file fails the new failures and the baseline check, and only those.
    xml = (out / "nightly.junit.xml").read_text()
    xmlschema.XMLSchema(str(JUNIT_XSD)).validate(xml)
    suite = ET.fromstring(xml).find("testsuite")
    assert suite is not None and suite.get("name") == f"local/native/{MEMORY_LADDER}"
    failed = {c.get("name") for c in suite.findall("testcase") if c.find("failure") is not None}
    expected = {f"level {n:03d} on local" for n in cell2["newly_failing"]} | {"threshold against baseline"}
    assert failed == expected
    # The HTML summary names the regression, as Chromium lays it out.
    dom = unescape(chromium_dom(out / "nightly.html", tmp_path / "profile"))
    assert "regressed" in dom and moved in dom
    assert (out / cell2["report"]).is_file()
    # The text output names it too.
    text = probe(tmp_path, "report", cell2["run_id"], "--json").json()
    assert text["first_fail"] == cell2["first_fail"]

    # Night 3: back to the loose limit: the threshold moved up, which is no regression. Its
    # probes were dispatched again although night 1 ran the same workloads under the same limits.
    marker.unlink()
    code, third, err = _night(tmp_path, loose, "--notify-command", command)
    assert code == 0, err
    (cell3,) = third["cells"]
    assert cell3["status"] == "ok" and cell3["threshold_moved"] == "up" and cell3["baseline"] == cell2["run_id"]
    assert not marker.exists()
    run3 = probe(tmp_path, "report", cell3["run_id"], "--json", config=loose).json()
    assert run3["probes"] and not any(p["cached"] for p in run3["probes"])

    # The text form lists the regression by name.
    again = probe(tmp_path, "nightly", config=tight)
    assert again.code == 1
    assert re.search(r"regression local/native/memory: threshold\s+moved\s+down", again.out)


def test_nightly_reports_an_unreachable_cluster_and_still_reports_the_others(tmp_path: Path) -> None:
    dead = """
[clusters.dead]
type = "ssh"
host = "127.0.0.1"
port = 1
connect_timeout = 3
"""
    config = _config(tmp_path / "probe.toml", "300MB", ["local", "dead"], extra=dead)
    code, night, err = _night(tmp_path, config)
    assert code == 3, err
    assert set(night["unreachable"]) == {"dead"}
    cells = {c["cluster"]: c for c in night["cells"]}
    assert cells["dead"]["status"] == "unreachable" and cells["dead"]["run_id"] is None
    assert cells["local"]["status"] == "ok" and cells["local"]["first_fail"] is not None
    assert cells["local"]["run_id"]

    out = tmp_path / "nightly-out"
    xml = (out / "nightly.junit.xml").read_text()
    xmlschema.XMLSchema(str(JUNIT_XSD)).validate(xml)
    root = ET.fromstring(xml)
    names = [s.get("name") for s in root.findall("testsuite")]
    assert f"local/native/{MEMORY_LADDER}" in names and "dead (unreachable)" in names
    errors = root.findall(".//testcase/error")
    assert len(errors) == 1 and errors[0].get("type") == "unreachable"
    page = (out / "nightly.html").read_text()
    assert "Unreachable clusters" in page and "unreachable" in page
    assert night["regressed"] is False and all(c["regressions"] == [] for c in night["cells"])
    assert "connection refused" in night["unreachable"]["dead"]


def test_nightly_bad_matrix_is_exit_2(tmp_path: Path) -> None:
    config = _config(tmp_path / "probe.toml", "300MB", ["local", "nowhere"])
    res = probe(tmp_path, "nightly", config=config)
    assert res.code == 2 and "nowhere" in res.err and "Traceback" not in res.err


def test_nightly_pinned_threshold_and_bisect_kind(tmp_path: Path) -> None:
    pin = f"""
[nightly.baseline]
"local/native/{MEMORY_LADDER}" = 8
"""
    config = _config(tmp_path / "probe.toml", "300MB", ["local"])
    config.write_text(
        config.read_text().replace('output = "nightly-out"', 'output = "nightly-out"\nkind = "bisect"') + pin
    )
    code, night, err = _night(tmp_path, config)
    assert code == 1, err
    assert night["kind"] == "bisect"
    (cell,) = night["cells"]
    assert cell["baseline"] == "pinned:8" and cell["baseline_first_fail"] == 8
    assert cell["regressions"] == [f"threshold moved down: first failing level 8 (pinned) -> {cell['first_fail']}"]
    run = probe(tmp_path, "report", cell["run_id"], "--json", config=config).json()
    assert run["kind"] == "bisect" and len(run["probes"]) < 8

    config.write_text(config.read_text().replace('kind = "bisect"', 'kind = "shrink"'))
    res = probe(tmp_path, "nightly", config=config)
    assert res.code == 2 and "kind" in res.err
