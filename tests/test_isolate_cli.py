"""Isolation through the CLI, on the local cluster under a real 300MB memory limit.

The ladder (tests/assets/ladders/isolate.toml) grows memory_mb together with loc,
subprocess_calls and nesting_depth; only memory drives the failure. `probe bisect --isolate`
and `probe isolate [RUN_ID]` must name memory_mb, with its value threshold, and say the other
dimensions do not matter; `probe report` must show the finding.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from threshold_probe.cli.app import app

LADDER = str(Path(__file__).parent / "assets" / "ladders" / "isolate.toml")
OTHERS = {"loc", "subprocess_calls", "nesting_depth"}


@pytest.fixture
def reports(tmp_path: Path) -> Path:
    (tmp_path / "probe.toml").write_text("")  # no config from the folders above
    return tmp_path / "reports"


def invoke(reports: Path, *args: str) -> tuple[int, str, str]:
    config = str(reports.parent / "probe.toml")
    result = CliRunner().invoke(
        app,
        ["--config", config, "--reports-dir", str(reports), *args],
        env={"PROBE_REPORTS_DIR": None, "COLUMNS": "200"},  # a table row on one line
    )
    return result.exit_code, result.stdout, result.stderr


def run_json(reports: Path, *args: str) -> dict[str, Any]:
    code, out, err = invoke(reports, *args, "--json", "--quiet")
    assert code == 0, err
    data: dict[str, Any] = json.loads(out)
    return data


def check_memory_is_the_driver(isolate: dict[str, Any]) -> int:
    """The finding names memory_mb alone, with an exact threshold; returns the threshold."""
    assert isolate["status"] == "isolated"
    assert isolate["drivers"] == ["memory_mb"]
    assert isolate["necessary"] == ["memory_mb"]
    assert set(isolate["irrelevant"]) == OTHERS
    assert isolate["undecided"] == []
    findings = {f["dimension"]: f for f in isolate["findings"]}
    assert set(findings) == OTHERS | {"memory_mb"}
    memory = findings["memory_mb"]
    assert (memory["sufficient"], memory["necessary"]) == (True, True)
    assert (memory["low_value"], memory["high_value"]) == (180, 360)
    threshold = memory["threshold"]
    # Between the passing and the failing level, and exact: the MiB just below it passed.
    assert 180 < threshold <= 360 and memory["exact"] is True
    assert memory["last_passing"] == threshold - 1
    assert memory["threshold_base"] == "good"
    for name in OTHERS:
        assert (findings[name]["sufficient"], findings[name]["necessary"]) == (False, False)
        assert findings[name]["threshold"] is None
    message = isolate["message"]
    assert f"The failure follows `memory_mb` alone (threshold {threshold} MiB)" in message
    assert "do not matter" in message
    for name in OTHERS:
        assert f"`{name}`" in message
    return int(threshold)


def test_bisect_isolate_names_memory_as_the_driver_and_the_report_shows_it(reports: Path) -> None:
    data = run_json(reports, "bisect", "--ladder", LADDER, "--memory", "300MB", "--isolate")
    assert (data["last_pass"], data["first_fail"]) == (5, 6)
    iso = data["isolate"]
    threshold = check_memory_is_the_driver(iso)
    assert (iso["good_level"], iso["bad_level"]) == (5, 6)
    assert iso["hunted"] == data["failure"]["signature"]  # isolation hunts the failure the bisect found
    assert iso["message"] in data["message"]
    # Off-ladder probes carry their spec; the threshold and the value below it were both probed.
    probed = {p["spec"]["memory_mb"]: p["verdict"] for p in data["probes"] if p["spec"]}
    assert probed[threshold] == "fail" and probed[threshold - 1] == "pass"

    code, out, err = invoke(reports, "report", data["run_id"])
    assert code == 0, err
    text = " ".join(out.split())
    assert "which dimension drives the failure" in text
    assert "memory_mb (driver)" in text
    assert "follows `memory_mb` alone" in text
    code, out, err = invoke(reports, "report", data["run_id"], "--format", "md")
    assert code == 0, err
    assert "memory_mb" in out and str(threshold) in out


def test_isolate_defaults_to_the_latest_bisect_with_a_boundary_and_its_signature(reports: Path) -> None:
    found = run_json(reports, "bisect", "--ladder", LADDER, "--memory", "300MB")
    # A later bisect without a boundary must not be the default.
    code, _, err = invoke(reports, "bisect", "--ladder", LADDER, "--memory", "4GB", "--quiet")
    assert code == 0, err

    data = run_json(reports, "isolate")
    assert data["kind"] == "isolate"
    options = data["params"]["options"]
    assert options["from_run"] == found["run_id"]
    assert options["match"] == found["failure"]["signature"] == "oom::out of memory"
    assert data["params"]["overrides"]["memory"] == "300MB"  # the bisect's limit
    assert data["params"]["ladder"] == LADDER
    check_memory_is_the_driver(data["isolate"])
    # The two boundary levels were already probed by the bisect: their verdicts are reused.
    ends = [p for p in data["probes"] if p["level"] in (5, 6) and not p["spec"]]
    assert ends and all(p["cached"] for p in ends)

    # The same with the bisect named explicitly.
    again = run_json(reports, "isolate", found["run_id"])
    assert again["params"]["options"]["from_run"] == found["run_id"]
    assert again["isolate"]["drivers"] == ["memory_mb"]


def test_isolate_without_a_boundary_is_one_line_exit_2(reports: Path) -> None:
    code, _, err = invoke(reports, "isolate", "--quiet")
    assert code == 2 and "no bisect run with a boundary" in err and err.strip().count("\n") == 0
    code, out, err = invoke(reports, "bisect", "--ladder", LADDER, "--memory", "4GB", "--json", "--quiet")
    assert code == 0, err
    no_failure = json.loads(out)["run_id"]
    code, _, err = invoke(reports, "isolate", no_failure, "--quiet")
    assert code == 2 and "has no boundary to isolate" in err
