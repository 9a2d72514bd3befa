"""`probe nightly`: real matrix runs on the local cluster, a real regression, a real dead cluster."""

from __future__ import annotations

import json
import re
import sqlite3
import sys
import time
import xml.etree.ElementTree as ET
from html import unescape
from pathlib import Path
from typing import Any

import xmlschema

from tests.test_report_support import JUNIT_XSD, MEMORY_LADDER, chromium_dom, probe, probe_under_data_limit

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


#: A real cap the machine puts on each process's data (RLIMIT_DATA), outside probe.toml.
DATA_CAP = 200 * 1024**2


def _junit_baseline_case(out: Path) -> ET.Element:
    xml = (out / "nightly.junit.xml").read_text()
    xmlschema.XMLSchema(str(JUNIT_XSD)).validate(xml)
    suite = ET.fromstring(xml).find("testsuite")
    assert suite is not None and suite.get("name") == f"local/native/{MEMORY_LADDER}"
    (case,) = [c for c in suite.findall("testcase") if c.get("name") == "threshold against baseline"]
    return case


def test_a_config_change_is_a_new_baseline_and_only_a_changed_result_regresses(tmp_path: Path) -> None:
    notify = tmp_path / "notify.py"
    notify.write_text(NOTIFY_SCRIPT)
    marker = tmp_path / "notified.txt"
    command = f"{sys.executable} {notify}"
    loose = _config(tmp_path / "loose.toml", "400MB", ["local"])
    tight = _config(tmp_path / "tight.toml", "250MB", ["local"])
    out = tmp_path / "nightly-out"

    # Night 1: no baseline yet, nothing can have regressed.
    code, first, err = _night(tmp_path, loose, "--notify-command", command)
    assert code == 0, err
    (cell1,) = first["cells"]
    assert cell1["status"] == "ok" and cell1["baseline"] is None and cell1["first_fail"] is not None
    assert not marker.exists()

    # Night 2: lower memory in probe.toml. Another cell, so a new baseline: exit 0, and the change
    # is named in the JSON, the text (progress line and table agree), the HTML and the JUnit file.
    night2 = probe(tmp_path, "nightly", "--notify-command", command, config=tight)
    assert night2.code == 0, night2.err
    second = json.loads((out / "nightly.json").read_text())
    (cell2,) = second["cells"]
    change = "limits: memory 400MB, time 120s -> memory 250MB, time 120s"
    assert cell2["status"] == "new-baseline" and cell2["regressions"] == [] and second["exit_code"] == 0
    assert cell2["changes"] == [change] and cell2["previous_run"] == cell1["run_id"] and cell2["baseline"] is None
    progress = " ".join(night2.err.split())
    assert "local/native/memory: new-baseline:" in progress and change in progress
    text = " ".join(night2.out.split())
    assert "new-baseline" in text and f"new baseline local/native/memory: {change}" in text
    assert "regressed" not in text and "regression local" not in text and "not a regression" in text
    assert f"baseline none: new baseline (was {cell1['run_id']})" in progress
    assert not marker.exists()
    case = _junit_baseline_case(out)
    skipped = case.find("skipped")
    assert skipped is not None and skipped.get("message") == f"new baseline: {change}"
    assert case.find("failure") is None
    dom = " ".join(unescape(chromium_dom(out / "nightly.html", tmp_path / "profile")).split())
    assert "new-baseline" in dom and change in dom and "regressed" not in dom

    # Night 3: probe.toml as on night 1, but the machine now caps each process's data at 200 MiB.
    # Same cell as night 1 (not night 2): a changed result, so a regression, exit 1.
    night3 = probe_under_data_limit(tmp_path, DATA_CAP, "nightly", "--notify-command", command, config=loose)
    assert night3.returncode == 1, night3.stderr[-3000:]
    third = json.loads((out / "nightly.json").read_text())
    (cell3,) = third["cells"]
    assert cell3["status"] == "regressed" and cell3["baseline"] == cell1["run_id"]
    assert cell3["first_fail"] < cell1["first_fail"] == cell3["baseline_first_fail"]
    moved = f"threshold moved down: first failing level {cell1['first_fail']} -> {cell3['first_fail']}"
    assert moved in cell3["regressions"]
    assert cell3["newly_failing"] == list(range(cell3["first_fail"], cell1["first_fail"]))
    assert marker.read_text() == str(out / "nightly.html")
    # The progress line says what the table says, and the baseline column names the baseline used.
    progress = " ".join(night3.stderr.split())
    assert "local/native/memory: regressed:" in progress and moved in progress
    assert ": ok" not in progress
    text = " ".join(night3.stdout.split())
    assert re.search(r"regression local/native/memory: threshold moved down", text)
    assert f"{cell1['run_id']} (first fail {cell1['first_fail']})" in text

    # The JUnit file fails the new failures and the baseline check, and only those.
    xml = (out / "nightly.junit.xml").read_text()
    suite = ET.fromstring(xml).find("testsuite")
    assert suite is not None
    failed = {c.get("name") for c in suite.findall("testcase") if c.find("failure") is not None}
    expected = {f"level {n:03d} on local" for n in cell3["newly_failing"]} | {"threshold against baseline"}
    assert failed == expected
    dom = unescape(chromium_dom(out / "nightly.html", tmp_path / "profile"))
    assert "regressed" in dom and moved in dom
    assert (out / cell3["report"]).is_file()
    text3 = probe(tmp_path, "report", cell3["run_id"], "--json").json()
    assert text3["first_fail"] == cell3["first_fail"]

    # Night 4: the cap is gone: the threshold moved up against night 3, which is no regression. Its
    # probes were dispatched again although night 1 ran the same workloads in the same cell.
    marker.unlink()
    code, fourth, err = _night(tmp_path, loose, "--notify-command", command)
    assert code == 0, err
    (cell4,) = fourth["cells"]
    assert cell4["status"] == "ok" and cell4["threshold_moved"] == "up" and cell4["baseline"] == cell3["run_id"]
    assert not marker.exists()
    run4 = probe(tmp_path, "report", cell4["run_id"], "--json", config=loose).json()
    assert run4["probes"] and not any(p["cached"] for p in run4["probes"])


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


def _runs_recorded(workdir: Path) -> int:
    db = workdir / "reports" / "probe.db"
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        return int(conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0])


def test_nightly_section_is_checked_before_anything_runs(tmp_path: Path) -> None:
    base = _config(tmp_path / "base.toml", "300MB", ["local"])
    cases = {
        "cluster": ('clusters = ["local"]', 'cluster = ["local"]', "did you mean 'clusters'"),
        "outptu": ('output = "nightly-out"', 'outptu = "nightly-out"', "did you mean 'output'"),
        "empty clusters": ('clusters = ["local"]', "clusters = []", "[nightly] clusters is an empty list"),
        "empty ladders": (f"ladders = [{json.dumps(str(MEMORY_LADDER))}]", "ladders = []", "ladders is an empty list"),
        "empty pipelines": ('pipelines = ["native"]', "pipelines = []", "pipelines is an empty list"),
    }
    for name, (old, new, words) in cases.items():
        config = tmp_path / f"{name.replace(' ', '-')}.toml"
        text = base.read_text()
        assert old in text
        config.write_text(text.replace(old, new))
        t0 = time.monotonic()
        res = probe(tmp_path, "nightly", config=config)
        took = time.monotonic() - t0
        assert res.code == 2, (name, res.err)
        assert words in " ".join(res.err.split()), (name, res.err)
        assert "Traceback" not in res.err and took < 1.0, (name, took)
        assert _runs_recorded(tmp_path) == 0, name
    assert not (tmp_path / "nightly-out").exists()

    # Baseline pins are checked up front: a run that is not in the journal, or a key that is no
    # cell of the matrix (with a did-you-mean).
    key = f"local/native/{MEMORY_LADDER}"
    for pin, words in (
        (f'"{key}" = "20260101-000000-sweep-0000"', "names run '20260101-000000-sweep-0000'"),
        (f'"local/nativ/{MEMORY_LADDER}" = 5', f"did you mean '{key}'"),
        (f'"{key}" = true', "give a run id, a level number"),
    ):
        config = tmp_path / "pinned.toml"
        config.write_text(base.read_text() + f"\n[nightly.baseline]\n{pin}\n")
        t0 = time.monotonic()
        res = probe(tmp_path, "nightly", config=config)
        took = time.monotonic() - t0
        assert res.code == 2 and words in " ".join(res.err.split()), res.err
        assert "Traceback" not in res.err and took < 1.0, took
        assert _runs_recorded(tmp_path) == 0


ALLOCATE = """\
def allocate(kib, times={times}):
    block = bytearray(kib * 1024 * times)
    block[::4096] = bytes(len(block[::4096]))
    return len(block)
"""


def test_a_scaled_function_cell_records_a_baseline_then_regresses_when_its_source_moves(tmp_path: Path) -> None:
    fn = tmp_path / "proj" / "alloc.py"
    fn.parent.mkdir()
    fn.write_text(ALLOCATE.format(times=1))
    config = tmp_path / "probe.toml"
    config.write_text(
        """
[clusters.local]
type = "local"
memory = "300MB"

[nightly]
clusters = ["local"]
kind = "bisect"
functions = [
  {function = "proj/alloc.py:allocate", scale = "kib", values = [1000, 10000, 50000, 100000, 400000, 800000]},
]
output = "nightly-out"
"""
    )
    # 300 MB of address space: 100,000 KiB fits beside the runner, 400,000 KiB does not.
    code, night, err = _night(tmp_path, config)
    assert code == 0, err
    (cell,) = night["cells"]
    assert (cell["ladder"], cell["status"], cell["first_fail"]) == ("proj/alloc.py:allocate", "ok", 5)
    assert cell["baseline"] is None
    assert "fails from kib=400,000" in cell["threshold"]

    # The same night again: the same threshold against the first run, nothing regressed.
    code, again, err = _night(tmp_path, config)
    assert code == 0, err
    (same,) = again["cells"]
    assert same["baseline"] == cell["run_id"] and same["status"] == "ok" and same["regressions"] == []

    # The function now allocates eight times as much: 50,000 KiB no longer fits. Its edited
    # source is the thing watched, so this is a regression of the same cell, not a new baseline.
    fn.write_text(ALLOCATE.format(times=8))
    code, moved, err = _night(tmp_path, config)
    assert code == 1, err
    (after,) = moved["cells"]
    assert after["status"] == "regressed", after
    assert after["baseline"] == same["run_id"] and after["first_fail"] == 3
    assert after["regressions"] == [
        "threshold moved down: first failing kib=400,000 -> kib=50,000",
        "values that passed now fail: kib=50,000",
    ]
    assert "function: the source of" in " ".join(after["changes"])
    assert "fails from kib=50,000" in after["threshold"]
    html = (tmp_path / "nightly-out" / "nightly.html").read_text()
    assert "proj/alloc.py:allocate" in unescape(html)

    # Other values are another series: a new baseline, not a regression.
    config.write_text(config.read_text().replace("values = [1000, ", "values = [2000, "))
    code, other, err = _night(tmp_path, config)
    assert code == 0, err
    assert other["cells"][0]["status"] in ("ok", "new-baseline")
    assert other["cells"][0]["baseline"] is None


def test_nightly_functions_are_checked_before_anything_runs(tmp_path: Path) -> None:
    (tmp_path / "alloc.py").write_text(ALLOCATE.format(times=1))
    head = '[clusters.local]\ntype = "local"\n[nightly]\nclusters = ["local"]\noutput = "nightly-out"\n'
    for entry, words in (
        ('{function = "alloc.py:allocate", scael = "kib=1..10"}', "did you mean 'scale'"),
        ('{function = "alloc.py:alocate", scale = "kib=1..10"}', "did you mean 'allocate'"),
        ('{function = "alloc.py:allocate"}', "give function ="),
        ('{function = "alloc.py:allocate", scale = "size=1..10"}', "size"),
        ('"alloc.py:allocate"', "[nightly] functions.0: Input should be a valid dictionary"),
    ):
        config = tmp_path / "probe.toml"
        config.write_text(head + f"functions = [{entry}]\n")
        res = probe(tmp_path, "nightly", config=config)
        assert res.code == 2, (entry, res.err)
        assert words in " ".join(res.err.split()), (entry, res.err)
        assert "Traceback" not in res.err
        assert _runs_recorded(tmp_path) == 0
    assert not (tmp_path / "nightly-out").exists()
