"""Far-side failures point at the user's own file and line: a raise, a segfault and a timeout,
on the local cluster, over SSH and in a SLURM job."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.every_cluster import CLUSTERS
from threshold_probe.cli.app import app

CRASHY = (Path(__file__).parent / "assets" / "functions" / "crashy.py").resolve()


def probe_failure(config: Path | None, tmp_path: Path, cluster: str, func: str, *extra: str) -> dict[str, Any]:
    args = ["--reports-dir", str(tmp_path / "reports")]
    if config is not None:
        args += ["--config", str(config)]
    args += ["run", "--cluster", cluster, "-f", f"{CRASHY}:{func}", "--fresh", "--json", "-q", *extra]
    result = CliRunner().invoke(app, args, env={"PROBE_CONFIG": None, "PROBE_REPORTS_DIR": None})
    assert result.exit_code == 1, result.stdout + result.stderr  # the probe failed
    failure: dict[str, Any] = json.loads(result.stdout)["failure"]
    return failure


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_a_raise_shows_the_users_file_line_and_text(cluster_config: Path | None, tmp_path: Path, cluster: str) -> None:
    config = cluster_config
    failure = probe_failure(config, tmp_path, cluster, "raises")
    assert failure["class"] == "exception"
    evidence = "\n".join(failure["evidence"])
    assert f'File "{CRASHY}", line 9, in raises' in evidence
    assert "return data[0] / (len(data) - 2)" in evidence
    assert "<dynamic-code>" not in evidence


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_a_segfault_has_a_python_stack(cluster_config: Path | None, tmp_path: Path, cluster: str) -> None:
    config = cluster_config
    failure = probe_failure(config, tmp_path, cluster, "segfaults")
    assert failure["class"] == "killed"
    evidence = failure["evidence"]
    assert "the process was ended by SIGSEGV" in evidence
    assert "Fatal Python error: Segmentation fault" in evidence
    assert f'  File "{CRASHY}", line 14 in segfaults' in evidence
    assert any(line.startswith("was in string_at at ") for line in evidence)


@pytest.mark.parametrize("cluster", CLUSTERS)
def test_a_timeout_shows_where_the_function_was(cluster_config: Path | None, tmp_path: Path, cluster: str) -> None:
    config = cluster_config
    failure = probe_failure(config, tmp_path, cluster, "sleeps", "--time", "3s")
    assert failure["class"] == "timeout"
    assert f"was in sleeps at {CRASHY}:19 just before the time limit" in failure["evidence"]
