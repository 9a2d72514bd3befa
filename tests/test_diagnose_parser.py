"""The stderr traceback parser and the log/scheduler rules of diagnosis, on captured stderr fixtures.

These are unit tests of parsing: the observations are built by hand from recorded logs. The real
faults are produced in test_diagnose_local.py.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from threshold_probe.diagnose import CLASSES, diagnose, parse_tracebacks, root_exception
from threshold_probe.models import JobResult, Limits, Observation

ASSETS = Path(__file__).parent / "assets" / "diagnose"


def asset(name: str) -> str:
    return (ASSETS / name).read_text()


def observation(
    job: JobResult, meta: dict[str, object] | None = None, cluster: str = "slurm", **kw: object
) -> Observation:
    return Observation(
        probe_id="p",
        workload="w",
        cluster=cluster,
        pipeline="clustrix",
        started_at=time.time(),
        wall_s=1.0,
        job=job,
        meta=meta,
        **kw,
    )


def test_every_class_has_a_one_line_explanation() -> None:
    for name, text in CLASSES.items():
        assert text and "\n" not in text, name
    required = {
        "serialize", "transfer", "deserialize", "import", "syntax", "name", "exception", "oom",
        "timeout", "killed", "no_result", "result_serialize", "arg_too_long", "scheduler",
    }  # fmt: skip
    assert required <= set(CLASSES)


def test_parser_finds_root_below_wrapper_line() -> None:
    root, wrappers = root_exception(asset("clustrix_wrapper.txt"))
    assert root is not None
    assert root.exc_type == "ModuleNotFoundError" and root.message == "No module named 'pandas'"
    assert root.traceback[0] == "Traceback (most recent call last):"
    assert any("import pandas as pd" in line for line in root.traceback)
    assert [w.line for w in wrappers] == ["Error: result_raw.pkl not found - VENV2 execution may have failed"]


def test_parser_chained_exception_root_is_the_cause_not_the_wrapper() -> None:
    reports = parse_tracebacks(asset("chained_wrapper.txt"))
    assert [r.exc_type for r in reports] == ["KeyError", "RuntimeError"]
    assert reports[1].wrapper and not reports[0].wrapper
    root, wrappers = root_exception(asset("chained_wrapper.txt"))
    assert root is not None and root.line == "KeyError: 'sample_17'"
    assert wrappers[0].exc_type == "RuntimeError"


def test_parser_strips_a_log_prefix_and_sees_the_dotted_wrapper_type() -> None:
    root, wrappers = root_exception(asset("prefixed_remote_then_client.txt"))
    assert root is not None and root.line == "NameError: name 'helper_23' is not defined"
    assert '  File "<dynamic-code>", line 4, in workload' in root.traceback
    assert wrappers and wrappers[0].exc_type == "remote_runner.client.RemoteExecutionError"
    assert wrappers[0].short_type == "RemoteExecutionError"


def test_parser_handles_syntax_error_without_header_truncation_and_recursion() -> None:
    root, _ = root_exception(asset("syntax_no_header.txt"))
    assert root is not None and root.exc_type == "SyntaxError"
    assert root_exception(asset("truncated_traceback.txt")) == (None, [])
    reports = parse_tracebacks(asset("truncated_traceback.txt"))
    assert len(reports) == 1 and reports[0].exc_type == "" and len(reports[0].traceback) == 4
    rec, _ = root_exception(asset("recursion.txt"))
    assert rec is not None and rec.exc_type == "RecursionError"
    assert any("Previous line repeated" in line for line in rec.traceback)


def test_parser_ignores_plain_words_that_are_not_exceptions() -> None:
    text = "Killed\nDone: 3 items\nWarning: low disk\nINFO: started\n"
    assert parse_tracebacks(text) == []


def _stderr_job(tmp_path: Path, text: str, **kw: object) -> JobResult:
    path = tmp_path / "stderr.log"
    path.write_text(text)
    return JobResult(stderr_path=path, stderr_tail=text[-4096:], **kw)


def test_wrapper_message_verdict_names_the_root_and_keeps_the_wrapper(tmp_path: Path) -> None:
    job = _stderr_job(tmp_path, asset("clustrix_wrapper.txt"), exit_code=1)
    obs = observation(job, client_error="RuntimeError: result_raw.pkl not found - VENV2 execution may have failed")
    verdict = diagnose(obs)
    assert verdict.failure_class == "import"
    assert verdict.evidence[0] == "ModuleNotFoundError: No module named 'pandas'"
    assert "Error: result_raw.pkl not found - VENV2 execution may have failed" in verdict.evidence
    assert obs.client_error in verdict.evidence
    assert "'pandas' is missing" in (verdict.explanation or "")


def test_prefixed_log_diagnoses_name(tmp_path: Path) -> None:
    verdict = diagnose(observation(_stderr_job(tmp_path, asset("prefixed_remote_then_client.txt"), exit_code=1)))
    assert verdict.failure_class == "name"
    assert verdict.signature == "name:NameError:name 'helper_<n>' is not defined"
    assert any("RemoteExecutionError" in line for line in verdict.evidence)


def test_syntax_error_without_meta(tmp_path: Path) -> None:
    verdict = diagnose(observation(_stderr_job(tmp_path, asset("syntax_no_header.txt"), exit_code=1)))
    assert verdict.failure_class == "syntax"


def test_version_skew_in_stderr_is_deserialize(tmp_path: Path) -> None:
    verdict = diagnose(observation(_stderr_job(tmp_path, asset("version_skew.txt"), exit_code=1)))
    assert verdict.failure_class == "deserialize"
    assert verdict.evidence[0] == "TypeError: code() takes at most 16 arguments (18 given)"
    assert any(line.startswith("client: Python") for line in verdict.evidence)
    assert "version difference" in (verdict.explanation or "")


@pytest.mark.parametrize(
    ("state", "stderr", "expected"),
    [
        ("OUT_OF_MEMORY", "slurm_oom.txt", "oom"),
        ("TIMEOUT", "slurm_time_limit.txt", "timeout"),
        ("CANCELLED", "slurm_time_limit.txt", "timeout"),
        ("CANCELLED by 0", None, "scheduler"),
        ("NODE_FAIL", None, "scheduler"),
        ("BOOT_FAIL", None, "scheduler"),
        ("PREEMPTED", None, "scheduler"),
        ("DEADLINE", None, "scheduler"),
    ],
)
def test_scheduler_states(tmp_path: Path, state: str, stderr: str | None, expected: str) -> None:
    facts = {"JobId": "4242", "JobState": state, "ExitCode": "0:9", "Reason": "None"}
    job = _stderr_job(tmp_path, asset(stderr) if stderr else "", scheduler=facts)
    obs = observation(job, limits=Limits(memory_bytes=512 * 1024**2))
    verdict = diagnose(obs)
    assert verdict.failure_class == expected
    assert any(f"JobState={state}" in line for line in verdict.evidence)
    if expected == "oom":
        assert any("oom-kill" in line for line in verdict.evidence)
        assert any("memory limit: 512MB" in line for line in verdict.evidence)
    if stderr == "slurm_time_limit.txt":
        assert any("DUE TO TIME LIMIT" in line for line in verdict.evidence)


def test_sigkill_with_oom_log_is_oom_and_without_is_killed(tmp_path: Path) -> None:
    oom = diagnose(observation(_stderr_job(tmp_path, asset("slurm_oom.txt"), signal=9)))
    assert oom.failure_class == "oom"
    assert any("oom-kill" in line for line in oom.evidence)
    plain = diagnose(observation(_stderr_job(tmp_path, "", signal=9)))
    assert plain.failure_class == "killed" and "SIGKILL" in plain.evidence[0]


def test_shell_exit_code_137_is_a_kill(tmp_path: Path) -> None:
    verdict = diagnose(observation(_stderr_job(tmp_path, "", exit_code=137)))
    assert verdict.failure_class == "killed" and "SIGKILL" in verdict.evidence[0]


def test_infra_error_is_a_skip_with_its_cause() -> None:
    verdict = diagnose(observation(JobResult(infra_error="ssh: connection refused by 127.0.0.1:2222")))
    assert verdict.status == "skip" and verdict.failure_class is None
    assert verdict.evidence == ["ssh: connection refused by 127.0.0.1:2222"]


@pytest.mark.parametrize(
    ("launch_error", "expected"),
    [
        ("OSError: [Errno 7] Argument list too long", "arg_too_long"),
        ("stage_in: OSError: [Errno 28] No space left on device", "transfer"),
        ("stage_out: OSError: [Errno 122] Disk quota exceeded", "transfer"),
        ("sbatch: error: Batch job submission failed: Invalid partition name specified", "scheduler"),
        ("PermissionError: [Errno 13] Permission denied: '/opt/python'", "launch"),
    ],
)
def test_launch_errors(launch_error: str, expected: str) -> None:
    verdict = diagnose(observation(JobResult(launch_error=launch_error)))
    assert verdict.failure_class == expected
    assert verdict.evidence[0] == launch_error


def test_stderr_argument_list_too_long_is_arg_too_long(tmp_path: Path) -> None:
    text = "/bin/sh: 1: /usr/bin/python3: Argument list too long\n"
    verdict = diagnose(observation(_stderr_job(tmp_path, text, exit_code=126)))
    assert verdict.failure_class == "arg_too_long"
    assert verdict.evidence[0].endswith("Argument list too long")


def test_malformed_meta_fields_do_not_crash(tmp_path: Path) -> None:
    meta: dict[str, object] = {"t": "nonsense", "exception": {"type": "MemoryError"}, "limits": [1, 2]}
    verdict = diagnose(observation(JobResult(exit_code=12), meta=meta, cluster="local"))
    assert verdict.failure_class == "oom"


def test_runner_missing_on_the_far_side_is_transfer(tmp_path: Path) -> None:
    text = (
        "/usr/bin/python3: can't open file '/home/u/.threshold-probe/shared/ab12/runner.py': "
        "[Errno 2] No such file or directory\n"
    )
    verdict = diagnose(observation(_stderr_job(tmp_path, text, exit_code=2)))
    assert verdict.failure_class == "transfer"
    assert "runner.py" in verdict.evidence[0]


def test_full_disk_when_writing_the_result_is_transfer() -> None:
    meta: dict[str, object] = {
        "status": "error",
        "stage": "serialize",
        "exception": {"type": "OSError", "message": "[Errno 28] No space left on device", "stage": "serialize"},
    }
    verdict = diagnose(observation(JobResult(exit_code=13), meta=meta))
    assert verdict.failure_class == "transfer"


@pytest.mark.parametrize(
    ("exc_type", "expected"),
    [("SyntaxError", "syntax"), ("NameError", "name"), ("ModuleNotFoundError", "import"), ("TypeError", "deserialize")],
)
def test_source_runner_compile_stage(exc_type: str, expected: str) -> None:
    meta: dict[str, object] = {
        "status": "error",
        "stage": "compile",
        "exception": {"type": exc_type, "message": "x", "stage": "compile", "traceback": ""},
    }
    verdict = diagnose(observation(JobResult(exit_code=11), meta=meta))
    assert verdict.failure_class == expected
    assert "stage: compile" in verdict.evidence


def test_pipeline_named_class_is_used_when_logs_say_nothing_more(tmp_path: Path) -> None:
    job = _stderr_job(tmp_path, "starting\n", exit_code=0)
    obs = observation(
        job, client_error="RuntimeError: upload of payload.pkl failed: quota", client_error_type="transfer"
    )
    verdict = diagnose(obs)
    assert verdict.failure_class == "transfer"
    assert verdict.evidence[0] == "RuntimeError: upload of payload.pkl failed: quota"
    # Without a class from the pipeline, a run without a result is no_result.
    obs2 = observation(job, client_error="RuntimeError: result file not found")
    assert diagnose(obs2).failure_class == "no_result"


def test_clustrix_e2big_below_the_venv2_wrapper_is_arg_too_long(tmp_path: Path) -> None:
    job = _stderr_job(tmp_path, asset("clustrix_venv2_e2big.txt"), exit_code=0)
    verdict = diagnose(observation(job, client_error="RuntimeError: remote execution failed"))
    assert verdict.failure_class == "arg_too_long"
    assert verdict.evidence[0] == "OSError: [Errno 7] Argument list too long: 'python'"
    assert "FileNotFoundError: result_raw.pkl not found - VENV2 execution may have failed" in verdict.evidence
    assert any("_execute_child" in line for line in verdict.evidence)


def test_broken_shell_quoting_is_syntax_with_the_wrapper_kept(tmp_path: Path) -> None:
    verdict = diagnose(observation(_stderr_job(tmp_path, asset("clustrix_shell_quote.txt"), exit_code=0)))
    assert verdict.failure_class == "syntax"
    assert verdict.evidence[0].startswith("bash: -c: line 12: unexpected EOF")
    assert "FileNotFoundError: result_raw.pkl not found - VENV2 execution may have failed" in verdict.evidence
    assert "quoting" in (verdict.explanation or "")
