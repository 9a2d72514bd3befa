"""Reading SLURM's output: scontrol records, squeue rows, sacct rows, exit codes, kill evidence.

The inputs are lines captured from the loopback SLURM (22.05); the integration tests in
test_slurm.py run the same parsers against the live daemons.
"""

from __future__ import annotations

from threshold_probe.clusters.slurm_state import (
    JobKey,
    controller_down,
    elapsed_s,
    exceeded_peak_mb,
    is_final,
    key_of,
    memory_mb,
    parse_exit_code,
    parse_record,
    parse_sacct,
    parse_squeue,
    sbatch_error_line,
    scan_evidence,
)

ARRAY_TASK = (
    "JobId=6 ArrayJobId=3 ArrayTaskId=2 JobName=wrap UserId=root(0) GroupId=root(0) JobState=FAILED "
    "Reason=NonZeroExitCode Dependency=(null) ExitCode=3:0 RunTime=00:00:01 TimeLimit=UNLIMITED "
    "SubmitTime=2026-11-28T17:50:32 StartTime=2026-11-28T17:50:34 EndTime=2026-11-28T17:50:35 "
    "NodeList=tpnode WorkDir=/home/jdoe/my jobs/x StdErr=/tmp/tpj/2/o.log Power="
)


def test_scontrol_record_keeps_values_with_spaces_and_keys_with_slashes() -> None:
    rec = parse_record(ARRAY_TASK)
    assert rec["JobState"] == "FAILED" and rec["ExitCode"] == "3:0"
    assert rec["WorkDir"] == "/home/jdoe/my jobs/x"
    assert rec["Power"] == ""
    assert key_of(rec) == JobKey("3", 2)
    assert key_of({"JobId": "7", "JobState": "COMPLETED"}) == JobKey("7")


def test_squeue_rows_of_plain_jobs_and_array_tasks() -> None:
    text = (
        "1|1|1|N/A|COMPLETED|None|tpnode\n3_3|3|3|3|FAILED|NonZeroExitCode|tpnode\n3_[4-5]|3|3|4|PENDING|Resources|\n"
    )
    rows = parse_squeue(text)
    assert [r.key for r in rows] == [JobKey("1"), JobKey("3", 3), JobKey("3", 4)]
    assert rows[1].state == "FAILED" and rows[1].reason == "NonZeroExitCode"
    assert rows[2].state == "PENDING" and not is_final(rows[2].state)
    assert all(is_final(s) for s in ("COMPLETED", "OUT_OF_MEMORY", "CANCELLED by 0", "TIMEOUT", "NODE_FAIL"))
    assert not is_final("COMPLETING") and not is_final("RUNNING")


def test_sacct_rows_merge_steps_into_their_job() -> None:
    text = (
        "12|12|OUT_OF_MEMORY|0:125||00:00:02|n1|2026-11-28T17:50:33|2026-11-28T17:50:35|2026-11-28T17:50:32\n"
        "12.batch|12.batch|OUT_OF_MEMORY|0:125|204800K|00:00:02|n1|x|x|x\n"
        "12.extern|12.extern|COMPLETED|0:0|1024K|00:00:02|n1|x|x|x\n"
        "9_4|13|TIMEOUT|0:0||00:01:30|n1|x|x|x\n"
    )
    rows = parse_sacct(text)
    assert rows[JobKey("12")]["JobState"] == "OUT_OF_MEMORY" and rows[JobKey("12")]["MaxRSS"] == "204800K"
    assert memory_mb(rows[JobKey("12")]["MaxRSS"]) == 200.0
    assert rows[JobKey("9", 4)]["JobState"] == "TIMEOUT" and rows[JobKey("9", 4)]["JobIdRaw"] == "13"


def test_exit_codes_memory_and_durations() -> None:
    assert parse_exit_code("7:0") == (7, 0)
    assert parse_exit_code("0:9") == (0, 9)
    assert parse_exit_code("") == (None, None)
    assert memory_mb("1.5G") == 1536.0 and memory_mb("512M") == 512.0 and memory_mb("") is None
    assert elapsed_s("00:01:02") == 62.0 and elapsed_s("1-00:00:00") == 86400.0 and elapsed_s("INVALID") is None


def test_kill_evidence_is_found_in_the_output() -> None:
    stderr = (
        "Traceback (most recent call last):\n  ...\n"
        "slurmstepd: error: Job 5 exceeded memory limit (307420 > 102400), being killed\n"
        "slurmstepd: error: *** JOB 5 ON n1 CANCELLED AT 2026-11-28T17:50:35 DUE TO TIME LIMIT ***\n"
        "slurmstepd: error: Detected 1 oom-kill event(s) in StepId=5.batch.\n"
        "all fine here\n"
    )
    evidence = scan_evidence(stderr, "")
    assert len(evidence) == 3 and "all fine here" not in evidence
    assert exceeded_peak_mb(evidence) == 307420 / 1024
    assert scan_evidence("CANCELLED\n" * 100) == ["CANCELLED"]


def test_sbatch_errors_become_one_line_and_controller_trouble_is_recognised() -> None:
    line = sbatch_error_line(
        "sbatch: error: Memory specification can not be satisfied\n"
        "sbatch: error: Batch job submission failed: Requested node configuration is not available\n"
    )
    assert "\n" not in line and line.startswith("sbatch: error: Memory specification")
    assert "Requested node configuration is not available" in line
    assert controller_down("sbatch: error: Batch job submission failed: Unable to contact slurm controller")
    assert controller_down("bash: line 1: sbatch: command not found")
    assert not controller_down(line)
