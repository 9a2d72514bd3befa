"""The far-side runner: runs on Python 3.8 with only cloudpickle, writes JSON only, and a real
Python version difference between client and far side is diagnosed as deserialize."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import cloudpickle
import pytest

from threshold_probe.clusters.local import LocalCluster
from threshold_probe.config import LocalClusterConfig
from threshold_probe.diagnose import diagnose
from threshold_probe.ladder.workload import Workload
from threshold_probe.models import Limits
from threshold_probe.pipelines import make_pipeline
from threshold_probe.remote import RUNNER_PATH, runner

OLD_PYTHONS = [
    "/root/.pyenv/versions/3.8.18/bin/python",
    *sorted(str(p) for p in Path("/root/.pyenv/versions").glob("3.8*/bin/python")),
    *sorted(str(p) for p in Path("/root/.pyenv/versions").glob("3.9*/bin/python")),
    *sorted(str(p) for p in Path("/root/.pyenv/versions").glob("3.10*/bin/python")),
]


def _old_python() -> str | None:
    """A Python older than this one (3.8 to 3.10), whose code objects differ from 3.11's."""
    for candidate in OLD_PYTHONS:
        if os.access(candidate, os.X_OK):
            return candidate
    return None


def _cached_venv(base: str, requirement: str) -> str:
    """A venv of `base` with `requirement` installed, cached between runs; returns its python."""
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "threshold-probe-tests"
    key = hashlib.sha256(f"{base}|{requirement}".encode()).hexdigest()[:10]
    python = cache / f"venv-{key}" / "bin" / "python"
    probe = [str(python), "-c", "import cloudpickle"]
    if not (python.exists() and subprocess.run(probe, capture_output=True, check=False).returncode == 0):
        subprocess.run([base, "-m", "venv", "--clear", str(python.parent.parent)], check=True)
        pip = [str(python), "-m", "pip", "install", "-q", "--disable-pip-version-check", requirement]
        subprocess.run(pip, check=True)
    return str(python)


@pytest.fixture(scope="session")
def old_python() -> str:
    """An older Python (3.8 when there is one) with cloudpickle 3 installed."""
    base = _old_python()
    if base is None:
        pytest.skip("no Python 3.8-3.10 interpreter on this machine")
    return _cached_venv(base, "cloudpickle>=3,<4")


@pytest.fixture(scope="session")
def old_cloudpickle_python() -> str:
    """This Python with cloudpickle 2, whose loader lacks what cloudpickle 3 pickles refer to."""
    return _cached_venv(sys.executable, "cloudpickle==2.2.1")


def _limit_memory() -> None:
    # A real address-space limit, so that a large allocation fails the same way on every machine.
    resource.setrlimit(resource.RLIMIT_AS, (400 * 1024**2, 400 * 1024**2))


def _run_runner(python: str, folder: Path, payload: object) -> subprocess.CompletedProcess[str]:
    (folder / "payload.pkl").write_bytes(cloudpickle.dumps(payload))
    return subprocess.run(
        [python, str(RUNNER_PATH), "payload.pkl"],
        cwd=folder,
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=_limit_memory,
    )


def _meta(folder: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((folder / "meta.json").read_text())
    return data


def _fresh_function(source: str, name: str = "workload") -> object:
    return Workload(name="t", source=source, func_name=name).load()


def test_success_writes_meta_and_result_summary(tmp_path: Path) -> None:
    func = _fresh_function("def workload(a, b=2):\n    return {'sum': a + b, 'items': list(range(3))}\n")
    proc = _run_runner(sys.executable, tmp_path, {"func": func, "args": [5], "kwargs": {"b": 10}})
    assert proc.returncode == runner.EXIT_OK, proc.stderr
    meta = _meta(tmp_path)
    assert meta["status"] == "ok" and meta["exception"] is None and meta["exit_code"] == 0
    stamps = meta["t"]
    assert isinstance(stamps, dict)
    order = [
        "runner_start",
        "deserialize_start",
        "deserialize_end",
        "execute_start",
        "execute_end",
        "serialize_start",
        "serialize_end",
        "runner_end",
    ]
    assert [stamps[k] for k in order] == sorted(stamps[k] for k in order)
    assert meta["python"] == platform.python_version()
    assert meta["cloudpickle"] == cloudpickle.__version__
    assert isinstance(meta["rss_peak_kb_self"], int) and meta["rss_peak_kb_self"] > 1000
    assert {"user", "system", "children_user", "children_system"} <= set(meta["cpu"])
    assert meta["hostname"] and meta["pid"]
    result = json.loads((tmp_path / "result.json").read_text())
    encoded = json.dumps({"sum": 15, "items": [0, 1, 2]}, sort_keys=True).encode()
    assert result["sha256"] == hashlib.sha256(encoded).hexdigest()
    assert result["size"] == len(encoded) and result["encoding"] == "json" and result["type"] == "dict"
    # The runner never leaves a pickle for the client to load.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["meta.json", "payload.pkl", "result.json"]


def test_result_that_pickles_but_is_not_json_is_summarised_by_repr(tmp_path: Path) -> None:
    func = _fresh_function("def workload():\n    return {1, 2, 3}\n")
    proc = _run_runner(sys.executable, tmp_path, func)
    assert proc.returncode == 0, proc.stderr
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["encoding"] == "repr" and result["type"] == "set" and result["repr"] == "{1, 2, 3}"


@pytest.mark.parametrize(
    ("source", "code", "stage", "exc_type"),
    [
        ("def workload():\n    raise KeyError('missing')\n", runner.EXIT_EXECUTE, "execute", "KeyError"),
        ("def workload():\n    return (x for x in [1])\n", runner.EXIT_SERIALIZE, "serialize", "TypeError"),
        (
            "def workload():\n    return bytearray(2 * 1024**3)\n",
            runner.EXIT_EXECUTE,
            "execute",
            "MemoryError",
        ),
    ],
)
def test_failures_are_recorded_with_stage_and_exit_code(
    tmp_path: Path, source: str, code: int, stage: str, exc_type: str
) -> None:
    proc = _run_runner(sys.executable, tmp_path, _fresh_function(source))
    assert proc.returncode == code
    meta = _meta(tmp_path)
    exc = meta["exception"]
    assert isinstance(exc, dict)
    assert meta["status"] == "error" and meta["stage"] == stage and exc["stage"] == stage
    assert exc["type"] == exc_type and "Traceback" in exc["traceback"]
    assert exc_type in proc.stderr  # the traceback is in the log too
    assert not (tmp_path / "result.json").exists()


def test_unreadable_payload_is_a_setup_failure(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(RUNNER_PATH), "missing.pkl"], cwd=tmp_path, capture_output=True, check=False
    )
    assert proc.returncode == runner.EXIT_SETUP
    assert _meta(tmp_path)["stage"] == "setup"


def test_hard_kill_leaves_started_evidence(tmp_path: Path) -> None:
    cluster = LocalCluster("local", LocalClusterConfig(workdir=str(tmp_path / "w")))
    workload = Workload(name="t", source="import time\ndef workload():\n    time.sleep(60)\n", func_name="workload")
    obs = make_pipeline("native").dispatch(workload, cluster, "k", Limits(time_s=1.0), tmp_path / "out")
    assert obs.job.timed_out
    assert obs.meta is not None
    assert obs.meta["status"] == "running" and obs.meta["stage"] == "execute"
    assert "execute_start" not in obs.meta["t"] and "deserialize_end" in obs.meta["t"]


def test_runner_runs_on_python_38_with_only_cloudpickle(tmp_path: Path, old_python: str) -> None:
    # Pickled by the old interpreter itself: the runner works there end to end.
    make = (
        "import cloudpickle, types\n"
        "m = types.ModuleType('unimportable_mod')\n"
        "exec('def f():\\n    return [1, 2, 3]\\n', m.__dict__)\n"
        "open('payload.pkl', 'wb').write(cloudpickle.dumps(m.f))\n"
    )
    subprocess.run([old_python, "-c", make], cwd=tmp_path, check=True)
    proc = subprocess.run(
        [old_python, "-I", str(RUNNER_PATH), "payload.pkl"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    meta = _meta(tmp_path)
    assert str(meta["python"]).split(".")[:2] != [str(v) for v in sys.version_info[:2]]
    assert json.loads((tmp_path / "result.json").read_text())["repr"] == "[1, 2, 3]"


def test_python_version_difference_is_deserialize_with_both_versions(tmp_path: Path, old_python: str) -> None:
    cluster = LocalCluster("old", LocalClusterConfig(python=old_python, workdir=str(tmp_path / "w")))
    workload = Workload(name="t", source="def workload():\n    return 42\n", func_name="workload")
    obs = make_pipeline("native").dispatch(workload, cluster, "v", Limits(time_s=60), tmp_path / "out")
    verdict = diagnose(obs)
    assert verdict.failure_class == "deserialize"
    assert obs.meta is not None
    far = obs.meta["python"]
    here = platform.python_version()
    assert any(line == f"far side: Python {far}, cloudpickle {obs.meta['cloudpickle']}" for line in verdict.evidence)
    assert any(line.startswith(f"client: Python {here}") for line in verdict.evidence)
    assert f"pickled by Python {here}" in (verdict.explanation or "")
    assert f"loaded by Python {far}" in (verdict.explanation or "")
    assert "stage: deserialize" in verdict.evidence


def test_cloudpickle_version_difference_is_deserialize_with_both_versions(
    tmp_path: Path, old_cloudpickle_python: str
) -> None:
    cluster = LocalCluster("oldcp", LocalClusterConfig(python=old_cloudpickle_python, workdir=str(tmp_path / "w")))
    workload = Workload(name="t", source="def workload():\n    return 42\n", func_name="workload")
    obs = make_pipeline("native").dispatch(workload, cluster, "v", Limits(time_s=60), tmp_path / "out")
    verdict = diagnose(obs)
    assert verdict.failure_class == "deserialize"
    assert obs.meta is not None and obs.meta["cloudpickle"] == "2.2.1"
    assert obs.meta["python"] == platform.python_version()
    assert f"far side: Python {platform.python_version()}, cloudpickle 2.2.1" in verdict.evidence
    assert f"cloudpickle {cloudpickle.__version__} and loaded by" in (verdict.explanation or "")
    assert "cloudpickle 2.2.1" in (verdict.explanation or "")


def test_workload_that_changes_directory_still_leaves_its_files(tmp_path: Path) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    job = tmp_path / "job"
    job.mkdir()
    func = _fresh_function(f"import os\ndef workload():\n    os.chdir({str(elsewhere)!r})\n    return 'moved'\n")
    proc = _run_runner(sys.executable, job, func)
    assert proc.returncode == 0, proc.stderr
    assert (job / "meta.json").is_file() and (job / "result.json").is_file()
    assert list(elsewhere.iterdir()) == []
