"""probe explain: whose threshold, its driver, a reproducer and a fix hint, in one command."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.every_cluster import CLUSTERS
from threshold_probe.cli.app import app

SUITE = (Path(__file__).parent / "assets" / "runner_suite").resolve()
CLOSURE = f"{SUITE / 'test_closures.py'}:test_level7_scaled.level7"
FEATURES = {
    "global_refs",
    "closure_refs",
    "multiline_strings",
    "decorators",
    "lambdas",
    "nested_functions",
    "default_args",
    "star_args",
    "top_level_range_loops",
    "comprehensions",
    "definition_scope",
}


def probe(config: Path | None, reports: Path, *args: str) -> tuple[int, str, str]:
    argv = ["--reports-dir", str(reports)]
    if config is not None:
        argv += ["--config", str(config)]
    result = CliRunner().invoke(app, [*argv, *args], env={"PROBE_CONFIG": None, "PROBE_REPORTS_DIR": None})
    return result.exit_code, result.stdout, result.stderr


def explain(config: Path | None, reports: Path, *args: str) -> dict[str, Any]:
    code, out, err = probe(config, reports, "explain", *args, "--json", "-q")
    assert code == 0, err
    data: dict[str, Any] = json.loads(out)
    return data


def test_features_ladder_through_source_is_the_pipelines_threshold(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    data = explain(None, reports, "-l", "features", "-p", "source", "--hi", "12")
    assert data["status"] == "completed"
    assert data["class"] == "name" and data["first_fail"] == 10
    assert data["owner"] == "pipeline"
    assert "the threshold belongs to the source pipeline, not to the cluster" in data["conclusion"]
    assert data["driver"] in FEATURES  # a syntactic feature, never a size
    assert data["driver"] in data["conclusion"]
    rep = data["reproducer"]
    assert rep["kept"] == "signature+difference"
    assert rep["verdict"] == "fail" and rep["native_verdict"] == "pass" and rep["signature"] == data["signature"]
    assert rep["lines"] < 60 and "def workload" in rep["source"]
    # Shrunk further by probe shrink, keeping the signature and the difference with native.
    assert rep["via"] == "shrink" and rep["lines"] <= 10
    assert data["shrink"]["kept"] == "signature+difference"
    assert data["hint"]["rule"] == "closure-or-global-lost"
    assert "pass values as arguments or ship by value" in data["conclusion"]
    steps = {s["name"]: s for s in data["steps"]}
    for name in ("bisect", "bisect-native", "isolate", "reproducer", "reproducer-native", "shrink"):
        assert steps[name]["status"] == "done" and steps[name]["run_id"], name
    # The page, headed by the conclusion, in every format.
    code, md, err = probe(None, reports, "report", data["run_id"], "--format", "md")
    assert code == 0, err
    assert md.splitlines()[2].startswith("**Level 10 of the features ladder")
    code, html, err = probe(None, reports, "report", data["run_id"], "--format", "html")
    assert code == 0 and "<script" not in html and 'class="conclusion"' in html
    code, text, err = probe(None, reports, "report", data["run_id"])
    assert code == 0 and "reproducer" in text


def test_default_ladder_through_native_under_a_memory_limit(tmp_path: Path) -> None:
    data = explain(None, tmp_path / "reports", "-l", "default", "--memory", "400MB", "--hi", "16")
    assert data["class"] == "oom"
    assert data["owner"] == "cluster"
    assert data["driver"] == "memory_mb"
    assert "local" in data["conclusion"] and "memory 400MB" in data["conclusion"]
    assert data["hint"]["rule"] == "oom" and "raise the memory" in data["hint"]["fix"]
    assert data["reproducer"]["kept"] == "signature"
    assert [s["name"] for s in data["steps"]][:2] == ["bisect", "isolate"]  # no native bisect: it is native
    # What it is about, as a search's report says it: the cluster as its preflight saw it, the
    # limits and the versions, in --json and on every page.
    assert data["versions"]["python"] and data["versions"]["threshold_probe"]
    assert data["cluster_info"]
    reports = tmp_path / "reports"
    for fmt in ("md", "html", "rich"):
        code, page, err = probe(None, reports, "report", data["run_id"], "--format", fmt)
        assert code == 0, err
        assert "memory 400MB" in page and f"python {data['versions']['python']}" in page, (fmt, page)


def test_a_function_of_a_test_suite(tmp_path: Path) -> None:
    data = explain(None, tmp_path / "reports", "--function", CLOSURE, "-p", "source", "--fresh")
    assert data["owner"] == "pipeline" and data["driver"] == "closure_refs"
    assert data["hint"]["rule"] == "closure-or-global-lost"
    assert "factor is a closure variable" in data["driver_statement"]
    # On its own: the test function cut down to what the payload reads, failing the same way.
    rep = data["reproducer"]
    assert rep["kept"] == "signature+difference" and rep["lines"] <= 8
    assert "factor = 3" in rep["source"] and "run_remote" not in rep["source"]
    passing = f"{SUITE / 'test_small.py'}:test_level1_arithmetic.level1"
    data = explain(None, tmp_path / "reports", "--function", passing, "-p", "source")
    assert data["owner"] == "none" and "does not fail" in data["conclusion"]


def test_bad_input(tmp_path: Path) -> None:
    code, _, err = probe(None, tmp_path / "r", "explain", "--function", CLOSURE, "--ladder", "default")
    assert code == 2 and "not both" in err
    code, _, err = probe(None, tmp_path / "r", "explain", "-C", "nowhere")
    assert code == 2 and "nowhere" in err
    code, _, err = probe(None, tmp_path / "r", "explain", "--function", f"{SUITE / 'nope.py'}:f")
    assert code == 2
    code, _, err = probe(None, tmp_path / "r", "explain", "--resume")
    assert code == 2 and "no interrupted explanation" in err


def test_killed_explanation_resumes_from_its_steps(tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "threshold_probe",
            "--reports-dir",
            str(reports),
            "explain",
            "-l",
            "default",
            "--memory",
            "400MB",
            "--hi",
            "16",
            "--fresh",
            "-q",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "PROBE_CONFIG": "", "COLUMNS": "200"},
        cwd=tmp_path,
    )
    # Once the bisect is done and isolation has finished a probe: kill -9, nothing cleans up.
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.3)
        if any(reports.glob("*-isolate-*/probes/*/probe.json")):
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    _, out, _ = probe(None, reports, "runs", "--kind", "explain", "--json")
    (first,) = json.loads(out)
    assert first["status"] == "stopped"
    data = explain(None, reports, "--resume")
    assert data["run_id"] == first["run_id"] and data["status"] == "completed"
    assert data["driver"] == "memory_mb"
    _, out, _ = probe(None, reports, "runs", "--kind", "bisect", "--json")
    assert len(json.loads(out)) == 1  # the finished bisect was not run again
    _, out, _ = probe(None, reports, "runs", "--kind", "isolate", "--json")
    isolates = json.loads(out)
    assert len(isolates) == 1 and isolates[0]["status"] == "completed"  # continued, not started anew


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_explain_on_every_cluster(cluster_config: Path | None, tmp_path: Path, cluster: str) -> None:
    data = explain(
        cluster_config,
        tmp_path / "reports",
        "-C",
        cluster,
        "--function",
        CLOSURE,
        "-p",
        "source",
        "--fresh",
        "--no-shrink",
    )
    assert data["cluster"] == cluster
    assert data["owner"] == "pipeline" and data["driver"] == "closure_refs"
    assert data["hint"]["rule"] == "closure-or-global-lost"
    assert cluster in data["conclusion"]
