"""The inline pipeline: the pickled function in the command line meets the kernel's argument limit for real."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import cloudpickle
import pytest
from typer.testing import CliRunner

from threshold_probe.cli.app import app
from threshold_probe.clusters import make_cluster
from threshold_probe.config import ProbeConfig
from threshold_probe.diagnose import diagnose
from threshold_probe.ladder import load_ladder
from threshold_probe.ladder.workload import Workload
from threshold_probe.models import PYTHON, Limits
from threshold_probe.pipelines import make_pipeline
from threshold_probe.pipelines.inline import MAX_ARG_STRLEN, InlinePipeline, inline_program

LIMITS = Limits(memory_bytes=1024**3, time_s=60)


def payload_workload(kib: int) -> Workload:
    # Random-looking bytes: the pickle (and its base64) grows with the constant it captures.
    source = (
        "import hashlib\n"
        f"BLOB = b''.join(hashlib.sha256(b'%d' % i).digest() for i in range({kib} * 32))\n"
        "def workload():\n"
        "    return len(BLOB)\n"
    )
    return Workload(name=f"blob{kib}", source=source, func_name="workload")


def test_small_function_passes_with_nothing_staged_but_the_runner(tmp_path: Path) -> None:
    workload = payload_workload(4)
    job = make_pipeline("inline").build(workload, "i", LIMITS, tmp_path)
    assert job.files == {} and list(job.shared) == ["runner.py"]
    assert job.argv[:2] == [PYTHON, "-c"]
    obs = make_pipeline("inline").dispatch(workload, make_cluster("local", ProbeConfig()), "i", LIMITS, tmp_path)
    verdict = diagnose(obs)
    assert verdict.status == "pass", verdict
    assert obs.result is not None and obs.result["repr"] == str(4 * 1024)
    assert "deserialize" in obs.timings and "execute" in obs.timings


def test_argument_over_128_kib_is_e2big_and_arg_too_long(tmp_path: Path) -> None:
    workload = payload_workload(120)  # ~120 KiB of bytes -> ~160 KiB of base64 in one argument
    obs = make_pipeline("inline").dispatch(workload, make_cluster("local", ProbeConfig()), "i", LIMITS, tmp_path)
    verdict = diagnose(obs)
    assert verdict.failure_class == "arg_too_long", verdict
    assert obs.job.launch_error is not None and "Argument list too long" in obs.job.launch_error
    assert obs.job.exit_code is None  # the interpreter never started
    assert any(f"{MAX_ARG_STRLEN}-byte limit" in note for note in obs.notes)
    # The evidence states what was measured: the argument's size against the 131072-byte limit.
    longest = max(len(a.encode()) + 1 for a in make_pipeline("inline").build(workload, "i", LIMITS, tmp_path).argv)
    assert longest > MAX_ARG_STRLEN == 131072
    sized = [line for line in verdict.evidence if f"{longest} bytes" in line]
    assert sized and "over the 131072-byte limit" in sized[0], verdict.evidence


class ArgvInline(InlinePipeline):
    embed = "argv"


def test_payload_as_separate_argument_hits_the_same_limit(tmp_path: Path) -> None:
    cluster = make_cluster("local", ProbeConfig())
    small = ArgvInline().dispatch(payload_workload(4), cluster, "a", LIMITS, tmp_path / "small")
    assert diagnose(small).status == "pass"
    big = ArgvInline().dispatch(payload_workload(120), cluster, "b", LIMITS, tmp_path / "big")
    assert diagnose(big).failure_class == "arg_too_long"


def _first_level_over_limit(ladder_name: str) -> int:
    ladder = load_ladder(ladder_name)
    for level in ladder.numbers():
        b64 = base64.b64encode(cloudpickle.dumps(ladder.workload(level).load())).decode()
        if len(inline_program(b64).encode()) + 1 > MAX_ARG_STRLEN:
            return level
    raise AssertionError("no level crosses the limit")


def test_bisect_finds_the_level_where_the_pickle_crosses_the_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = _first_level_over_limit("default")
    assert 8 <= expected <= 16  # the default ladder's pickle crosses 128 KiB of base64 in the low teens
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("PROBE_CONFIG", raising=False)
    result = CliRunner().invoke(
        app,
        [
            "--reports-dir",
            str(tmp_path / "reports"),
            "bisect",
            "--pipeline",
            "inline",
            "--hi",
            "20",
            "--json",
            "--quiet",
        ],
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["pipeline"] == "inline"
    assert data["first_fail"] == expected and data["last_pass"] == expected - 1
    assert data["failure"]["class"] == "arg_too_long"
    assert any("Argument list too long" in line for line in data["failure"]["evidence"])
    assert any(
        re.search(r"\b\d{6,} bytes, over the 131072-byte limit", line) for line in data["failure"]["evidence"]
    ), data["failure"]["evidence"]
