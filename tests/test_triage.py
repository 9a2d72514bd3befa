"""probe triage: a runner-style test suite's functions, probed and their split explained, on every cluster."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.every_cluster import CLUSTERS
from threshold_probe.cli.app import app

SUITE = (Path(__file__).parent / "assets" / "runner_suite").resolve()


def probe(config: Path | None, reports: Path, *args: str) -> tuple[int, str, str]:
    argv = ["--reports-dir", str(reports)]
    if config is not None:
        argv += ["--config", str(config)]
    result = CliRunner().invoke(app, [*argv, *args], env={"PROBE_CONFIG": None, "PROBE_REPORTS_DIR": None})
    return result.exit_code, result.stdout, result.stderr


def triage_json(config: Path | None, reports: Path, *args: str) -> dict[str, Any]:
    code, out, err = probe(config, reports, "triage", *args, "--json", "-q")
    assert code == 0, err
    data: dict[str, Any] = json.loads(out)
    return data


def by_name(data: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {f["name"]: f for f in data["functions"]}


def test_source_pipeline_is_split_by_column0_strings_and_closures_not_by_size(tmp_path: Path) -> None:
    data = triage_json(None, tmp_path / "reports", str(SUITE), "--pipeline", "source", "--fresh", "-P", "2")
    funcs = by_name(data)
    # Functions inside test functions, methods of test classes and factories are found and probed.
    assert funcs["test_level7_scaled.level7"]["verdict"] == "fail"
    assert funcs["TestLevels.test_level3_dict.level3"]["verdict"] == "pass"
    assert funcs["make_payload.payload"]["verdict"] == "pass"
    assert funcs["test_level10_large.level10"]["metrics"]["loc"] >= 150
    # What cannot be probed as it is, with the reason.
    assert funcs["helper"]["verdict"] == "not probed" and funcs["helper"]["reason"] == "needs argument n"
    assert "a test function" in funcs["test_level4_embedded_script"]["reason"]
    assert "a factory: it returns payload" in funcs["make_payload"]["reason"]
    assert "reads tmp_path, a parameter of test_with_fixture" in funcs["test_with_fixture.writes_there"]["reason"]
    # A column-0 string in a module-level function travels fine: only an indented one breaks.
    assert funcs["module_level_script"]["verdict"] == "pass"
    assert data["counts"] == {"functions": 35, "probed": 15, "pass": 9, "fail": 6, "skip": 0, "not_probed": 20}

    groups = {g["class"]: g for g in data["groups"]}
    assert set(groups) == {"syntax", "name"}
    syntax, name = groups["syntax"], groups["name"]
    assert syntax["separators"][0]["feature"] == "multiline_strings_col0"
    assert "fails iff multiline_strings_col0 >= 1: 3 of 3 fail, 0 of 9 pass" in syntax["findings"]
    assert name["separators"][0]["feature"] == "closure_refs"
    assert "fails iff closure_refs >= 1: 3 of 3 fail, 0 of 9 pass" in name["findings"]
    for group in (syntax, name):
        loc = next(r for r in group["sizes"] if r["feature"] == "loc")
        assert not (loc["fail_hits"] == loc["fail_total"] and loc["pass_hits"] == 0)
        assert any(line.startswith("LOC does not separate them") for line in group["findings"])
    assert "LOC does not" in data["conclusion"]
    assert "multiline_strings_col0 >= 1" in data["conclusion"] and "closure_refs >= 1" in data["conclusion"]
    assert data["chart_feature"] in ("multiline_strings_col0", "closure_refs")


def test_native_pipeline_nothing_fails(tmp_path: Path) -> None:
    data = triage_json(None, tmp_path / "reports", str(SUITE), "--fresh")
    assert data["counts"]["fail"] == 0 and data["counts"]["pass"] == 15
    assert data["groups"] == []
    assert "nothing fails" in data["conclusion"]


def test_every_format_and_the_journal(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    folder = tmp_path / "suite"
    folder.mkdir()
    (folder / "test_two.py").write_text(
        textwrap.dedent(
            '''
            def test_a():
                limit = 3

                def closes():
                    return limit

            def test_b():
                def plain():
                    return 1

            def test_c():
                def script():
                    text = """
            <b>[red]not markup[/red]</b> | * _
            """
                    return text
            '''
        )
    )
    code, out, err = probe(None, reports, "triage", str(folder), "-p", "source", "-q")
    assert code == 0, err
    assert "fails iff closure_refs >= 1: 1 of 1 fail, 0 of 1 pass" in " ".join(out.split())
    html = tmp_path / "t.html"
    code, _, err = probe(
        None, reports, "triage", str(folder), "-p", "source", "-q", "--format", "html", "-o", str(html)
    )
    assert code == 0, err
    page = html.read_text()
    assert "<svg" in page and "<script" not in page.lower() and 'src="http' not in page and "<link" not in page
    assert 'fill="#d93025"' in page and 'fill="#1e8e3e"' in page  # bars coloured by verdict
    code, md, err = probe(None, reports, "triage", str(folder), "-p", "source", "-q", "--format", "md")
    assert code == 0 and "| where |" in md and "fails iff closure_refs \\>= 1" in md
    code, xml, err = probe(None, reports, "triage", str(folder), "-p", "source", "-q", "--format", "junit")
    root = ET.fromstring(xml)
    cases = {c.get("name"): c for c in root.iter("testcase")}
    assert cases["test_a.closes"].find("failure") is not None
    assert cases["test_b.plain"].find("failure") is None and cases["test_b.plain"].find("skipped") is None
    assert cases["test_a"].find("skipped") is not None
    # Journalled as a run of its own kind; `probe report` renders it again.
    code, out, err = probe(None, reports, "runs", "--kind", "triage", "--json")
    runs = json.loads(out)
    assert code == 0 and len(runs) == 4 and all(r["status"] == "completed" for r in runs)
    code, out, err = probe(None, reports, "report", runs[0]["run_id"], "--format", "json")
    assert code == 0, err
    assert json.loads(out)["kind"] == "triage"
    # Every later run reused the first one's verdicts.
    assert json.loads(out)["reused"] == 3


def test_bad_input(tmp_path: Path) -> None:
    code, _, err = probe(None, tmp_path / "r", "triage", str(tmp_path / "missing"))
    assert code == 2 and "no such file or folder" in err
    code, _, err = probe(None, tmp_path / "r", "triage", str(SUITE), "-C", "nowhere")
    assert code == 2 and "nowhere" in err
    code, _, err = probe(None, tmp_path / "r", "triage")
    assert code == 2 and "PATH" in err


def test_nested_function_as_a_target(tmp_path: Path) -> None:
    """`--function FILE:test.inner` loads a function defined inside a test, with its closure."""
    target = f"{SUITE / 'test_closures.py'}:test_level8_config.level8"
    code, out, err = probe(None, tmp_path / "r", "run", "-f", target, "--json", "-q", "--fresh")
    assert code == 0, err
    code, out, err = probe(None, tmp_path / "r", "run", "-f", target, "-p", "source", "--json", "-q", "--fresh")
    assert code == 1
    assert json.loads(out)["failure"]["class"] == "name"
    fixture = f"{SUITE / 'test_small.py'}:test_with_fixture.writes_there"
    code, _, err = probe(None, tmp_path / "r", "run", "-f", fixture)
    assert code == 2 and "reads tmp_path, a parameter of test_with_fixture" in err


def test_interrupted_triage_resumes_without_probing_again(tmp_path: Path) -> None:
    folder = tmp_path / "slow"
    folder.mkdir()
    (folder / "test_slow.py").write_text(
        "import time\n\n"
        + "".join(
            f"def test_{i}():\n    def payload_{i}():\n        time.sleep(1.5)\n        return {i}\n\n"
            for i in range(4)
        )
    )
    reports = tmp_path / "reports"
    proc = subprocess.Popen(
        [sys.executable, "-m", "threshold_probe", "--reports-dir", str(reports), "triage", str(folder), "--fresh"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PROBE_CONFIG": "", "COLUMNS": "200"},
        cwd=tmp_path,
    )
    # Two probes finished, the third in flight: then SIGINT.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        time.sleep(0.3)
        done = list(reports.glob("*/probes/*/probe.json"))
        if len(done) >= 2:
            break
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err.decode()
    assert b"--resume" in err
    code, out_text, err_text = probe(None, reports, "triage", "--resume", "latest", "--json")
    assert code == 0, err_text
    data = json.loads(out_text)
    assert data["counts"]["pass"] == 4
    assert "2 finished probes come from the journal" in " ".join(err_text.split())
    code, runs, _ = probe(None, reports, "runs", "--kind", "triage", "--json")
    assert len(json.loads(runs)) == 1  # the same run, continued


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_triage_on_every_cluster(cluster_config: Path | None, tmp_path: Path, cluster: str) -> None:
    data = triage_json(
        cluster_config,
        tmp_path / "reports",
        str(SUITE / "test_closures.py"),
        str(SUITE / "test_small.py"),
        "-C",
        cluster,
        "-p",
        "source",
        "--fresh",
        "-P",
        "2",
    )
    funcs = by_name(data)
    assert data["cluster"] == cluster
    assert funcs["test_level7_scaled.level7"]["verdict"] == "fail"
    assert funcs["test_level1_arithmetic.level1"]["verdict"] == "pass"
    (group,) = data["groups"]
    assert group["class"] == "name"
    assert group["separators"][0]["feature"] == "closure_refs"
