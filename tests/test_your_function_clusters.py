"""A user's own function on every kind of cluster: sibling modules, a module the far side lacks,
arguments, and a scaled bisect against a real memory limit, over SSH and in SLURM jobs too."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.every_cluster import CLUSTERS
from threshold_probe.cli.app import app

FUNCS = (Path(__file__).parent / "assets" / "functions").resolve()
LOCALDEP = FUNCS / "localdep" / "localdep.py"
SCALED = FUNCS / "scaled.py"


def probe(config: Path | None, tmp_path: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    argv = ["--reports-dir", str(tmp_path / "reports")]
    if config is not None:
        argv += ["--config", str(config)]
    result = CliRunner().invoke(app, [*argv, *args], env={"PROBE_CONFIG": None, "PROBE_REPORTS_DIR": None})
    data = json.loads(result.stdout) if result.stdout.strip().startswith("{") else {}
    return result.exit_code, data, result.stderr


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_sibling_module_missing_there_then_shipped(cluster_config: Path | None, tmp_path: Path, cluster: str) -> None:
    config = cluster_config
    target = f"{LOCALDEP}:uses_local_module"
    code, data, err = probe(config, tmp_path, "run", "-C", cluster, "-f", target, "--fresh", "--json", "-q")
    assert code == 1, err
    assert data["failure"]["class"] == "import"
    assert "'mylocalhelper' is missing on the far side" in data["failure"]["explanation"]
    assert "--ship-local-modules" in data["failure"]["explanation"]
    code, data, err = probe(
        config, tmp_path, "run", "-C", cluster, "-f", target, "--ship-local-modules", "--fresh", "--json", "-q"
    )
    assert code == 0, err
    assert data["probes"][0]["verdict"] == "pass"


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_arguments_reach_the_far_side(cluster_config: Path | None, tmp_path: Path, cluster: str) -> None:
    config = cluster_config
    code, data, err = probe(
        config,
        tmp_path,
        "run",
        "-C",
        cluster,
        "-f",
        f"{LOCALDEP}:scaled",
        "--arg",
        "n=5",
        "--arg",
        "label=far",
        "--fresh",
        "--json",
        "-q",
    )
    assert code == 0, err
    assert data["probes"][0]["spec"]["args"] == {"n": 5, "label": "far"}
    code, _, err = probe(config, tmp_path, "run", "-C", cluster, "-f", f"{LOCALDEP}:scaled")
    assert code == 2 and "needs n" in err


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_scaled_bisect_on_a_real_memory_limit(cluster_config: Path | None, tmp_path: Path, cluster: str) -> None:
    config = cluster_config
    code, data, err = probe(
        config,
        tmp_path,
        "bisect",
        "-C",
        cluster,
        "-f",
        f"{SCALED}:allocate",
        "--scale",
        "kib",
        "--values",
        "1000,10000,50000,100000,400000,800000,1600000",
        "--arg",
        "hold=2",
        "--memory",
        "300MB",
        "--fresh",
        "--json",
        "-q",
    )
    assert code == 0, err
    assert data["scale"]["first_fail_value"] == 400000
    assert data["scale"]["last_pass_value"] == 100000
    assert data["failure"]["class"] == "oom"
    assert f"allocate fails from kib=400,000 (oom on {cluster}); kib=100,000 passes" in data["message"]
