"""Each failure class, produced by a real cause on the local cluster and diagnosed."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from threshold_probe.clusters import make_cluster
from threshold_probe.clusters.local import LocalCluster
from threshold_probe.config import LocalClusterConfig, ProbeConfig
from threshold_probe.diagnose import CLASSES, diagnose
from threshold_probe.ladder.workload import Workload
from threshold_probe.models import PYTHON, JobResult, JobSpec, Limits, Observation, Verdict
from threshold_probe.pipelines import make_pipeline
from threshold_probe.pipelines._runner_io import fill_observation
from threshold_probe.pipelines.base import Pipeline, ShippingPipeline
from threshold_probe.signature import matches


def run_probe(
    source: str,
    tmp_path: Path,
    limits: Limits | None = None,
    cluster: LocalCluster | None = None,
    pipeline: Pipeline | None = None,
) -> tuple[Observation, Verdict]:
    cl = cluster or make_cluster("local", ProbeConfig())
    cl.open()
    workload = Workload(name="w", source=source, func_name="workload")
    pipe = pipeline or make_pipeline("native")
    obs = pipe.dispatch(workload, cl, "p1", limits or Limits(time_s=60), tmp_path / "probe")
    verdict = diagnose(obs)
    assert verdict.status == "pass" or verdict.failure_class in CLASSES
    return obs, verdict


def test_pass_has_every_stage_timed(tmp_path: Path) -> None:
    obs, verdict = run_probe("def workload():\n    return {'rows': [1, 2, 3]}\n", tmp_path)
    assert verdict.status == "pass" and verdict.failure_class is None
    for stage in ("stage_in", "startup", "deserialize", "execute", "serialize", "stage_out"):
        assert stage in obs.timings, stage
        assert 0 <= obs.timings[stage] < 30
    assert obs.result is not None and obs.result["type"] == "dict"


def test_exception_carries_the_traceback(tmp_path: Path) -> None:
    source = "def helper(n):\n    raise ValueError(f'bad value {n}')\ndef workload():\n    return helper(41)\n"
    _, verdict = run_probe(source, tmp_path)
    assert verdict.failure_class == "exception"
    assert verdict.evidence[0] == "ValueError: bad value 41"
    assert "stage: execute" in verdict.evidence
    # The raising frame and its caller; cloudpickle ships no source, so frames have no code lines.
    assert any("line 2, in helper" in line for line in verdict.evidence)
    assert any("line 4, in workload" in line for line in verdict.evidence)
    assert verdict.signature == "exception:ValueError:bad value <n>"


def test_os_exit_zero_is_no_result(tmp_path: Path) -> None:
    obs, verdict = run_probe("import os\ndef workload():\n    os._exit(0)\n", tmp_path)
    assert obs.job.exit_code == 0
    assert verdict.failure_class == "no_result"
    assert "result.json was not written" in verdict.evidence
    assert any("stage execute" in line for line in verdict.evidence)


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGSEGV])
def test_a_real_signal_is_killed_with_its_name(tmp_path: Path, signum: int) -> None:
    source = f"import os\ndef workload():\n    os.kill(os.getpid(), {int(signum)})\n"
    obs, verdict = run_probe(source, tmp_path)
    name = signal.Signals(signum).name
    assert obs.job.signal == signum
    assert verdict.failure_class == "killed"
    assert name in verdict.evidence[0] and name in (verdict.explanation or "")
    assert verdict.signature == f"killed:{name}:"


def test_missing_module_inside_the_function_is_import(tmp_path: Path) -> None:
    source = "def workload():\n    import no_such_module_on_far_side\n    return 1\n"
    _, verdict = run_probe(source, tmp_path)
    assert verdict.failure_class == "import"
    assert "no_such_module_on_far_side" in (verdict.explanation or "")
    assert verdict.evidence[0].startswith("ModuleNotFoundError: No module named")


def test_module_only_on_the_client_is_import_at_load(tmp_path: Path) -> None:
    # A module importable here is pickled by reference; the far side cannot import it.
    mod_dir = tmp_path / "client_only"
    mod_dir.mkdir()
    (mod_dir / "client_only_helpers.py").write_text("def value():\n    return 7\n")
    sys.path.insert(0, str(mod_dir))
    try:
        source = "import client_only_helpers\ndef workload():\n    return client_only_helpers.value()\n"
        _, verdict = run_probe(source, tmp_path)
    finally:
        sys.path.remove(str(mod_dir))
        sys.modules.pop("client_only_helpers", None)
    assert verdict.failure_class == "import"
    assert "stage: deserialize" in verdict.evidence
    assert "client_only_helpers" in verdict.evidence[0]


def test_name_error_is_name(tmp_path: Path) -> None:
    _, verdict = run_probe("def workload():\n    return helper_17(3)\n", tmp_path)
    assert verdict.failure_class == "name"
    assert verdict.evidence[0] == "NameError: name 'helper_17' is not defined"
    assert verdict.signature == "name:NameError:name 'helper_<n>' is not defined"


def test_far_side_compile_error_is_syntax(tmp_path: Path) -> None:
    source = (
        "def workload():\n"
        "    generated = 'def broken(:\\n    pass\\n'\n"
        "    namespace = {}\n"
        "    exec(compile(generated, 'generated.py', 'exec'), namespace)\n"
    )
    _, verdict = run_probe(source, tmp_path)
    assert verdict.failure_class == "syntax"
    assert verdict.evidence[0].startswith("SyntaxError:")


def test_unpicklable_result_is_result_serialize(tmp_path: Path) -> None:
    source = "import threading\ndef workload():\n    return {'lock': threading.Lock()}\n"
    obs, verdict = run_probe(source, tmp_path)
    assert verdict.failure_class == "result_serialize"
    assert "stage: serialize" in verdict.evidence
    assert "lock" in verdict.evidence[0]
    assert obs.result is None and obs.job.exit_code == 13


def test_generator_result_is_result_serialize(tmp_path: Path) -> None:
    _, verdict = run_probe("def workload():\n    return (i for i in range(3))\n", tmp_path)
    assert verdict.failure_class == "result_serialize"
    assert verdict.evidence[0] == "TypeError: cannot pickle 'generator' object"


def test_unpicklable_function_is_serialize_on_the_client(tmp_path: Path) -> None:
    source = "import threading\nLOCK = threading.Lock()\ndef workload():\n    return LOCK.locked()\n"
    obs, verdict = run_probe(source, tmp_path)
    assert obs.client_error is not None and obs.job.exit_code is None
    assert verdict.failure_class == "serialize"
    assert "lock" in verdict.evidence[0]


def test_workload_subprocess_with_overlong_argument_is_arg_too_long(tmp_path: Path) -> None:
    source = (
        "import subprocess, sys\n"
        "def workload():\n"
        "    return subprocess.run([sys.executable, '-c', '#' + 'x' * 200000]).returncode\n"
    )
    _, verdict = run_probe(source, tmp_path)
    assert verdict.failure_class == "arg_too_long"
    assert "Argument list too long" in verdict.evidence[0]


class InlineSourcePipeline(ShippingPipeline):
    """Ships the source on the command line, as some runners do with `python -c`."""

    name = "inline-test"

    def build(self, workload: Workload, probe_id: str, limits: Limits, local_dir: Path) -> JobSpec:
        code = workload.source + f"\nprint({workload.func_name}())\n"
        return JobSpec(probe_id=probe_id, argv=[PYTHON, "-c", code], limits=limits, local_dir=local_dir)

    def observe(self, workload: Workload, job: JobSpec, result: JobResult, obs: Observation) -> Observation:
        return fill_observation(obs, result)


def test_command_line_over_max_arg_strlen_is_arg_too_long(tmp_path: Path) -> None:
    # 200 KB of captured data in the source: one argv item over MAX_ARG_STRLEN (128 KiB).
    source = "DATA = '" + "x" * 200_000 + "'\ndef workload():\n    return len(DATA)\n"
    obs, verdict = run_probe(source, tmp_path, pipeline=InlineSourcePipeline())
    assert obs.job.launch_error == "OSError: [Errno 7] Argument list too long"
    assert verdict.failure_class == "arg_too_long"
    assert verdict.evidence[0] == "OSError: [Errno 7] Argument list too long"
    # Below the limit the same pipeline works.
    small = "DATA = 'x'\ndef workload():\n    return len(DATA)\n"
    _, ok = run_probe(small, tmp_path / "small", pipeline=InlineSourcePipeline())
    assert ok.failure_class == "no_result"  # inline writes no result.json, but it ran: not E2BIG


def test_sys_exit_in_the_workload_is_no_result(tmp_path: Path) -> None:
    _, verdict = run_probe("import sys\ndef workload():\n    sys.exit(3)\n", tmp_path)
    assert verdict.failure_class == "no_result"
    assert "sys.exit(3)" in (verdict.explanation or "")


def test_far_side_without_cloudpickle_is_deserialize_with_versions(tmp_path: Path) -> None:
    # A fresh venv of this very interpreter, without cloudpickle: a real environment difference.
    venv = tmp_path / "bare"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    cluster = LocalCluster("bare", LocalClusterConfig(python=str(venv / "bin" / "python"), workdir=str(tmp_path / "w")))
    _, verdict = run_probe("def workload():\n    return 1\n", tmp_path, cluster=cluster)
    assert verdict.failure_class == "deserialize"
    assert verdict.evidence[0] == "ModuleNotFoundError: No module named 'cloudpickle'"
    assert any(line.startswith("far side:") and "cloudpickle missing" in line for line in verdict.evidence)
    assert "cloudpickle" in (verdict.explanation or "")


def test_match_tells_one_failure_from_another(tmp_path: Path) -> None:
    _, name_a = run_probe("def workload():\n    return helper_3()\n", tmp_path / "a")
    _, name_b = run_probe("def workload():\n    return helper_29()\n", tmp_path / "b")
    _, other = run_probe("def workload():\n    raise KeyError('k')\n", tmp_path / "c")
    assert name_a.signature == name_b.signature
    assert name_a.signature is not None and matches(name_b, name_a.signature)
    assert not matches(other, name_a.signature)
    assert matches(other, "exception") and not matches(name_a, "exception")
