"""The native pipeline: what it ships, and how it reads what comes back (JSON only)."""

from __future__ import annotations

import time
from pathlib import Path

import cloudpickle
import pytest

from threshold_probe.clusters import make_cluster
from threshold_probe.config import ProbeConfig
from threshold_probe.diagnose import diagnose
from threshold_probe.ladder.workload import Workload
from threshold_probe.models import PYTHON, JobResult, Limits, Observation, shared_ref
from threshold_probe.pipelines import make_pipeline
from threshold_probe.pipelines._runner_io import fill_observation, read_json_file, runner_timings
from threshold_probe.pipelines.base import ClientSideError
from threshold_probe.remote import runner_source


def test_build_ships_the_function_by_value_and_the_runner_as_shared(tmp_path: Path) -> None:
    workload = Workload(name="w", source="def workload():\n    return 6 * 7\n", func_name="workload", level=3)
    limits = Limits(memory_bytes=1024**3, time_s=5)
    job = make_pipeline("native").build(workload, "p", limits, tmp_path)
    assert job.argv == [PYTHON, shared_ref("runner.py"), "payload.pkl"]
    assert job.shared == {"runner.py": runner_source()}
    assert job.fetch == ["meta.json", "result.json"] and job.limits == limits
    # By value: the payload loads although the workload's module cannot be imported.
    func = cloudpickle.loads(job.files["payload.pkl"])
    assert func() == 42


def test_unpicklable_function_raises_client_side_error(tmp_path: Path) -> None:
    source = "import threading\nLOCK = threading.Lock()\ndef workload():\n    return LOCK\n"
    workload = Workload(name="w", source=source, func_name="workload")
    with pytest.raises(ClientSideError) as info:
        make_pipeline("native").build(workload, "p", Limits(), tmp_path)
    assert info.value.failure_class == "serialize"
    assert "lock" in str(info.value)


def test_source_that_does_not_compile_here_is_syntax(tmp_path: Path) -> None:
    workload = Workload(name="w", source="def workload(:\n    pass\n", func_name="workload")
    obs = make_pipeline("native").dispatch(workload, make_cluster("local", ProbeConfig()), "p", Limits(), tmp_path)
    verdict = diagnose(obs)
    assert verdict.failure_class == "syntax" and "stage: client" in verdict.evidence


def test_peak_memory_is_measured(tmp_path: Path) -> None:
    source = "def workload():\n    block = bytearray(200 * 1024 * 1024)\n    return len(block)\n"
    workload = Workload(name="w", source=source, func_name="workload")
    cluster = make_cluster("local", ProbeConfig())
    obs = make_pipeline("native").dispatch(workload, cluster, "p", Limits(time_s=60), tmp_path)
    assert diagnose(obs).status == "pass"
    assert obs.peak_rss_mb is not None and 200 <= obs.peak_rss_mb < 400


def _obs() -> Observation:
    return Observation(
        probe_id="p",
        workload="w",
        cluster="c",
        pipeline="native",
        started_at=0.0,
        wall_s=0.0,
        job=JobResult(),
    )


def test_malformed_meta_is_evidence_not_a_crash(tmp_path: Path) -> None:
    (tmp_path / "meta.json").write_text('{"status": "ok", "t": {')
    (tmp_path / "result.json").write_text("[1, 2]")
    result = JobResult(
        exit_code=0, files={"meta.json": tmp_path / "meta.json", "result.json": tmp_path / "result.json"}
    )
    obs = fill_observation(_obs(), result)
    assert obs.meta is None and obs.result is None
    assert any("meta.json is not valid JSON" in n for n in obs.notes)
    assert any("result.json holds a list" in n for n in obs.notes)
    obs.job = result
    verdict = diagnose(obs)
    assert verdict.failure_class == "no_result"
    assert any("meta.json is not valid JSON" in line for line in verdict.evidence)


def test_missing_and_huge_files(tmp_path: Path) -> None:
    assert read_json_file(tmp_path / "absent.json") == (None, None)
    big = tmp_path / "meta.json"
    big.write_bytes(b" " * (17 * 1024**2))
    data, note = read_json_file(big)
    assert data is None and note is not None and "too large" in note


def test_timings_merge_cluster_and_runner_clocks() -> None:
    now = time.time()
    meta = {
        "t": {
            "runner_start": now + 0.5,
            "deserialize_start": now + 0.6,
            "deserialize_end": now + 0.8,
            "execute_start": now + 0.8,
            "execute_end": now + 2.8,
            "serialize_start": now + 2.8,
            "serialize_end": now + 2.9,
        }
    }
    result = JobResult(timings={"stage_in": 0.1, "launched_at": now, "process": 3.0, "queue": 4.0})
    timings = runner_timings(meta, result)
    assert set(timings) == {"stage_in", "queue", "startup", "deserialize", "execute", "serialize"}
    assert timings["startup"] == pytest.approx(0.5)
    assert timings["execute"] == pytest.approx(2.0)
    assert timings["serialize"] == pytest.approx(0.1, abs=1e-6)
