"""Reports and nightly runs on the loopback testbed clusters (real OpenSSH and SLURM)."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from html import unescape
from pathlib import Path
from typing import Any

import pytest
import xmlschema

from tests.test_report_support import JUNIT_XSD, MEMORY_LADDER, chromium_dom, probe
from tests.testbed.fixtures import write_config
from tests.testbed.testbed import Testbed


def _every_format(workdir: Path, config: Path, data: dict[str, Any], cluster: str) -> None:
    """Render the run in every format and check each against the run's own JSON."""
    run_id, ff = data["run_id"], data["first_fail"]
    rich = probe(workdir, "report", run_id, config=config)
    assert rich.code == 0, rich.err
    assert cluster in rich.out and run_id in rich.out

    doc = probe(workdir, "report", run_id, "--json", config=config).json()
    assert doc["cluster"] == cluster and doc["first_fail"] == ff

    md = probe(workdir, "report", run_id, "--format", "md", config=config).out
    assert md.startswith(f"## threshold-probe: {cluster} / native / memory")
    assert len(re.findall(r"^\| (\*\*)?\d+(\*\*)? \|", md, re.M)) == len(data["levels"])

    xml = probe(workdir, "report", run_id, "--format", "junit", config=config).out
    xmlschema.XMLSchema(str(JUNIT_XSD)).validate(xml)
    cases = ET.fromstring(xml).findall("./testsuite/testcase")
    probed = {p["level"] for p in data["probes"]}
    assert sorted(c.get("name") for c in cases) == [f"level {n:03d} on {cluster}" for n in sorted(probed)]
    # A sweep's failing levels are findings, not test failures (no gate was set).
    assert not [c for c in cases if c.find("failure") is not None]
    found = [c for c in cases if "finding, not a test failure" in (c.findtext("system-out") or "")]
    assert len(found) == len({p["level"] for p in data["probes"] if p["verdict"] == "fail"})

    page = workdir / f"{cluster}.html"
    assert probe(workdir, "report", run_id, "--format", "html", "-o", str(page), config=config).code == 0
    text = unescape(re.sub(r"<[^>]+>", " ", chromium_dom(page, workdir / "profile")))
    if ff is not None:
        assert f"level {ff} is the first to fail" in text
    assert f"cluster {cluster}" in re.sub(r"\s+", " ", text)


@pytest.mark.ssh
def test_every_format_from_a_real_ssh_run(testbed: Testbed, tmp_path: Path) -> None:
    config = testbed.config_path
    res = probe(
        tmp_path, "sweep", "--cluster", "testbed-ssh", "--ladder", str(MEMORY_LADDER), "--memory", "300MB",
        "--json", "--quiet", config=config,
    )  # fmt: skip
    assert res.code == 0, res.err
    data = res.json()
    assert data["first_fail"] is not None and data["failure"]["class"] == "oom"
    _every_format(tmp_path, config, data, "testbed-ssh")


@pytest.mark.slurm
def test_every_format_from_a_real_slurm_run(testbed: Testbed, tmp_path: Path) -> None:
    assert "testbed-slurm" in testbed.clusters, "the testbed did not start SLURM"
    config = testbed.config_path
    res = probe(
        tmp_path, "sweep", "--cluster", "testbed-slurm", "--ladder", str(MEMORY_LADDER), "--memory", "300MB",
        "--json", "--quiet", config=config,
    )  # fmt: skip
    assert res.code == 0, res.err
    data = res.json()
    assert data["first_fail"] is not None and data["failure"]["class"] == "oom"
    _every_format(tmp_path, config, data, "testbed-slurm")


@pytest.mark.ssh
def test_nightly_runs_local_and_ssh_in_parallel(testbed: Testbed, tmp_path: Path) -> None:
    config = write_config(
        tmp_path / "probe.toml",
        {"local": {"type": "local", "memory": "300MB"}, "tb": testbed.cluster_table("ssh", memory="300MB")},
    )
    with config.open("a") as fh:
        fh.write(f'\n[nightly]\nclusters = ["local", "tb"]\nladders = [{json.dumps(str(MEMORY_LADDER))}]\n')
        fh.write('output = "nightly-out"\n')
    res = probe(tmp_path, "nightly", "--json", config=config)
    assert res.code == 0, res.err
    night = res.json()
    cells = {c["cluster"]: c for c in night["cells"]}
    assert set(cells) == {"local", "tb"} and all(c["status"] == "ok" for c in cells.values())
    assert all(c["first_fail"] is not None and c["failure_class"] == "oom" for c in cells.values())
    xml = (tmp_path / "nightly-out" / "nightly.junit.xml").read_text()
    xmlschema.XMLSchema(str(JUNIT_XSD)).validate(xml)
    suites = [s.get("name") for s in ET.fromstring(xml).findall("testsuite")]
    assert suites == [f"local/native/{MEMORY_LADDER}", f"tb/native/{MEMORY_LADDER}"]
