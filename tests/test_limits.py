"""Limits are validated before any probe and enforced as the report says (local cluster)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from threshold_probe.cli.app import app


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROBE_CONFIG", raising=False)
    monkeypatch.delenv("PROBE_REPORTS_DIR", raising=False)
    return CliRunner()


def invoke(cli: CliRunner, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    result = cli.invoke(app, ["--reports-dir", str(tmp_path / "reports"), *args])
    return result.exit_code, result.stdout, result.stderr


def one_line(err: str) -> str:
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--memory", "0"], "--memory 0"),
        (["--memory", "0MB"], "--memory 0MB"),
        (["--memory", "-5"], "--memory -5"),
        (["--time", "0"], "--time 0"),
        (["--time", "0s"], "--time 0s"),
        (["--time", "-3s"], "--time -3s"),
        (["--cores", "0"], "--cores 0"),
        (["--cores", "-1"], "--cores -1"),
    ],
)
def test_zero_or_negative_limit_is_exit_2_before_any_probe(
    cli: CliRunner, tmp_path: Path, args: list[str], words: str
) -> None:
    for command in ("run", "bisect"):
        code, out, err = invoke(cli, tmp_path, command, *args, "--json", "--quiet")
        assert code == 2, (command, out, err)
        line = one_line(err)
        assert words in line, line
        assert "zero" in line or "at least 1" in line, line
    # Nothing was dispatched: no run was recorded.
    assert not list((tmp_path / "reports").glob("*/run.json"))


@pytest.mark.parametrize(
    ("setting", "words"),
    [
        ('memory = "0"', "memory 0"),
        ('memory = "-1GB"', "memory -1GB"),
        ('time = "0s"', "time 0s"),
        ('time = "-1m"', "time -1m"),
        ("cores = 0", "cores"),
    ],
)
def test_zero_or_negative_limit_in_probe_toml_is_exit_2(
    cli: CliRunner, tmp_path: Path, setting: str, words: str
) -> None:
    (tmp_path / "probe.toml").write_text(f'[clusters.box]\ntype = "local"\n{setting}\n')
    code, out, err = invoke(cli, tmp_path, "run", "--cluster", "box", "--json", "--quiet")
    assert code == 2, (out, err)
    line = one_line(err)
    assert "probe.toml" in line and "clusters.box" in line and words in line, line


FAULTS = Path(__file__).parent / "assets" / "functions" / "faults.py"


def test_memory_below_the_measured_floor_is_exit_2_naming_the_floor(cli: CliRunner, tmp_path: Path) -> None:
    for limit in ("1KB", "8MB"):
        code, out, err = invoke(cli, tmp_path, "run", "--memory", limit, "--json", "--quiet")
        assert code == 2, (out, err)
        line = one_line(err)
        match = re.search(r"a bare runner needs (\d+)MB", line)
        assert match and f"memory limit {limit}" in line and "'local'" in line, line
        floor_mb = int(match.group(1))
    # The floor is a measurement of this interpreter (a few tens of MB of address space), cached.
    assert 8 < floor_mb < 200, floor_mb
    cache = json.loads((tmp_path / "reports" / "memory-floor.json").read_text())
    (entry,) = cache.values()
    assert entry["cluster"] == "local" and entry["vm_peak_kb"] > 8 * 1024
    measured_at = entry["measured_at"]
    # A limit at the floor runs the function; the cached floor is not measured again.
    code, out, err = invoke(
        cli, tmp_path, "run", "--memory", f"{floor_mb}MB", "--function", f"{FAULTS}:fine", "--json", "--quiet"
    )
    assert code == 0, err
    assert json.loads(out)["probes"][0]["verdict"] == "pass"
    again = json.loads((tmp_path / "reports" / "memory-floor.json").read_text())
    assert next(iter(again.values()))["measured_at"] == measured_at


def test_report_shows_each_limit_and_who_enforced_it(cli: CliRunner, tmp_path: Path) -> None:
    code, out, err = invoke(
        cli, tmp_path, "run", "--memory", "300MB", "--time", "30s", "--cores", "1",
        "--function", f"{FAULTS}:fine", "--json", "--quiet",
    )  # fmt: skip
    assert code == 0, err
    data = json.loads(out)
    assert data["limits_enforced_by"] == {"memory": "RLIMIT_AS", "time": "runner", "cores": "CPU affinity"}
    run_id = data["run_id"]
    expected = "memory 300MB (RLIMIT_AS), time 30s (runner), cores 1 (CPU affinity)"
    for fmt in ("rich", "md", "html"):
        # Wide enough that the terminal report does not wrap the line.
        result = cli.invoke(
            app, ["--reports-dir", str(tmp_path / "reports"), "report", run_id, "--format", fmt], env={"COLUMNS": "200"}
        )
        assert result.exit_code == 0, result.stderr
        assert expected in result.stdout, (fmt, result.stdout[:3000])
    code, out, err = invoke(cli, tmp_path, "report", run_id, "--format", "json")
    assert json.loads(out)["limits_enforced_by"]["memory"] == "RLIMIT_AS"


def test_more_cores_than_the_node_has_is_a_warning(cli: CliRunner, tmp_path: Path) -> None:
    cpus = len(os.sched_getaffinity(0))
    code, out, err = invoke(
        cli, tmp_path, "run", "--cores", str(cpus + 7), "--function", f"{FAULTS}:fine", "--json", "--quiet"
    )
    assert code == 0, err
    assert "warning:" in err and f"{cpus + 7} cores" in err and f"{cpus} CPUs" in err, err
    data = json.loads(out)
    assert data["probes"][0]["verdict"] == "pass"
    assert any(f"{cpus} CPUs" in w for w in data["warnings"])
    # Within the node's CPUs: no warning.
    code, out, err = invoke(cli, tmp_path, "run", "--cores", "1", "--function", f"{FAULTS}:fine", "--json", "--quiet")
    assert code == 0 and "warning" not in err and json.loads(out)["warnings"] == []
