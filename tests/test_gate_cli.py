"""CI gates: `--expect-pass-through N` on sweep and bisect, and what the JUnit report then marks.

On the in-process cluster: the levels of the memory ladder pass until level 5 raises MemoryError
under the 300MB limit (real limits are in test_limits.py and the testbed tests).
"""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path

import pytest
import xmlschema
from typer.testing import CliRunner

from tests.inprocess_cluster import InProcessCluster, Raise, first_fail
from threshold_probe.cli.app import app

ASSETS = Path(__file__).parent / "assets"
MEMORY_LADDER = str(ASSETS / "ladders" / "memory.toml")
JUNIT_XSD = ASSETS / "junit-10.xsd"


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROBE_CONFIG", raising=False)
    monkeypatch.delenv("PROBE_REPORTS_DIR", raising=False)
    return CliRunner()


def invoke(cli: CliRunner, tmp_path: Path, *args: str) -> tuple[int, str, str]:
    result = cli.invoke(app, ["--reports-dir", str(tmp_path / "reports"), *args], env={"COLUMNS": "200"})
    return result.exit_code, result.stdout, result.stderr


def junit(cli: CliRunner, tmp_path: Path, run_id: str) -> ET.Element:
    target = tmp_path / f"{run_id}.xml"
    code, _, err = invoke(cli, tmp_path, "report", run_id, "--format", "junit", "-o", str(target))
    assert code == 0, err
    xmlschema.XMLSchema(str(JUNIT_XSD)).validate(target.read_text())
    return ET.fromstring(target.read_text())


@pytest.mark.parametrize("kind", ["bisect", "sweep"])
def test_gate_below_the_threshold_passes_and_above_it_fails(
    cli: CliRunner, tmp_path: Path, kind: str, inprocess: Callable[..., InProcessCluster]
) -> None:
    inprocess(first_fail(5, Raise("MemoryError")))
    base = (kind, "--ladder", MEMORY_LADDER, "--memory", "300MB", "--quiet")
    code, out, err = invoke(cli, tmp_path, *base, "--json")
    assert code == 0, err
    threshold = json.loads(out)["first_fail"]
    assert threshold == 5

    # Every level up to threshold - 1 passes: the gate holds, exit 0, no JUnit failure.
    code, out, err = invoke(cli, tmp_path, *base, "--json", "--expect-pass-through", str(threshold - 1))
    assert code == 0, err
    held = json.loads(out)
    assert int(junit(cli, tmp_path, held["run_id"]).get("failures", "-1")) == 0

    # A gate at the first failing level: exit 1, one line with the level, class and evidence.
    code, out, err = invoke(cli, tmp_path, *base, "--expect-pass-through", str(threshold))
    assert code == 1
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert f"level {threshold} fails (oom): MemoryError" in lines[0]
    assert f"--expect-pass-through {threshold}" in lines[0]
    code, out, _ = invoke(cli, tmp_path, "runs", "--json")
    gated = json.loads(out)[0]["run_id"]
    root = junit(cli, tmp_path, gated)
    failing = [c for c in root.iter("testcase") if c.find("failure") is not None]
    # Only the gated levels fail the suite; a failing level above the gate stays a finding.
    assert [c.get("name", "")[:9] for c in failing] == [f"level {threshold:03d}"]
    props = {p.get("name"): p.get("value") for p in root.iter("property")}
    assert props["expect_pass_through"] == str(threshold)
