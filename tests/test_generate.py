"""The source generator: determinism, valid Python for any values, and each dimension doing its job.

Workloads run for real in a fresh interpreter (pickled by value with cloudpickle, as the native
pipeline ships them), so memory, output and failures are measured, not assumed.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import resource
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

import cloudpickle
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from threshold_probe.errors import UserError
from threshold_probe.ladder import DIMENSIONS, generate, load_ladder
from threshold_probe.ladder.workload import Workload
from threshold_probe.metrics import measure_source, measure_workload

_RUNNER = r"""
import json, sys, traceback
import cloudpickle
func = cloudpickle.loads(sys.stdin.buffer.read())
try:
    result = func()
except BaseException as exc:
    sys.__stderr__.write("\nEXCEPTION " + type(exc).__name__ + "\n")
    traceback.print_exc()
    sys.exit(1)
# VmHWM, not ru_maxrss: after fork+exec, ru_maxrss still holds the parent's peak.
peak = int(open("/proc/self/status").read().split("VmHWM:")[1].split()[0])
sys.__stderr__.write("\nRESULT " + json.dumps({"result": result, "peak_kb": peak}) + "\n")
"""


@dataclass
class Ran:
    returncode: int
    stdout: bytes
    stderr: bytes
    result: dict[str, Any] | None
    peak_mb: float | None
    exception: str | None
    seconds: float


def run(workload: Workload, *, memory_limit: int | None = None, env: dict[str, str] | None = None) -> Ran:
    """Run the workload in a fresh interpreter, optionally under a real RLIMIT_AS."""

    def limit() -> None:
        if memory_limit:
            resource.setrlimit(resource.RLIMIT_AS, (memory_limit, memory_limit))

    payload = cloudpickle.dumps(workload.load())
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", _RUNNER],
        input=payload,
        capture_output=True,
        preexec_fn=limit,
        env=env,
        timeout=120,
        check=False,
    )
    seconds = time.perf_counter() - started
    stderr, result, peak, exception = proc.stderr, None, None, None
    if b"\nRESULT " in stderr:
        stderr, tail = stderr.rsplit(b"\nRESULT ", 1)
        data = json.loads(tail)
        result, peak = data["result"], data["peak_kb"] / 1024
    if b"\nEXCEPTION " in stderr:
        exception = stderr.rsplit(b"\nEXCEPTION ", 1)[1].split(b"\n")[0].decode()
    return Ran(proc.returncode, proc.stdout, stderr, result, peak, exception, seconds)


def _function(source: str, name: str) -> ast.FunctionDef:
    return next(n for n in ast.walk(ast.parse(source)) if isinstance(n, ast.FunctionDef) and n.name == name)


# -- determinism and validity --------------------------------------------------------------


def test_same_values_give_byte_identical_source() -> None:
    ladder = load_ladder("default")
    for n in ladder.numbers():
        a, b = ladder.workload(n), ladder.workload(n)
        assert a.source.encode() == b.source.encode()
        assert a.sha256 == b.sha256


def test_source_is_identical_across_processes_and_hash_seeds() -> None:
    code = (
        "from threshold_probe.ladder import load_ladder;"
        "import hashlib;"
        "print(hashlib.sha256(''.join(load_ladder('default').workload(n).source for n in (1, 17, 40)).encode())"
        ".hexdigest())"
    )
    digests = set()
    for seed in ("0", "1", "12345"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        )
        digests.add(out.stdout.strip())
    assert len(digests) == 1


def test_generated_module_imports_only_the_standard_library() -> None:
    w = load_ladder("default").workload(40)
    modules = set()
    for node in ast.walk(ast.parse(w.source)):
        if isinstance(node, ast.Import):
            modules |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            modules.add((node.module or "").split(".")[0])
    assert modules and modules <= set(sys.stdlib_module_names)


_SMALL = {
    "loc": st.integers(1, 400),
    "phases": st.integers(0, 12),
    "subprocess_calls": st.integers(0, 25),
    "data_structures": st.integers(0, 25),
    "nesting_depth": st.integers(0, 30),
    "branches": st.integers(0, 25),
    "loops": st.integers(0, 25),
    "memory_mb": st.integers(0, 4096),
    "runtime_s": st.floats(0, 100, allow_nan=False),
    "output_kb": st.integers(0, 10_000),
    "result_kb": st.integers(0, 10_000),
    "payload_kb": st.integers(0, 64),
}


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(values=st.fixed_dictionaries({}, optional=_SMALL), level=st.one_of(st.none(), st.integers(1, 500)))
def test_any_values_give_valid_deterministic_python(values: dict[str, Any], level: int | None) -> None:
    w = generate(values, level=level)
    assert w.source == generate(values, level=level).source
    compile(w.source, "<hypothesis>", "exec")
    assert w.func_name == ("workload" if level is None else f"workload_{level}")
    func = _function(w.source, w.func_name)
    loc = func.end_lineno - func.lineno + 1  # type: ignore[operator]
    # loc is a floor: never more than two lines short of it, longer only when the content is.
    assert loc >= values.get("loc", DIMENSIONS["loc"].default) - 2
    assert w.spec == {name: values.get(name, d.default) for name, d in DIMENSIONS.items()}
    m = next(m for m in measure_source(w.source) if m.name == w.func_name)
    assert m.subprocess_calls == values.get("subprocess_calls", 0)
    assert m.data_structures == values.get("data_structures", 0)
    assert m.max_nesting >= values.get("nesting_depth", 0)


def test_loc_is_tracked_within_ten_percent_on_the_default_ladder() -> None:
    ladder = load_ladder("default")
    for n in range(4, 41):
        m = measure_workload(ladder.workload(n))
        target = int(ladder.level(n).values["loc"])
        assert abs(m.loc - target) <= target * 0.1, (n, m.loc, target)


def test_bad_values_are_user_errors() -> None:
    with pytest.raises(
        UserError, match=r"^workload values: memory_mbb: unknown dimension \(did you mean memory_mb\?\)$"
    ):
        generate({"memory_mbb": 1})
    with pytest.raises(UserError, match=r"^workload values: phases: must be >= 0$"):
        generate({"phases": -1})


def test_generated_functions_have_retrievable_source() -> None:
    w = load_ladder("seed").workload(3)
    func = w.load()
    text = inspect.getsource(func)
    assert text.startswith("def workload_3():")
    assert text in w.source


# -- each dimension does what it says, measured in a real interpreter ----------------------


def test_baseline_runs_and_returns_json() -> None:
    ran = run(generate({}, level=1))
    assert ran.returncode == 0, ran.stderr
    assert ran.result is not None and ran.result["level"] == 1
    assert json.loads(json.dumps(ran.result)) == ran.result


def test_memory_is_held_at_peak() -> None:
    small = run(generate({"memory_mb": 0}, level=1))
    big = run(generate({"memory_mb": 200}, level=1))
    assert small.returncode == big.returncode == 0
    assert big.result is not None and big.result["memory_mb"] == 200
    assert small.peak_mb is not None and big.peak_mb is not None
    assert 190 <= big.peak_mb - small.peak_mb <= 230


def test_memory_above_a_real_rlimit_fails_with_memory_error() -> None:
    w = generate({"memory_mb": 400}, level=9)
    ran = run(w, memory_limit=300 * 1024 * 1024)
    assert ran.returncode == 1
    assert ran.exception == "MemoryError"
    assert b"workload_9" in ran.stderr  # the traceback names the generated function
    assert run(generate({"memory_mb": 150}, level=9), memory_limit=300 * 1024 * 1024).returncode == 0


def test_output_goes_half_to_stdout_and_half_to_stderr() -> None:
    ran = run(generate({"output_kb": 16}, level=2))
    assert ran.returncode == 0
    assert len(ran.stdout) == 8 * 1024
    assert len(ran.stderr) == 8 * 1024
    assert ran.stdout.splitlines()[0].startswith(b"stdout line 000000 ")


def test_result_size() -> None:
    ran = run(generate({"result_kb": 64}, level=2))
    assert ran.result is not None
    size = len(json.dumps(ran.result))
    assert 64 * 1024 * 0.95 <= size <= 64 * 1024 * 1.1


def test_payload_grows_the_pickle_as_a_constant_of_the_function() -> None:
    small, big = generate({"payload_kb": 0}), generate({"payload_kb": 256})
    # The payload is one line of the function: the source grows by it, the line count barely.
    assert 256 * 1024 <= len(big.source) - len(small.source) <= 256 * 1024 + 500
    assert len(big.source.splitlines()) - len(small.source.splitlines()) <= 4
    grown = len(cloudpickle.dumps(big.load())) - len(cloudpickle.dumps(small.load()))
    assert 256 * 1024 <= grown <= 256 * 1024 + 2048
    ran = run(big)
    assert ran.result is not None and len(ran.result["payload_sha256"]) == 64


def test_runtime() -> None:
    fast, slow = run(generate({}, level=1)), run(generate({"runtime_s": 0.4}, level=1))
    assert slow.returncode == 0
    assert slow.seconds - fast.seconds >= 0.35


def test_subprocess_calls_run_harmless_commands() -> None:
    ran = run(generate({"subprocess_calls": 4}, level=5))
    assert ran.result is not None
    assert ran.result["proc_1"] == str(sum(range(10)))
    assert ran.result["proc_2"] == ".".join(map(str, sys.version_info[:3]))
    assert ran.result["proc_3"] == socket.gethostname()
    assert ran.result["proc_4"] == str(os.cpu_count())


def test_data_structures_are_built_and_returned() -> None:
    ran = run(generate({"data_structures": 3}, level=5))
    assert ran.result is not None
    assert ran.result["records_1"]["limits"] == {"low": 1, "high": 10}
    assert ran.result["samples_2"][1] == {"index": 1, "value": 4}
    assert ran.result["table_3"]["rows"] == [[3, 4], [5, 6]]


@pytest.mark.parametrize("depth", [1, 2, 7, 30])
def test_nesting_depth(depth: int) -> None:
    w = generate({"nesting_depth": depth, "loc": 1}, level=1)
    assert measure_workload(w).max_nesting == depth
    result = w.load()()
    # One `tally += 1` per pass through the innermost block: two passes per nested `for`.
    assert result["tally"] == 1 + 2 ** ((depth + 1) // 2)


def test_branches_and_loops_each_add_one_to_cc() -> None:
    base = measure_workload(generate({}, level=1)).cc
    assert measure_workload(generate({"branches": 5}, level=1)).cc == base + 5
    assert measure_workload(generate({"loops": 4}, level=1)).cc == base + 4


def test_phases_are_try_blocks_and_a_real_failure_is_re_raised() -> None:
    w = generate({"phases": 3, "subprocess_calls": 3}, level=4)
    tries = [n for n in ast.walk(_function(w.source, w.func_name)) if isinstance(n, ast.Try)]
    assert len(tries) == 3
    ok = run(w)
    assert ok.returncode == 0 and ok.result is not None and ok.result["proc_3"] == socket.gethostname()
    # Without PATH the `hostname` call of phase 3 really fails; the workload fails with that error.
    env = {k: v for k, v in os.environ.items() if k != "PATH"}
    env["PATH"] = "/nonexistent"
    failed = run(w, env=env)
    assert failed.returncode == 1
    assert failed.exception == "FileNotFoundError"
    assert b"hostname" in failed.stderr


def test_loc_is_reached_with_real_statements() -> None:
    w = generate({"loc": 200, "subprocess_calls": 2}, level=3)
    m = measure_workload(w)
    assert m.loc == 200
    assert m.blank == 0
    assert m.sloc >= 195
    assert w.load()()["tally"] != 3  # the padding really computes
