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


# The inline pipeline ships nothing but the command line; its frames are mapped back on this side.


def test_an_inline_raise_shows_the_users_file_line_and_text(tmp_path: Path) -> None:
    failure = probe_failure(None, tmp_path, "local", "raises", "--pipeline", "inline")
    assert failure["class"] == "exception"
    evidence = "\n".join(failure["evidence"])
    assert f'File "{CRASHY}", line 9, in raises' in evidence
    assert "return data[0] / (len(data) - 2)" in evidence
    assert "<dynamic-code>" not in evidence


def test_an_inline_segfault_and_timeout_name_the_users_file(tmp_path: Path) -> None:
    crash = probe_failure(None, tmp_path, "local", "segfaults", "--pipeline", "inline")
    assert crash["class"] == "killed"
    assert f'  File "{CRASHY}", line 14 in segfaults' in crash["evidence"]
    hang = probe_failure(None, tmp_path, "local", "sleeps", "--pipeline", "inline", "--time", "3s")
    assert hang["class"] == "timeout"
    assert f"was in sleeps at {CRASHY}:19 just before the time limit" in hang["evidence"]


def test_inline_tracebacks_do_not_lengthen_the_command_line(tmp_path: Path) -> None:
    import base64

    from threshold_probe.models import Limits
    from threshold_probe.pipelines.inline import InlinePipeline, inline_program
    from threshold_probe.pipelines.native import pickle_workload
    from threshold_probe.target import load_target

    workload = load_target(f"{CRASHY}:raises")
    job = InlinePipeline().build(workload, "p1", Limits(), tmp_path)
    # The argv is the program with the pickled function and the runner's path: no source, no more.
    b64 = base64.b64encode(pickle_workload(workload)).decode("ascii")
    assert job.argv[1] == "-c" and job.argv[2] == inline_program(b64)
    assert len(job.argv) == 4
    assert "len(data) - 2" not in " ".join(job.argv) and not job.files
